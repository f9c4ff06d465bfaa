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
import { loadPipeline } from '../config/load.js';
import { compileDag } from '../dag/compile.js';
import { planFile } from '../runner/compile.js';
import type { StageMetaTable } from '../stage.js';
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
  /** What planning needs of the stage kinds (stages/meta.ts or stages/index.ts, handed down by the CLI). */
  stages: StageMetaTable;
  overrides?: Override[];
  sweep?: string[];
  force?: boolean;
  from?: string;
  resume?: boolean | string;
}

/** What checkSweep found: the spec and each trial with what `check` returned for it. */
export interface CheckedSweep<T> {
  /** The base config (the `--set` options applied, no trial values). */
  config: PipelineConfig;
  spec: SweepSpec;
  trials: (Trial & T & { configHash: string })[];
}

/**
 * Expands the sweep of `file` (its `sweep:` block merged with `--sweep` options) and checks every
 * trial with `check` (the base overrides, then the trial's): the one path for `pipe run`,
 * `validate` and `plan`, so they accept and refuse the same sweeps. Undefined when `file` is
 * not a sweep.
 * @throws ConfigError / PipelineError (exit 2): a bad file, `--set` or `--sweep`, a trial whose
 *   config is invalid (the message names the trial and its override), two trials with the same
 *   resolved config.
 */
export async function checkSweep<T extends { config: PipelineConfig }>(
  file: string,
  opts: { overrides?: Override[]; sweep?: string[] },
  check: (overrides: Override[]) => Promise<T>,
): Promise<CheckedSweep<T> | undefined> {
  const cli = (opts.sweep ?? []).map(parseSweepArg);
  const base = opts.overrides ?? [];
  const { config, source } = await loadPipeline(file, base);
  compileDag(config, source);
  const spec = mergeSweep(sweepFromConfig(config, source), cli);
  if (!spec) return undefined;
  const trials: (Trial & T & { configHash: string })[] = [];
  for (const t of expandSweep(spec)) {
    const shown = t.overrides.map((o) => ({ ...o, expr: `${o.expr} (sweep trial ${t.index} '${t.name}')` }));
    let checked: T;
    try {
      checked = await check([...base, ...shown]);
    } catch (e) {
      if (e instanceof PipelineError) throw new PipelineError(e.code, `sweep trial ${t.index} '${t.name}': ${e.message}`, e.exitCode);
      throw e;
    }
    trials.push({ ...t, ...checked, configHash: configHash(checked.config) });
  }
  const byHash = new Map<string, Trial>();
  for (const t of trials) {
    const twin = byHash.get(t.configHash);
    if (twin) throw new PipelineError('PIPE_USAGE', `sweep: trials ${twin.index} '${twin.name}' and ${t.index} '${t.name}' resolve to the same config; drop the duplicate value`);
    byHash.set(t.configHash, t);
  }
  return { config, spec, trials };
}

/**
 * Loads, expands and plans a sweep.
 * @throws ConfigError / PipelineError (exit 2): what checkSweep throws, no sweep at all,
 *   `--resume ID` that is not a sweep of these trials.
 */
export async function prepareSweep(file: string, opts: PrepareOptions): Promise<PreparedSweep> {
  const checked = await checkSweep(file, opts, (overrides) => planFile(file, { stages: opts.stages, overrides, force: opts.force, from: opts.from }));
  if (!checked) throw new PipelineError('PIPE_USAGE', `'${file}' has no sweep: block and no --sweep was given`);
  const { config, spec } = checked;
  const trials: PlannedTrial[] = checked.trials.map(({ dag: _dag, ...t }) => ({
    ...t,
    runKeys: t.plan.filter((e) => e.decision === 'run' && opts.stages[e.kind].cacheable).map((e) => e.key),
  }));
  const key = sweepKey(config.name, trials.map((t) => t.configHash));
  return { config, spec, trials, key, previous: await previousSweep(config.name, key, opts.resume) };
}

async function previousSweep(pipeline: string, key: string, resume: boolean | string | undefined): Promise<SweepState | undefined> {
  // A queued sweep (its trials ran on workers, not here) is never continued locally.
  if (typeof resume !== 'string') return (await listSweeps(runsDir())).find((s) => s.pipeline === pipeline && s.key === key && s.queue === undefined);
  const prev = await readSweep(join(runsDir(), resume));
  if (!prev) throw new PipelineError('PIPE_USAGE', `--resume ${resume}: no sweep with that id under ${runsDir()}`);
  if (prev.pipeline !== pipeline) throw new PipelineError('PIPE_USAGE', `--resume ${resume}: that sweep is of pipeline '${prev.pipeline}', not '${pipeline}'`);
  if (prev.key !== key) throw new PipelineError('PIPE_USAGE', `--resume ${resume}: that sweep ran other trials (the file, --set or --sweep changed); run without --resume to start a new sweep (finished stages are still reused from the stage cache)`);
  return prev;
}
