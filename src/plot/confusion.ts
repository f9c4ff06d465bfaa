/**
 * The confusion matrix as a heatmap (PNG + SVG): true class down, predicted class across, one
 * cell per pair coloured by count with the count written in it. Layout as scikit-learn's
 * `ConfusionMatrixDisplay` (rows true, columns predicted, sequential "blues").
 */
import type { TopLevelSpec } from 'vega-lite';

import { MARK_NAMES } from './charts.js';
import { renderChartFiles, type ChartFiles } from './render.js';
import { CONFIG, checkSize } from './style.js';

/** Options of {@link plotConfusionMatrix}. */
export interface ConfusionOptions {
  /** File name without extension. @defaultValue 'confusion-matrix' */
  basename?: string;
  /** Side of one cell, CSS pixels; the plot area is classes x cell square. @defaultValue 44 (10 classes: 440 px) */
  cell?: number;
  /** Chart title. @defaultValue 'Confusion matrix' */
  title?: string;
}

/** Default basename of the confusion-matrix chart. */
export const DEFAULT_CONFUSION_BASENAME = 'confusion-matrix';
/** Default cell side, CSS pixels. */
export const DEFAULT_CONFUSION_CELL = 44;

/**
 * Axis labels for `classes`: the names themselves, made unique (a repeated name gets ` (i)`,
 * i its class index) because the axes are nominal scales keyed by label.
 */
export function axisLabels(classes: readonly string[]): string[] {
  const seen = new Map<string, number>();
  for (const c of classes) seen.set(c, (seen.get(c) ?? 0) + 1);
  return classes.map((c, i) => ((seen.get(c) ?? 0) > 1 ? `${c} (${i})` : c));
}

/**
 * Vega-Lite spec of the heatmap of `matrix[true][predicted]` (counts) for `classes`.
 * Cells in class-index order on both axes (x "predicted", y "true"); cell text is white on
 * cells above half the largest count.
 * @throws RangeError when `matrix` is not classes x classes.
 */
export function confusionSpec(matrix: readonly (readonly number[])[], classes: readonly string[], opts: Omit<ConfusionOptions, 'basename'> = {}): TopLevelSpec {
  const k = classes.length;
  if (matrix.length !== k || matrix.some((r) => r.length !== k)) throw new RangeError(`plot: the confusion matrix must be ${k} x ${k} for ${k} classes`);
  const cell = checkSize('cell', opts.cell ?? DEFAULT_CONFUSION_CELL);
  const labels = axisLabels(classes);
  const max = Math.max(0, ...matrix.flat());
  const values = matrix.flatMap((row, t) => row.map((count, p) => ({ true: labels[t]!, predicted: labels[p]!, count, dark: count > max / 2 })));
  const side = Math.max(1, k) * cell;
  const x = { field: 'predicted', type: 'nominal', title: 'predicted', sort: labels, axis: { labelAngle: -40, labelAlign: 'right', labelLimit: 160 } };
  const y = { field: 'true', type: 'nominal', title: 'true', sort: labels, axis: { labelLimit: 160 } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: opts.title ?? 'Confusion matrix',
    width: side,
    height: side,
    config: { ...CONFIG, axis: { ...CONFIG.axis, grid: false } },
    data: { values },
    encoding: { x, y },
    layer: [
      {
        name: MARK_NAMES.confusionCell,
        mark: { type: 'rect', stroke: 'white', strokeWidth: 1 },
        encoding: { color: { field: 'count', type: 'quantitative', title: 'images', scale: { scheme: 'blues', domainMin: 0 } } },
      },
      {
        name: MARK_NAMES.confusionCount,
        mark: { type: 'text', fontSize: Math.max(8, Math.min(12, cell / 3.5)) },
        encoding: {
          text: { field: 'count', type: 'quantitative', format: 'd' },
          color: { condition: { test: 'datum.dark', value: 'white' }, value: '#222222' },
        },
      },
    ],
  } as unknown as TopLevelSpec;
}

/**
 * Confusion-matrix heatmap; writes `<outDir>/<basename>.svg` and `.png` atomically.
 * @returns absolute paths of the PNG and SVG written.
 * @throws RangeError when `matrix` is not classes x classes.
 */
export async function plotConfusionMatrix(matrix: readonly (readonly number[])[], classes: readonly string[], outDir: string, opts: ConfusionOptions = {}): Promise<ChartFiles> {
  return renderChartFiles(confusionSpec(matrix, classes, opts), outDir, opts.basename ?? DEFAULT_CONFUSION_BASENAME);
}
