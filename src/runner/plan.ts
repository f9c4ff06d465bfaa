/**
 * Decides, for each stage in DAG order, whether it runs or is reused, and says why: which
 * params, upstream stages or implementation versions changed since the last run of this
 * pipeline; and, for a stage that runs, which data or weights it would download (not cached
 * yet). Anchor: DVC `repo/reproduce.py` `plan_repro` and its "didn't change, skipping" log.
 */
import type { PipelineConfig } from '../config/types.js';
import type { StageKindName } from '../stage-kinds.js';
import { ancestors, type Dag } from '../dag/compile.js';
import { paramDiff, stageKey, type KeyParts, type Lock, type StageIndex } from './cache.js';
import { stageMetaOf, type MissingInput, type StageMetaTable } from '../stage.js';

/** One stage's decision. */
export interface PlanEntry {
  name: string;
  kind: StageKindName;
  key: string;
  parts: KeyParts;
  decision: 'run' | 'skip';
  /** Why, in a few words: "unchanged", "params changed: lr: 0.001 -> 0.002", "never run", ... */
  reason: string;
  /** For skipped stages: the folder whose outputs are reused. */
  reuseDir?: string;
  /** For stages that run: the data or weights they would download (not in the cache yet); absent when none. */
  missing?: MissingInput[];
}

/** Options of planning. */
export interface PlanOptions {
  /**
   * What planning needs of the stage kinds (stages/meta.ts, or the StageTable of stages/index.ts,
   * which carries it), handed down by the CLI.
   */
  stages: StageMetaTable;
  /** Run every stage. */
  force?: boolean;
  /** Run this stage and everything downstream of it, reuse the rest where cached. */
  from?: string;
  index: StageIndex;
  /** The newest earlier run of the same pipeline, to explain what changed. */
  previous?: Lock;
}

/** The plan for every stage, in DAG order. */
export async function planPipeline(config: PipelineConfig, dag: Dag, opts: PlanOptions): Promise<PlanEntry[]> {
  const keys = new Map<string, string>();
  const entries: PlanEntry[] = [];
  const forced = new Set<string>();
  if (opts.from !== undefined) for (const n of dag.order) if (n === opts.from || ancestors(dag, n).includes(opts.from)) forced.add(n);
  for (const name of dag.order) {
    const node = dag.nodes.get(name)!;
    const def = stageMetaOf(opts.stages, node.config.kind);
    const parts: KeyParts = {
      kind: node.config.kind,
      version: def.version,
      params: node.config.with,
      seed: config.seed,
      upstream: Object.fromEntries(node.needs.map((d) => [d, keys.get(d)!])),
      ...(def.cacheKey ? { extra: await def.cacheKey(node.config.with) } : {}),
    };
    const key = stageKey(parts);
    keys.set(name, key);
    const cached = def.cacheable ? await opts.index.lookup(key) : undefined;
    const base = { name, kind: node.config.kind, key, parts };
    if (opts.force) entries.push({ ...base, decision: 'run', reason: 'forced (--force)' });
    else if (forced.has(name)) entries.push({ ...base, decision: 'run', reason: `forced (--from ${opts.from})` });
    else if (cached) entries.push({ ...base, decision: 'skip', reason: 'unchanged', reuseDir: cached });
    else entries.push({ ...base, decision: 'run', reason: def.cacheable ? whyChanged(name, parts, opts.previous, entries) : 'always runs (not cacheable)' });
    const last = entries.at(-1)!;
    const missing = last.decision === 'run' && def.missingInputs ? await def.missingInputs(node.config.with) : [];
    if (missing.length) last.missing = missing;
  }
  return entries;
}

function whyChanged(name: string, parts: KeyParts, previous: Lock | undefined, earlier: PlanEntry[]): string {
  const prev = previous?.stages[name];
  if (!prev) return 'never run';
  if (prev.kind !== parts.kind) return `kind changed: ${prev.kind} -> ${parts.kind}`;
  if (prev.parts.version !== parts.version) return `implementation version ${prev.parts.version} -> ${parts.version}`;
  if (prev.parts.seed !== parts.seed) return `seed changed: ${prev.parts.seed} -> ${parts.seed}`;
  const diff = paramDiff(prev.parts.params, parts.params);
  if (diff.length) return `params changed: ${diff.join('; ')}`;
  const ups = Object.keys(parts.upstream).filter((u) => prev.parts.upstream[u] !== parts.upstream[u]);
  if (ups.length) {
    const rerun = ups.filter((u) => earlier.find((e) => e.name === u)?.decision === 'run');
    return `upstream changed: ${(rerun.length ? rerun : ups).join(', ')}`;
  }
  if (JSON.stringify(prev.parts.extra) !== JSON.stringify(parts.extra)) {
    const src = (parts.params as { source?: unknown } | undefined)?.source;
    return typeof src === 'string' ? `input files changed (stages.${name}.with.source: ${src})` : 'input files changed';
  }
  return prev.status === 'done' ? 'outputs missing' : `did not finish last time (${prev.status})`;
}

/**
 * One stage as `pipe plan` and `pipe validate` list it: `  <position>. <name> [<kind>] <- <needs>`
 * (the stages it needs, in its `needs` order, when it has any), so the graph's shape shows.
 */
export function stageLine(dag: Dag, name: string, position: number): string {
  const node = dag.nodes.get(name)!;
  return `  ${position}. ${name} [${node.config.kind}]${node.needs.length ? ` <- ${node.needs.join(', ')}` : ''}`;
}

/**
 * The plan as text (a line per stage, then a line per input it would download), Mermaid or
 * Graphviz dot (a node per stage: name, kind, decision, and which inputs are not cached yet).
 * `marks`: more lines per stage name for the graph formats (a sweep's trials' inputs not cached
 * yet; the text form has its own lines for them).
 * Node IDs: DOT's are the stage names, double-quoted (so `d-a`, `d_a`, `graph` and `subgraph`
 * are all valid and distinct); Mermaid's are `s<position>` (unique, and never a keyword such
 * as `end`), the stage name being in the label.
 */
export function formatPlan(dag: Dag, plan: PlanEntry[], format: 'text' | 'mermaid' | 'dot', marks: ReadonlyMap<string, readonly string[]> = new Map()): string {
  const edges = plan.flatMap((e) => dag.nodes.get(e.name)!.needs.map((d) => [d, e.name] as const));
  // In the graph formats, the inputs not cached yet as one short line (the text form has the details).
  const missing = (e: PlanEntry): string | undefined => (e.missing?.length ? `${e.missing.map((m) => m.what).join(', ')} not cached yet` : undefined);
  const lines = (e: PlanEntry, first: string[]): string[] => [...first, e.decision, missing(e), ...(marks.get(e.name) ?? [])].filter((l): l is string => Boolean(l));
  if (format === 'mermaid') {
    const ids = new Map(plan.map((e, i) => [e.name, `s${i + 1}`]));
    const mid = (n: string): string => ids.get(n) ?? `s_${n.replace(/[^A-Za-z0-9_]/g, '_')}`;
    // Mermaid labels: `"` is written #quot; (its entity codes), < and > as #lt; #gt;.
    const text = (l: string): string => l.replace(/"/g, '#quot;').replace(/</g, '#lt;').replace(/>/g, '#gt;');
    return ['flowchart LR', ...plan.map((e) => `  ${mid(e.name)}["${lines(e, [`${e.name} (${e.kind})`]).map(text).join('<br/>')}"]`), ...edges.map(([a, b]) => `  ${mid(a)} --> ${mid(b)}`)].join('\n');
  }
  if (format === 'dot') {
    // DOT double-quoted strings: \ and " escaped (the Graphviz language reference, "ID").
    const q = (v: string): string => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
    const label = (e: PlanEntry): string => `"${lines(e, [e.name, e.kind]).map((l) => l.replace(/\\/g, '\\\\').replace(/"/g, '\\"')).join('\\n')}"`;
    return ['digraph pipeline {', '  rankdir=LR;', ...plan.map((e) => `  ${q(e.name)} [label=${label(e)}${e.decision === 'skip' ? ', style=dashed' : ''}];`), ...edges.map(([a, b]) => `  ${q(a)} -> ${q(b)};`), '}'].join('\n');
  }
  return plan.map((e, i) => [
    `${stageLine(dag, e.name, i + 1)}: ${e.decision} (${e.reason})`,
    ...(e.missing ?? []).map((m) => `     ${m.what} not cached yet: ${m.note}`),
  ].join('\n')).join('\n');
}
