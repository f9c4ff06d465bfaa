/**
 * Sweep spec -> trials. Grid mode takes every combination in row-major order (the first param
 * varies slowest, like Python's `itertools.product` and scikit-learn's `ParameterGrid`); random
 * mode draws `trials` distinct combinations with a seeded generator, i.e. sampling without
 * replacement from the grid, as scikit-learn's `ParameterSampler` does when every parameter is
 * a list. Trials are named by what differs between them: `arch=resnet50,lr=1e-4`.
 */
import { parse, stringify } from 'yaml';
import type { Override } from '../config/overrides.js';
import { PipelineError } from '../errors.js';
import { Rng } from '../rng.js';
import { canonicalJson } from '../runner/cache.js';
import type { SweepSpec } from './spec.js';

/** One assignment of a trial. */
export interface Assignment {
  /** Dotted config path. */
  path: string;
  value: unknown;
}

/** One combination to run. */
export interface Trial {
  /** 1-based position in the sweep. */
  index: number;
  /** From the values that differ between trials, e.g. `arch=resnet50,lr=1e-4`; `trial-<index>` when nothing differs. */
  name: string;
  assignments: Assignment[];
  /** The assignments as `--set` overrides (expr `path=value`, re-parsable by parseOverride). */
  overrides: Override[];
}

/** Most trials a sweep may expand to (a guard against typos such as a 10^6-cell grid). */
export const MAX_TRIALS = 10_000;

/**
 * `value` as the right-hand side of a `--set` expression that parses back (YAML 1.2) to an
 * equal value: plain YAML flow style where that round-trips on one line, JSON otherwise.
 */
export function yamlValue(value: unknown): string {
  const text = stringify(value, { version: '1.2', lineWidth: 0, collectionStyle: 'flow' }).trimEnd();
  const same = (() => {
    try {
      return !text.includes('\n') && canonicalJson(parse(text, { version: '1.2' }) ?? null) === canonicalJson(value);
    } catch {
      return false;
    }
  })();
  return same ? text : JSON.stringify(value);
}

/**
 * Short text of a value for trial names: numbers in the shorter of decimal and exponent form
 * (`0.0001` -> `1e-4`, `0.001` -> `1e-3`, `100` -> `100`), strings as they are, the rest as
 * YAML flow (`{from: layer3}`).
 */
export function formatValue(value: unknown): string {
  if (typeof value === 'number') {
    const plain = String(value);
    const exp = value.toExponential().replace('e+', 'e');
    return exp.length < plain.length ? exp : plain;
  }
  if (typeof value === 'string') return /^[^,={}[\]\s"']+$/.test(value) ? value : JSON.stringify(value);
  return yamlValue(value);
}

/**
 * Labels for dotted paths: the shortest suffix of each path (ignoring the `stages` prefix and
 * `with` segments) that no other path in the list ends with: `lr`, or `head.optimizer.lr` and
 * `finetune.optimizer.lr` when both are swept.
 */
export function pathLabels(paths: readonly string[]): string[] {
  const segs = paths.map((p) => p.split('.').filter((s, i) => s !== 'with' && !(i === 0 && s === 'stages')));
  return segs.map((s, i) => {
    for (let n = 1; n <= s.length; n++) {
      const label = s.slice(-n).join('.');
      if (segs.every((o, j) => j === i || o.slice(-n).join('.') !== label)) return label;
    }
    return paths[i]!;
  });
}

/** Row-major combination `k` of lists of these sizes (first list slowest). */
function decode(k: number, sizes: readonly number[]): number[] {
  const idx = new Array<number>(sizes.length);
  for (let i = sizes.length - 1; i >= 0; i--) {
    idx[i] = k % sizes[i]!;
    k = Math.floor(k / sizes[i]!);
  }
  return idx;
}

/**
 * `n` distinct integers from [0, total), in draw order: a partial Fisher-Yates shuffle over a
 * sparse map (Knuth, TAOCP vol. 2, Algorithm P), O(n) time and memory whatever `total` is.
 */
export function sampleWithoutReplacement(total: number, n: number, rng: Rng): number[] {
  const swapped = new Map<number, number>();
  const out: number[] = [];
  for (let i = 0; i < Math.min(n, total); i++) {
    const j = i + rng.int(total - i);
    const vj = swapped.get(j) ?? j;
    swapped.set(j, swapped.get(i) ?? i);
    out.push(vj);
  }
  return out;
}

/**
 * The trials of a sweep, numbered from 1.
 * @throws PipelineError PIPE_USAGE when the grid has more than MAX_TRIALS combinations (grid
 *   mode) or random mode lacks `trials`.
 */
export function expandSweep(spec: SweepSpec): Trial[] {
  const sizes = spec.params.map((p) => p.values.length);
  const total = sizes.reduce((a, b) => a * b, 1);
  let combos: number[];
  if (spec.mode === 'random') {
    if (spec.trials === undefined) throw new PipelineError('PIPE_USAGE', 'sweep: random mode needs `trials: <count>`');
    combos = sampleWithoutReplacement(total, Math.min(spec.trials, MAX_TRIALS), new Rng(spec.seed));
  } else {
    if (total > MAX_TRIALS) throw new PipelineError('PIPE_USAGE', `sweep: the grid has ${total} combinations (${sizes.join(' x ')}); at most ${MAX_TRIALS}: use mode: random with trials: N`);
    combos = Array.from({ length: total }, (_, k) => k);
  }
  const picks = combos.map((k) => decode(k, sizes));
  const differs = spec.params.map((p, i) => new Set(picks.map((c) => canonicalJson(p.values[c[i]!]))).size > 1);
  const labels = pathLabels(spec.params.filter((_, i) => differs[i]).map((p) => p.path));
  const trials = picks.map((c, t): Trial => {
    const assignments = spec.params.map((p, i) => ({ path: p.path, value: p.values[c[i]!] }));
    const named = assignments.filter((_, i) => differs[i]);
    const name = named.length ? named.map((a, i) => `${labels[i]}=${formatValue(a.value)}`).join(',') : `trial-${t + 1}`;
    return {
      index: t + 1,
      name,
      assignments,
      overrides: assignments.map((a) => ({ expr: `${a.path}=${yamlValue(a.value)}`, path: a.path.split('.'), value: a.value })),
    };
  });
  // Values that differ but print alike (1 and "1") would give equal names: number them.
  const seen = new Map<string, number>();
  for (const t of trials) seen.set(t.name, (seen.get(t.name) ?? 0) + 1);
  for (const t of trials) if (seen.get(t.name)! > 1) t.name = `${t.name}#${t.index}`;
  return trials;
}
