/**
 * `pipe runs` (the local runs and sweeps under runs/) and `pipe runs compare ID...` (the
 * comparison table of any runs, sweeps or MLflow run ids). Argument handling and printing only;
 * the work is in src/sweep/list.ts and src/sweep/table.ts.
 */
import { resolve } from 'node:path';
import { PipelineError } from '../errors.js';
import { runsDir } from '../paths.js';
import type { RunSummary } from '../sweep/collect.js';
import { listLocal, resolveRuns, type Listing } from '../sweep/list.js';
import { writeComparison } from '../sweep/report.js';
import { formatTable, sortRows, toCsv, toHtml, toMarkdown } from '../sweep/table.js';

const pct = (v: number | undefined): string => (v === undefined ? '-' : `${(100 * v).toFixed(2)}%`);

/** `12.3s`, `4m05s`, `1h02m`, or `-`. */
export function formatDuration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms) || ms < 0) return '-';
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** Local time `YYYY-MM-DD HH:MM`. */
function when(ms: number): string {
  const d = new Date(ms);
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** Longest failure reason shown in the listing (the full one is in `pipe runs --json` and the run's `pipe.error` tag). */
const REASON_WIDTH = 120;

/**
 * The listing as aligned text: ID, NAME, STATUS, BEST TEST ACC, STARTED, DURATION; trials
 * indented under their sweep; under a FAILED or KILLED run, a line `-> <stage>: <message>`, for a
 * KILLED run with unfinished stages followed by the command that continues it (never shortened).
 */
export function formatListing(l: Listing): string {
  const row = (indent: string, id: string, name: string, status: string, best: string, start: number, end: number | undefined): string[] =>
    [`${indent}${id}`, name, status, best, when(start), formatDuration(end === undefined ? undefined : end - start)];
  const rows: string[][] = [['ID', 'NAME', 'STATUS', 'BEST TEST ACC', 'STARTED', 'DURATION']];
  /** Row index -> the reason line printed under it. */
  const reasons = new Map<number, string>();
  const why = (indent: string, failure: string | undefined, resume?: string): void => {
    if (failure === undefined && resume === undefined) return;
    const line = (failure ?? 'KILLED').split('\n')[0]!;
    const hint = resume === undefined ? '' : `; continue with \`${resume}\``;
    reasons.set(rows.length - 1, `${indent}  -> ${line.length > REASON_WIDTH ? `${line.slice(0, REASON_WIDTH - 3)}...` : line}${hint}`);
  };
  for (const e of l.entries) {
    if (e.kind === 'run') {
      const r = e.run;
      rows.push(row('', r.runId, r.name, r.status, pct(r.bestTestAccuracy), r.startedAt, r.endedAt));
      why('', r.failure, r.resume);
      continue;
    }
    const s = e.sweep;
    const n = s.state.trials.length;
    rows.push(row('', s.state.sweepId, `sweep ${s.state.pipeline} (${n} trial${n === 1 ? '' : 's'})`, s.status, s.best ? `${pct(s.best.bestTestAccuracy)} ${s.best.name}` : '-', s.startedAt, s.endedAt));
    for (const t of s.trials) {
      rows.push(row('  ', t.runId, t.name, t.status, pct(t.bestTestAccuracy), t.startedAt, t.endedAt));
      why('  ', t.failure);
    }
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.flatMap((r, i) => {
    const line = r.map((v, c) => v.padEnd(widths[c]!)).join('  ').trimEnd();
    const reason = reasons.get(i);
    return reason === undefined ? [line] : [line, reason];
  }).join('\n');
}

/** Prints a PipelineError as `pipe: <message>` and returns its exit code; rethrows anything else. */
function reportError(e: unknown): number {
  if (!(e instanceof PipelineError)) throw e;
  process.stderr.write(`pipe: ${e.message}\n`);
  return e.exitCode;
}

/** `pipe runs [--json]`: the listing as text, or as JSON; resolves to the exit code. */
export function cmdRuns(opts: { json?: boolean } = {}): Promise<number> {
  return listRuns(opts).catch(reportError);
}

async function listRuns(opts: { json?: boolean }): Promise<number> {
  // Runs whose process is gone without ending them are marked KILLED first, so the listing tells the truth.
  for (const line of await (await import('../runner/liveness.js')).closeDeadRunsUnder(runsDir())) process.stderr.write(`pipe: ${line}\n`);
  const listing = await listLocal(runsDir());
  if (opts.json) process.stdout.write(`${JSON.stringify(listing.entries, null, 2)}\n`);
  else if (listing.entries.length === 0) process.stdout.write(`no runs under ${runsDir()}\n`);
  else process.stdout.write(`${formatListing(listing)}\n`);
  return 0;
}

/** Output forms of `pipe runs compare`. */
const FORMATS: Record<string, (rows: RunSummary[]) => string> = {
  text: (rows) => `${formatTable(rows)}\n`,
  md: toMarkdown,
  csv: toCsv,
  json: (rows) => `${JSON.stringify(sortRows(rows), null, 2)}\n`,
  html: (rows) => toHtml(rows, { title: 'Run comparison' }),
};

/**
 * `pipe runs compare ID... [--format text|md|csv|html|json] [--out DIR]`: the comparison table
 * on stdout; with `--out`, also the files of a sweep's comparison (tables and charts) in DIR.
 * Resolves to the exit code: 0, or 2 (message on stderr) for an unknown id or format.
 */
export function cmdRunsCompare(ids: string[], opts: { format?: string; out?: string } = {}): Promise<number> {
  return compareRuns(ids, opts).catch(reportError);
}

async function compareRuns(ids: string[], opts: { format?: string; out?: string }): Promise<number> {
  const format = opts.format ?? 'text';
  const render = FORMATS[format];
  if (!render) throw new PipelineError('PIPE_USAGE', `--format ${format}: expected ${Object.keys(FORMATS).join(', ')}`);
  const rows = await resolveRuns(runsDir(), ids, async (sweep) => (await import('../queue/mlflow-trials.js')).queuedSweepTrials(sweep));
  process.stdout.write(render(rows));
  if (opts.out !== undefined) {
    const { files, warnings } = await writeComparison(rows, resolve(opts.out), { title: `Comparison of ${ids.join(', ')}` });
    for (const w of warnings) process.stderr.write(`pipe: warning: ${w}\n`);
    process.stderr.write(`pipe: wrote ${files.length} files to ${resolve(opts.out)}\n`);
  }
  return 0;
}
