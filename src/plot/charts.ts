/**
 * Training charts (PNG + SVG) built as Vega-Lite specs and rendered headlessly
 * (see `./render.ts`): per-iteration training loss, and per-epoch train/test
 * accuracy and loss with a marker at the epoch where fine-tuning unfreezes.
 *
 * Marks carry stable names so the SVG can be inspected: the `<g>` of each mark
 * has the class `role-mark <markClass(name)>`, <name> one of {@link MARK_NAMES}.
 */
import type { TopLevelSpec } from 'vega-lite';

import { renderChartFiles, type ChartFiles } from './render.js';
import { CONFIG, checkSize, epochX, extent, finiteOrNull, RULE_COLOR, unfreezeRuleLayers, validExpr } from './style.js';

export type { ChartFiles } from './render.js';

/** One training iteration's loss. */
export interface IterationPoint {
  /** Global iteration index, 0-based, counted across all epochs and phases. */
  step: number;
  /** Training loss of that iteration (unitless). Non-finite values are allowed and left out of the drawn lines. */
  loss: number;
}

/** Metrics of one epoch. */
export interface EpochPoint {
  /** Global epoch number, 1-based, counted across both phases (freeze then unfreeze). */
  epoch: number;
  /** Training phase the epoch belongs to: backbone frozen, or unfrozen for fine-tuning. */
  phase: 'freeze' | 'unfreeze';
  /** Mean training loss over the epoch (unitless). */
  trainLoss: number;
  /** Loss on the test split after the epoch (unitless). */
  testLoss: number;
  /** Training accuracy over the epoch, as a fraction in [0, 1]. */
  trainAccuracy: number;
  /** Test-split accuracy after the epoch, as a fraction in [0, 1]. */
  testAccuracy: number;
}

/** Options shared by the chart functions. */
export interface ChartOptions {
  /** File name without extension; `<outDir>/<basename>.svg` and `.png` are written. */
  basename?: string;
  /** Width of each plot area in CSS pixels (axes, titles and legend are added around it). */
  width?: number;
  /** Height of each plot area in CSS pixels (axes, titles and legend are added around it). */
  height?: number;
}

/** Options of {@link plotIterationLoss}. */
export interface IterationLossOptions extends ChartOptions {
  /**
   * Weight of the exponential moving average drawn as the smoothed line, in [0, 1):
   * `s[i] = w * s[i-1] + (1 - w) * loss[i]`, debiased like TensorBoard. 0 means no smoothing.
   * Default {@link DEFAULT_SMOOTHING} (0.9).
   */
  smoothing?: number;
  /**
   * Global iteration (0-based) at which the backbone was unfrozen: a dashed rule labelled
   * `unfreeze (iteration N)` marks it (the loss often jumps there). None when undefined.
   */
  unfreezeStep?: number;
}

/** Default EMA weight of the smoothed loss line (TensorBoard's default). */
export const DEFAULT_SMOOTHING = 0.9;
/** Default basename of the per-iteration loss chart. */
export const DEFAULT_ITERATION_BASENAME = 'loss-per-iteration';
/** Default basename of the per-epoch metrics chart. */
export const DEFAULT_EPOCH_BASENAME = 'metrics-per-epoch';
/** Default plot-area size of the per-iteration chart, CSS pixels. */
export const DEFAULT_ITERATION_SIZE = { width: 640, height: 320 } as const;
/** Default plot-area size of each panel of the per-epoch chart, CSS pixels. */
export const DEFAULT_EPOCH_PANEL_SIZE = { width: 420, height: 280 } as const;

/**
 * Names of the Vega-Lite unit specs that draw each mark. Vega-Lite names the
 * compiled mark `<unit name>_marks`, and the SVG renderer puts that name in the
 * mark's class: e.g. `<g class="mark-line role-mark raw_loss_marks">`. See
 * {@link markClass}.
 */
export const MARK_NAMES = {
  /** Raw per-iteration loss line (one path). */
  rawLoss: 'raw_loss',
  /** EMA-smoothed per-iteration loss line (one path). */
  smoothedLoss: 'smoothed_loss',
  /** Per-epoch accuracy lines (one path per series: train, test). */
  accuracyLine: 'accuracy_line',
  /** Per-epoch loss lines (one path per series: train, test). */
  lossLine: 'loss_line',
  /** Vertical rule at the unfreeze epoch, in the accuracy panel. */
  accuracyUnfreezeRule: 'accuracy_unfreeze_rule',
  /** Vertical rule at the unfreeze epoch, in the loss panel. */
  lossUnfreezeRule: 'loss_unfreeze_rule',
  /** Learning-rate line (one path), `./lr.ts`. */
  lrLine: 'lr_line',
  /** Learning-rate points (one symbol per epoch). */
  lrPoint: 'lr_point',
  /** Vertical rule at the unfreeze iteration in the per-iteration loss chart. */
  iterationUnfreezeRule: 'iteration_unfreeze_rule',
  /** Vertical rule at the unfreeze epoch in the learning-rate chart. */
  lrUnfreezeRule: 'lr_unfreeze_rule',
  /** Confusion-matrix cells (one rect per true x predicted pair), `./confusion.ts`. */
  confusionCell: 'confusion_cell',
  /** Counts written in the confusion-matrix cells (one text per cell). */
  confusionCount: 'confusion_count',
  /** Test-accuracy lines of the chain comparison (one path per chain), `./compare.ts`. */
  compareAccuracyLine: 'compare_accuracy_line',
  /** Test-loss lines of the chain comparison (one path per chain). */
  compareLossLine: 'compare_loss_line',
  /** Unfreeze rules in the comparison's accuracy panel (one per distinct unfreeze epoch). */
  compareAccuracyUnfreezeRule: 'compare_accuracy_unfreeze_rule',
  /** Unfreeze rules in the comparison's loss panel. */
  compareLossUnfreezeRule: 'compare_loss_unfreeze_rule',
  /** Misclassified images (one image per mistake shown), `./misclassified.ts`. */
  misclassifiedImage: 'misclassified_image',
  /** "true: <class>" label under each misclassified image. */
  misclassifiedTrue: 'misclassified_true',
  /** "pred: <class> (p%)" label under each misclassified image. */
  misclassifiedPredicted: 'misclassified_predicted',
} as const;

/** SVG class of the `<g>` holding the mark drawn by the unit named `name` (one of {@link MARK_NAMES}). */
export function markClass(name: string): string {
  return `${name}_marks`;
}

const SERIES_COLORS = { train: '#1f77b4', test: '#ff7f0e' } as const;
const RAW_COLOR = '#9ecae1';
const SMOOTH_COLOR = '#1f4e9c';

/**
 * Exponential moving average of `values` with weight `weight` in [0, 1),
 * debiased as in TensorBoard (`s[i] / (1 - weight^k)` after k finite values),
 * so the first points are not pulled toward 0. Non-finite inputs give `NaN`
 * at that index and do not update the average.
 */
export function emaSmooth(values: readonly number[], weight: number = DEFAULT_SMOOTHING): number[] {
  if (!(weight >= 0 && weight < 1)) throw new RangeError(`plot: smoothing must be in [0, 1), got ${weight}`);
  let last = 0;
  let count = 0;
  return values.map((v) => {
    if (!Number.isFinite(v)) return Number.NaN;
    last = last * weight + (1 - weight) * v;
    count += 1;
    return last / (1 - weight ** count);
  });
}

/**
 * Vega-Lite spec of the per-iteration loss chart (see {@link plotIterationLoss}).
 * Every input step is kept in the data (`loss`/`smoothed` are `null` where not
 * finite), the x domain spans all steps, and the lines skip the null values.
 */
export function iterationLossSpec(
  points: readonly IterationPoint[],
  opts: Omit<IterationLossOptions, 'basename'> = {},
): TopLevelSpec {
  const width = checkSize('width', opts.width ?? DEFAULT_ITERATION_SIZE.width);
  const height = checkSize('height', opts.height ?? DEFAULT_ITERATION_SIZE.height);
  const weight = opts.smoothing ?? DEFAULT_SMOOTHING;
  const sorted = [...points].sort((a, b) => a.step - b.step);
  const smoothed = emaSmooth(sorted.map((p) => p.loss), weight);
  const values = sorted.map((p, i) => ({ step: p.step, loss: finiteOrNull(p.loss), smoothed: finiteOrNull(smoothed[i] ?? NaN) }));
  const xDomain = extent(sorted.map((p) => p.step));
  const seriesDomain = ['raw', `smoothed (EMA ${weight})`];
  const color = (datum: string) =>
    ({
      datum,
      type: 'nominal',
      title: 'series',
      scale: { domain: seriesDomain, range: [RAW_COLOR, SMOOTH_COLOR] },
    }) as const;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Training loss per iteration',
    width,
    height,
    config: CONFIG,
    data: { values },
    encoding: {
      x: {
        field: 'step',
        type: 'quantitative',
        title: 'iteration',
        scale: xDomain ? { domain: xDomain, nice: false } : {},
        axis: { format: 'd', tickMinStep: 1 },
      },
    },
    layer: [
      {
        transform: [{ filter: validExpr('loss') }],
        name: MARK_NAMES.rawLoss,
        mark: { type: 'line', strokeWidth: 1, clip: true },
        encoding: {
          y: { field: 'loss', type: 'quantitative', title: 'loss', scale: { zero: false } },
          color: color(seriesDomain[0]!),
        },
      },
      {
        transform: [{ filter: validExpr('smoothed') }],
        name: MARK_NAMES.smoothedLoss,
        mark: { type: 'line', strokeWidth: 2, clip: true },
        encoding: {
          y: { field: 'smoothed', type: 'quantitative', title: 'loss' },
          color: color(seriesDomain[1]!),
        },
      },
      ...(opts.unfreezeStep === undefined ? [] : [{
        data: { values: [{ step: opts.unfreezeStep, label: `unfreeze (iteration ${opts.unfreezeStep})` }] },
        layer: [
          { name: MARK_NAMES.iterationUnfreezeRule, mark: { type: 'rule', color: RULE_COLOR, strokeDash: [6, 4], strokeWidth: 1.5 } },
          { name: `${MARK_NAMES.iterationUnfreezeRule}_label`, mark: { type: 'text', align: 'left', baseline: 'top', dx: 4, dy: 4, y: 0, color: RULE_COLOR, fontSize: 11 }, encoding: { text: { field: 'label' } } },
        ],
      }]),
    ],
  } as TopLevelSpec;
}

/** Global epoch of the first `'unfreeze'` point (smallest epoch number), or undefined when there is none. */
export function unfreezeEpoch(points: readonly Pick<EpochPoint, 'epoch' | 'phase'>[]): number | undefined {
  let first: number | undefined;
  for (const p of points) {
    if (p.phase === 'unfreeze' && Number.isFinite(p.epoch) && (first === undefined || p.epoch < first)) first = p.epoch;
  }
  return first;
}

/**
 * Vega-Lite spec of the per-epoch metrics chart (see {@link plotEpochMetrics}):
 * two horizontally concatenated panels, accuracy then loss, each with train
 * and test lines and, when some epoch is `'unfreeze'`, a dashed vertical rule
 * at the first such epoch.
 */
export function epochMetricsSpec(points: readonly EpochPoint[], opts: Omit<ChartOptions, 'basename'> = {}): TopLevelSpec {
  const width = checkSize('width', opts.width ?? DEFAULT_EPOCH_PANEL_SIZE.width);
  const height = checkSize('height', opts.height ?? DEFAULT_EPOCH_PANEL_SIZE.height);
  const sorted = [...points].sort((a, b) => a.epoch - b.epoch);
  const values = sorted.flatMap((p) => [
    { epoch: p.epoch, phase: p.phase, series: 'train', accuracy: finiteOrNull(p.trainAccuracy), loss: finiteOrNull(p.trainLoss) },
    { epoch: p.epoch, phase: p.phase, series: 'test', accuracy: finiteOrNull(p.testAccuracy), loss: finiteOrNull(p.testLoss) },
  ]);
  const epochs = sorted.map((p) => p.epoch);
  const accuracies = sorted.flatMap((p) => [p.trainAccuracy, p.testAccuracy]).filter((v) => Number.isFinite(v));
  const fractional = accuracies.every((v) => v >= 0 && v <= 1);
  const unfreeze = unfreezeEpoch(sorted);

  const x = epochX(epochs);
  const color = {
    field: 'series',
    type: 'nominal',
    title: 'series',
    scale: { domain: ['train', 'test'], range: [SERIES_COLORS.train, SERIES_COLORS.test] },
  } as const;
  const rule = (name: string) => unfreezeRuleLayers(name, unfreeze, x);
  const panel = (field: 'accuracy' | 'loss', title: string, lineName: string, ruleName: string) => ({
    title,
    width,
    height,
    layer: [
      {
        data: { values },
        transform: [{ filter: validExpr(field) }],
        name: lineName,
        mark: { type: 'line', point: true, strokeWidth: 2 },
        encoding: {
          x,
          y: {
            field,
            type: 'quantitative',
            title: field,
            scale: field === 'accuracy' && fractional ? { domain: [0, 1] } : { zero: false },
            ...(field === 'accuracy' && fractional ? { axis: { format: '.0%' } } : {}),
          },
          color,
        },
      },
      ...rule(ruleName),
    ],
  });
  return panelPair(
    'Metrics per epoch',
    panel('accuracy', 'Accuracy per epoch', MARK_NAMES.accuracyLine, MARK_NAMES.accuracyUnfreezeRule),
    panel('loss', 'Loss per epoch', MARK_NAMES.lossLine, MARK_NAMES.lossUnfreezeRule),
    'independent',
  );
}

/**
 * Two panels side by side under one title (the accuracy | loss layout of the per-epoch charts:
 * epochMetricsSpec, and compare.ts's chains), each panel's y scale its own; `x`: whether the
 * panels share the epoch axis.
 */
export function panelPair(title: string, left: object, right: object, x: 'shared' | 'independent'): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, fontSize: 16, offset: 14 },
    config: CONFIG,
    hconcat: [left, right],
    resolve: { scale: { x, y: 'independent' } },
  } as unknown as TopLevelSpec;
}

/**
 * Per-iteration training loss chart: the raw loss as a thin light line plus a
 * smoothed line, an exponential moving average with weight `opts.smoothing`
 * (default 0.9, like TensorBoard; debiased). Axes "iteration" (x, global
 * 0-based step) and "loss" (y); legend "series". Non-finite losses are kept in
 * the data (as null) but left out of the lines; the x axis still spans every
 * step given.
 *
 * Writes `<outDir>/<basename>.svg` and `<outDir>/<basename>.png` atomically
 * (outDir created recursively). Defaults: basename `loss-per-iteration`,
 * plot area 640 x 320 CSS pixels (`width`/`height` are the plot area; the
 * image adds axes, title and legend around it; the PNG is 1 pixel per CSS pixel).
 *
 * @returns absolute paths of the PNG and SVG written.
 */
export async function plotIterationLoss(
  points: IterationPoint[],
  outDir: string,
  opts: IterationLossOptions = {},
): Promise<ChartFiles> {
  const spec = iterationLossSpec(points, opts);
  return renderChartFiles(spec, outDir, opts.basename ?? DEFAULT_ITERATION_BASENAME);
}

/**
 * Per-epoch metrics chart: two side-by-side panels, "Accuracy per epoch" and
 * "Loss per epoch", each with a train and a test line (legend "series") over
 * x axis "epoch" (global, 1-based) and y axis "accuracy" / "loss". Accuracy is
 * shown on a fixed 0-100% axis when every value is in [0, 1]. A dashed vertical
 * rule, labelled "unfreeze (epoch N)", marks the unfreeze epoch: the smallest
 * epoch whose phase is `'unfreeze'` in `points`; there is no rule when no point
 * is `'unfreeze'`. Non-finite values are left out of the lines.
 *
 * Writes `<outDir>/<basename>.svg` and `<outDir>/<basename>.png` atomically
 * (outDir created recursively). Defaults: basename `metrics-per-epoch`, each
 * panel's plot area 420 x 280 CSS pixels (`width`/`height` are per panel; the
 * image adds axes, titles and legend around them; the PNG is 1 pixel per CSS pixel).
 *
 * @returns absolute paths of the PNG and SVG written.
 */
export async function plotEpochMetrics(
  points: EpochPoint[],
  outDir: string,
  opts: { basename?: string; width?: number; height?: number } = {},
): Promise<ChartFiles> {
  const spec = epochMetricsSpec(points, opts);
  return renderChartFiles(spec, outDir, opts.basename ?? DEFAULT_EPOCH_BASENAME);
}
