/**
 * Runs a pipeline: load + validate + compile (nothing is written when that fails), pick the
 * engine, plan (reuse unchanged stages from the stage cache), start or resume the tracked run,
 * run the stages under listr2 (independent branches concurrently up to `jobs`), and end the
 * run FINISHED, FAILED or KILLED (end time always set). What happens is emitted as typed events
 * (events.ts) that the reporters (reporters.ts: tracker, terminal, JSON stream) subscribe to.
 * Runs that earlier processes left RUNNING are closed first (liveness.ts); a full disk ends the
 * run FAILED with one error naming the path (failure.ts).
 */
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { Listr } from 'listr2';
import { parse as parseYaml, stringify } from 'yaml';
import { readFile } from 'node:fs/promises';
import type { Override } from '../config/overrides.js';
import { pipedText } from '../config/source.js';
import type { PipelineConfig } from '../config/types.js';
import type { Dag } from '../dag/compile.js';
import { initEngine, type EngineInfo } from '../engine/backend.js';
import { PipelineError, StageFailedError } from '../errors.js';
import { runsDir } from '../paths.js';
import { TOOL_VERSION } from '../version.js';
import { flattenParams } from '../tracking/params.js';
import { openTracker } from '../tracking/open.js';
import { isServerUri, resolveStore } from '../tracking/uri.js';
import type { Tracker } from '../tracking/tracker.js';
import { failureTags, RunLayout } from '../tracking/layout.js';
import { ancestors } from '../dag/compile.js';
import type { EvalReport } from '../eval/report.js';
import { paramDiff, previousLocks, readLock, StageIndex, writeLock, type Lock } from './cache.js';
import { describeFailure, onHardStop } from './failure.js';
import { resumeCommand } from './interrupt-hint.js';
import { claimRun, closeDeadRunsUnder, endedByItself, recordEnd, recordProcess, removeAtomicTemps } from './liveness.js';
import { gitInfo } from './git.js';
import type { PlanEntry } from './plan.js';
import type { StageTable } from '../stage.js';
import { runStageTask, type StageOutcome } from './stage-task.js';
import { RunEvents, type ChainProducts } from './events.js';
import { chainLines, engineNote, jsonReporter, outputMode, TerminalReporter, TrackingReporter, type OutputMode } from './reporters.js';
import { compilePipeline, planFile } from './compile.js';

export { chainLines, compilePipeline, planFile };

/** Options of `pipe run`. */
export interface RunOptions {
  /** The stage kinds (stages/index.ts, handed down by the CLI). */
  stages: StageTable;
  overrides?: Override[];
  /** Run every stage even when cached. */
  force?: boolean;
  /** Run this stage and its descendants even when cached. */
  from?: string;
  /** Continue the newest unfinished run of this pipeline (or the run with this id). */
  resume?: boolean | string;
  /** Stages running at once. @defaultValue 1 */
  jobs?: number;
  /** After a failure, keep running the stages that do not depend on it. */
  keepGoing?: boolean;
  /** Force the plain line-per-event output (default: when `out` is not a terminal with columns). */
  plain?: boolean;
  /** `json`: the run's events as one JSON object per line on `out` (src/runner/events.ts), nothing else. @defaultValue 'text' */
  logFormat?: 'text' | 'json';
  /** No progress output at all (errors still reach the caller). */
  quiet?: boolean;
  /** Where progress goes. @defaultValue process.stdout */
  out?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  signal?: AbortSignal;
  /** Id of a new run (runs/<runId>), format `YYYYMMDDTHHMMSS-<hex>`. @defaultValue now + random hex */
  runId?: string;
  /** MLflow run name of a new run. @defaultValue `<pipeline>-<runId>` */
  runName?: string;
  /** Extra tags on a new run, e.g. `mlflow.parentRunId` for a sweep's trials. */
  tags?: Record<string, string>;
}

/** What a finished run produced. */
export interface RunResult {
  runId: string;
  runDir: string;
  store: string;
  engine: EngineInfo;
  plan: PlanEntry[];
  /** Each stage's output, by stage name. */
  outputs: Map<string, unknown>;
  /** The plot stage's report.html, when the pipeline has one. */
  reportHtml?: string;
  /** The best model folder of the last training stage (what `pipe predict` loads). */
  bestModel?: string;
  /** Each training chain's best model and evaluations (several when the pipeline trains chains side by side). */
  chains: ChainProducts[];
}


/**
 * Whether `--resume` can continue the run: a stage is not done, its last attempt failed, or its
 * process died (or was stopped) before ending it FINISHED, even with every stage done (the
 * next command closed it KILLED and advised --resume).
 */
const unfinished = async (l: Lock): Promise<boolean> =>
  Object.values(l.stages).some((s) => s.status !== 'done') || l.failure !== undefined || !(await endedByItself(join(runsDir(), l.runId)));

/**
 * The run `--resume` continues: the given one, or the newest unfinished run of this pipeline
 * file. Refused (exit 2) when that run finished, or when the config changed since (MLflow params
 * are immutable, and a resumed run must train on what it started with).
 */
async function findResumable(file: string, config: PipelineConfig, resume: true | string): Promise<Lock> {
  let lock: Lock | undefined;
  if (typeof resume === 'string') {
    lock = await readLock(join(runsDir(), resume));
    if (!lock) throw new PipelineError('PIPE_USAGE', `--resume ${resume}: no run with that id under ${runsDir()}`);
    if (lock.pipeline !== config.name) throw new PipelineError('PIPE_USAGE', `--resume ${resume}: that run is of pipeline '${lock.pipeline}', not '${config.name}'`);
    if (!(await unfinished(lock))) throw new PipelineError('PIPE_USAGE', `--resume ${resume}: that run finished; nothing to resume (run without --resume to reuse its stages through the cache)`);
  } else {
    for (const l of await previousLocks(runsDir(), config.name)) {
      if (resolve(l.file) === resolve(file) && (await unfinished(l))) {
        lock = l;
        break;
      }
    }
    if (!lock) throw new PipelineError('PIPE_USAGE', `--resume: no unfinished run of '${file}' under ${runsDir()}`);
  }
  let before: unknown;
  try {
    before = parseYaml(await readFile(join(runsDir(), lock.runId, 'resolved.yaml'), 'utf8'));
  } catch {
    before = undefined;
  }
  const changed = paramDiff(flattenParams(before ?? {}), flattenParams(config));
  if (before !== undefined && changed.length) {
    throw new PipelineError('PIPE_USAGE', `--resume: the config changed since run ${lock.runId} started:\n  ${changed.join('\n  ')}\nrevert the change, or run without --resume (unchanged stages are reused through the cache)`);
  }
  return lock;
}

/**
 * Runs the pipeline file at `file`.
 * @throws ConfigError / PipelineError (exit 2) before anything is written; StageFailedError
 *   (exit 1) when a stage throws; PipelineError PIPE_INTERRUPTED (exit 130) when aborted.
 */
export async function runPipeline(file: string, opts: RunOptions): Promise<RunResult> {
  const out = opts.out ?? process.stdout;
  const events = new RunEvents();
  const mode = outputMode(out, opts);
  const terminal = mode === 'live' || mode === 'plain' ? new TerminalReporter(mode, out) : undefined;
  if (terminal) events.subscribe(terminal.on);
  if (mode === 'json') events.subscribe(jsonReporter(out));

  const { config, dag, plan } = await planFile(file, opts);
  const sets = (opts.overrides ?? []).map((o) => o.expr);
  const trackingUri = process.env['MLFLOW_TRACKING_URI'] || undefined;
  const store = resolveStore(trackingUri, runsDir()); // checked before any work
  const resumed = opts.resume ? await findResumable(file, config, opts.resume) : undefined;
  const releaseClaim = resumed ? claimRun(join(runsDir(), resumed.runId)) : undefined; // one process per run
  if (resumed) await removeAtomicTemps(join(runsDir(), resumed.runId)); // what its dead process was writing
  const engine = await initEngine(config.engine.backend);
  events.emit({ type: 'note', text: engineNote(engine.warning ? `${engine.name}; ${engine.warning}` : engine.name) });
  if (isServerUri(trackingUri)) {
    const { replayPendingSpools } = await import('./pending-spools.js');
    for (const text of await replayPendingSpools(runsDir())) events.emit({ type: 'note', text });
  }
  for (const text of await closeDeadRunsUnder(runsDir())) events.emit({ type: 'note', text });
  if (opts.runId !== undefined && !/^\d{8}T\d{6}-[0-9a-f]+$/.test(opts.runId)) throw new PipelineError('PIPE_USAGE', `run id '${opts.runId}': expected YYYYMMDDTHHMMSS-<hex>`);
  const runId = resumed?.runId ?? opts.runId ?? `${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '')}-${randomBytes(3).toString('hex')}`;
  const runDir = join(runsDir(), runId);
  const tracker = await startTrackedRun(file, config, { runId, runDir, engine, trackingUri, resumed, opts });
  const tracking = new TrackingReporter(tracker);
  events.subscribe(tracking.on);

  const lock: Lock = resumed ?? { pipeline: config.name, file, runId, mlflowRunId: tracker.runId, createdAt: Date.now(), stages: {} };
  lock.sets = sets; // for the resume hint of `pipe runs` (liveness.ts); this invocation's give the same config
  for (const e of plan) {
    const reused = e.decision === 'skip' && e.reuseDir !== join(runDir, e.name);
    lock.stages[e.name] = { kind: e.kind, key: e.key, parts: e.parts, outDir: e.reuseDir ?? join(runDir, e.name), status: e.decision === 'skip' ? 'done' : 'pending', ...(reused ? { reusedFrom: e.reuseDir } : {}) };
  }
  // Ends the MLflow run (KILLED or FAILED, with an end time, even on a full disk) once.
  let ending: Promise<void> | undefined;
  const endRun = (status: 'KILLED' | 'FAILED'): Promise<void> => (ending ??= tracker.end(status).catch(() => undefined).then(() => recordEnd(runDir, status)));
  const dropHardStop = onHardStop(() => endRun('KILLED'));
  // A failed lock.json write does not stop later ones (a stage waiting on it would never settle); the last one decides.
  let lockWrite: Promise<void> = Promise.resolve();
  const saveLock = (): Promise<void> => (lockWrite = lockWrite.then(() => writeLock(runDir, lock)).catch(() => undefined));
  try {
    await writeLock(runDir, lock);
  } catch (e) {
    dropHardStop();
    await endRun('FAILED');
    throw describeFailure(e, { runDir, resume: resumeCommand(file, sets, runId) });
  }

  const controller = new AbortController();
  const onAbort = (): void => controller.abort();
  opts.signal?.addEventListener('abort', onAbort);
  if (opts.signal?.aborted) controller.abort(); // interrupted while the run was being set up
  const outputs = new Map<string, unknown>();
  const layout = new RunLayout(config.stages, (n) => ancestors(dag, n));
  events.emit({
    type: 'run-start', runId, runDir, pipeline: config.name, engine: engine.name, engineDetail: engine.description, store,
    stages: plan.map((e) => ({ name: e.name, kind: e.kind, decision: e.decision, reason: e.reason, ...epochsOf(config, e.name) })),
  });
  const end = (status: 'FINISHED' | 'FAILED' | 'KILLED', error?: string): void =>
    events.emit({ type: 'run-end', status, runId, runDir, store, ...productsOf(plan, outputs, runDir, layout), ...(error !== undefined ? { error } : {}) });
  let failures: StageFailure[] = [];
  try {
    failures = await runStages({ opts, mode, terminal, plan, dag, config, layout, runDir, engine, events, tracking, outputs, signal: controller.signal, lock, saveLock });
    // A Ctrl-C that came after the last stage finished interrupted nothing: the run is complete.
    const complete = Object.values(lock.stages).every((st) => st.status === 'done');
    if (controller.signal.aborted && !complete) throw new PipelineError('PIPE_INTERRUPTED', 'interrupted', 130);
    if (failures.length) throw stagesFailedError(failures, lock);
    await lockWrite;
    if (lock.failure) {
      // A resumed run that now finished: the reason of the interrupted attempt no longer describes it.
      delete lock.failure;
      await tracker.deleteTags(['pipe.error', ...(config.description ? [] : ['mlflow.note.content'])]);
      if (config.description) await tracker.setTags({ 'mlflow.note.content': config.description });
    }
    await writeLock(runDir, lock);
    await tracker.end('FINISHED');
    dropHardStop();
    await recordEnd(runDir, 'FINISHED');
    end('FINISHED');
  } catch (e) {
    dropHardStop();
    const killed = e instanceof PipelineError && e.code === 'PIPE_INTERRUPTED';
    const reason = failureReason(failures, e);
    lock.failure = { status: killed ? 'KILLED' : 'FAILED', reason };
    await lockWrite;
    await writeLock(runDir, lock, { inPlaceWhenFull: true }).catch(() => undefined); // the stages' final states, even on a full disk
    await tracker.setTags(failureTags(lock.failure.status, reason, config.description)).catch(() => undefined);
    await endRun(lock.failure.status);
    const err = describeFailure(e, { runDir, resume: resumeCommand(file, sets, runId) });
    end(lock.failure.status, err instanceof Error ? err.message : String(err));
    throw err;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    releaseClaim?.();
  }
  return { runId, runDir, store, engine, plan, outputs, ...productsOf(plan, outputs, runDir, layout) };
}

/**
 * Opens the tracked run (new, or the resumed one) with the run's tags, then writes
 * resolved.yaml and logs the params and the pipeline files. Nothing goes under runs/<id> before
 * the tracking store has taken the run (a refusal leaves no orphan folder).
 */
async function startTrackedRun(file: string, config: PipelineConfig, r: { runId: string; runDir: string; engine: EngineInfo; trackingUri: string | undefined; resumed: Lock | undefined; opts: RunOptions }): Promise<Tracker> {
  const { runDir, opts } = r;
  const git = await gitInfo(resolve(file));
  const hadRunDir = existsSync(runDir);
  const tracker: Tracker = await openTracker(r.trackingUri, runsDir(), {
    experiment: config.experiment ?? config.name,
    runName: opts.runName ?? `${config.name}-${r.runId}`,
    user: safeUser(),
    runDir,
    resumeRunId: r.resumed?.mlflowRunId,
    tags: {
      'mlflow.source.name': file,
      'mlflow.source.type': 'LOCAL',
      ...(config.description ? { 'mlflow.note.content': config.description } : {}),
      ...(git ? { 'mlflow.source.git.commit': git.commit, 'mlflow.source.git.branch': git.branch, 'pipe.git.dirty': String(git.dirty) } : {}),
      'pipe.backend': r.engine.name,
      'pipe.version': TOOL_VERSION,
      'pipe.config_hash': createHash('sha256').update(JSON.stringify(config)).digest('hex').slice(0, 16),
      'pipe.run_dir': runDir,
      ...opts.tags,
    },
  }).catch(async (e: unknown) => {
    if (!hadRunDir) await rm(runDir, { recursive: true, force: true });
    throw e;
  });
  // A second Ctrl-C while the run is being set up still ends it KILLED (runPipeline takes over after).
  const dropHardStop = onHardStop(() => tracker.end('KILLED').catch(() => undefined).then(() => recordEnd(runDir, 'KILLED')).catch(() => undefined));
  try {
    await mkdir(runDir, { recursive: true });
    await recordProcess(runDir, tracker.location, tracker.runId);
    const resolvedPath = join(runDir, 'resolved.yaml');
    await writeFile(resolvedPath, stringify(config));
    await tracker.logParams(flattenParams(config));
    // A pipeline read from a pipe (`<(cat f)`) cannot be read again: its text, as read, is the artifact.
    const piped = pipedText(file);
    const pipelinePath = piped === undefined ? resolve(file) : join(runDir, 'pipeline.yaml');
    if (piped !== undefined) await writeFile(pipelinePath, piped);
    await tracker.logArtifact(pipelinePath, 'pipeline');
    await tracker.logArtifact(resolvedPath, 'pipeline');
  } catch (e) {
    // The store took the run: it must not stay RUNNING (a full disk, most likely).
    dropHardStop();
    await tracker.end('FAILED').catch(() => undefined);
    await recordEnd(runDir, 'FAILED');
    throw describeFailure(e, { runDir, resume: resumeCommand(file, (opts.overrides ?? []).map((o) => o.expr), r.runId) });
  }
  dropHardStop();
  return tracker;
}

/** A stage that failed, with its error. */
interface StageFailure {
  stage: string;
  error: unknown;
}

/**
 * Runs (or reuses) every stage as a listr2 task, independent branches concurrently up to
 * `jobs`; listr2 renders them live on a terminal, line by line elsewhere, and not at all for
 * the JSON stream or `--quiet` (the reporters print instead).
 * @returns the failed stages in the order they failed (empty when every stage finished).
 */
async function runStages(r: {
  opts: RunOptions; mode: OutputMode; terminal: TerminalReporter | undefined; plan: PlanEntry[]; dag: Dag; config: PipelineConfig; layout: RunLayout; runDir: string; engine: EngineInfo;
  events: RunEvents; tracking: TrackingReporter; outputs: Map<string, unknown>; signal: AbortSignal; lock: Lock; saveLock: () => Promise<void>;
}): Promise<StageFailure[]> {
  const { opts, dag } = r;
  const outcomes = new Map<string, Promise<StageOutcome>>();
  const settle = new Map<string, (o: StageOutcome) => void>();
  for (const n of dag.order) outcomes.set(n, new Promise((res) => settle.set(n, res)));
  const failures: StageFailure[] = [];
  const index = new StageIndex(runsDir());
  const tasks = new Listr(
    r.plan.map((entry) => ({
      title: `${entry.name} (${entry.kind})`,
      task: async (_: unknown, task: { output: string; title: string; skip: (m?: string) => void }) => {
        r.terminal?.attach(entry.name, task);
        const outcome = await runStageTask({
          stages: opts.stages, entry, dag, config: r.config, layout: r.layout, runDir: r.runDir, engine: r.engine, events: r.events, tracking: r.tracking, index,
          outputs: r.outputs, outcomes, task, signal: r.signal,
          stopNew: () => failures.length > 0 && !opts.keepGoing,
          onStatus: (status) => {
            r.lock.stages[entry.name]!.status = status;
            return r.saveLock();
          },
        });
        if (outcome.status === 'failed') failures.push({ stage: entry.name, error: outcome.error });
        settle.get(entry.name)!(outcome);
        // listr marks the task failed (exitOnError is off); the message itself is printed once, by the CLI
        if (outcome.status === 'failed') throw new Error('see the error below');
      },
      rendererOptions: { persistentOutput: true },
    })),
    {
      concurrent: Math.max(1, opts.jobs ?? 1),
      exitOnError: false,
      registerSignalListeners: false,
      renderer: r.mode === 'live' ? 'default' : r.mode === 'plain' ? 'simple' : 'silent',
      rendererOptions: { collapseSubtasks: false, collapseSkips: false, showErrorMessage: false },
    },
  );
  await tasks.run();
  return failures;
}

/** The error a run with failed stages ends with: each failure, and the stages skipped because of them. */
function stagesFailedError(failures: StageFailure[], lock: Lock): StageFailedError {
  const skipped = Object.entries(lock.stages).filter(([, s]) => s.status === 'skipped').map(([n]) => n);
  const e = new StageFailedError(failures[0]!.stage, failures[0]!.error);
  if (failures.length > 1) {
    const why = (f: { error: unknown }): string => (f.error instanceof Error ? f.error.message : String(f.error));
    e.message = `${failures.length} stages failed:\n${failures.map((f) => `  ${f.stage}: ${why(f)}`).join('\n')}`;
  }
  if (skipped.length === 1) e.message += `\nStage ${skipped[0]} was skipped due to ${failures.length > 1 ? 'these failures' : 'this failure'}.`;
  else if (skipped.length) e.message += `\nStages ${skipped.join(', ')} were skipped due to ${failures.length > 1 ? 'these failures' : 'this failure'}.`;
  return e;
}

/** `{ epochs }` of a training stage (its `with.epochs`), else nothing. */
function epochsOf(config: PipelineConfig, stage: string): { epochs?: number } {
  const s = config.stages[stage]!;
  const n = (s.with as { epochs?: unknown }).epochs;
  return (s.kind === 'freeze-train' || s.kind === 'unfreeze-train') && typeof n === 'number' ? { epochs: n } : {};
}

/**
 * What a user opens after a run: the report.html of the plot stage, the best model of the last
 * training stage to finish, and each training chain's best model and evaluations, as paths in
 * this run's folder: a stage reused from another run is reached through its link there
 * (runs/<new>/<stage>, see stage-task.ts), the old run's path only when that link could not be made.
 */
function productsOf(plan: PlanEntry[], outputs: Map<string, unknown>, runDir: string, layout: RunLayout): { reportHtml?: string; bestModel?: string; chains: ChainProducts[] } {
  const inRun = (e: PlanEntry, path: string): string => {
    const own = join(runDir, e.name);
    if (e.reuseDir === undefined || resolve(e.reuseDir) === resolve(own)) return path;
    const rel = relative(e.reuseDir, path);
    const linked = join(own, rel);
    return rel.startsWith('..') || isAbsolute(rel) || !existsSync(linked) ? path : linked;
  };
  const modelOf = (e: PlanEntry): string | undefined => {
    const o = outputs.get(e.name) as { modelDir?: unknown } | undefined;
    return (e.kind === 'freeze-train' || e.kind === 'unfreeze-train') && typeof o?.modelDir === 'string' ? inRun(e, o.modelDir) : undefined;
  };
  let reportHtml: string | undefined;
  let bestModel: string | undefined;
  for (const e of plan) {
    const o = outputs.get(e.name) as { report?: unknown } | undefined;
    if (e.kind === 'plot' && typeof o?.report === 'string') reportHtml = inRun(e, o.report);
    bestModel = modelOf(e) ?? bestModel;
  }
  const chains = layout.chains.map((c): ChainProducts => {
    const last = plan.find((e) => e.name === c.name);
    const model = last && modelOf(last);
    const evaluations = plan.filter((e) => e.kind === 'evaluate' && outputs.has(e.name) && layout.chainsOf(e.name).includes(c.name)).map((e) => {
      const r = outputs.get(e.name) as EvalReport;
      return { stage: e.name, test_accuracy: r.test_accuracy, test_loss: r.test_loss, images: r.images, ...(r.best_epoch !== undefined ? { best_epoch: r.best_epoch } : {}) };
    });
    return { chain: c.name, stages: [...c.stages], ...(model !== undefined ? { bestModel: model } : {}), evaluations };
  });
  return { ...(reportHtml !== undefined ? { reportHtml } : {}), ...(bestModel !== undefined ? { bestModel } : {}), chains };
}

/** `stage: message` per failed or interrupted stage (`; `-joined), else the error's own message. */
function failureReason(failures: StageFailure[], e: unknown): string {
  const msg = (x: unknown): string => (x instanceof Error ? x.message : String(x));
  return failures.length ? failures.map((f) => `${f.stage}: ${msg(f.error)}`).join('; ') : msg(e);
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}
