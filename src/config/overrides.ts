/**
 * Command-line overrides, Hydra style: `--set stages.finetune.with.epochs=3`. The value is
 * parsed as a YAML 1.2 scalar or flow collection (`3` is a number, `"3"` a string, `[1, 2]` a
 * list, `yes` stays a string), applied before validation, and re-validated with the rest; an
 * error on an overridden value points at the override, not at the file.
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

/**
 * Parses `a.b.c=value`.
 * @throws PipelineError PIPE_USAGE (exit 2) for a missing `=`, an empty path segment or a value
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
  return { expr, path: key.split('.'), value: value === undefined ? null : value };
}

/**
 * Applies overrides to the parsed document (plain data), creating missing mappings on the way.
 * @throws PipelineError PIPE_USAGE when the path runs through a value that is not a mapping.
 */
export function applyOverrides(data: Record<string, unknown>, overrides: readonly Override[]): void {
  for (const o of overrides) {
    let node: Record<string, unknown> = data;
    o.path.slice(0, -1).forEach((seg, i) => {
      const next = node[seg];
      if (next === undefined || next === null) node[seg] = {};
      else if (typeof next !== 'object' || Array.isArray(next)) {
        const what = Array.isArray(next) ? 'a list' : `the value ${JSON.stringify(next)}`;
        throw new PipelineError('PIPE_USAGE', `--set ${o.expr}: cannot set '${o.path[i + 1]}' inside '${o.path.slice(0, i + 1).join('.')}', which is ${what}, not a mapping`);
      }
      node = node[seg] as Record<string, unknown>;
    });
    node[o.path.at(-1)!] = o.value;
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
