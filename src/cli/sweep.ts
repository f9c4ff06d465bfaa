/**
 * `pipe run FILE` for sweeps (a `sweep:` block or `--sweep path=a,b`), and the hidden
 * `pipe _trial` that runs one trial of a sweep in its own process. Argument handling only: the
 * work is runSweep (src/sweep/run.ts) and runPipeline.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { readSource } from '../config/load.js';
import { parseOverride } from '../config/overrides.js';
import { PipelineError } from '../errors.js';
import { isServerUri } from '../tracking/uri.js';
import { runsDir } from '../paths.js';
import { runPipeline } from '../runner/run.js';
import { runSweep } from '../sweep/run.js';
import { writeTrialResult } from '../sweep/state.js';
import { classifyFailure, type FailureKind } from '../sweep/trial-failure.js';
import { formatTable } from '../sweep/table.js';
import { onInterrupt } from './interrupts.js';
import { stageKinds } from '../../stages/index.js';
import { browseCommand } from '../tracking/layout.js';

/** The `pipe run` options a sweep uses. */
export interface SweepCliOpts {
  set?: string[];
  sweep?: string[];
  parallel?: string;
  force?: boolean;
  from?: string;
  resume?: boolean | string;
  jobs?: string;
  keepGoing?: boolean;
  logFormat?: string;
}

const wholeNumber = (flag: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new PipelineError('PIPE_USAGE', `${flag} ${v}: expected a whole number >= 1`);
  return n;
};

/** True when the file parses and has a top-level `sweep:` key (a broken file is left to `pipe run` to report). */
export async function hasSweepBlock(file: string): Promise<boolean> {
  try {
    const data: unknown = (await readSource(file)).doc.toJS();
    return typeof data === 'object' && data !== null && 'sweep' in data;
  } catch {
    return false;
  }
}

/**
 * Why `--log-format json` is refused for sweeps (and `--queue`): the JSON event stream is one
 * run's (src/runner/events.ts); a sweep's trials run in their own processes, each with its log.
 */
export const SWEEP_JSON_REFUSED = "--log-format json streams one run's events; a sweep runs each trial in its own process (its output in runs/<sweep>/logs/): run a trial on its own with --set for JSON, or leave out --log-format";

/**
 * `pipe run` for a sweep: runs it, prints the comparison table and where things are.
 * @returns the exit code (0 all trials finished, 1 some failed), or undefined when `file` is
 *   not a sweep (no `sweep:` block, no `--sweep`): the caller runs it as a single pipeline.
 * @throws PipelineError PIPE_USAGE for `--parallel` without a sweep, bad numbers or
 *   `--log-format json` (SWEEP_JSON_REFUSED); whatever
 *   runSweep throws (exit 2 bad input, 130 interrupted).
 */
export async function runSweepCli(file: string, opts: SweepCliOpts, signal: AbortSignal): Promise<number | undefined> {
  const isSweep = (opts.sweep?.length ?? 0) > 0 || (await hasSweepBlock(file));
  if (!isSweep) {
    if (opts.parallel !== undefined) throw new PipelineError('PIPE_USAGE', `--parallel runs sweep trials at once, but '${file}' has no sweep: block and no --sweep was given (use --jobs for stages at once)`);
    return undefined;
  }
  if (opts.logFormat === 'json') throw new PipelineError('PIPE_USAGE', SWEEP_JSON_REFUSED);
  const r = await runSweep(file, {
    stages: stageKinds, overrides: (opts.set ?? []).map(parseOverride), sweep: opts.sweep, parallel: wholeNumber('--parallel', opts.parallel),
    keepGoing: opts.keepGoing, force: opts.force, from: opts.from, jobs: wholeNumber('--jobs', opts.jobs), resume: opts.resume, signal,
  });
  const failed = r.state.trials.filter((t) => t.status !== 'finished');
  const lines = [
    '',
    r.rows.length ? formatTable(r.rows) : 'no trial got far enough to compare',
    '',
    failed.length ? `${failed.length} of ${r.state.trials.length} trials did not finish: ${failed.map((t) => `${t.name} (${t.status}${t.error ? `: ${t.error}` : ''})`).join('; ')}` : undefined,
    r.skipped ? `${r.skipped} trial${r.skipped === 1 ? '' : 's'} finished earlier and skipped` : undefined,
    `sweep: ${r.sweepId}  comparison: ${join(r.sweepDir, 'comparison')}`,
    isServerUri(r.store) ? `MLflow server: ${r.store} (parent run ${r.mlflowRunId})` : `MLflow store: ${r.store} (parent run ${r.mlflowRunId}; browse: ${browseCommand(r.store)})`,
  ];
  process.stdout.write(`${lines.filter((l) => l !== undefined).join('\n')}\n`);
  return failed.length ? 1 : 0;
}

/** Options of the hidden `pipe _trial` command (what the sweep passes). */
export interface TrialCliOpts {
  set?: string[];
  tag?: string[];
  runId: string;
  runName: string;
  resume?: boolean;
  force?: boolean;
  from?: string;
  jobs?: string;
  plain?: boolean;
}

/**
 * `pipe _trial FILE --run-id ID --run-name NAME [--set k=v]... [--tag k=v]... [--resume]`: one
 * trial of a sweep, as `pipe run` with a given run id, name and tags; writes runs/<ID>/trial.json
 * at the end. Resolves to the exit code (0, 1 failed, 2 bad input, 130 interrupted).
 */
export async function cmdTrial(file: string, opts: TrialCliOpts): Promise<number> {
  const controller = new AbortController();
  const offInterrupt = onInterrupt(controller);
  const t0 = Date.now();
  const tags: Record<string, string> = {};
  const result = async (status: 'finished' | 'failed' | 'killed', extra: { backend?: string; error?: string; failure?: FailureKind }): Promise<void> => {
    const dir = join(runsDir(), opts.runId);
    await mkdir(dir, { recursive: true });
    await writeTrialResult(dir, { name: opts.runName, ...(tags['pipe.sweep.id'] ? { sweepId: tags['pipe.sweep.id'] } : {}), status, ...extra, seconds: (Date.now() - t0) / 1000 });
  };
  try {
    for (const t of opts.tag ?? []) {
      const eq = t.indexOf('=');
      if (eq <= 0) throw new PipelineError('PIPE_USAGE', `--tag ${t}: expected <key>=<value>`);
      tags[t.slice(0, eq)] = t.slice(eq + 1);
    }
    const r = await runPipeline(file, {
      stages: stageKinds, overrides: (opts.set ?? []).map(parseOverride), plain: opts.plain ?? true, force: opts.force, from: opts.from,
      resume: opts.resume ? opts.runId : undefined, jobs: wholeNumber('--jobs', opts.jobs) ?? 1,
      runId: opts.runId, runName: opts.runName, tags, signal: controller.signal,
    });
    await result('finished', { backend: r.engine.name });
    const reused = r.plan.filter((e) => e.decision === 'skip').map((e) => e.name);
    process.stdout.write(`${reused.length ? `reused from the stage cache: ${reused.join(', ')}\n` : ''}run: ${r.runId}  outputs: ${r.runDir}\n`);
    return 0;
  } catch (e) {
    const killed = e instanceof PipelineError && e.exitCode === 130;
    await result(killed ? 'killed' : 'failed', { error: e instanceof Error ? e.message : String(e), ...(killed ? {} : { failure: classifyFailure(e) }) }).catch(() => undefined);
    process.stderr.write(`pipe: ${e instanceof Error ? (e instanceof PipelineError ? e.message : (e.stack ?? e.message)) : String(e)}\n`);
    return e instanceof PipelineError ? e.exitCode : 1;
  } finally {
    offInterrupt();
  }
}
