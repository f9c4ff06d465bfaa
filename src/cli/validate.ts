/**
 * `pipe validate` and `pipe plan`: what they print for a file that passes every check run makes
 * before any work (the file, its `--set` overrides, the compiled graph and, for a sweep, every
 * trial, through the same checkSweep as `pipe run`). Errors propagate to the caller (exit 2).
 * Neither loads TensorFlow.js nor the stage implementations, which need it: `pipe plan` reads
 * the stages' versions and cache-key parts from stages/meta.ts (test/unit/startup.test.ts;
 * bench/startup.ts measures both).
 */
import { parseOverride, type Override } from '../config/overrides.js';
import { PipelineError } from '../errors.js';
import { compilePipeline, planFile } from '../runner/compile.js';
import type { PipelineConfig } from '../config/types.js';
import type { Dag } from '../dag/compile.js';
import { formatPlan, stageLine, type PlanEntry } from '../runner/plan.js';
import type { MissingInput } from '../stage.js';
import { checkSweep, type CheckedSweep } from '../sweep/prepare.js';

/** Options shared by validate and plan. */
export interface CheckCliOpts {
  set?: string[];
  sweep?: string[];
}

/** `sweep: N trials, each valid (a, b, c, ...)`: the first names, then a count of the rest. */
function sweepLine(sweep: CheckedSweep<unknown> | undefined): string {
  if (!sweep) return '';
  const n = sweep.trials.length;
  const shown = sweep.trials.slice(0, 8).map((t) => t.name);
  const more = n > shown.length ? `, and ${n - shown.length} more` : '';
  return `sweep: ${n} trial${n === 1 ? '' : 's'}, each valid (${shown.join(', ')}${more})\n`;
}

/**
 * The file's sweep checked trial by trial, as `pipe run` does before starting one; `config` is
 * the file already loaded with the same `--set`s: without a `sweep:` block or `--sweep` there is
 * nothing to check, and the file is not read a second time.
 */
async function checkedSweep<T extends { config: PipelineConfig }>(
  file: string,
  opts: CheckCliOpts,
  config: PipelineConfig,
  check: (overrides: Override[]) => Promise<T>,
): Promise<CheckedSweep<T> | undefined> {
  if (config.sweep === undefined && !opts.sweep?.length) return undefined;
  const overrides = (opts.set ?? []).map(parseOverride);
  return checkSweep(file, { overrides, sweep: opts.sweep }, check);
}

/** An input some sweep trials would download that the base plan does not already name, and those trials. */
export interface TrialsMissingInput extends MissingInput {
  /** Trial names, in trial order. */
  trials: string[];
}

/** What the sweep's trials would download beyond what `plan` (the base plan) names, by input. */
function trialsMissing(plan: PlanEntry[], sweep: CheckedSweep<{ plan: PlanEntry[] }> | undefined): TrialsMissingInput[] {
  const seen = new Set(plan.flatMap((e) => (e.missing ?? []).map((m) => m.note)));
  const byNote = new Map<string, TrialsMissingInput>();
  for (const t of sweep?.trials ?? []) {
    for (const m of t.plan.flatMap((e) => e.missing ?? [])) {
      if (seen.has(m.note)) continue;
      const row = byNote.get(m.note) ?? { ...m, trials: [] };
      if (!row.trials.includes(t.name)) row.trials.push(t.name);
      byNote.set(m.note, row);
    }
  }
  return [...byNote.values()];
}

/**
 * For the graph forms of a sweep's plan: per stage, the inputs its trials would download beyond
 * the base plan's, one line each (`weights not cached yet for trials a, b`), as trialsMissing.
 */
function trialMarks(plan: PlanEntry[], sweep: CheckedSweep<{ plan: PlanEntry[] }> | undefined): Map<string, string[]> {
  const seen = new Set(plan.flatMap((e) => (e.missing ?? []).map((m) => m.note)));
  const byStage = new Map<string, Map<string, string[]>>();
  for (const t of sweep?.trials ?? []) {
    for (const e of t.plan) {
      for (const m of e.missing ?? []) {
        if (seen.has(m.note)) continue;
        const whats = byStage.get(e.name) ?? new Map<string, string[]>();
        const trials = whats.get(m.what) ?? [];
        if (!trials.includes(t.name)) trials.push(t.name);
        whats.set(m.what, trials);
        byStage.set(e.name, whats);
      }
    }
  }
  return new Map([...byStage].map(([stage, whats]) => [stage, [...whats].map(([what, trials]) => `${what} not cached yet for trial${trials.length === 1 ? '' : 's'} ${trials.join(', ')}`)]));
}

/**
 * What `pipe validate FILE` prints when everything passes: the stages in order, each with the
 * stages it needs (the graph's shape; `pipe plan`'s lines without the decisions, stageLine).
 * @throws ConfigError / PipelineError (exit 2) for the first check that fails.
 */
export async function validateReport(file: string, opts: CheckCliOpts): Promise<string> {
  const { config, dag } = await compilePipeline(file, (opts.set ?? []).map(parseOverride));
  const sweep = await checkedSweep(file, opts, config, (o) => compilePipeline(file, o));
  const stages = dag.order.map((name, i) => `${stageLine(dag, name, i + 1)}\n`).join('');
  return `'${file}' is valid: ${dag.order.length} stage${dag.order.length === 1 ? '' : 's'}, in order:\n${stages}${sweepLine(sweep)}`;
}

/**
 * Each sweep trial's run/skip decisions as text, trials with the same decisions and reasons
 * together: `trial(s) NAME, ...:` then their plan lines (formatPlan's, without the inputs not
 * cached yet, which the lines above name). As each trial would start now, against the stage cache.
 */
function trialPlans(sweep: CheckedSweep<{ dag: Dag; plan: PlanEntry[] }> | undefined): string {
  if (!sweep) return '';
  const groups = new Map<string, { names: string[]; text: string }>();
  for (const t of sweep.trials) {
    const text = formatPlan(t.dag, t.plan.map((e) => ({ ...e, missing: [] })), 'text');
    const g = groups.get(text) ?? { names: [], text };
    g.names.push(t.name);
    groups.set(text, g);
  }
  return [...groups.values()].map((g) => `trial${g.names.length === 1 ? '' : 's'} ${g.names.join(', ')}:\n${g.text}\n`).join('');
}

/** `pipe plan --format json`: one document, for scripts. */
export interface PlanJson {
  file: string;
  pipeline: string;
  /** In DAG order. */
  stages: Array<{ name: string; kind: string; needs: string[]; decision: 'run' | 'skip'; reason: string; key: string; reuseDir?: string; missing: MissingInput[] }>;
  /** The sweep's trial names, when the file or --sweep has one. */
  sweep?: string[];
  /** What the sweep's trials would download beyond `stages[].missing`, when the file is a sweep. */
  sweepMissing?: TrialsMissingInput[];
  /**
   * Each trial's own run/skip decisions, in trial order, when the file is a sweep: as the trial
   * would start now, against the stage cache (trials that run before it in the sweep may leave
   * more to reuse). `stages` above is the base config's (without trial values).
   */
  trials?: Array<{ name: string; sets: string[]; stages: Array<{ name: string; decision: 'run' | 'skip'; reason: string }> }>;
}

function planJson(file: string, pipeline: string, dag: Dag, plan: PlanEntry[], sweep: CheckedSweep<{ dag: Dag; plan: PlanEntry[] }> | undefined): PlanJson {
  const stages = plan.map((e) => ({
    name: e.name, kind: e.kind, needs: dag.nodes.get(e.name)!.needs, decision: e.decision, reason: e.reason, key: e.key,
    ...(e.reuseDir !== undefined ? { reuseDir: e.reuseDir } : {}), missing: e.missing ?? [],
  }));
  return {
    file, pipeline, stages,
    ...(sweep ? {
      sweep: sweep.trials.map((t) => t.name), sweepMissing: trialsMissing(plan, sweep),
      trials: sweep.trials.map((t) => ({ name: t.name, sets: t.overrides.map((o) => o.expr), stages: t.plan.map((e) => ({ name: e.name, decision: e.decision, reason: e.reason })) })),
    } : {}),
  };
}

/**
 * What `pipe plan FILE` prints: the plan of the file (with its `--set` overrides) against the
 * stage cache (with the data and weights the stages that run would download), after every sweep
 * trial has been checked (and planned: the inputs only some trials would download are named
 * with those trials, in the text and JSON forms); as text, Mermaid, Graphviz dot or one JSON
 * document (PlanJson).
 * @throws ConfigError / PipelineError (exit 2).
 */
export async function planReport(file: string, opts: CheckCliOpts & { format?: string; force?: boolean; from?: string }): Promise<string> {
  const format = opts.format ?? 'text';
  if (format !== 'text' && format !== 'mermaid' && format !== 'dot' && format !== 'json') throw new PipelineError('PIPE_USAGE', `--format ${format}: expected text, mermaid, dot or json`);
  const { stageMeta } = await import('../../stages/meta.js');
  const { config, dag, plan } = await planFile(file, { stages: stageMeta, overrides: (opts.set ?? []).map(parseOverride), force: opts.force, from: opts.from });
  // Each trial is planned too, for the data and weights it alone would download (another arch, dataset, ...).
  const sweep = await checkedSweep(file, opts, config, (o) => planFile(file, { stages: stageMeta, overrides: o, force: opts.force, from: opts.from }));
  if (format === 'json') return `${JSON.stringify(planJson(file, config.name, dag, plan, sweep))}\n`;
  if (format !== 'text') return `${formatPlan(dag, plan, format, trialMarks(plan, sweep))}\n`;
  const trials = trialsMissing(plan, sweep).map((m) => `     ${m.what} not cached yet for trial${m.trials.length === 1 ? '' : 's'} ${m.trials.join(', ')}: ${m.note}\n`);
  const base = sweep ? ' (the base config, without trial values; each trial\'s own plan follows)' : '';
  return `plan for '${file}' (${config.name}), stages in order${base}:\n${formatPlan(dag, plan, format)}\n${sweepLine(sweep)}${trials.join('')}${trialPlans(sweep)}`;
}
