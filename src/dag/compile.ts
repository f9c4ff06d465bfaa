/**
 * Compiles the stages of a pipeline into a DAG and orders it.
 *
 *   data ──> aug ──┐
 *     └───> model ─┴─> head ──> finetune ──> eval ──> plots
 *
 * Edges come from each stage's `needs`. Checks the schema cannot express: a `needs` naming no
 * stage, and cycles (every stage of the cycle is listed, `a -> b -> a`).
 * Anchors: DVC `repo/graph.py` `build_graph` / `check_acyclic`, `plan_repro` (post-order walk).
 */
import { ConfigError, issueAt, type ConfigIssue } from '../config/load.js';
import type { SourceFile } from '../config/source.js';
import { didYouMean } from '../config/suggest.js';
import type { PipelineConfig, StageConfig } from '../config/types.js';
import { semanticIssues } from './checks.js';

/** A stage in the compiled graph. */
export interface DagNode {
  name: string;
  config: StageConfig;
  /** Direct upstream stage names, in `needs` order. */
  needs: string[];
}

/** The compiled pipeline graph; `order` is a topological order (upstream first, ties by file order). */
export interface Dag {
  nodes: Map<string, DagNode>;
  order: string[];
}

/**
 * Builds the DAG.
 * @throws ConfigError PIPE_UNKNOWN_NEEDS (with line/column of the bad reference) or PIPE_CYCLE.
 */
export function compileDag(config: PipelineConfig, source?: SourceFile): Dag {
  const names = Object.keys(config.stages);
  const nodes = new Map<string, DagNode>();
  const unknown: ConfigIssue[] = [];
  for (const name of names) {
    const stage = config.stages[name]!;
    stage.needs.forEach((dep, i) => {
      if (!(dep in config.stages)) {
        const hint = didYouMean(dep, names) || ` Stages: ${names.join(', ')}.`;
        unknown.push(issueAt(source, ['stages', name, 'needs', i], `stage '${name}' needs '${dep}', which is not a stage of this pipeline.${hint}`));
      }
    });
    nodes.set(name, { name, config: stage, needs: [...stage.needs] });
  }
  if (unknown.length) throw new ConfigError(source ?? { path: config.name }, unknown, 'PIPE_UNKNOWN_NEEDS');
  const cycle = findCycle(names, (n) => nodes.get(n)!.needs);
  if (cycle) {
    // cycle = [a, b, ..., a] in data-flow order: a needs the stage just before its last occurrence.
    const first = cycle[0]!;
    const path = ['stages', first, 'needs', nodes.get(first)!.needs.indexOf(cycle.at(-2)!)];
    const message = cycle.length === 2
      ? `stage '${first}' needs itself; remove '${first}' from its needs`
      : `cycle between stages: ${cycle.join(' -> ')} (each stage needs the one before it); remove one of these needs`;
    throw new ConfigError(source ?? { path: config.name }, [issueAt(source, path, message)], 'PIPE_CYCLE');
  }
  const dag: Dag = { nodes, order: topoOrder(names, (n) => nodes.get(n)!.needs) };
  const issues = semanticIssues(config, (n) => ancestors(dag, n), source);
  if (issues.length) throw new ConfigError(source ?? { path: config.name }, issues);
  return dag;
}

/** A cycle as a closed path [a, b, ..., a], or undefined. Generic over the node type. */
export function findCycle<T>(nodes: readonly T[], deps: (n: T) => readonly T[]): T[] | undefined {
  const state = new Map<T, 1 | 2>(); // 1 on the stack, 2 done
  const stack: T[] = [];
  const visit = (n: T): T[] | undefined => {
    state.set(n, 1);
    stack.push(n);
    for (const d of deps(n)) {
      if (state.get(d) === 1) return [...stack.slice(stack.indexOf(d)), d];
      if (!state.has(d)) {
        const c = visit(d);
        if (c) return c;
      }
    }
    stack.pop();
    state.set(n, 2);
    return undefined;
  };
  for (const n of nodes) {
    if (!state.has(n)) {
      const c = visit(n);
      if (c) return c.reverse(); // deps point upstream; report in data-flow direction
    }
  }
  return undefined;
}

/** Post-order walk: every node after all of its deps; ties keep the input order. Acyclic input. */
export function topoOrder<T>(nodes: readonly T[], deps: (n: T) => readonly T[]): T[] {
  const done = new Set<T>();
  const out: T[] = [];
  const visit = (n: T): void => {
    if (done.has(n)) return;
    done.add(n);
    for (const d of deps(n)) visit(d);
    out.push(n);
  };
  nodes.forEach(visit);
  return out;
}

/** Every transitive upstream stage of `name`, nearest first (breadth-first). */
export function ancestors(dag: Dag, name: string): string[] {
  const out: string[] = [];
  const queue = [...dag.nodes.get(name)!.needs];
  while (queue.length) {
    const n = queue.shift()!;
    if (out.includes(n)) continue;
    out.push(n);
    queue.push(...dag.nodes.get(n)!.needs);
  }
  return out;
}
