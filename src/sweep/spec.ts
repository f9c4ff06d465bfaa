/**
 * What a sweep varies: the pipeline file's `sweep:` block and the `--sweep path=a,b` options,
 * merged into one SweepSpec. Values are YAML 1.2 scalars or flow collections, like `--set`
 * (`1e-4` is a number, `"1e-4"` a string, `[1, 2]` a list, `{from: layer3}` a mapping).
 * Anchors: Hydra multirun (`key=a,b` on the command line: the comma-separated sweep syntax),
 * W&B / Optuna `method: grid | random`.
 */
import { parse } from 'yaml';
import { ConfigError } from '../config/load.js';
import { nonFiniteIn, reservedKeyIn, reservedMessage, reservedSegment } from '../config/overrides.js';
import { dotted, positionOf, type SourceFile } from '../config/source.js';
import type { PipelineConfig } from '../config/types.js';
import { PipelineError } from '../errors.js';

/** One swept config path and its candidate values. */
export interface SweepParam {
  /** Dotted config path, e.g. `stages.model.with.arch`. */
  path: string;
  /** Candidate values, in the order given (at least one). */
  values: unknown[];
  /** Where it was declared: the file's `sweep:` block or a `--sweep` option. */
  source: 'file' | 'cli';
}

/** A whole sweep: how trials are drawn and what varies. */
export interface SweepSpec {
  /** `grid`: every combination; `random`: `trials` distinct combinations drawn with `seed`. */
  mode: 'grid' | 'random';
  /** Combinations to draw in random mode. */
  trials?: number;
  /** Seed of the random draw. @defaultValue 0 */
  seed: number;
  /** Swept paths, in declaration order (the first varies slowest in grid order). */
  params: SweepParam[];
}

/** Top-level keys a sweep may not vary: they identify the pipeline, its runs and the sweep. */
const FORBIDDEN = ['name', 'experiment', 'sweep'];

function checkPath(path: string, where: string): void {
  const segs = path.split('.');
  if (path === '' || segs.some((s) => s.trim() === '')) throw new PipelineError('PIPE_USAGE', `${where}: '${path}' is not a dotted config path (e.g. stages.model.with.arch)`);
  const reserved = reservedSegment(segs);
  if (reserved !== undefined) throw new PipelineError('PIPE_USAGE', reservedMessage(where, reserved));
  if (FORBIDDEN.includes(segs[0]!)) {
    throw new PipelineError('PIPE_USAGE', `${where}: '${path}' cannot be swept: ${FORBIDDEN.join(', ')} identify the pipeline and its runs; sweep a stage's params instead (stages.<stage>.with.<param>)`);
  }
}

/**
 * The spec of a validated `sweep:` block (grid form or long form), or undefined when absent.
 * @throws PipelineError PIPE_USAGE for a path that may not be swept (name, experiment, sweep,
 *   or one with a reserved key); a ConfigError naming the line when `source` is given.
 */
export function sweepFromConfig(config: Pick<PipelineConfig, 'sweep'>, source?: SourceFile): SweepSpec | undefined {
  const block = config.sweep;
  if (block === undefined) return undefined;
  const long = 'mode' in block && typeof block.mode === 'string';
  const b = block as { mode?: 'grid' | 'random'; trials?: number; seed?: number; params?: Record<string, unknown[]> };
  const table = long ? (b.params ?? {}) : (block as Record<string, unknown[]>);
  const params = Object.entries(table).map(([path, values]) => {
    const at = long ? ['sweep', 'params', path] : ['sweep', path];
    try {
      checkPath(path, at.join('.'));
    } catch (e) {
      if (!source || !(e instanceof PipelineError)) throw e;
      throw new ConfigError(source, [{ pos: positionOf(source, at, true), path: dotted(at), message: e.message.slice(at.join('.').length + 2) }]);
    }
    return { path, values: [...values], source: 'file' as const };
  });
  return long ? { mode: b.mode ?? 'grid', trials: b.trials, seed: b.seed ?? 0, params } : { mode: 'grid', seed: 0, params };
}

/** Splits at commas outside quotes, brackets and braces (`"a,b",[1,2],x` -> 3 parts). */
export function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quote: string | undefined;
  let cur = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === '\\' && quote === '"' && i + 1 < text.length) cur += c + text[++i]!;
      else {
        if (c === quote) quote = undefined;
        cur += c;
      }
      continue;
    }
    if (c === '"' || c === "'") quote = c;
    else if (c === '[' || c === '{') depth++;
    else if (c === ']' || c === '}') depth--;
    if (c === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += c;
  }
  parts.push(cur);
  return parts;
}

/**
 * Parses one `--sweep` option, `a.b.c=v1,v2,...` (Hydra's comma syntax). Each value is a YAML
 * 1.2 scalar or flow collection; commas inside quotes, `[...]` and `{...}` do not split.
 * @throws PipelineError PIPE_USAGE for a missing `=`, an empty value, invalid YAML or a path
 *   that may not be swept.
 */
export function parseSweepArg(expr: string): SweepParam {
  const eq = expr.indexOf('=');
  const path = eq < 0 ? '' : expr.slice(0, eq).trim();
  if (eq < 0 || path === '') throw new PipelineError('PIPE_USAGE', `--sweep ${expr}: expected <dotted.path>=<value>,<value>..., e.g. --sweep stages.model.with.arch=resnet18,resnet50`);
  checkPath(path, `--sweep ${expr}`);
  const values = splitTopLevel(expr.slice(eq + 1)).map((raw) => {
    if (raw.trim() === '') throw new PipelineError('PIPE_USAGE', `--sweep ${expr}: empty value (two commas in a row, or a trailing comma?)`);
    try {
      const v: unknown = parse(raw, { version: '1.2' });
      return v === undefined ? null : v;
    } catch (e) {
      throw new PipelineError('PIPE_USAGE', `--sweep ${expr}: '${raw}' is not valid YAML: ${(e as Error).message.split('\n')[0]}`);
    }
  });
  const reserved = reservedKeyIn(values);
  if (reserved !== undefined) throw new PipelineError('PIPE_USAGE', reservedMessage(`--sweep ${expr}`, reserved));
  const bad = nonFiniteIn(values);
  if (bad !== undefined) throw new PipelineError('PIPE_USAGE', `--sweep ${expr}: ${Number.isNaN(bad) ? 'NaN' : String(bad)} is not allowed; give finite numbers`);
  return { path, values, source: 'cli' };
}

/**
 * The file's spec with the `--sweep` params applied: a `--sweep` path already in the file
 * replaces its values there (keeping its position), new ones are appended. Undefined when
 * neither declares anything (not a sweep).
 * @throws PipelineError PIPE_USAGE (exit 2) when one path is given to `--sweep` twice.
 */
export function mergeSweep(file: SweepSpec | undefined, cli: readonly SweepParam[]): SweepSpec | undefined {
  if (!file && cli.length === 0) return undefined;
  const twice = cli.find((p, i) => cli.findIndex((q) => q.path === p.path) !== i);
  if (twice) throw new PipelineError('PIPE_USAGE', `--sweep ${twice.path} is given twice; list all its values in one --sweep (${twice.path}=a,b,c)`);
  const spec: SweepSpec = file ? { ...file, params: [...file.params] } : { mode: 'grid', seed: 0, params: [] };
  for (const p of cli) {
    const i = spec.params.findIndex((q) => q.path === p.path);
    if (i >= 0) spec.params[i] = p;
    else spec.params.push(p);
  }
  return spec;
}
