/**
 * The comparison table of runs: one row per run, sorted by best test accuracy (highest first,
 * runs without one last), as aligned terminal text, GitHub-flavoured markdown, CSV (RFC 4180,
 * raw numbers in base units) and a self-contained HTML page (charts embedded as SVG data URIs).
 */
import { escapeHtml, svgDataUri } from '../report/html.js';
import type { RunSummary } from './collect.js';

/**
 * The runs sorted for display: finished runs first, then the others (failed or interrupted runs
 * keep the figures of the epochs they did finish), each group by best test accuracy descending
 * (missing last), then by name.
 */
export function sortRows(rows: readonly RunSummary[]): RunSummary[] {
  const acc = (r: RunSummary): number => r.bestTestAccuracy ?? -Infinity;
  const done = (r: RunSummary): number => (r.status === 'FINISHED' ? 0 : 1);
  return [...rows].sort((a, b) => done(a) - done(b) || acc(b) - acc(a) || a.name.localeCompare(b.name));
}

/** The finished run with the highest best test accuracy, if any. */
export function bestRow(rows: readonly RunSummary[]): RunSummary | undefined {
  const top = sortRows(rows)[0];
  return top?.status === 'FINISHED' && top.bestTestAccuracy !== undefined ? top : undefined;
}

const dash = '-';
const fixed = (v: number | undefined, d: number): string => (v === undefined || !Number.isFinite(v) ? dash : v.toFixed(d));

/** Column titles of the human-readable forms (text, markdown, HTML). */
export const COLUMNS = ['trial', 'status', 'best test acc', 'epoch', 'train time (s)', 'images/s', 'peak RSS (MB)', 'params', 'backend', 'run'] as const;

/** A row's cells in COLUMNS order, formatted for people: accuracy in %, memory in MB (10^6 bytes). */
export function displayCells(r: RunSummary): string[] {
  return [
    r.name,
    r.status,
    r.bestTestAccuracy === undefined ? dash : `${(100 * r.bestTestAccuracy).toFixed(2)}%`,
    r.bestEpoch === undefined ? dash : String(r.bestEpoch),
    fixed(r.trainSeconds, 1),
    fixed(r.imagesPerSecond, 0),
    fixed(r.peakRssBytes === undefined ? undefined : r.peakRssBytes / 1e6, 1),
    r.params === undefined ? dash : r.params.toLocaleString('en'),
    r.backend ?? dash,
    r.runId,
  ];
}

/** Left-aligned text columns (name, status, backend, run), right-aligned numbers. */
const TEXT_COLUMNS = new Set([0, 1, 8, 9]);

/** The table as aligned plain text, two spaces between columns, rows sorted (sortRows). */
export function formatTable(rows: readonly RunSummary[]): string {
  const cells = [[...COLUMNS], ...sortRows(rows).map(displayCells)];
  const widths = COLUMNS.map((_, c) => Math.max(...cells.map((r) => r[c]!.length)));
  return cells.map((r) => r.map((v, c) => (TEXT_COLUMNS.has(c) ? v.padEnd(widths[c]!) : v.padStart(widths[c]!))).join('  ').trimEnd()).join('\n');
}

/** The table as a GitHub-flavoured markdown table (numbers right-aligned, `|` escaped). */
export function toMarkdown(rows: readonly RunSummary[]): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|');
  const head = `| ${COLUMNS.join(' | ')} |`;
  const rule = `|${COLUMNS.map((_, c) => (TEXT_COLUMNS.has(c) ? ' --- ' : ' ---: ')).join('|')}|`;
  return [head, rule, ...sortRows(rows).map((r) => `| ${displayCells(r).map(esc).join(' | ')} |`)].join('\n') + '\n';
}

/** CSV header: raw values in base units (accuracy in [0, 1], seconds, images/s, bytes). */
export const CSV_COLUMNS = ['trial', 'status', 'best_test_accuracy', 'best_epoch', 'train_seconds', 'images_per_second', 'peak_rss_bytes', 'params', 'backend', 'run_id', 'mlflow_run_id'] as const;

function csvCell(v: string | number | undefined): string {
  if (v === undefined) return '';
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The table as CSV (RFC 4180: CRLF line ends, fields with `,` `"` or line breaks quoted), rows sorted. */
export function toCsv(rows: readonly RunSummary[]): string {
  const lines = sortRows(rows).map((r) =>
    [r.name, r.status, r.bestTestAccuracy, r.bestEpoch, r.trainSeconds, r.imagesPerSecond, r.peakRssBytes, r.params, r.backend, r.runId, r.mlflowRunId].map(csvCell).join(','),
  );
  return [CSV_COLUMNS.join(','), ...lines].join('\r\n') + '\r\n';
}

/** A chart for the HTML page. */
export interface HtmlFigure {
  title: string;
  /** Standalone SVG document. */
  svg: string;
}

const STYLE = `body{font-family:"DejaVu Sans",system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #ddd;padding:.25em .6em}th{background:#f5f5f5}
td.n{text-align:right;font-variant-numeric:tabular-nums}figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}`;

/** The table (and charts) as one self-contained HTML page; all text escaped. */
export function toHtml(rows: readonly RunSummary[], opts: { title: string; facts?: [string, string][]; figures?: HtmlFigure[] }): string {
  const th = COLUMNS.map((c) => `<th>${escapeHtml(c)}</th>`).join('');
  const trs = sortRows(rows).map((r) => `<tr>${displayCells(r).map((v, c) => `<td${TEXT_COLUMNS.has(c) ? '' : ' class="n"'}>${escapeHtml(v)}</td>`).join('')}</tr>`);
  const facts = (opts.facts ?? []).map(([k, v]) => `<li><b>${escapeHtml(k)}</b>: ${escapeHtml(v)}</li>`).join('');
  const figures = (opts.figures ?? []).map((f) => `<figure><img alt="${escapeHtml(f.title)}" src="${svgDataUri(f.svg)}"><figcaption>${escapeHtml(f.title)}</figcaption></figure>`).join('');
  return [
    '<!doctype html>',
    `<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(opts.title)}</title><style>${STYLE}</style></head><body>`,
    `<h1>${escapeHtml(opts.title)}</h1>`,
    facts ? `<ul>${facts}</ul>` : '',
    `<table><thead><tr>${th}</tr></thead><tbody>${trs.join('')}</tbody></table>`,
    figures,
    '</body></html>',
    '',
  ].join('\n');
}
