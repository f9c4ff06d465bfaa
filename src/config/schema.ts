/**
 * Loads the JSON Schemas under schemas/ into one ajv instance (draft-07, allErrors, no type
 * coercion, defaults filled in) and formats its errors as config paths with messages that say
 * what was expected and what was found.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { SCHEMA_DIR } from '../paths.js';
import { didYouMean } from './suggest.js';

let cached: ValidateFunction | undefined;

/** The compiled pipeline validator (compiled once per process). */
export function pipelineValidator(): ValidateFunction {
  if (cached) return cached;
  const ajv = new Ajv({ allErrors: true, strict: true, coerceTypes: false, useDefaults: true, strictTuples: false, verbose: true });
  for (const f of readdirSync(join(SCHEMA_DIR, 'stages'))) {
    if (f.endsWith('.schema.json')) ajv.addSchema(JSON.parse(readFileSync(join(SCHEMA_DIR, 'stages', f), 'utf8')));
  }
  cached = ajv.compile(JSON.parse(readFileSync(join(SCHEMA_DIR, 'pipeline.schema.json'), 'utf8')));
  return cached;
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
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `string ${JSON.stringify(value)}`;
  return `${typeof value} ${String(value)}`;
}

function yamlHint(value: unknown, expected: string): string {
  if (typeof value !== 'string') return '';
  if (expected === 'boolean' && /^(yes|no|on|off|y|n)$/i.test(value)) return ` (YAML 1.2 reads '${value}' as a string: use true/false)`;
  if ((expected === 'number' || expected === 'integer') && value.trim() !== '' && !Number.isNaN(Number(value))) return ' (quoted numbers are strings: remove the quotes)';
  return '';
}

function pathOf(instancePath: string): (string | number)[] {
  return instancePath === '' ? [] : instancePath.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** Turns ajv errors into located messages, dropping the noise of if/then and oneOf branches. */
export function schemaIssues(errors: readonly ErrorObject[], data: unknown): SchemaIssue[] {
  const issues: SchemaIssue[] = [];
  const seen = new Set<string>();
  const valueAt = (p: (string | number)[]): unknown => p.reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], data);
  for (const e of errors) {
    if (e.keyword === 'if') continue;
    const path = pathOf(e.instancePath);
    const value = valueAt(path);
    let issue: SchemaIssue;
    switch (e.keyword) {
      case 'additionalProperties': {
        const key = String(e.params['additionalProperty']);
        const allowed = Object.keys((e.parentSchema as { properties?: object } | undefined)?.properties ?? {});
        issue = { path: [...path, key], atKey: true, message: `unknown key '${key}'; expected one of: ${allowed.join(', ')}.${didYouMean(key, allowed)}` };
        break;
      }
      case 'required':
        issue = { path, atKey: false, message: `missing required key '${String(e.params['missingProperty'])}'` };
        break;
      case 'enum': {
        const allowed = (e.params['allowedValues'] as unknown[]).map(String);
        issue = { path, atKey: false, message: `expected one of ${allowed.join(', ')}; found ${describe(value)}.${typeof value === 'string' ? didYouMean(value, allowed) : ''}` };
        break;
      }
      case 'type': {
        const expected = String(e.params['type']);
        issue = { path, atKey: false, message: `expected ${expected}, found ${describe(value)}${yamlHint(value, expected)}` };
        break;
      }
      case 'const':
        issue = { path, atKey: false, message: `expected ${JSON.stringify(e.params['allowedValue'])}, found ${describe(value)}` };
        break;
      case 'oneOf':
        issue = { path, atKey: false, message: `found ${describe(value)}, which matches none of the allowed forms` };
        break;
      default:
        issue = { path, atKey: false, message: `${e.message ?? 'is invalid'}; found ${describe(value)}` };
    }
    const k = `${issue.path.join('.')}|${issue.message}`;
    if (!seen.has(k)) issues.push(issue), seen.add(k);
  }
  // A oneOf failure also reports each branch's own error at the same path: keep the summary only.
  const oneOfPaths = new Set(errors.filter((e) => e.keyword === 'oneOf').map((e) => e.instancePath));
  return issues.filter((i) => i.message.includes('allowed forms') || !oneOfPaths.has(i.path.length ? `/${i.path.join('/')}` : ''));
}
