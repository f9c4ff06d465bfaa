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
/** Widest legend or axis label or title, in CSS pixels (Vega's defaults, 160 and 180, cut trial names with "…"). */
const LABEL_LIMIT = 360;

/** Names this long (characters) or shorter are shown whole when they are not `key=value` lists. */
const SHORT_NAME = 30;

/** `key=value` parts of a trial name (`arch=resnet18,lr=1e-3`), split at top-level commas; undefined when it is not of that form. */
function nameParts(name: string): Array<[string, string]> | undefined {
  const parts: string[] = [];
  let depth = 0, quote = false, start = 0;
  for (let i = 0; i < name.length; i++) {
    const ch = name[i]!;
    if (quote) {
      if (ch === '\\') i++;
      else if (ch === '"') quote = false;
    } else if (ch === '"') quote = true;
    else if (ch === '{' || ch === '[') depth++;
    else if (ch === '}' || ch === ']') depth--;
    else if (ch === ',' && depth === 0) {
      parts.push(name.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(name.slice(start));
  const kv = parts.map((p) => /^([^=,]+)=(.+)$/s.exec(p));
  return kv.every((m) => m !== null) ? kv.map((m) => [m![1]!, m![2]!]) : undefined;
}

/**
 * Labels that tell the runs apart in a legend or on an axis, and the title naming what they
 * show. Sweep trials named by what differs (`arch=test_resnet18,lr=1e-3`, src/sweep/expand.ts),
 * all with the same keys in the same order, are labelled by their values (`test_resnet18, 1e-3`)
 * under the title `trial (arch, lr)`; other names longer than SHORT_NAME lose the part all of
 * them start with, cut at a separator (`pipeline-20250101T...` -> `20250101T...`). Names stay
 * whole when the labels would not all differ.
 */
export function runLabels(names: readonly string[]): { labels: string[]; title: string } {
  const whole = { labels: [...names], title: 'trial' };
  const distinct = (labels: string[]): boolean => new Set(labels).size === new Set(names).size && labels.every((l) => l !== '');
  if (names.length < 2) return whole;
  const parsed = names.map((n) => nameParts(n.replace(/#\d+$/, '')));
  const keys = parsed[0]?.map(([k]) => k);
  if (keys && parsed.every((p) => p !== undefined && p.length === keys.length && p.every(([k], i) => k === keys[i]))) {
    const labels = parsed.map((p, i) => `${p!.map(([, v]) => v).join(', ')}${/#\d+$/.exec(names[i]!)?.[0] ?? ''}`);
    if (distinct(labels)) return { labels, title: `trial (${keys.join(', ')})` };
  }
  if (Math.max(...names.map((n) => n.length)) <= SHORT_NAME) return whole;
  let common = names.reduce((pre, n) => {
    let i = 0;
    while (i < pre.length && i < n.length && pre[i] === n[i]) i++;
    return pre.slice(0, i);
  });
  const cut = common.search(/[^\p{L}\p{N}][\p{L}\p{N}]*$/u); // back to the last separator
  common = cut >= 0 ? common.slice(0, cut + 1) : '';
  const labels = names.map((n) => n.slice(common.length));
  return common && distinct(labels) ? { labels, title: `trial (${common}…)` } : whole;
}

/** `rows` with each run's label (see runLabels) and the labels' title. */
function labelled(rows: readonly RunSummary[]): { label: Map<string, string>; title: string } {
  const names = [...new Set(rows.map((r) => r.name))];
  const { labels, title } = runLabels(names);
  return { label: new Map(names.map((n, i) => [n, labels[i]!])), title };
}
const barHeight = (n: number): number => Math.max(60, 26 * n);

/** One horizontal bar per run (y: its label, in the order given) with its value written at the bar's end. */
function barSpec(title: string, field: string, values: Record<string, unknown>[], x: Record<string, unknown>, mark: { name: string; color: string; format: string }, yTitle: string): TopLevelSpec {
  return {
    $schema: SCHEMA,
    title,
    width: 480,
    height: barHeight(values.length),
    config: CONFIG,
    data: { values },
    encoding: {
      y: { field: 'label', type: 'nominal', sort: values.map((v) => v['label']), title: yTitle === 'trial' ? null : yTitle, axis: { labelLimit: LABEL_LIMIT, titleLimit: LABEL_LIMIT } },
      x: { field, type: 'quantitative', ...x },
    },
    layer: [
      { name: mark.name, mark: { type: 'bar', color: mark.color } },
      { mark: { type: 'text', align: 'left', dx: 4, fontSize: 11 }, encoding: { text: { field, format: mark.format } } },
    ],
  } as TopLevelSpec;
}

/** Bars of best test accuracy (x, 0-100%, value written at the bar's end) per run (y: its label, see runLabels, in sortRows order); runs without one are left out. */
export function accuracyBarSpec(rows: readonly RunSummary[]): TopLevelSpec {
  const { label, title } = labelled(rows);
  const values = sortRows(rows).filter((r) => r.bestTestAccuracy !== undefined).map((r) => ({ trial: r.name, label: label.get(r.name), accuracy: r.bestTestAccuracy }));
  return barSpec('Best test accuracy', 'accuracy', values, { title: 'best test accuracy', scale: { domain: [0, 1] }, axis: { format: '.0%' } }, { name: SWEEP_MARKS.accuracyBar, color: '#ff7f0e', format: '.2%' }, title);
}

/** Bars of training time in seconds (x, value written at the bar's end) per run (y: its label, same order as the accuracy chart). */
export function timeBarSpec(rows: readonly RunSummary[]): TopLevelSpec {
  const { label, title } = labelled(rows);
  const values = sortRows(rows).filter((r) => r.trainSeconds !== undefined).map((r) => ({ trial: r.name, label: label.get(r.name), seconds: r.trainSeconds }));
  return barSpec('Training time', 'seconds', values, { title: 'training time (s, sum of epoch times)' }, { name: SWEEP_MARKS.timeBar, color: '#1f77b4', format: '.1f' }, title);
}

/**
 * Test accuracy per global epoch, one line per run, accuracy on a 0-100% axis; the legend labels
 * each run so that all can be told apart (runLabels: the swept values, under the title
 * `trial (arch, lr)`), never cut.
 */
export function curvesSpec(rows: readonly RunSummary[]): TopLevelSpec {
  const sorted = sortRows(rows).filter((r) => r.curve.length > 0);
  const { label, title } = labelled(sorted);
  const values = sorted.flatMap((r) => r.curve.map((p) => ({ trial: r.name, label: label.get(r.name)!, epoch: p.epoch, accuracy: Number.isFinite(p.testAccuracy) ? p.testAccuracy : null })));
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
      color: { field: 'label', type: 'nominal', title, sort: sorted.map((r) => label.get(r.name)!), legend: { labelLimit: LABEL_LIMIT, titleLimit: LABEL_LIMIT } },
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
