/**
 * A grid of misclassified images (PNG + SVG): each image, enlarged with nearest-neighbour
 * sampling and embedded as a PNG data URI in a Vega-Lite `image` mark, with "true: <class>"
 * and "pred: <class> (p%)" under it. Images are encoded with sharp (libvips).
 */
import sharp from 'sharp';
import type { TopLevelSpec } from 'vega-lite';

import { MARK_NAMES } from './charts.js';
import { renderChartFiles, type ChartFiles } from './render.js';
import { CONFIG, checkSize } from './style.js';

/** One misclassified image to show. */
export interface MisclassifiedTile {
  /** Pixels, uint8, HWC (NHWC with n = 1), row-major, `height * width * channels` values. */
  pixels: Uint8Array;
  height: number;
  width: number;
  /** 1 (grey) or 3 (RGB). */
  channels: number;
  /** True class name. */
  label: string;
  /** Predicted class name. */
  predicted: string;
  /** Softmax probability of the predicted class, in [0, 1]. */
  probability: number;
}

/** Options of {@link plotMisclassified}. */
export interface MisclassifiedOptions {
  /** File name without extension. @defaultValue 'misclassified' */
  basename?: string;
  /** Tiles per row. @defaultValue 8 */
  columns?: number;
  /** Longest side of each image as drawn, CSS pixels. @defaultValue 64 */
  imageSize?: number;
  /** Chart title. @defaultValue 'Misclassified images' */
  title?: string;
}

/** Default basename of the misclassified grid. */
export const DEFAULT_MISCLASSIFIED_BASENAME = 'misclassified';
const LABEL_HEIGHT = 32;
const MIN_TILE_WIDTH = 110;
/** Widest tile, CSS pixels. */
export const MAX_TILE_WIDTH = 220;
const FONT_SIZE = 11;

/**
 * `data:image/png;base64,...` of one HWC uint8 image, enlarged by the largest integer factor
 * that keeps its longest side within `size` (at least 1x), nearest-neighbour, so pixels stay crisp.
 * @throws RangeError for a pixel count that does not match, or channels other than 1 or 3.
 */
export async function pngDataUri(pixels: Uint8Array, height: number, width: number, channels: number, size: number): Promise<string> {
  if (channels !== 1 && channels !== 3) throw new RangeError(`plot: images must have 1 or 3 channels, got ${channels}`);
  if (pixels.length !== height * width * channels) throw new RangeError(`plot: ${pixels.length} pixel values for a ${height}x${width}x${channels} image`);
  const scale = Math.max(1, Math.floor(size / Math.max(height, width)));
  let img = sharp(Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength), { raw: { width, height, channels } });
  if (scale > 1) img = img.resize(width * scale, height * scale, { kernel: 'nearest' });
  if (channels === 1) img = img.toColourspace('b-w');
  const png = await img.png().toBuffer();
  return `data:image/png;base64,${png.toString('base64')}`;
}

/**
 * Estimated width of `text` in ems: 0.62 em per character (DejaVu Sans' average advance) and
 * 1 em per East Asian wide character (CJK ideographs, kana, hangul, full-width forms).
 */
export function textEms(text: string): number {
  let ems = 0;
  for (const ch of text) ems += /[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6]/u.test(ch) ? 1 : 0.62;
  return ems;
}

/** `text` cut to at most `ems` (see {@link textEms}), ending in "…" when cut. */
export function fitText(text: string, ems: number): string {
  if (textEms(text) <= ems) return text;
  let out = '';
  for (const ch of text) {
    if (textEms(`${out}${ch}…`) > ems) break;
    out += ch;
  }
  return `${out}…`;
}

/**
 * Tile size of the grid, CSS pixels: wide enough for the image and the longest label (at most
 * {@link MAX_TILE_WIDTH}; longer labels are cut with "…"), tall enough for the image and two label lines.
 */
export function tileLayout(imageSize: number, labels: readonly string[] = []): { tileWidth: number; tileHeight: number } {
  const longest = Math.max(0, ...labels.map(textEms));
  const tileWidth = Math.ceil(Math.max(MIN_TILE_WIDTH, imageSize + 16, Math.min(MAX_TILE_WIDTH, longest * FONT_SIZE + 12)));
  return { tileWidth, tileHeight: imageSize + LABEL_HEIGHT + 12 };
}

/**
 * Vega-Lite spec of the grid: tiles left to right, top to bottom, in the given order; x/y are
 * pixel positions (`scale: null`), so the plot area is columns x rows tiles.
 */
export async function misclassifiedSpec(tiles: readonly MisclassifiedTile[], opts: Omit<MisclassifiedOptions, 'basename'> = {}): Promise<TopLevelSpec> {
  const columns = Math.round(checkSize('columns', opts.columns ?? 8));
  const imageSize = checkSize('imageSize', opts.imageSize ?? 64);
  const texts = tiles.map((t) => [`true: ${t.label}`, `pred: ${t.predicted} (${(100 * t.probability).toFixed(0)}%)`] as const);
  const { tileWidth, tileHeight } = tileLayout(imageSize, texts.flat());
  const fit = (s: string) => fitText(s, (tileWidth - 8) / FONT_SIZE);
  const cols = Math.max(1, Math.min(columns, tiles.length));
  const rows = Math.max(1, Math.ceil(tiles.length / cols));
  const values = await Promise.all(
    tiles.map(async (t, i) => {
      const cx = (i % cols) * tileWidth + tileWidth / 2;
      const top = Math.floor(i / cols) * tileHeight + 4;
      return {
        url: await pngDataUri(t.pixels, t.height, t.width, t.channels, imageSize),
        cx, top, labelY: top + imageSize + 6,
        trueText: fit(texts[i]![0]), predText: fit(texts[i]![1]),
      };
    }),
  );
  const px = (field: string) => ({ field, type: 'quantitative', scale: null, axis: null });
  const text = (name: string, field: string, dy: number, color: string) => ({
    name,
    mark: { type: 'text', align: 'center', baseline: 'top', dy, fontSize: FONT_SIZE, color },
    encoding: { x: px('cx'), y: px('labelY'), text: { field } },
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: opts.title ?? 'Misclassified images',
    width: cols * tileWidth,
    height: rows * tileHeight,
    config: { ...CONFIG, view: { stroke: null } },
    data: { values },
    layer: [
      {
        name: MARK_NAMES.misclassifiedImage,
        // aspect: true (the default) fits non-square images inside the imageSize box
        mark: { type: 'image', align: 'center', baseline: 'top', width: imageSize, height: imageSize, aria: false },
        encoding: { x: px('cx'), y: px('top'), url: { field: 'url', type: 'nominal' } },
      },
      text(MARK_NAMES.misclassifiedTrue, 'trueText', 0, '#222222'),
      text(MARK_NAMES.misclassifiedPredicted, 'predText', 15, '#c62828'),
    ],
  } as unknown as TopLevelSpec;
}

/**
 * Grid of misclassified images; writes `<outDir>/<basename>.svg` (images embedded as PNG data
 * URIs, so the SVG is self-contained) and `.png` atomically. Defaults: 8 columns, images drawn
 * at most 64 CSS pixels on their longest side, basename `misclassified`.
 * @returns absolute paths of the PNG and SVG written.
 * @throws RangeError for a tile whose pixel count does not match its size, or 2+ channels other than 3.
 */
export async function plotMisclassified(tiles: readonly MisclassifiedTile[], outDir: string, opts: MisclassifiedOptions = {}): Promise<ChartFiles> {
  return renderChartFiles(await misclassifiedSpec(tiles, opts), outDir, opts.basename ?? DEFAULT_MISCLASSIFIED_BASENAME);
}
