/**
 * Command-line overrides, Hydra style: `--set stages.finetune.with.epochs=3`. The value is
 * parsed as a YAML 1.2 scalar or flow collection (`3` is a number, `"3"` a string, `[1, 2]` a
 * list, `yes` stays a string), applied before validation, and re-validated with the rest; an
 * error on an overridden value points at the override, not at the file.
 *
 * Overrides are plain data: a path segment or a value key named `__proto__`, `constructor` or
 * `prototype` is refused (those name JavaScript's object machinery, never a config key), and
 * applying an override defines own properties only, so no override can reach a prototype.
 */
import { parse } from 'yaml';
import { PipelineError } from '../errors.js';

/** One parsed `--set` expression. */
export interface Override {
  /** As typed, for messages. */
  expr: string;
  path: string[];
  value: unknown;
}

/** Keys that name JavaScript's object machinery: refused in config paths and override values. */
export const RESERVED_KEYS: readonly string[] = ['__proto__', 'constructor', 'prototype'];

/** The first reserved segment of `path`, if any. */
export function reservedSegment(path: readonly string[]): string | undefined {
  return path.find((s) => RESERVED_KEYS.includes(s));
}

/** The first reserved key anywhere inside `value` (mappings and lists, own keys), if any. */
export function reservedKeyIn(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  for (const k of Object.keys(value)) {
    if (RESERVED_KEYS.includes(k)) return k;
    const inner = reservedKeyIn((value as Record<string, unknown>)[k]);
    if (inner !== undefined) return inner;
  }
  return undefined;
}

/** The first non-finite number (Infinity, -Infinity, NaN) anywhere inside `value`, if any. */
export function nonFiniteIn(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : value;
  if (typeof value !== 'object' || value === null) return undefined;
  for (const v of Object.values(value)) {
    const inner = nonFiniteIn(v);
    if (inner !== undefined) return inner;
  }
  return undefined;
}

/** The message for a reserved key `key` in what `where` names (`--set a.b=1`, `sweep.a.b`). */
export function reservedMessage(where: string, key: string): string {
  return `${where}: '${key}' cannot be a config key (${RESERVED_KEYS.join(', ')} name JavaScript's object machinery, not config)`;
}

/**
 * Parses `a.b.c=value`.
 * @throws PipelineError PIPE_USAGE (exit 2) for a missing `=`, an empty path segment, a
 *   reserved key (`__proto__`, `constructor`, `prototype`) in the path or the value, or a value
 *   that is not valid YAML.
 */
export function parseOverride(expr: string): Override {
  const eq = expr.indexOf('=');
  const key = eq < 0 ? '' : expr.slice(0, eq).trim();
  if (eq < 0 || key === '' || key.split('.').some((s) => s === '')) {
    throw new PipelineError('PIPE_USAGE', `--set ${expr}: expected <dotted.path>=<value>, e.g. --set stages.finetune.with.epochs=3`);
  }
  let value: unknown;
  try {
    value = parse(expr.slice(eq + 1), { version: '1.2' });
  } catch (e) {
    throw new PipelineError('PIPE_USAGE', `--set ${expr}: the value is not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  const path = key.split('.');
  const reserved = reservedSegment(path) ?? reservedKeyIn(value);
  if (reserved !== undefined) throw new PipelineError('PIPE_USAGE', reservedMessage(`--set ${expr}`, reserved));
  const bad = nonFiniteIn(value);
  if (bad !== undefined) throw new PipelineError('PIPE_USAGE', `--set ${expr}: ${Number.isNaN(bad) ? 'NaN' : String(bad)} is not allowed; give a finite number`);
  return { expr, path, value: value === undefined ? null : value };
}

/** Sets own property `key` of `node` (never a prototype's setter, whatever the key). */
function define(node: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(node, key, { value, writable: true, enumerable: true, configurable: true });
}

/**
 * Applies overrides to the parsed document (plain data), creating missing mappings on the way;
 * reads and writes own properties only.
 * @throws PipelineError PIPE_USAGE when the path runs through a value that is not a mapping, or
 *   holds a reserved key (overrides made in code, e.g. a sweep's, do not pass parseOverride).
 */
export function applyOverrides(data: Record<string, unknown>, overrides: readonly Override[]): void {
  for (const o of overrides) {
    const reserved = reservedSegment(o.path) ?? reservedKeyIn(o.value);
    if (reserved !== undefined) throw new PipelineError('PIPE_USAGE', reservedMessage(`--set ${o.expr}`, reserved));
    let node: Record<string, unknown> = data;
    o.path.slice(0, -1).forEach((seg, i) => {
      const next = Object.hasOwn(node, seg) ? node[seg] : undefined;
      if (next === undefined || next === null) define(node, seg, {});
      else if (typeof next !== 'object' || Array.isArray(next)) {
        const what = Array.isArray(next) ? 'a list' : `the value ${JSON.stringify(next)}`;
        throw new PipelineError('PIPE_USAGE', `--set ${o.expr}: cannot set '${o.path[i + 1]}' inside '${o.path.slice(0, i + 1).join('.')}', which is ${what}, not a mapping`);
      }
      node = node[seg] as Record<string, unknown>;
    });
    define(node, o.path.at(-1)!, o.value);
  }
}

/** The override that set `path` or one of its parents, if any (the last one wins). */
export function overrideFor(path: readonly (string | number)[], overrides: readonly Override[]): Override | undefined {
  const p = path.map(String);
  return [...overrides].reverse().find((o) => o.path.length <= p.length && o.path.every((s, i) => s === p[i]));
}

/** The override whose path runs through `path` (it created that mapping), if any. */
export function createdBy(path: readonly (string | number)[], overrides: readonly Override[]): Override | undefined {
  const p = path.map(String);
  return [...overrides].reverse().find((o) => o.path.length > p.length && p.every((s, i) => s === o.path[i]));
}
