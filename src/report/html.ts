/**
 * report.html: one self-contained page per run (no scripts, no external files, so it opens from
 * disk or from MLflow's artifact view without a server): headline numbers, the charts as
 * embedded SVG images, the evaluation tables, the training history and the resolved config.
 */
import { stringify } from 'yaml';

import type { SplitReport } from '../eval/split-report.js';
import type { EpochRecord } from '../train/loop.js';

/** A chart to show: its title, its SVG document, and a caption when it has something to add. */
export interface ReportFigure {
  /** The chart's title (the image's alt text; the SVG draws it). */
  title: string;
  /** What the chart does not say itself (e.g. where the best epoch is); no caption when absent. */
  caption?: string;
  /** A standalone SVG document (what the chart functions write). */
  svg: string;
}

/** The evaluation numbers the report shows (a structural subset of the evaluate stage's report.json). */
export interface ReportEvaluation {
  best_epoch?: number;
  best_phase?: string;
  unfreeze_epoch?: number;
  splits: Partial<Record<string, SplitReport>>;
}

/** One row of the training history: the fields of the training loop's epoch record it shows. */
export type ReportEpoch = Pick<EpochRecord, 'epoch' | 'phase' | 'train_loss' | 'train_accuracy' | 'test_loss' | 'test_accuracy' | 'lr' | 'epoch_seconds'>;

/** One training chain of a comparison (a plot stage with `compare:`). */
export interface ReportChain {
  /** Its name in the legend and the headings. */
  label: string;
  /** The training stage that ends the chain. */
  stage: string;
  /** Its own charts, shown in its section. */
  figures: ReportFigure[];
  /** The evaluation of its best model, when an evaluate stage of the chain ran. */
  evaluation?: ReportEvaluation;
  /** Its epochs (global numbering, both phases). */
  history: ReportEpoch[];
}

/** Everything report.html shows. */
export interface ReportInput {
  /** Pipeline name (page title). */
  title: string;
  description?: string;
  /** When the report was made; shown as ISO 8601. */
  generated: Date;
  /** Extra facts shown under the title (e.g. run folder, backend), in order. */
  facts?: Array<[string, string]>;
  figures: ReportFigure[];
  evaluation?: ReportEvaluation;
  history?: ReportEpoch[];
  /** The resolved pipeline config, shown as YAML. */
  config: unknown;
  /**
   * Training chains compared: the page then has a table of them (epochs, unfreeze epoch, best and
   * last test accuracy, the evaluation's test accuracy and loss) instead of the headline,
   * `figures` (the comparison) under the table, and one section per chain with its figures, evaluation
   * and history; `evaluation` and `history` are not shown.
   */
  chains?: ReportChain[];
}

/** HTML-escapes text for element content and double-quoted attributes. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** `data:image/svg+xml;base64,...` of an SVG document (base64 keeps `#` and quotes safe in the URI). */
export function svgDataUri(svg: string): string {
  return `data:image/svg+xml;base64,${Buffer.from(svg, 'utf8').toString('base64')}`;
}

const pct = (v: number): string => (Number.isFinite(v) ? `${(100 * v).toFixed(2)}%` : String(v));
const num = (v: number, digits = 4): string => (Number.isFinite(v) ? v.toFixed(digits) : String(v));

function table(head: string[], rows: string[][], numericFrom = 1): string {
  const th = head.map((h) => `<th>${escapeHtml(h)}</th>`).join('');
  const tr = rows.map((r) => `<tr>${r.map((c, i) => (i >= numericFrom ? `<td class="n">${escapeHtml(c)}</td>` : `<td>${escapeHtml(c)}</td>`)).join('')}</tr>`);
  return `<table><thead><tr>${th}</tr></thead><tbody>${tr.join('')}</tbody></table>`;
}

function splitSection(r: SplitReport, chain?: ReportChain): string {
  const overall = table(
    ['metric', 'value'],
    [
      ['images', String(r.images)],
      ['loss (cross-entropy, nats)', num(r.loss)],
      ['top-1 accuracy', pct(r.accuracy)],
      [`top-${r.top_k} accuracy`, pct(r.top_k_accuracy)],
      ['macro precision / recall / F1', `${num(r.averages.macro.precision)} / ${num(r.averages.macro.recall)} / ${num(r.averages.macro.f1)}`],
      ['weighted F1', num(r.averages.weighted.f1)],
      ['misclassified images', String(r.misclassified_count)],
      ['inference throughput (images/s)', num(r.images_per_second, 1)],
    ],
  );
  const perClass = table(
    ['class', 'precision', 'recall', 'F1', 'accuracy', 'support'],
    r.per_class.map((c) => [c.class, num(c.precision), num(c.recall), num(c.f1), pct(c.accuracy), String(c.support)]),
  );
  // In a chain's section everything is one heading level lower, and ids carry the stage.
  const [h, h2, id] = chain ? ['h3', 'h4', `${chain.stage}-eval-${r.split}`] : ['h2', 'h3', `eval-${r.split}`];
  return `<section id="${escapeHtml(id)}"><${h}>Evaluation: ${escapeHtml(r.split)} split</${h}>${overall}<${h2}>Per class</${h2}>${perClass}</section>`;
}

function historySection(hist: readonly ReportEpoch[], chain?: ReportChain): string {
  const rows = hist.map((e) => [String(e.epoch), e.phase, num(e.train_loss), pct(e.train_accuracy), num(e.test_loss), pct(e.test_accuracy), e.lr.toExponential(2), num(e.epoch_seconds, 1)]);
  const [h, id] = chain ? ['h3', `${chain.stage}-history`] : ['h2', 'history'];
  return `<section id="${escapeHtml(id)}"><${h}>Training history</${h}>${table(['epoch', 'phase', 'train loss', 'train accuracy', 'test loss', 'test accuracy', 'learning rate', 'seconds'], rows, 2)}</section>`;
}

function figureHtml(f: ReportFigure): string {
  return `<figure><img alt="${escapeHtml(f.title)}" src="${svgDataUri(f.svg)}">${f.caption ? `<figcaption>${escapeHtml(f.caption)}</figcaption>` : ''}</figure>`;
}

/** The compared chains: a table (one row each, test accuracy per epoch summarised), then the comparison `figures`. */
function chainsSection(chains: readonly ReportChain[], figures: readonly string[]): string {
  const rows = chains.map((c) => {
    const finite = c.history.filter((e) => Number.isFinite(e.test_accuracy));
    const best = finite.reduce<ReportEpoch | undefined>((b, e) => (b === undefined || e.test_accuracy > b.test_accuracy ? e : b), undefined);
    const last = c.history.at(-1);
    const unfrozen = c.history.find((e) => e.phase === 'unfreeze')?.epoch;
    const test = c.evaluation?.splits['test'];
    return [c.label, c.stage, String(c.history.length), unfrozen !== undefined ? String(unfrozen) : '-',
      best ? `${pct(best.test_accuracy)} (epoch ${best.epoch})` : '-', last ? pct(last.test_accuracy) : '-',
      test ? pct(test.accuracy) : '-', test ? num(test.loss) : '-',
      c.evaluation?.best_epoch != null ? String(c.evaluation.best_epoch) : '-'];
  });
  return `<section id="chains"><h2>Training chains compared</h2>${table(['chain', 'stage', 'epochs', 'unfrozen at epoch', 'best test accuracy (epoch)', 'last epoch test accuracy', 'evaluated test accuracy', 'evaluated test loss', 'evaluated epoch'], rows, 2)}${figures.join('')}</section>`;
}

function chainSection(c: ReportChain): string {
  const splits = Object.values(c.evaluation?.splits ?? {}).filter((s): s is SplitReport => s !== undefined);
  return `<section id="chain-${escapeHtml(c.stage)}"><h2>${escapeHtml(c.label)}${c.label !== c.stage ? ` (${escapeHtml(c.stage)})` : ''}</h2>${c.figures.map(figureHtml).join('')}` +
    `${splits.map((s) => splitSection(s, c)).join('')}${c.history.length ? historySection(c.history, c) : ''}</section>`;
}

const STYLE = `body{font-family:"DejaVu Sans",system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.facts{color:#555}.facts dt{font-weight:bold;display:inline}.facts dd{display:inline;margin:0 1.2em 0 .3em}
.headline{display:flex;gap:1em;flex-wrap:wrap}.headline div{border:1px solid #ddd;border-radius:6px;padding:.6em 1em}
.headline b{display:block;font-size:1.6em}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #ddd;padding:.25em .6em}th{background:#f5f5f5}
td.n{text-align:right;font-variant-numeric:tabular-nums}pre{background:#f7f7f7;padding:1em;overflow:auto}`;

/** The whole page as one string (UTF-8). Every text is escaped; charts are `<img>` with SVG data URIs. */
export function renderReportHtml(r: ReportInput): string {
  const test = r.chains ? undefined : r.evaluation?.splits['test'];
  const headline = test
    ? `<div class="headline"><div>test accuracy<b>${pct(test.accuracy)}</b></div><div>top-${test.top_k} accuracy<b>${pct(test.top_k_accuracy)}</b></div>` +
      `<div>test loss<b>${num(test.loss)}</b></div><div>macro F1<b>${num(test.averages.macro.f1)}</b></div><div>test images<b>${test.images}</b></div></div>`
    : '';
  const facts: Array<[string, string]> = [['generated', r.generated.toISOString()], ...(r.facts ?? [])];
  if (r.evaluation?.best_epoch != null) facts.push(['best epoch', `${r.evaluation.best_epoch} (${r.evaluation.best_phase ?? '?'})`]);
  if (r.evaluation?.unfreeze_epoch != null) facts.push(['unfrozen at epoch', String(r.evaluation.unfreeze_epoch)]);
  const figures = r.figures.map(figureHtml);
  const splits = r.chains ? [] : Object.values(r.evaluation?.splits ?? {}).filter((s): s is SplitReport => s !== undefined);
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(r.title)}: pipe report</title><style>${STYLE}</style></head><body>`,
    `<h1>${escapeHtml(r.title)}</h1>`,
    r.description ? `<p>${escapeHtml(r.description)}</p>` : '',
    `<dl class="facts">${facts.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`).join('')}</dl>`,
    headline,
    r.chains ? chainsSection(r.chains, figures) : '',
    !r.chains && figures.length ? `<section id="charts"><h2>Charts</h2>${figures.join('')}</section>` : '',
    ...splits.map((s) => splitSection(s)),
    !r.chains && r.history?.length ? historySection(r.history) : '',
    ...(r.chains ?? []).map(chainSection),
    `<section id="config"><h2>Resolved config</h2><pre>${escapeHtml(stringify(r.config))}</pre></section>`,
    '</body></html>',
    '',
  ].join('\n');
}
