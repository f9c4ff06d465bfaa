/**
 * One stage as a listr2 task: wait for its upstream stages, then reuse its cached outputs or run
 * it, turning its reports into run events (events.ts; the reporters log and print them), and
 * record the outcome.
 * After a failure, stages that depend on it are skipped (and named); with fail-fast (the
 * default) no new stage starts either. Anchor: DVC `_reproduce` / `handle_error`.
 */
import { mkdir, rmdir, symlink } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import type { PipelineConfig } from '../config/types.js';
import { readableKinds, type StageKindName } from '../stage-kinds.js';
import { ancestors, type Dag } from '../dag/compile.js';
import type { EngineInfo } from '../engine/backend.js';
import { PipelineError } from '../errors.js';
import type { LockEntry, StageIndex } from './cache.js';
import type { PlanEntry } from './plan.js';
import type { RunEvents } from './events.js';
import type { TrackingReporter } from './reporters.js';
import { readStageRecord, replayStageRecord, StageRecorder } from './stage-record.js';
import { stageOf, type StageContext, type StageReport, type StageTable } from '../stage.js';
import type { RunLayout } from '../tracking/layout.js';

/** How a stage ended. */
export interface StageOutcome {
  status: 'done' | 'failed' | 'skipped';
  error?: unknown;
}

/** What runStageTask needs from the run. */
export interface StageTaskArgs {
  stages: StageTable;
  entry: PlanEntry;
  dag: Dag;
  config: PipelineConfig;
  /** Where the stage's metrics and artifacts go in MLflow (one key per chain of the stage when the run has several). */
  layout: RunLayout;
  runDir: string;
  engine: EngineInfo;
  events: RunEvents;
  /** Delivers the stage's records before the stage counts as done. */
  tracking: TrackingReporter;
  index: StageIndex;
  outputs: Map<string, unknown>;
  outcomes: Map<string, Promise<StageOutcome>>;
  /** The stage's listr2 task (its state: skipped, failed). */
  task: { skip: (message?: string) => void };
  signal: AbortSignal;
  /** True once a failure should stop new stages (fail-fast). */
  stopNew: () => boolean;
  onStatus: (s: LockEntry['status']) => Promise<void>;
}

/** Runs or reuses one stage; never throws (the outcome says what happened). */
export async function runStageTask(a: StageTaskArgs): Promise<StageOutcome> {
  const { entry, dag, task } = a;
  const name = entry.name;
  const node = dag.nodes.get(name)!;
  const ups = await Promise.all(node.needs.map(async (d) => [d, await a.outcomes.get(d)!] as const));
  const bad = ups.filter(([, o]) => o.status !== 'done').map(([d]) => d);
  if (bad.length || a.stopNew() || a.signal.aborted) {
    await a.onStatus('skipped');
    const reason = bad.length ? `upstream ${bad.join(', ')} did not finish` : a.signal.aborted ? 'interrupted' : 'an earlier stage failed';
    a.events.emit({ type: 'stage-skip', stage: name, reason });
    task.skip(reason);
    return { status: 'skipped' };
  }
  const def = stageOf(a.stages, node.config.kind);
  const stage = name;
  const report: StageReport = {
    progress: (text) => a.events.emit({ type: 'stage-progress', stage, text }),
    batch: (b) => a.events.emit({ type: 'stage-batch', stage, ...b }),
    // The summary keeps the stage's own field names (the history's, state.json); `keys` gives each one's MLflow keys (events.ts).
    epoch: (e) => a.events.emit({ type: 'stage-epoch', stage, ...e, keys: Object.fromEntries(Object.entries(e).filter(([f, v]) => typeof v === 'number' && f !== 'epoch' && f !== 'epochs').map(([f]) => [f, a.layout.metricKeys(stage, f)])) }),
    // One naming for every reader of the run's metrics and artifacts (the tracker, `--log-format json`): MLflow's key and path.
    metric: (key, value, step, opts) => {
      for (const k of a.layout.metricKeys(stage, key)) a.events.emit({ type: 'stage-metric', stage, key: k, value, step, ...(opts?.resumed ? { resumed: true as const } : {}) });
    },
    tags: (tags) => a.events.emit({ type: 'stage-tags', stage, tags: a.layout.tags(stage, tags) }),
    artifact: (path, artifactPath) => {
      for (const ap of a.layout.artifactPaths(stage, artifactPath)) a.events.emit({ type: 'stage-artifact', stage, path, ...(ap !== undefined ? { artifactPath: ap } : {}) });
    },
    dataset: (d) => a.events.emit({ type: 'stage-dataset', stage, ...a.layout.dataset(stage, d) }),
  };
  a.events.emit({ type: 'stage-start', stage, kind: node.config.kind });
  const readable = readableKinds(node.config.kind);
  const upstreamOf = (kinds: StageKindName[]): unknown => {
    const undeclared = kinds.filter((k) => !readable.has(k));
    if (undeclared.length) throw new Error(`stage kind ${node.config.kind} reads ${undeclared.join(', ')}, which its row in src/stage-kinds.ts does not declare`);
    const hit = ancestors(dag, name).find((n) => kinds.includes(dag.nodes.get(n)!.config.kind));
    return hit === undefined ? undefined : a.outputs.get(hit);
  };
  const outDir = join(a.runDir, name);
  // What the stage reports is kept in its folder (tracked.json); a run reusing the folder logs it again.
  const recorder = new StageRecorder(outDir, report);
  const ctx: StageContext<unknown> = {
    name, key: entry.key, params: node.config.with, pipeline: a.config, outDir, seed: a.config.seed,
    signal: a.signal, engine: a.engine, report: recorder.report,
    maybeUpstream: <T>(...kinds: StageKindName[]) => upstreamOf(kinds) as T | undefined,
    upstream: <T>(...kinds: StageKindName[]) => {
      const v = upstreamOf(kinds);
      if (v === undefined) throw new PipelineError('PIPE_USAGE', `stage '${name}' (${node.config.kind}) needs an upstream stage of kind ${kinds.join(' or ')} in its needs`, 1);
      return v as T;
    },
    upstreamNamed: <T>(stage: string) => {
      const kind = dag.nodes.get(stage)?.config.kind;
      if (kind === undefined || !ancestors(dag, name).includes(stage) || !readable.has(kind)) {
        throw new PipelineError('PIPE_USAGE', `stage '${name}' (${node.config.kind}) reads stage '${stage}', which is not upstream of it or not of a kind it reads`, 1);
      }
      return a.outputs.get(stage) as T;
    },
    ancestors: (stage = name) => ancestors(dag, stage),
  };
  const t0 = Date.now();
  try {
    let reused = false;
    if (entry.decision === 'skip' && def.load) {
      await mkdir(ctx.outDir, { recursive: true });
      const record = await readStageRecord(entry.reuseDir!);
      if (record) recorder.mode = 'quiet'; // tracked.json has what load would report again
      try {
        a.outputs.set(name, await def.load(ctx, entry.reuseDir!));
        reused = true;
        if (entry.reuseDir !== ctx.outDir) {
          // Another run's folder: this run logs what the stage logged there, and links to it.
          if (record) replayStageRecord(record, entry.reuseDir!, report);
          await linkReused(ctx.outDir, entry.reuseDir!);
        }
      } catch (e) {
        recorder.reset();
        if (a.signal.aborted) throw e;
        // A cache entry that no longer loads (files deleted or never written) is rebuilt, not trusted.
        report.progress(`cached outputs in ${entry.reuseDir} do not load (${(e as Error).message.split('\n')[0]}); running the stage again`);
        Object.assign(entry, { decision: 'run', reason: 'cached outputs did not load', reuseDir: undefined });
      }
    }
    if (reused) {
      a.events.emit({ type: 'stage-reused', stage, from: entry.reuseDir! });
      if (entry.reuseDir !== ctx.outDir) report.tags({ [`pipe.reused.${name}`]: entry.reuseDir! });
    } else {
      await a.onStatus('running');
      await mkdir(ctx.outDir, { recursive: true });
      a.outputs.set(name, await def.run(ctx));
      ctx.report.metric(`stage_seconds.${name}`, (Date.now() - t0) / 1000, 0);
      await recorder.save();
      // Delivered (or spooled) before the stage counts as done: a finished stage is never run, nor logged, again.
      await a.tracking.settle(stage);
      await a.index.record(entry.key, ctx.outDir);
    }
    await a.onStatus('done');
    a.events.emit({ type: 'stage-finish', stage, seconds: (Date.now() - t0) / 1000, reused });
    return { status: 'done' };
  } catch (e) {
    await a.onStatus(a.signal.aborted ? 'pending' : 'failed');
    const err = a.signal.aborted ? new PipelineError('PIPE_INTERRUPTED', 'interrupted', 130) : e;
    a.events.emit({ type: 'stage-fail', stage, message: err instanceof Error ? err.message : String(err) });
    return { status: 'failed', error: err };
  } finally {
    await a.tracking.settle(stage, true);
  }
}

/**
 * Makes a reused stage's folder in this run a relative symbolic link to the folder it reuses
 * (runs/<new>/<stage> -> ../<old>/<stage>), so the run folder holds every stage's outputs
 * (`pipe predict runs/<new>` finds the best model) without copying them. Leaves things as they
 * are when the folder is not empty or links are not possible here.
 */
async function linkReused(outDir: string, reuseDir: string): Promise<void> {
  try {
    await rmdir(outDir);
  } catch {
    return;
  }
  await symlink(relative(dirname(outDir), reuseDir), outDir, 'dir').catch(() => undefined);
}
