/**
 * The local runs and sweeps under runs/ (`pipe runs`): run folders hold lock.json, sweep
 * folders sweep.json; a sweep's trials are listed under it. Status, name and times come from the
 * local MLflow store when there is one, else from the folders.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PipelineError } from '../errors.js';
import { FileStore } from '../tracking/file/store.js';
import { isServerUri, resolveStore } from '../tracking/uri.js';
import { summarizeRun, type RunState, type RunSummary } from './collect.js';
import { readSweep, RUN_ID_RE, type SweepState } from './state.js';
import { bestRow } from './table.js';

/** One sweep in the listing. */
export interface ListedSweep {
  state: SweepState;
  status: RunState;
  /** Its trials that started, in trial order, named as trials. */
  trials: RunSummary[];
  /** The finished trial with the highest best test accuracy. */
  best?: RunSummary;
  /** ms since the Unix epoch. */
  startedAt: number;
  endedAt?: number;
}

/** Everything under runs/, newest first; runs that are sweep trials appear only under their sweep. */
export interface Listing {
  entries: ({ kind: 'run'; run: RunSummary } | { kind: 'sweep'; sweep: ListedSweep })[];
}

/** A reader of the local MLflow store named by MLFLOW_TRACKING_URI (default runs/mlruns), none for servers. */
export function localHeaders(runs: string): FileStore | undefined {
  const store = resolveStore(process.env['MLFLOW_TRACKING_URI'] || undefined, runs);
  return isServerUri(store) ? undefined : new FileStore(store);
}

/** The started trials of a sweep, summarised and named as trials (a queued sweep's from the summaries its workers recorded). */
export async function sweepTrials(runs: string, state: SweepState, headers?: FileStore): Promise<RunSummary[]> {
  const out: RunSummary[] = [];
  for (const t of state.trials) {
    const s = t.runId ? await summarizeRun(join(runs, t.runId), headers) : t.summary;
    if (s) out.push({ ...s, name: t.name, ...(!s.backend && t.backend ? { backend: t.backend } : {}) });
  }
  return out;
}

/** Reads a queued sweep's trials from where they ran (the MLflow server); undefined: use sweep.json's. */
export type RemoteTrials = (state: SweepState) => Promise<RunSummary[] | undefined>;

async function listedSweep(runs: string, state: SweepState, headers?: FileStore): Promise<ListedSweep> {
  const trials = await sweepTrials(runs, state, headers);
  const header = state.mlflowRunId ? await headers?.readRunHeader(state.mlflowRunId) : undefined;
  const st = state.trials.map((t) => t.status);
  const derived: RunState = st.every((s) => s === 'finished') ? 'FINISHED' : st.includes('failed') ? 'FAILED' : 'UNFINISHED';
  const best = bestRow(trials);
  return {
    state, status: header?.status ?? derived, trials, ...(best ? { best } : {}),
    startedAt: header?.startTime ?? state.createdAt,
    ...(header?.endTime !== undefined ? { endedAt: header.endTime } : {}),
  };
}

/** Lists runs/ (newest first). */
export async function listLocal(runs: string): Promise<Listing> {
  const headers = localHeaders(runs);
  const ids = (await readdir(runs).catch(() => [] as string[])).filter((x) => RUN_ID_RE.test(x)).sort().reverse();
  const sweeps = new Map<string, SweepState>();
  for (const id of ids) {
    const s = await readSweep(join(runs, id));
    if (s) sweeps.set(id, s);
  }
  const trialIds = new Set([...sweeps.values()].flatMap((s) => s.trials.map((t) => t.runId).filter((x): x is string => x !== undefined)));
  const entries: Listing['entries'] = [];
  for (const id of ids) {
    const s = sweeps.get(id);
    if (s) entries.push({ kind: 'sweep', sweep: await listedSweep(runs, s, headers) });
    else if (!trialIds.has(id)) {
      const r = await summarizeRun(join(runs, id), headers);
      if (r) entries.push({ kind: 'run', run: r });
    }
  }
  return { entries };
}

/**
 * The runs named by `ids` for comparison: run ids (folders under runs/), sweep ids (all their
 * started trials; a queued sweep's through `remote`) or MLflow run ids (32 hex digits, looked up in the run folders' lock.json);
 * a run named twice (directly and through its sweep) appears once.
 * @throws PipelineError PIPE_USAGE naming the ids that match nothing.
 */
export async function resolveRuns(runs: string, ids: readonly string[], remote?: RemoteTrials): Promise<RunSummary[]> {
  const headers = localHeaders(runs);
  const out: RunSummary[] = [];
  const missing: string[] = [];
  let byMlflow: Map<string, string> | undefined;
  for (const id of ids) {
    const sweep = RUN_ID_RE.test(id) ? await readSweep(join(runs, id)) : undefined;
    if (sweep) {
      out.push(...((sweep.queue !== undefined ? await remote?.(sweep) : undefined) ?? (await sweepTrials(runs, sweep, headers))));
      continue;
    }
    let runId: string | undefined = RUN_ID_RE.test(id) ? id : undefined;
    if (!runId && /^[0-9a-f]{32}$/.test(id)) {
      byMlflow ??= await mlflowIndex(runs);
      runId = byMlflow.get(id);
    }
    const s = runId ? await summarizeRun(join(runs, runId), headers) : undefined;
    if (s) out.push(s);
    else missing.push(id);
  }
  if (missing.length) throw new PipelineError('PIPE_USAGE', `runs compare: no run or sweep ${missing.map((m) => `'${m}'`).join(', ')} under ${runs}; \`pipe runs\` lists them`);
  return out.filter((r, i) => out.findIndex((o) => o.runId === r.runId) === i);
}

async function mlflowIndex(runs: string): Promise<Map<string, string>> {
  const map = new Map<string, string>();
  for (const id of (await readdir(runs).catch(() => [] as string[])).filter((x) => RUN_ID_RE.test(x))) {
    const s = await summarizeRun(join(runs, id));
    if (s?.mlflowRunId) map.set(s.mlflowRunId, id);
  }
  return map;
}
