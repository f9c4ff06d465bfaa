/** What the chart specs in src/plot share: the Vega-Lite config, colours and small helpers. */
import { CHART_FONT } from './render.js';

/** Vega-Lite `config` of every chart: font, white background, light grid. */
export const CONFIG = {
  font: CHART_FONT,
  background: 'white',
  view: { stroke: '#dddddd' },
  axis: { grid: true, gridColor: '#eeeeee', titleFontSize: 12, labelFontSize: 11 },
  legend: { titleFontSize: 12, labelFontSize: 11 },
  title: { fontSize: 14, anchor: 'start' },
} as const;

/** Colour of the unfreeze marker (rule and label). */
export const RULE_COLOR = '#555555';

/** Vega expression true when `datum[field]` is a finite number. */
export function validExpr(field: string): string {
  return `isValid(datum.${field}) && isFinite(datum.${field})`;
}

/** `v`, or null when not finite (Vega-Lite leaves nulls out of lines). */
export function finiteOrNull(v: number): number | null {
  return Number.isFinite(v) ? v : null;
}

/** @throws RangeError unless `v` is a positive finite number of pixels. */
export function checkSize(name: string, v: number): number {
  if (!Number.isFinite(v) || v <= 0) throw new RangeError(`plot: ${name} must be a positive number of pixels, got ${v}`);
  return v;
}

/** `[min, max]` of the finite numbers, or undefined when there are fewer than two distinct values. */
export function extent(values: readonly number[]): [number, number] | undefined {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return hi > lo ? [lo, hi] : undefined;
}

/**
 * Quantitative x encoding over global epochs (1-based integers), its domain exactly the epochs
 * given (one epoch: that epoch +-0.5), integer ticks, axis title "epoch".
 */
export function epochX(epochs: readonly number[]): Record<string, unknown> {
  const xDomain = extent(epochs);
  const single = epochs.find((e) => Number.isFinite(e));
  const domain = xDomain ?? (single !== undefined ? [single - 0.5, single + 0.5] : undefined);
  return {
    field: 'epoch',
    type: 'quantitative',
    title: 'epoch',
    scale: domain ? { domain, nice: false } : {},
    axis: { format: 'd', tickMinStep: 1 },
  };
}

/**
 * Layers drawing the unfreeze marker: a dashed vertical rule (unit named `name`) at epoch
 * `unfreeze`, labelled "unfreeze (epoch N)" (unit `<name>_label`). None when `unfreeze` is undefined.
 */
export function unfreezeRuleLayers(name: string, unfreeze: number | undefined, x: Record<string, unknown>): object[] {
  if (unfreeze === undefined) return [];
  return [
    {
      data: { values: [{ epoch: unfreeze, label: `unfreeze (epoch ${unfreeze})` }] },
      layer: [
        { name, mark: { type: 'rule', color: RULE_COLOR, strokeDash: [6, 4], strokeWidth: 1.5 }, encoding: { x } },
        {
          name: `${name}_label`,
          mark: { type: 'text', align: 'left', baseline: 'top', dx: 4, dy: 4, y: 0, color: RULE_COLOR, fontSize: 11 },
          encoding: { x, text: { field: 'label' } },
        },
      ],
    },
  ];
}
