/** Helpers shared by the chart tests: read Vega's SVG output and PNG headers without a browser. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import sharp from 'sharp';

/** Inner markup of the first `<g class="... <cls>" ...>` element (balanced over nested `<g>`). */
export function groupContent(svg: string, cls: string): string | undefined {
  const open = new RegExp(`<g class="[^"]*\\b${cls}\\b[^"]*"[^>]*>`).exec(svg);
  if (!open) return undefined;
  const start = open.index + open[0].length;
  const tag = /<g\b[^>]*>|<\/g>/g;
  tag.lastIndex = start;
  let depth = 1;
  for (let m = tag.exec(svg); m; m = tag.exec(svg)) {
    depth += m[0] === '</g>' ? -1 : 1;
    if (depth === 0) return svg.slice(start, m.index);
  }
  throw new Error(`unbalanced <g> after class ${cls}`);
}

/** The first `translate(x,y)` in an element's attributes. */
export function translate(attrs: string): [number, number] {
  const m = /transform="translate\(([-\d.e]+),([-\d.e]+)\)"/.exec(attrs);
  assert.ok(m, `no translate() in ${attrs.slice(0, 200)}`);
  return [Number(m[1]), Number(m[2])];
}

/** Vertices [x, y] of an SVG path made of M/L commands (what Vega emits for linear lines). */
export function vertices(d: string): Array<[number, number]> {
  assert.match(d, /^M[-\d.e,ML]*$/, `unexpected path data ${d.slice(0, 80)}`);
  return [...d.matchAll(/[ML]([-\d.e]+),([-\d.e]+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
}

/** The root `<svg>` width/height (integers, matching its viewBox). */
export function svgSize(svg: string): { width: number; height: number } {
  const m = /^<svg[^>]*\swidth="(\d+)"\s+height="(\d+)"\s+viewBox="0 0 (\d+) (\d+)"/.exec(svg);
  assert.ok(m, 'root <svg> has integer width/height and a matching viewBox');
  assert.equal(m[1], m[3]);
  assert.equal(m[2], m[4]);
  return { width: Number(m[1]), height: Number(m[2]) };
}

/** Width and height from a PNG's IHDR chunk (file path or bytes). */
export function pngSize(file: string | Buffer): { width: number; height: number } {
  const buf = typeof file === 'string' ? fs.readFileSync(file) : file;
  assert.deepEqual([...buf.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'PNG signature');
  assert.equal(buf.toString('latin1', 12, 16), 'IHDR');
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

/** Asserts no `*.tmp` file is left in `dir`. */
export function noTempLeft(dir: string): void {
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temporary files left behind');
}

/** Number of dark pixels (mean of R, G, B below 128) in a PNG, decoded with sharp. */
export async function darkPixels(png: string | Buffer): Promise<number> {
  const { data, info } = await sharp(png).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  let n = 0;
  for (let i = 0; i < data.length; i += info.channels) if ((data[i]! + data[i + 1]! + data[i + 2]!) / 3 < 128) n++;
  return n;
}

/** The vertices of each line whose mark group has class `markClass` in `panel` (Vega draws one group per line), by stroke colour. */
export function linesByColor(panel: string, markClass: string): Map<string, Array<[number, number]>> {
  const out = new Map<string, Array<[number, number]>>();
  for (const m of panel.matchAll(new RegExp(`class="[^"]*\\b${markClass}\\b"[^>]*>(<path [^>]*>)`, 'g'))) {
    const stroke = /\sstroke="([^"]+)"/.exec(m[1]!)?.[1];
    const d = /\sd="([^"]*)"/.exec(m[1]!)?.[1];
    if (stroke && d) out.set(stroke, vertices(d));
  }
  return out;
}

/**
 * The panel's y scale as its axis draws it: value -> y pixel, fitted on the first and last tick
 * (each tick's position and its label, e.g. `20%` or `0.4`).
 */
export function yScale(panel: string, title: string): (v: number) => number {
  const start = panel.indexOf(`aria-label="Y-axis titled '${title}'`);
  assert.ok(start >= 0, `y axis titled ${title}`);
  const axis = panel.slice(start);
  const ys = [...groupContent(axis, 'role-axis-tick')!.matchAll(/<line transform="translate\(0,([-\d.e]+)\)"/g)].map((m) => Number(m[1]));
  const vs = [...groupContent(axis, 'role-axis-label')!.matchAll(/>([-\d.]+)(%?)<\/text>/g)].map((m) => Number(m[1]) / (m[2] ? 100 : 1));
  assert.ok(ys.length >= 2 && ys.length === vs.length, `${title}: ticks and labels`);
  const [y0, y1, v0, v1] = [ys[0]!, ys.at(-1)!, vs[0]!, vs.at(-1)!];
  return (v) => y0 + ((v - v0) * (y1 - y0)) / (v1 - v0);
}
