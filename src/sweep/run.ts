/**
 * Runs a sweep: one MLflow child run per trial (tag `mlflow.parentRunId`) under a parent run
 * that holds the sweep's params and the comparison. Trials run as child processes, one at a
 * time or `parallel` at once (scheduler.ts: shared stages run once, fail-fast or keep-going).
 * Rerunning the same sweep continues it: finished trials are skipped, the others run again (an
 * interrupted trial resumes its own run folder). At the end, the comparison of the trials goes
 * to runs/<sweep-id>/comparison/ and onto the parent run.
 * Anchors: Hydra multirun (one job per combination), DVC `exp run --queue` (resumable queue).
 */
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { pipedText } from '../config/source.js';
import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import type { Override } from '../config/overrides.js';
import { PipelineError } from '../errors.js';
import { runsDir } from '../paths.js';
import { readLock } from '../runner/cache.js';
import { recordEnd, recordProcess } from '../runner/liveness.js';
import { TOOL_VERSION } from '../version.js';
import { FileStore } from '../tracking/file/store.js';
import { openTracker } from '../tracking/open.js';
import { isServerUri, resolveStore } from '../tracking/uri.js';
import type { Tracker } from '../tracking/tracker.js';
import { summarizeRun, type RunSummary } from './collect.js';
import type { StageTable } from '../stage.js';
import { prepareSweep, type PreparedSweep } from './prepare.js';
import { writeComparison } from './report.js';
import { bestRow } from './table.js';
import { TrialScheduler } from './scheduler.js';
import { newRunId, writeSweep, type SweepState, type TrialRecord } from './state.js';

/** Options of a sweep (`pipe run FILE` with a `sweep:` block or `--sweep`). */
export interface SweepOptions {
  /** The stage kinds (stages/index.ts, handed down by the CLI), to plan the trials. */
  stages: StageTable;
  /** `--set` overrides applied to every trial. */
  overrides?: Override[];
  /** `--sweep path=a,b` expressions (added to, or replacing paths of, the file's `sweep:`). */
  sweep?: string[];
  /** Trials running at once, each in its own process. @defaultValue 1 */
  parallel?: number;
  /** After a failed trial, go on with the others (default: stop the sweep). */
  keepGoing?: boolean;
  /** Passed to every trial (`pipe run --force`); finished trials run again too. */
  force?: boolean;
  /** Passed to every trial (`pipe run --from`). */
  from?: string;
  /** Stages at once inside each trial. @defaultValue 1 */
  jobs?: number;
  /** Continue this sweep id (default: the newest sweep of the same trials, if any). */
  resume?: boolean | string;
  /** Where the sweep's lines go. @defaultValue process.stdout */
  out?: NodeJS.WritableStream;
  signal?: AbortSignal;
}

/** What a sweep produced. */
export interface SweepResult {
  sweepId: string;
  sweepDir: string;
  /** MLflow store folder or server URL. */
  store: string;
  /** The parent MLflow run. */
  mlflowRunId: string;
  state: SweepState;
  /** One per trial that started (now or in an earlier attempt), for the comparison. */
  rows: RunSummary[];
  /** Files of the comparison (logged on the parent run under `comparison/`). */
  artifacts: string[];
  /** Trials that were finished before and not run again. */
  skipped: number;
}

function initialRecords(p: PreparedSweep, force: boolean): TrialRecord[] {
  return p.trials.map((t) => {
    const prev = p.previous?.trials.find((r) => r.configHash === t.configHash);
    const rec: TrialRecord = { index: t.index, name: t.name, sets: t.overrides.map((o) => o.expr), configHash: t.configHash, status: 'pending' };
    if (!prev?.runId) return rec;
    if (prev.status === 'finished' && force) return rec; // a fresh run
    return { ...prev, index: t.index, name: t.name, sets: rec.sets, status: prev.status === 'finished' ? 'finished' : 'pending' };
  });
}

async function stillFinished(rec: TrialRecord): Promise<boolean> {
  const lock = rec.runId ? await readLock(join(runsDir(), rec.runId)) : undefined;
  return lock !== undefined && Object.values(lock.stages).every((s) => s.status === 'done' && existsSync(s.outDir));
}

/**
 * Runs the sweep of pipeline `file`.
 * @throws ConfigError / PipelineError (exit 2) before anything runs (see prepareSweep);
 *   PipelineError PIPE_INTERRUPTED (exit 130) when `signal` aborts. Failed trials are not
 *   thrown: they are in `state.trials` (the CLI exits 1).
 */
export async function runSweep(file: string, opts: SweepOptions): Promise<SweepResult> {
  const out = opts.out ?? process.stdout;
  const parallel = Math.max(1, opts.parallel ?? 1);
  const prepared = await prepareSweep(file, opts);
  const { config, spec, trials, previous } = prepared;
  const trackingUri = process.env['MLFLOW_TRACKING_URI'] || undefined;
  const store = resolveStore(trackingUri, runsDir());
  const sweepId = previous?.sweepId ?? newRunId();
  const sweepDir = join(runsDir(), sweepId);
  const n = trials.length;
  // The sweep folder is made once the tracking store has taken the parent run (a refusal leaves no orphan folder).
  const hadDir = existsSync(sweepDir);
  const tracker = await startParent(prepared, file, sweepId, sweepDir, out).catch(async (e: unknown) => {
    if (!hadDir) await rm(sweepDir, { recursive: true, force: true });
    throw e;
  });
  await mkdir(sweepDir, { recursive: true });
  // Liveness (src/runner/liveness.ts): after kill -9 of this process, the next command marks the parent run KILLED.
  await recordProcess(sweepDir, tracker.location, tracker.runId);
  const records = initialRecords(prepared, opts.force ?? false);
  for (const r of records) if (r.status === 'finished' && !(await stillFinished(r))) r.status = 'pending';
  const state: SweepState = {
    version: 1, sweepId, key: prepared.key, pipeline: config.name, file, mlflowRunId: tracker.runId,
    createdAt: previous?.createdAt ?? Date.now(), mode: spec.mode, params: spec.params.map((p) => ({ path: p.path, values: p.values })), trials: records,
  };
  let saving = writeSweep(sweepDir, state);
  const save = (): Promise<void> => (saving = saving.then(() => writeSweep(sweepDir, state)));
  await saving;

  const skipped = records.filter((r) => r.status === 'finished').length;
  const sizes = spec.params.map((p) => p.values.length).join(' x ');
  out.write(`pipe: sweep ${sweepId}${previous ? ' (continued)' : ''}: ${n} trials (${spec.mode === 'grid' ? `grid ${sizes}` : `random, seed ${spec.seed}, from ${sizes}`}), ${parallel} at a time; parent MLflow run ${tracker.runId}\n`);
  for (const r of records) if (r.status === 'finished') out.write(`  trial ${r.index}/${n} ${r.name}: finished earlier (run ${r.runId}), skipped\n`);

  const headers = isServerUri(store) ? undefined : new FileStore(store);
  const trialFile = pipedText(file) === undefined ? file : pipedCopy(sweepDir);
  const scheduler = new TrialScheduler({ file: trialFile, opts: { ...opts, parallel }, sweepId, sweepDir, parentRunId: tracker.runId, trials, out, headers, save });
  try {
    const outcome = await scheduler.run(records.filter((r) => r.status !== 'finished'), opts.signal).finally(save);
    return await finish({ sweepId, sweepDir, store, tracker, state, skipped, headers, interrupted: outcome === 'interrupt', out });
  } catch (e) {
    const interrupted = e instanceof PipelineError && e.code === 'PIPE_INTERRUPTED';
    if (!interrupted) await tracker.end('FAILED').catch(() => undefined);
    await recordEnd(sweepDir, interrupted ? 'KILLED' : 'FAILED');
    throw e;
  }
}

/** The copy of a piped pipeline file the trials read (they cannot read the pipe). */
const pipedCopy = (sweepDir: string): string => join(sweepDir, 'pipeline.yaml');

/** Starts (or, continuing a sweep, reopens) the parent MLflow run and logs the sweep's params and pipeline file. */
async function startParent(p: PreparedSweep, file: string, sweepId: string, sweepDir: string, out: NodeJS.WritableStream): Promise<Tracker> {
  const { config, spec } = p;
  const tracker = await openTracker(process.env['MLFLOW_TRACKING_URI'] || undefined, runsDir(), {
    experiment: config.experiment ?? config.name,
    runName: `${config.name}-sweep-${sweepId}`,
    user: (() => { try { return userInfo().username; } catch { return 'unknown'; } })(),
    runDir: sweepDir,
    resumeRunId: p.previous?.mlflowRunId,
    tags: {
      'mlflow.source.name': file, 'mlflow.source.type': 'LOCAL', 'pipe.version': TOOL_VERSION, 'pipe.run_dir': sweepDir,
      'pipe.sweep': 'true', 'pipe.sweep.id': sweepId, 'pipe.sweep.mode': spec.mode, 'pipe.sweep.trials': String(p.trials.length),
      ...(config.description ? { 'mlflow.note.content': config.description } : {}),
    },
  });
  const params: Record<string, string> = { 'sweep.mode': spec.mode, 'sweep.trials': String(p.trials.length), ...(spec.mode === 'random' ? { 'sweep.seed': String(spec.seed) } : {}) };
  for (const q of spec.params) params[`sweep.params.${q.path}`] = JSON.stringify(q.values);
  await tracker.logParams(params).catch((e: unknown) => void out.write(`pipe: warning: sweep params not logged: ${(e as Error).message}\n`));
  // A pipeline read from a pipe (`<(cat f)`) cannot be read again: its text, as read, is the artifact and what the trials read.
  const piped = pipedText(file);
  if (piped !== undefined) {
    await mkdir(sweepDir, { recursive: true });
    await writeFile(pipedCopy(sweepDir), piped);
  }
  await tracker.logArtifact(piped === undefined ? resolve(file) : pipedCopy(sweepDir), 'pipeline');
  if (!tracker.runId) out.write(`pipe: warning: the MLflow server was unreachable when the sweep started: the trials are not nested under the parent run (tag pipe.sweep.id=${sweepId} groups them)\n`);
  return tracker;
}

async function finish(a: { sweepId: string; sweepDir: string; store: string; tracker: Tracker; state: SweepState; skipped: number; headers?: FileStore; interrupted: boolean; out: NodeJS.WritableStream }): Promise<SweepResult> {
  const { state, tracker } = a;
  const rows: RunSummary[] = [];
  for (const rec of state.trials) {
    const s = rec.runId ? await summarizeRun(join(runsDir(), rec.runId), a.headers) : undefined;
    if (s) rows.push({ ...s, name: rec.name, ...(rec.backend && !s.backend ? { backend: rec.backend } : {}) });
  }
  let artifacts: string[] = [];
  if (rows.length) {
    const comparison = await writeComparison(rows, join(a.sweepDir, 'comparison'), {
      title: `Sweep ${state.pipeline} ${a.sweepId}`,
      facts: [['pipeline file', state.file], ['trials', String(state.trials.length)], ['swept', state.params.map((p) => `${p.path} in ${JSON.stringify(p.values)}`).join('; ')]],
    });
    artifacts = comparison.files;
    for (const w of comparison.warnings) a.out.write(`pipe: warning: ${w}\n`);
    for (const f of artifacts) await tracker.logArtifact(f, 'comparison');
    const best = bestRow(rows);
    if (best) {
      tracker.metric('best_test_accuracy', best.bestTestAccuracy!, 0);
      await tracker.setTags({ 'pipe.sweep.best_trial': best.name, 'pipe.sweep.best_run_id': best.mlflowRunId ?? best.runId });
    }
  }
  const count = (s: TrialRecord['status']): number => state.trials.filter((t) => t.status === s).length;
  await tracker.setTags({ 'pipe.sweep.finished': String(count('finished')), 'pipe.sweep.failed': String(count('failed')) });
  const failed = count('failed') > 0;
  const status = a.interrupted ? 'KILLED' : failed || count('finished') < state.trials.length ? 'FAILED' : 'FINISHED';
  await tracker.end(status);
  await recordEnd(a.sweepDir, status);
  if (a.interrupted) throw new PipelineError('PIPE_INTERRUPTED', `interrupted; rerun the same command to continue the sweep (finished trials are kept)`, 130);
  return { sweepId: a.sweepId, sweepDir: a.sweepDir, store: a.store, mlflowRunId: tracker.runId, state, rows, artifacts, skipped: a.skipped };
}
