/**
 * Runs a pipeline: load + validate + compile (nothing is written when that fails), pick the
 * engine, start the tracked run, then run the stages in DAG order under listr2, and end the run
 * FINISHED, FAILED or KILLED (end time always set).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { Listr } from 'listr2';
import { stringify } from 'yaml';
import { loadPipeline } from '../config/load.js';
import type { StageKindName } from '../config/types.js';
import { ancestors, compileDag } from '../dag/compile.js';
import { initEngine, type EngineInfo } from '../engine/backend.js';
import { PipelineError, StageFailedError } from '../errors.js';
import { runsDir } from '../paths.js';
import { flattenParams } from '../tracking/params.js';
import { resolveStore, startTracker, type Tracker } from '../tracking/tracker.js';
import { stageDefinition } from '../../stages/index.js';
import { gitInfo } from './git.js';
import { isImportant, ProgressThrottle } from './progress.js';
import type { StageContext, StageReport } from './stage.js';

/** Options of `pipe run`. */
export interface RunOptions {
  /** Force the plain line-per-event output (default: when stdout is not a terminal). */
  plain?: boolean;
  /** Where progress and the summary go. @defaultValue process.stdout */
  out?: NodeJS.WritableStream & { isTTY?: boolean };
  signal?: AbortSignal;
}

/** What a finished run produced. */
export interface RunResult {
  runId: string;
  runDir: string;
  store: string;
  engine: EngineInfo;
  /** Each stage's output, by stage name. */
  outputs: Map<string, unknown>;
}

export const TOOL_VERSION = '0.1.0';

/**
 * Runs the pipeline file at `file`.
 * @throws ConfigError / PipelineError (exit 2) before anything is written; StageFailedError
 *   (exit 1) when a stage throws; PipelineError PIPE_INTERRUPTED (exit 130) when aborted.
 */
export async function runPipeline(file: string, opts: RunOptions = {}): Promise<RunResult> {
  const out = opts.out ?? process.stdout;
  const { config, source } = await loadPipeline(file);
  const dag = compileDag(config, source);
  const trackingUri = process.env['MLFLOW_TRACKING_URI'] || undefined;
  const tracking = resolveStore(trackingUri, runsDir()); // checked before any work
  const engine = await initEngine(config.engine.backend);
  out.write(`pipe: engine ${engine.description}\n`);

  const runId = `${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '')}-${randomBytes(3).toString('hex')}`;
  const runDir = join(runsDir(), runId);
  await mkdir(runDir, { recursive: true });
  const resolvedPath = join(runDir, 'resolved.yaml');
  await writeFile(resolvedPath, stringify(config));
  const configHash = createHash('sha256').update(JSON.stringify(config)).digest('hex').slice(0, 16);
  const git = await gitInfo(resolve(file));
  const tracker: Tracker = await startTracker(trackingUri, runsDir(), {
    experiment: config.experiment ?? config.name,
    runName: `${config.name}-${runId}`,
    user: safeUser(),
    tags: {
      'mlflow.source.name': file,
      'mlflow.source.type': 'LOCAL',
      ...(config.description ? { 'mlflow.note.content': config.description } : {}),
      ...(git ? { 'mlflow.source.git.commit': git.commit, 'mlflow.source.git.branch': git.branch, 'pipe.git.dirty': String(git.dirty) } : {}),
      'pipe.backend': engine.backend,
      'pipe.version': TOOL_VERSION,
      'pipe.config_hash': configHash,
      'pipe.run_dir': runDir,
    },
  });
  await tracker.logParams(flattenParams(config));
  await tracker.logArtifact(resolve(file), 'pipeline');
  await tracker.logArtifact(resolvedPath, 'pipeline');

  const tty = !opts.plain && Boolean(out.isTTY);
  const outputs = new Map<string, unknown>();
  const pending: Promise<void>[] = [];
  const controller = new AbortController();
  const onAbort = () => controller.abort();
  opts.signal?.addEventListener('abort', onAbort);

  const tasks = new Listr(
    dag.order.map((name) => ({
      title: `${name} (${dag.nodes.get(name)!.config.kind})`,
      task: async (_: unknown, task: { output: string; title: string }) => {
        const node = dag.nodes.get(name)!;
        const def = stageDefinition(node.config.kind);
        const throttle = new ProgressThrottle(tty);
        const report: StageReport = {
          progress: (text) => {
            if (throttle.shouldShow(text, isImportant(text))) task.output = text;
          },
          metric: (k, v, step) => tracker.metric(k, v, step),
          tags: (t) => void pending.push(tracker.setTags(t)),
          artifact: (p, a) => void pending.push(tracker.logArtifact(p, a)),
          dataset: (d) => void pending.push(tracker.setTags({ [`pipe.dataset.${d.context}`]: `${d.name} (${d.count} images, sha256 ${d.digest}, from ${d.source})` })),
        };
        const upstreamOf = (kinds: StageKindName[]): unknown => {
          const hit = ancestors(dag, name).find((a) => kinds.includes(dag.nodes.get(a)!.config.kind));
          return hit === undefined ? undefined : outputs.get(hit);
        };
        const ctx: StageContext<unknown> = {
          name, params: node.config.with, pipeline: config, outDir: join(runDir, name), seed: config.seed,
          signal: controller.signal, engine, report,
          maybeUpstream: <T>(...kinds: StageKindName[]) => upstreamOf(kinds) as T | undefined,
          upstream: <T>(...kinds: StageKindName[]) => {
            const v = upstreamOf(kinds);
            if (v === undefined) throw new PipelineError('PIPE_USAGE', `stage '${name}' (${node.config.kind}) needs an upstream stage of kind ${kinds.join(' or ')} in its needs`, 1);
            return v as T;
          },
        };
        await mkdir(ctx.outDir, { recursive: true });
        const t0 = Date.now();
        try {
          outputs.set(name, await def.run(ctx));
        } catch (e) {
          if (controller.signal.aborted) throw new PipelineError('PIPE_INTERRUPTED', 'interrupted', 130);
          throw new StageFailedError(name, e);
        } finally {
          tracker.metric(`stage_seconds.${name}`, (Date.now() - t0) / 1000, 0);
          await Promise.all(pending.splice(0));
          await tracker.flush();
        }
      },
      rendererOptions: { persistentOutput: true },
    })),
    {
      concurrent: false,
      exitOnError: true,
      registerSignalListeners: false,
      renderer: 'default',
      rendererOptions: { collapseSubtasks: false },
      fallbackRenderer: 'simple',
      fallbackRendererCondition: !tty,
    },
  );

  try {
    await tasks.run();
    await tracker.end('FINISHED');
  } catch (e) {
    await Promise.allSettled(pending);
    const killed = e instanceof PipelineError && e.code === 'PIPE_INTERRUPTED';
    await tracker.end(killed ? 'KILLED' : 'FAILED').catch(() => undefined);
    throw e;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
  return { runId, runDir, store: tracking, engine, outputs };
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}

