/**
 * Comparison charts (Vega-Lite -> SVG + PNG through src/plot/render.ts): horizontal bars of each
 * run's best test accuracy and of its training time, and the test-accuracy curves of all runs
 * overlaid on one epoch axis (one colour per run).
 */
import type { TopLevelSpec } from 'vega-lite';
import { renderChartFiles, type ChartFiles } from '../plot/render.js';
import { CONFIG, epochX, validExpr } from '../plot/style.js';
import type { RunSummary } from './collect.js';
import { sortRows } from './table.js';

/** Unit names of the marks (the SVG `<g>` of each gets the class `<name>_marks`). */
export const SWEEP_MARKS = { accuracyBar: 'accuracy_bar', timeBar: 'time_bar', curveLine: 'curve_line' } as const;

/** Basenames of the files written by plotComparison. */
export const SWEEP_CHARTS = { accuracy: 'best-test-accuracy', time: 'train-time', curves: 'test-accuracy-curves' } as const;

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
const barHeight = (n: number): number => Math.max(60, 26 * n);

/** One horizontal bar per run (y, in the order given) with its value written at the bar's end. */
function barSpec(title: string, field: string, values: Record<string, unknown>[], x: Record<string, unknown>, mark: { name: string; color: string; format: string }): TopLevelSpec {
  return {
    $schema: SCHEMA,
    title,
    width: 480,
    height: barHeight(values.length),
    config: CONFIG,
    data: { values },
    encoding: {
      y: { field: 'trial', type: 'nominal', sort: values.map((v) => v['trial']), title: null },
      x: { field, type: 'quantitative', ...x },
    },
    layer: [
      { name: mark.name, mark: { type: 'bar', color: mark.color } },
      { mark: { type: 'text', align: 'left', dx: 4, fontSize: 11 }, encoding: { text: { field, format: mark.format } } },
    ],
  } as TopLevelSpec;
}

/** Bars of best test accuracy (x, 0-100%, value written at the bar's end) per run (y, in sortRows order); runs without one are left out. */
export function accuracyBarSpec(rows: readonly RunSummary[]): TopLevelSpec {
  const values = sortRows(rows).filter((r) => r.bestTestAccuracy !== undefined).map((r) => ({ trial: r.name, accuracy: r.bestTestAccuracy }));
  return barSpec('Best test accuracy', 'accuracy', values, { title: 'best test accuracy', scale: { domain: [0, 1] }, axis: { format: '.0%' } }, { name: SWEEP_MARKS.accuracyBar, color: '#ff7f0e', format: '.2%' });
}

/** Bars of training time in seconds (x, value written at the bar's end) per run (y, same order as the accuracy chart). */
export function timeBarSpec(rows: readonly RunSummary[]): TopLevelSpec {
  const values = sortRows(rows).filter((r) => r.trainSeconds !== undefined).map((r) => ({ trial: r.name, seconds: r.trainSeconds }));
  return barSpec('Training time', 'seconds', values, { title: 'training time (s, sum of epoch times)' }, { name: SWEEP_MARKS.timeBar, color: '#1f77b4', format: '.1f' });
}

/** Test accuracy per global epoch, one line per run (legend "trial"), accuracy on a 0-100% axis. */
export function curvesSpec(rows: readonly RunSummary[]): TopLevelSpec {
  const sorted = sortRows(rows).filter((r) => r.curve.length > 0);
  const values = sorted.flatMap((r) => r.curve.map((p) => ({ trial: r.name, epoch: p.epoch, accuracy: Number.isFinite(p.testAccuracy) ? p.testAccuracy : null })));
  return {
    $schema: SCHEMA,
    title: 'Test accuracy per epoch',
    width: 560,
    height: 320,
    config: CONFIG,
    data: { values },
    transform: [{ filter: validExpr('accuracy') }],
    name: SWEEP_MARKS.curveLine,
    mark: { type: 'line', point: true, strokeWidth: 2 },
    encoding: {
      x: epochX(values.map((v) => v.epoch)),
      y: { field: 'accuracy', type: 'quantitative', title: 'test accuracy', scale: { domain: [0, 1] }, axis: { format: '.0%' } },
      color: { field: 'trial', type: 'nominal', title: 'trial', sort: sorted.map((r) => r.name) },
    },
  } as TopLevelSpec;
}

/** The three charts, written as `<outDir>/<basename>.svg` and `.png` (see SWEEP_CHARTS). */
export async function plotComparison(rows: readonly RunSummary[], outDir: string): Promise<ChartFiles[]> {
  return [
    await renderChartFiles(accuracyBarSpec(rows), outDir, SWEEP_CHARTS.accuracy),
    await renderChartFiles(timeBarSpec(rows), outDir, SWEEP_CHARTS.time),
    await renderChartFiles(curvesSpec(rows), outDir, SWEEP_CHARTS.curves),
  ];
}
