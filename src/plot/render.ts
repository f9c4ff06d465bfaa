/**
 * Rendering back end for the charts in `./charts.ts`: Vega-Lite spec -> Vega
 * -> SVG (headless, `renderer: 'none'`) -> PNG (resvg), written atomically.
 */
import { mkdir } from 'node:fs/promises';
import * as path from 'node:path';
import { writeDurable } from '../fs-durable.js';

import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

/** Absolute paths of the two files written for one chart. */
export interface ChartFiles {
  /** Absolute path of the PNG image (`<outDir>/<basename>.png`). */
  png: string;
  /** Absolute path of the SVG image (`<outDir>/<basename>.svg`). */
  svg: string;
}

/** Font family used for every piece of chart text (installed under /usr/share/fonts/truetype/dejavu). */
export const CHART_FONT = 'DejaVu Sans';

/** Directories resvg searches for fonts, in addition to the system font set. */
const FONT_DIRS = ['/usr/share/fonts'];

/**
 * Compile a Vega-Lite spec and render it to an SVG string with a headless
 * Vega view. The SVG's root `width`/`height` are the full image size in CSS
 * pixels (plot area plus axes, titles, legend and padding).
 */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const { spec: vgSpec } = compile(spec);
  const view = new vega.View(vega.parse(vgSpec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/**
 * Rasterise an SVG string to PNG bytes with resvg, at scale 1 (one PNG pixel
 * per SVG CSS pixel, so the PNG is the SVG's `width` x `height`), on a white
 * background, using system fonts with "DejaVu Sans" as the fallback family.
 */
export function svgToPng(svg: string): Buffer {
  const resvg = new Resvg(svg, {
    font: { loadSystemFonts: true, fontDirs: FONT_DIRS, defaultFontFamily: CHART_FONT },
    background: 'white',
  });
  return resvg.render().asPng();
}


/**
 * Render a Vega-Lite spec and write `<outDir>/<basename>.svg` and
 * `<outDir>/<basename>.png` (outDir is created recursively). Returns the
 * absolute paths written.
 */
export async function renderChartFiles(spec: TopLevelSpec, outDir: string, basename: string): Promise<ChartFiles> {
  if (basename === '' || basename !== path.basename(basename)) {
    throw new Error(`plot: basename must be a plain file name, got ${JSON.stringify(basename)}`);
  }
  const dir = path.resolve(outDir);
  await mkdir(dir, { recursive: true });
  const svg = await renderSvg(spec);
  const png = svgToPng(svg);
  const files: ChartFiles = { png: path.join(dir, `${basename}.png`), svg: path.join(dir, `${basename}.svg`) };
  await writeDurable(files.svg, svg);
  await writeDurable(files.png, png);
  return files;
}
