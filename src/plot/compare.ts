/**
 * Training chains compared in one chart (PNG + SVG): test accuracy and test loss per epoch, one
 * line per chain (e.g. fine-tuning a pretrained backbone next to the same fine-tuning from
 * scratch), each chain's unfreeze epoch marked with the dashed rule of the per-epoch chart.
 */
import type { TopLevelSpec } from 'vega-lite';

import { MARK_NAMES, panelPair, unfreezeEpoch, type ChartOptions, type EpochPoint } from './charts.js';
import { renderChartFiles, type ChartFiles } from './render.js';
import { RULE_COLOR, checkSize, epochX, finiteOrNull, validExpr } from './style.js';

/** One training chain: its name in the legend and its epochs. */
export interface ChainSeries {
  /** The chain's name in the legend (unique among the chains compared). */
  label: string;
  /** Its epochs: global epoch (1-based), phase, test accuracy (fraction in [0, 1]) and test loss (nats). Non-finite values are left out of the lines. */
  epochs: readonly Pick<EpochPoint, 'epoch' | 'phase' | 'testAccuracy' | 'testLoss'>[];
}

/** Default basename of the comparison chart. */
export const DEFAULT_COMPARE_BASENAME = 'compare-per-epoch';
/** Default plot-area size of each panel of the comparison chart, CSS pixels. */
export const DEFAULT_COMPARE_PANEL_SIZE = { width: 420, height: 280 } as const;
/** Line colours of the chains, in order (Vega's category10; repeats after 10 chains). */
export const CHAIN_COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'] as const;

/**
 * The unfreeze markers of the chains: one per distinct unfreeze epoch (the first `'unfreeze'`
 * epoch of a chain; a chain that never unfreezes has none), ascending, labelled
 * `unfreeze (epoch N)` when every chain unfreezes at the same epoch, else
 * `unfreeze <labels> (epoch N)` naming the chains unfrozen there.
 */
export function unfreezeMarkers(chains: readonly ChainSeries[]): Array<{ epoch: number; label: string }> {
  const at = new Map<number, string[]>();
  for (const c of chains) {
    const e = unfreezeEpoch(c.epochs);
    if (e !== undefined) at.set(e, [...(at.get(e) ?? []), c.label]);
  }
  const shared = at.size === 1 && [...at.values()][0]!.length === chains.length;
  return [...at.entries()].sort(([a], [b]) => a - b)
    .map(([epoch, labels]) => ({ epoch, label: shared ? `unfreeze (epoch ${epoch})` : `unfreeze ${labels.join(', ')} (epoch ${epoch})` }));
}

/**
 * Vega-Lite spec of the comparison chart (see {@link plotChainComparison}).
 * @throws RangeError when two chains have the same label, or a size is not positive.
 */
export function chainComparisonSpec(chains: readonly ChainSeries[], opts: Omit<ChartOptions, 'basename'> = {}): TopLevelSpec {
  const width = checkSize('width', opts.width ?? DEFAULT_COMPARE_PANEL_SIZE.width);
  const height = checkSize('height', opts.height ?? DEFAULT_COMPARE_PANEL_SIZE.height);
  const labels = chains.map((c) => c.label);
  const twice = labels.find((l, i) => labels.indexOf(l) !== i);
  if (twice !== undefined) throw new RangeError(`plot: two chains are labelled ${JSON.stringify(twice)}`);
  const values = chains.flatMap((c) => [...c.epochs].sort((a, b) => a.epoch - b.epoch)
    .map((e) => ({ chain: c.label, epoch: e.epoch, phase: e.phase, accuracy: finiteOrNull(e.testAccuracy), loss: finiteOrNull(e.testLoss) })));
  const x = epochX(values.map((v) => v.epoch));
  const color = {
    field: 'chain', type: 'nominal', title: 'chain', sort: labels, legend: { labelLimit: 400 },
    scale: { domain: labels, range: labels.map((_, i) => CHAIN_COLORS[i % CHAIN_COLORS.length]) },
  } as const;
  const markers = unfreezeMarkers(chains);
  // Labels where the lines usually are not: at the foot of the rule under rising accuracy, at
  // its head over falling loss; one text layer per marker, each a line further in, so labels of
  // nearby epochs do not overlap.
  const rules = (name: string, at: 'top' | 'bottom'): object[] => markers.length === 0 ? [] : [
    { data: { values: markers }, name, mark: { type: 'rule', color: RULE_COLOR, strokeDash: [6, 4], strokeWidth: 1.5 }, encoding: { x } },
    ...markers.map((m, i) => ({
      data: { values: [m] }, name: `${name}_label_${i}`,
      mark: { type: 'text', align: 'left', baseline: at, dx: 4, ...(at === 'top' ? { dy: 4 + 14 * i, y: 0 } : { dy: -4 - 14 * i, y: 'height' }), color: RULE_COLOR, fontSize: 11 },
      encoding: { x, text: { field: 'label' } },
    })),
  ];
  const panel = (field: 'accuracy' | 'loss', title: string, lineName: string, ruleName: string) => ({
    title, width, height,
    layer: [
      {
        data: { values }, transform: [{ filter: validExpr(field) }], name: lineName,
        mark: { type: 'line', point: true, strokeWidth: 2 },
        encoding: {
          x,
          // ticks at their exact values (not rounded to whole pixels): the axis reads true to the line
          y: { field, type: 'quantitative', title: `test ${field}`, scale: { zero: false }, axis: { tickRound: false, ...(field === 'accuracy' ? { format: '.0%' } : {}) } },
          color,
        },
      },
      ...rules(ruleName, field === 'accuracy' ? 'bottom' : 'top'),
    ],
  });
  return panelPair(
    'Test accuracy and loss per epoch, by training chain',
    panel('accuracy', 'Test accuracy per epoch', MARK_NAMES.compareAccuracyLine, MARK_NAMES.compareAccuracyUnfreezeRule),
    panel('loss', 'Test loss per epoch', MARK_NAMES.compareLossLine, MARK_NAMES.compareLossUnfreezeRule),
    'shared',
  );
}

/**
 * Chain comparison chart: two side-by-side panels, "Test accuracy per epoch" and "Test loss per
 * epoch", one line per chain in `chains` order (colours {@link CHAIN_COLORS}; legend "chain"
 * with the labels) over x axis "epoch" (global, 1-based, the same range in both panels) and
 * y axes "test accuracy" (percent) and "test loss", neither starting at 0 so the gap between the
 * chains shows. A dashed vertical rule marks each chain's unfreeze epoch (see
 * {@link unfreezeMarkers}), labelled at its foot in the accuracy panel and at its head in the loss
 * panel, where the lines usually are not.
 *
 * Writes `<outDir>/<basename>.svg` and `.png` atomically (outDir created recursively).
 * Defaults: basename `compare-per-epoch`, each panel's plot area 420 x 280 CSS pixels.
 * @returns absolute paths of the PNG and SVG written.
 * @throws RangeError when two chains have the same label.
 */
export async function plotChainComparison(chains: readonly ChainSeries[], outDir: string, opts: ChartOptions = {}): Promise<ChartFiles> {
  return renderChartFiles(chainComparisonSpec(chains, opts), outDir, opts.basename ?? DEFAULT_COMPARE_BASENAME);
}
