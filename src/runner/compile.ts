/**
 * Loading, checking and planning a pipeline file: everything `pipe validate` and `pipe plan` do,
 * and `pipe run` does before any work. Kept apart from run.ts so that those commands load
 * neither TensorFlow.js nor the tracking stack (model facts come from src/models/catalog.ts,
 * stage facts from stages/meta.ts).
 */
import type { Override } from '../config/overrides.js';
import type { PipelineConfig } from '../config/types.js';
import { loadPipeline } from '../config/load.js';
import { compileDag, type Dag } from '../dag/compile.js';
import { PipelineError } from '../errors.js';
import { runsDir } from '../paths.js';
import type { StageMetaTable } from '../stage.js';
import { previousLocks, StageIndex } from './cache.js';
import { planPipeline, type PlanEntry } from './plan.js';

/** Loads, validates and compiles a pipeline file (with overrides). */
export async function compilePipeline(file: string, overrides: Override[] = []): Promise<{ config: PipelineConfig; dag: Dag }> {
  const { config, source } = await loadPipeline(file, overrides);
  return { config, dag: compileDag(config, source) };
}

/** Plans a pipeline against the stage cache under runs/ (used by `pipe plan` and `pipe run`). */
export async function planFile(file: string, opts: { stages: StageMetaTable; overrides?: Override[]; force?: boolean; from?: string }): Promise<{ config: PipelineConfig; dag: Dag; plan: PlanEntry[] }> {
  const { config, dag } = await compilePipeline(file, opts.overrides);
  if (opts.from !== undefined && !dag.nodes.has(opts.from)) throw new PipelineError('PIPE_USAGE', `--from ${opts.from}: no such stage; stages: ${dag.order.join(', ')}`);
  const previous = (await previousLocks(runsDir(), config.name))[0];
  const plan = await planPipeline(config, dag, { stages: opts.stages, force: opts.force, from: opts.from, index: new StageIndex(runsDir()), previous });
  return { config, dag, plan };
}
