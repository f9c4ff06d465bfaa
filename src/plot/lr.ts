/**
 * Learning rate per epoch (PNG + SVG), with the unfreeze marker of the per-epoch chart.
 * A log y axis when the rate spans a factor of 10 or more (ReduceLROnPlateau, schedules).
 */
import type { TopLevelSpec } from 'vega-lite';

import { MARK_NAMES, unfreezeEpoch, type ChartOptions, type EpochPoint } from './charts.js';
import { renderChartFiles, type ChartFiles } from './render.js';
import { CONFIG, checkSize, epochX, finiteOrNull, unfreezeRuleLayers, validExpr } from './style.js';

/** The learning rate of one epoch. */
export interface LrPoint {
  /** Global epoch, 1-based, across both phases. */
  epoch: number;
  phase: EpochPoint['phase'];
  /** Learning rate used during the epoch (optimizer units, e.g. Adam's step size). */
  lr: number;
}

const LR_COLOR = '#2ca02c';
const MAX_RATE_TICKS = 8;

/** Default basename of the learning-rate chart. */
export const DEFAULT_LR_BASENAME = 'lr-per-epoch';
/** Default plot-area size of the learning-rate chart, CSS pixels. */
export const DEFAULT_LR_SIZE = { width: 420, height: 220 } as const;

/** True when every finite rate is positive and max / min >= 10: the chart then uses a log y scale. */
export function useLogScale(lrs: readonly number[]): boolean {
  const finite = lrs.filter((v) => Number.isFinite(v));
  if (finite.length === 0 || finite.some((v) => v <= 0)) return false;
  return Math.max(...finite) / Math.min(...finite) >= 10;
}

/**
 * Vega-Lite spec of the learning-rate chart: one line segment per phase (freeze, unfreeze: not
 * joined across the boundary) and one point per epoch (x "epoch", y "learning rate"), and the
 * dashed unfreeze rule at the first `'unfreeze'` epoch.
 */
export function lrSpec(points: readonly LrPoint[], opts: Omit<ChartOptions, 'basename'> = {}): TopLevelSpec {
  const width = checkSize('width', opts.width ?? DEFAULT_LR_SIZE.width);
  const height = checkSize('height', opts.height ?? DEFAULT_LR_SIZE.height);
  const sorted = [...points].sort((a, b) => a.epoch - b.epoch);
  const values = sorted.map((p) => ({ epoch: p.epoch, phase: p.phase, lr: finiteOrNull(p.lr) }));
  const x = epochX(sorted.map((p) => p.epoch));
  const log = useLogScale(sorted.map((p) => p.lr));
  const distinct = [...new Set(sorted.map((p) => p.lr).filter((v) => Number.isFinite(v) && (!log || v > 0)))].sort((a, b) => a - b);
  const unfreeze = unfreezeEpoch(sorted);
  const y = {
    field: 'lr', type: 'quantitative', title: 'learning rate', scale: log ? { type: 'log', nice: false } : { zero: false },
    // ticks at the rates used when there are few of them (a step schedule), else Vega's own
    axis: { format: '.1e', ...(distinct.length <= MAX_RATE_TICKS ? { values: distinct } : {}) },
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Learning rate per epoch',
    width,
    height,
    config: CONFIG,
    layer: [
      {
        data: { values },
        transform: [{ filter: validExpr('lr') }],
        encoding: { x, y },
        layer: [
          // One segment per phase: the two phases use two optimizers, so their rates are not joined.
          { name: MARK_NAMES.lrLine, mark: { type: 'line', strokeWidth: 2, color: LR_COLOR }, encoding: { detail: { field: 'phase', type: 'nominal' } } },
          { name: MARK_NAMES.lrPoint, mark: { type: 'point', filled: true, size: 30, color: LR_COLOR } },
        ],
      },
      ...unfreezeRuleLayers(MARK_NAMES.lrUnfreezeRule, unfreeze, x),
    ],
  } as unknown as TopLevelSpec;
}

/**
 * Learning-rate chart; writes `<outDir>/<basename>.svg` and `.png` atomically (see
 * `renderChartFiles`). Defaults: basename `lr-per-epoch`, plot area 420 x 220 CSS pixels.
 * @returns absolute paths of the PNG and SVG written.
 */
export async function plotLearningRate(points: LrPoint[], outDir: string, opts: ChartOptions = {}): Promise<ChartFiles> {
  return renderChartFiles(lrSpec(points, opts), outDir, opts.basename ?? DEFAULT_LR_BASENAME);
}
