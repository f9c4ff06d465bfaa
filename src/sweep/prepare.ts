/**
 * Everything a sweep decides before any work: the spec (file + `--sweep`), the trials, each
 * trial's resolved config (validated: a bad value fails the whole sweep before anything runs,
 * naming the trial), its config hash and stage keys, the sweep key, and the earlier sweep with
 * the same key to continue.
 */
import { join } from 'node:path';
import type { Override } from '../config/overrides.js';
import type { PipelineConfig } from '../config/types.js';
import { PipelineError } from '../errors.js';
import { runsDir } from '../paths.js';
import type { PlanEntry } from '../runner/plan.js';
import { compilePipeline, planFile } from '../runner/run.js';
import { stageDefinition } from '../../stages/index.js';
import { expandSweep, type Trial } from './expand.js';
import { mergeSweep, parseSweepArg, sweepFromConfig, type SweepSpec } from './spec.js';
import { configHash, listSweeps, readSweep, sweepKey, type SweepState } from './state.js';

/** A trial with what planning found. */
export interface PlannedTrial extends Trial {
  config: PipelineConfig;
  configHash: string;
  plan: PlanEntry[];
  /** Keys of the cacheable stages this trial would run (not in the stage cache yet). */
  runKeys: string[];
}

/** The prepared sweep. */
export interface PreparedSweep {
  /** The base config (the sweep's `--set` options applied, no trial values). */
  config: PipelineConfig;
  spec: SweepSpec;
  trials: PlannedTrial[];
  key: string;
  /** The sweep to continue, if any. */
  previous?: SweepState;
}

/** Options of prepareSweep (a subset of SweepOptions). */
export interface PrepareOptions {
  overrides?: Override[];
  sweep?: string[];
  force?: boolean;
  from?: string;
  resume?: boolean | string;
}

/**
 * Loads, expands and plans a sweep.
 * @throws ConfigError / PipelineError (exit 2): a bad file or `--set`, a bad `--sweep`, no sweep
 *   at all, a trial whose config is invalid (message names the trial), two trials with the same
 *   resolved config, `--resume ID` that is not a sweep of these trials.
 */
export async function prepareSweep(file: string, opts: PrepareOptions): Promise<PreparedSweep> {
  const cli = (opts.sweep ?? []).map(parseSweepArg);
  const base = opts.overrides ?? [];
  const { config } = await compilePipeline(file, base);
  const spec = mergeSweep(sweepFromConfig(config), cli);
  if (!spec) throw new PipelineError('PIPE_USAGE', `'${file}' has no sweep: block and no --sweep was given`);
  const trials: PlannedTrial[] = [];
  for (const t of expandSweep(spec)) {
    const shown = t.overrides.map((o) => ({ ...o, expr: `${o.expr} (sweep trial ${t.index} '${t.name}')` }));
    let planned: Awaited<ReturnType<typeof planFile>>;
    try {
      planned = await planFile(file, { overrides: [...base, ...shown], force: opts.force, from: opts.from });
    } catch (e) {
      if (e instanceof PipelineError) throw new PipelineError(e.code, `sweep trial ${t.index} '${t.name}': ${e.message}`, e.exitCode);
      throw e;
    }
    const runKeys = planned.plan.filter((e) => e.decision === 'run' && stageDefinition(e.kind as never).load !== undefined).map((e) => e.key);
    trials.push({ ...t, config: planned.config, configHash: configHash(planned.config), plan: planned.plan, runKeys });
  }
  const byHash = new Map<string, PlannedTrial>();
  for (const t of trials) {
    const twin = byHash.get(t.configHash);
    if (twin) throw new PipelineError('PIPE_USAGE', `sweep: trials ${twin.index} '${twin.name}' and ${t.index} '${t.name}' resolve to the same config; drop the duplicate value`);
    byHash.set(t.configHash, t);
  }
  const key = sweepKey(config.name, trials.map((t) => t.configHash));
  return { config, spec, trials, key, previous: await previousSweep(config.name, key, opts.resume) };
}

async function previousSweep(pipeline: string, key: string, resume: boolean | string | undefined): Promise<SweepState | undefined> {
  if (typeof resume !== 'string') return (await listSweeps(runsDir())).find((s) => s.pipeline === pipeline && s.key === key);
  const prev = await readSweep(join(runsDir(), resume));
  if (!prev) throw new PipelineError('PIPE_USAGE', `--resume ${resume}: no sweep with that id under ${runsDir()}`);
  if (prev.pipeline !== pipeline) throw new PipelineError('PIPE_USAGE', `--resume ${resume}: that sweep is of pipeline '${prev.pipeline}', not '${pipeline}'`);
  if (prev.key !== key) throw new PipelineError('PIPE_USAGE', `--resume ${resume}: that sweep ran other trials (the file, --set or --sweep changed); run without --resume to start a new sweep (finished stages are still reused from the stage cache)`);
  return prev;
}
