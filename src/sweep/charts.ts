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

/** Bars of best test accuracy (x, 0-100%, value written at the bar's end) per run (y, in sortRows order); runs without one are left out. */
export function accuracyBarSpec(rows: readonly RunSummary[]): TopLevelSpec {
  const values = sortRows(rows).filter((r) => r.bestTestAccuracy !== undefined).map((r) => ({ trial: r.name, accuracy: r.bestTestAccuracy }));
  return {
    $schema: SCHEMA,
    title: 'Best test accuracy',
    width: 480,
    height: barHeight(values.length),
    config: CONFIG,
    data: { values },
    encoding: {
      y: { field: 'trial', type: 'nominal', sort: values.map((v) => v.trial), title: null },
      x: { field: 'accuracy', type: 'quantitative', title: 'best test accuracy', scale: { domain: [0, 1] }, axis: { format: '.0%' } },
    },
    layer: [
      { name: SWEEP_MARKS.accuracyBar, mark: { type: 'bar', color: '#ff7f0e' } },
      { mark: { type: 'text', align: 'left', dx: 4, fontSize: 11 }, encoding: { text: { field: 'accuracy', format: '.2%' } } },
    ],
  } as TopLevelSpec;
}

/** Bars of training time in seconds (x, value written at the bar's end) per run (y, same order as the accuracy chart). */
export function timeBarSpec(rows: readonly RunSummary[]): TopLevelSpec {
  const values = sortRows(rows).filter((r) => r.trainSeconds !== undefined).map((r) => ({ trial: r.name, seconds: r.trainSeconds }));
  return {
    $schema: SCHEMA,
    title: 'Training time',
    width: 480,
    height: barHeight(values.length),
    config: CONFIG,
    data: { values },
    encoding: {
      y: { field: 'trial', type: 'nominal', sort: values.map((v) => v.trial), title: null },
      x: { field: 'seconds', type: 'quantitative', title: 'training time (s, sum of epoch times)' },
    },
    layer: [
      { name: SWEEP_MARKS.timeBar, mark: { type: 'bar', color: '#1f77b4' } },
      { mark: { type: 'text', align: 'left', dx: 4, fontSize: 11 }, encoding: { text: { field: 'seconds', format: '.1f' } } },
    ],
  } as TopLevelSpec;
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
