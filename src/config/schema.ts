/**
 * The pipeline file's JSON Schema validator (schemas/pipeline.schema.json and the stage schemas
 * of schemas/stages/: ajv, draft-07, allErrors, no type coercion, defaults filled in, verbose
 * errors), and its errors as config paths with messages that say what was expected and what was
 * found. The validator is ajv's standalone code, generated ahead of time by
 * scripts/gen-validator.mjs (which holds the options) into src/config/generated/, so no schema
 * is compiled at start-up.
 */
import type { ErrorObject, ValidateFunction } from 'ajv';
import { validate } from './generated/validate-pipeline.js';
import { didYouMean } from './suggest.js';

/**
 * The pipeline validator: fills defaults into the data it checks (ajv `useDefaults`) and, when
 * it returns false, leaves every error on its `errors`.
 */
export function pipelineValidator(): ValidateFunction {
  return validate as ValidateFunction;
}

/** One schema error, located by config path. */
export interface SchemaIssue {
  /** Path of the offending value (or of the object missing a key). */
  path: (string | number)[];
  /** Point at the key rather than the value (unknown keys). */
  atKey: boolean;
  message: string;
}

function describe(value: unknown): string {
  if (value === null) return 'null (an empty value)';
  if (Array.isArray(value)) return `a list of ${value.length} item${value.length === 1 ? '' : 's'}`;
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `string ${JSON.stringify(value)}`;
  return `${typeof value} ${String(value)}`;
}

/** JSON Schema type names as a YAML user knows them. */
const TYPE_NAMES: Record<string, string> = { object: 'a mapping', array: 'a list' };

/** Plain-words forms of the `pattern`s in schemas/ (the regex otherwise). */
const PATTERNS: Record<string, string> = {
  '^[A-Za-z][A-Za-z0-9_-]*$': 'a letter, then letters, digits, _ or -',
  '^[A-Za-z0-9][A-Za-z0-9._-]*$': 'a letter or digit, then letters, digits, ., _ or -',
  '^[^.]+(\\.[^.]+)*$': 'a dotted config path with no empty part, e.g. stages.model.with.arch',
};

function yamlHint(value: unknown, expected: string, schema: Schema = {}): string {
  if (typeof value !== 'string') return '';
  if (expected === 'boolean' && /^(yes|no|on|off|y|n)$/i.test(value)) return ` (YAML 1.2 reads '${value}' as a string: use true/false)`;
  if ((expected === 'number' || expected === 'integer') && value.trim() !== '' && !Number.isNaN(Number(value))) return ' (quoted numbers are strings: remove the quotes)';
  const min = Number(schema['minItems'] ?? 0);
  if (expected === 'array') return min > 1 ? ` (a list is written [${value}, ...], with at least ${min} items)` : ` (a list of one is written [${value}])`;
  return '';
}

type Schema = Record<string, unknown>;

const typeOf = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v === 'number' ? (Number.isInteger(v) ? 'integer' : 'number') : typeof v);

function bounds(s: Schema): string {
  const lo = s['minimum'] ?? s['exclusiveMinimum'];
  const hi = s['maximum'] ?? s['exclusiveMaximum'];
  if (lo !== undefined && hi !== undefined) return ` from ${String(lo)} to ${String(hi)}`;
  if (lo !== undefined) return ` ${s['minimum'] !== undefined ? '>=' : '>'} ${String(lo)}`;
  return hi !== undefined ? ` ${s['maximum'] !== undefined ? '<=' : '<'} ${String(hi)}` : '';
}

/** One allowed form of a oneOf, in words: `'all'`, `an integer >= 1`, `a list of 2 integers >= 1`, `a mapping with key 'from'`. */
function describeForm(s: Schema, plural = false): string {
  if ('const' in s) return `'${String(s['const'])}'`;
  if (Array.isArray(s['enum'])) return `one of ${s['enum'].join(', ')}`;
  const t = String(s['type']);
  if (t === 'array') {
    const n = s['minItems'] === s['maxItems'] && s['minItems'] !== undefined ? `${String(s['minItems'])} ` : '';
    const items = s['items'] && typeof s['items'] === 'object' ? describeForm(s['items'] as Schema, true) : 'items';
    return `a list of ${n}${items}`;
  }
  if (t === 'object') {
    const req = (s['required'] as string[] | undefined) ?? [];
    return req.length ? `a mapping with key${req.length > 1 ? 's' : ''} ${req.map((k) => `'${k}'`).join(', ')}` : 'a mapping';
  }
  const noun = t === 'integer' ? 'integer' : t === 'number' ? 'number' : t === 'string' ? 'string' : t === 'boolean' ? 'boolean' : t;
  return `${plural ? `${noun}s` : `${/^[aeiou]/.test(noun) ? 'an' : 'a'} ${noun}`}${bounds(s)}`;
}

/** Does the value have the type (or const/enum type) of this oneOf branch? */
function sameType(s: Schema, value: unknown): boolean {
  const t = typeOf(value);
  if ('const' in s) return typeOf(s['const']) === t || (t === 'integer' && typeOf(s['const']) === 'number');
  if (Array.isArray(s['enum'])) return s['enum'].some((x) => typeOf(x) === t);
  return s['type'] === t || (s['type'] === 'number' && t === 'integer');
}

function pathOf(instancePath: string): (string | number)[] {
  return instancePath === '' ? [] : instancePath.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/**
 * Drops the noise of oneOf: when the value has the type of exactly one (non-const) branch, that
 * branch's errors say best what is wrong, so the others and the summary go; otherwise the
 * summary (every allowed form) stays and the branches' errors go.
 */
function pruneOneOf(errors: readonly ErrorObject[], valueAt: (p: string) => unknown): ErrorObject[] {
  const drop = new Set<ErrorObject>();
  for (const o of errors.filter((e) => e.keyword === 'oneOf')) {
    const branches = o.schema as Schema[];
    const value = valueAt(o.instancePath);
    const fits = branches.map((b, i) => [b, i] as const).filter(([b]) => sameType(b, value));
    const only = fits.length === 1 && !('const' in fits[0]![0]) && !('enum' in fits[0]![0]) ? fits[0]![1] : undefined;
    for (const e of errors) {
      const inside = e !== o && e.schemaPath.startsWith(`${o.schemaPath}/`) && (e.instancePath === o.instancePath || e.instancePath.startsWith(`${o.instancePath}/`));
      if (inside && (only === undefined || !e.schemaPath.startsWith(`${o.schemaPath}/${only}/`))) drop.add(e);
    }
    if (only !== undefined) drop.add(o);
  }
  return errors.filter((e) => !drop.has(e));
}

/** One ajv error in words: what was expected, what was found. */
function issueOf(e: ErrorObject, path: (string | number)[], value: unknown): SchemaIssue | undefined {
  const parent = (e.parentSchema ?? {}) as Schema;
  switch (e.keyword) {
    case 'if':
    case 'propertyNames':
      return undefined;
    case 'additionalProperties': {
      const key = String(e.params['additionalProperty']);
      const allowed = Object.keys((parent['properties'] as object | undefined) ?? {});
      return { path: [...path, key], atKey: true, message: `unknown key '${key}'; expected one of: ${allowed.join(', ')}.${didYouMean(key, allowed)}` };
    }
    case 'required': {
      const key = String(e.params['missingProperty']);
      const allowed = ((parent['properties'] as Record<string, Schema> | undefined)?.[key]?.['enum'] as unknown[] | undefined)?.map(String);
      return { path, atKey: false, message: `missing required key '${key}'${allowed ? ` (one of ${allowed.join(', ')})` : ''}` };
    }
    case 'enum': {
      const allowed = (e.params['allowedValues'] as unknown[]).map(String);
      const quoted = typeof value === 'string' && allowed.includes(value) ? ' (quoted numbers are strings: remove the quotes)' : '';
      const dym = typeof value === 'string' && !quoted ? didYouMean(value, allowed) : '';
      return { path, atKey: false, message: `expected one of ${allowed.join(', ')}; found ${describe(value)}${quoted}${dym ? `.${dym}` : ''}` };
    }
    case 'type': {
      const expected = String(e.params['type']);
      return { path, atKey: false, message: `expected ${TYPE_NAMES[expected] ?? expected}, found ${describe(value)}${yamlHint(value, expected, parent)}` };
    }
    case 'const':
      return { path, atKey: false, message: `expected ${JSON.stringify(e.params['allowedValue'])}, found ${describe(value)}` };
    case 'oneOf': {
      const forms = (e.schema as Schema[]).map((b) => describeForm(b));
      const consts = (e.schema as Schema[]).filter((b) => typeof b['const'] === 'string').map((b) => String(b['const']));
      const list = forms.length > 1 ? `${forms.slice(0, -1).join(', ')} or ${forms.at(-1)}` : forms.join('');
      const dym = typeof value === 'string' ? didYouMean(value, consts) : '';
      return { path, atKey: false, message: `expected ${list}; found ${describe(value)}${dym ? `.${dym}` : ''}` };
    }
    case 'pattern': {
      const pattern = String(e.params['pattern']);
      const words = PATTERNS[pattern] ?? `a string matching ${pattern}`;
      if (e.propertyName !== undefined) {
        const what = path.length === 1 && path[0] === 'stages' ? 'stage name' : 'key';
        return { path: [...path, e.propertyName], atKey: true, message: `invalid ${what} '${e.propertyName}': expected ${words}` };
      }
      return { path, atKey: false, message: `expected ${words}, found ${describe(value)}` };
    }
    case 'minProperties':
    case 'maxProperties': {
      const keys = value && typeof value === 'object' ? Object.keys(value) : [];
      const found = keys.length ? `${keys.length} key${keys.length === 1 ? '' : 's'}: ${keys.join(', ')}` : 'an empty mapping';
      const names = Object.keys((parent['properties'] as object | undefined) ?? {});
      const one = parent['minProperties'] === 1 && parent['maxProperties'] === 1 && names.length ? `exactly one key, one of: ${names.join(', ')}` : undefined;
      const n = Number(e.params['limit']);
      const noun = path.length === 1 && path[0] === 'stages' ? 'stage' : 'key';
      return { path, atKey: false, message: `expected ${one ?? `${e.keyword === 'minProperties' ? 'at least' : 'at most'} ${n} ${noun}${n === 1 ? '' : 's'}`}; found ${found}` };
    }
    case 'minItems':
    case 'maxItems': {
      const n = Number(e.params['limit']);
      const exact = parent['minItems'] === parent['maxItems'] ? 'exactly' : e.keyword === 'minItems' ? 'at least' : 'at most';
      return { path, atKey: false, message: `expected ${exact} ${n} item${n === 1 ? '' : 's'}, found ${Array.isArray(value) ? value.length : describe(value)}` };
    }
    case 'uniqueItems': {
      const [i, j] = [Number(e.params['i']), Number(e.params['j'])];
      const item = (value as unknown[])[i];
      return { path, atKey: false, message: `lists ${typeof item === 'string' ? `'${item}'` : JSON.stringify(item)} twice (items ${Math.min(i, j)} and ${Math.max(i, j)}); remove one` };
    }
    case 'minLength':
      return { path, atKey: false, message: `expected a non-empty string, found ${describe(value)}` };
    default:
      return { path, atKey: false, message: `${e.message ?? 'is invalid'}; found ${describe(value)}` };
  }
}

/** Turns ajv errors into located messages, dropping the noise of if/then and oneOf branches. */
export function schemaIssues(errors: readonly ErrorObject[], data: unknown): SchemaIssue[] {
  const valueAt = (p: string): unknown => pathOf(p).reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], data);
  const issues: SchemaIssue[] = [];
  const seen = new Set<string>();
  for (const e of pruneOneOf(errors, valueAt)) {
    const issue = issueOf(e, pathOf(e.instancePath), valueAt(e.instancePath));
    const k = issue && `${issue.path.join('.')}|${issue.message}`;
    if (issue && k && !seen.has(k)) issues.push(issue), seen.add(k);
  }
  // `optimiser:` with no `optimizer:` is one mistake: the "Did you mean" says it, so the
  // "missing required key" for the suggested key goes.
  return issues.filter((i) => {
    const key = /^missing required key '(.*?)'/.exec(i.message)?.[1];
    return !key || !issues.some((o) => o.atKey && o.path.slice(0, -1).join('.') === i.path.join('.') && o.message.endsWith(`Did you mean '${key}'?`));
  });
}
