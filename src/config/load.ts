/**
 * Reads a pipeline file: YAML 1.2 (duplicate keys rejected) -> JSON Schema validation (ajv,
 * no coercion, defaults filled) -> a typed PipelineConfig. Every problem is reported at once,
 * each with file:line:column, the config path, what was expected and found, and the line.
 * Anchor: DVC `YAMLValidationError` / `YAMLSyntaxError` layout.
 */
import { isScalar, LineCounter, parseDocument, visit, type Document } from 'yaml';
import { PipelineError } from '../errors.js';
import { applyOverrides, createdBy, overrideFor, type Override } from './overrides.js';
import { pipelineValidator, schemaIssues } from './schema.js';
import { dotted, excerpt, positionOf, readSourceText, scalarSource, type SourceFile, type SourcePos } from './source.js';
import { syntaxIssues } from './yaml-errors.js';
import { MAX_FILE_BYTES, yamlRuleIssues } from './yaml-rules.js';
import type { PipelineConfig } from './types.js';

/** One located problem in a pipeline file. */
export interface ConfigIssue {
  pos: SourcePos;
  /** Set when the value came from a `--set` override: shown instead of a file position. */
  override?: string;
  /** Config path, dotted (`stages.train.with.epochs`); empty for syntax errors. */
  path: string;
  message: string;
}

/** Bad pipeline file: carries every issue; the message is the full report. */
export class ConfigError extends PipelineError {
  constructor(
    readonly file: SourceFile | { path: string },
    readonly issues: ConfigIssue[],
    code: 'PIPE_YAML_SYNTAX' | 'PIPE_SCHEMA' | 'PIPE_UNKNOWN_NEEDS' | 'PIPE_CYCLE' = 'PIPE_SCHEMA',
  ) {
    super(code, formatIssues(file, sortIssues(issues), code === 'PIPE_YAML_SYNTAX' ? 'YAML syntax error' : 'validation failed'), 2);
  }
}

/** File positions in line order, then the `--set` overrides (stable). */
function sortIssues(issues: readonly ConfigIssue[]): ConfigIssue[] {
  return [...issues].sort((a, b) => Number(a.override !== undefined) - Number(b.override !== undefined) || a.pos.line - b.pos.line || a.pos.col - b.pos.col);
}

/** `'<file>' validation failed: N errors` then `file:line:col: path: message` and the line. */
export function formatIssues(file: SourceFile | { path: string }, issues: ConfigIssue[], what: string): string {
  const head = `'${file.path}' ${what}: ${issues.length} error${issues.length === 1 ? '' : 's'}`;
  const body = issues.map((i) => {
    if (i.override !== undefined) return `--set ${i.override}: ${i.path ? `${i.path}: ` : ''}${i.message}`;
    const loc = `${file.path}:${i.pos.line}:${i.pos.col}: ${i.path ? `${i.path}: ` : ''}${i.message}`;
    return 'text' in file ? `${loc}\n${excerpt(file, i.pos)}` : loc;
  });
  return [head, ...body].join('\n');
}

/**
 * Reads and parses the file; YAML syntax errors (duplicate keys included) and refused YAML
 * (yaml-rules.ts) become a ConfigError. A file over MAX_FILE_BYTES is refused unread; a pipe
 * (`<(cat f)`) is read once (see readSourceText).
 */
export async function readSource(path: string): Promise<SourceFile> {
  const { file, duplicates } = await parseSource(path);
  if (duplicates.length) throw new ConfigError(file, duplicates, 'PIPE_YAML_SYNTAX');
  return file;
}

/**
 * readSource, except that duplicate keys are handed back instead of thrown: a document whose
 * only syntax errors are duplicate keys is otherwise sound (the later value of a key wins), so
 * the checks after parsing still run and their issues are reported with them, all at once.
 */
async function parseSource(path: string): Promise<{ file: SourceFile; duplicates: ConfigIssue[] }> {
  let text: string;
  try {
    text = await readSourceText(path, MAX_FILE_BYTES);
  } catch (e) {
    if (e instanceof PipelineError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : String((e as Error).message);
    throw new PipelineError('PIPE_FILE_NOT_FOUND', `cannot read pipeline file '${path}': ${why}`, 2);
  }
  // Binary or non-UTF-8 input: NUL bytes, or bytes that did not decode (U+FFFD).
  const bad = text.search(/[\u0000\uFFFD]/);
  if (bad >= 0) {
    const line = text.slice(0, bad).split('\n').length;
    throw new PipelineError('PIPE_YAML_SYNTAX', `'${path}' is not a UTF-8 text file (${text[bad] === '\u0000' ? 'a NUL byte' : 'an invalid byte sequence'} on line ${line}); a pipeline file is YAML text`, 2);
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, version: '1.2', prettyErrors: false });
  const file: SourceFile = { path, text, doc, lines };
  if (doc.errors.some((e) => e.code !== 'DUPLICATE_KEY')) throw new ConfigError(file, syntaxIssues(file, doc.errors), 'PIPE_YAML_SYNTAX');
  const duplicates = doc.errors.length ? syntaxIssues(file, doc.errors) : [];
  if (duplicates.length) keepLastOfDuplicates(doc);
  const refused = yamlRuleIssues(file);
  if (refused.length) throw new ConfigError(file, [...duplicates, ...refused]);
  return { file, duplicates };
}

/**
 * Removes every pair of a mapping whose key comes again later in it, so the document holds what
 * its value reads as (the later value wins, as in toJS) and the checks after parsing point at the
 * value they checked, not at the earlier one.
 */
function keepLastOfDuplicates(doc: Document.Parsed): void {
  visit(doc, {
    Map(_, map) {
      const keyOf = (k: unknown): unknown => (isScalar(k) ? k.value : k);
      map.items = map.items.filter((pair, i) => !map.items.slice(i + 1).some((later) => keyOf(later.key) === keyOf(pair.key)));
    },
  });
}

/**
 * The issue for config path `path` of `source` (its position, or the `--set` override that set
 * it); for the checks run after loading (src/dag).
 */
export function issueAt(source: SourceFile | undefined, path: readonly (string | number)[], message: string): ConfigIssue {
  const override = source?.overrides ? overrideFor(path, source.overrides)?.expr : undefined;
  return { pos: source ? positionOf(source, path) : { line: 1, col: 1 }, path: dotted(path), message, ...(override !== undefined ? { override } : {}) };
}

/**
 * ` (written 1.10: quote it, "1.10", to keep it as text)` for a plain scalar that YAML read as a
 * number or boolean where the schema wants a string; '' otherwise.
 */
function quoteHint(source: SourceFile, path: readonly (string | number)[], message: string): string {
  if (!/^expected string, found (number|boolean) /.test(message)) return '';
  const text = scalarSource(source, path);
  return text === undefined || /^["']/.test(text) ? '' : ` (written ${text}: quote it, "${text}", to keep it as text)`;
}

/**
 * Loads and validates a pipeline file. Duplicate keys are reported together with the schema's
 * issues (the later value of a duplicated key is the one validated); alone, as a YAML syntax error.
 * @throws PipelineError PIPE_FILE_NOT_FOUND; ConfigError PIPE_YAML_SYNTAX or PIPE_SCHEMA (exit 2).
 */
export async function loadPipeline(path: string, overrides: readonly Override[] = []): Promise<{ config: PipelineConfig; source: SourceFile }> {
  const { file: source, duplicates } = await parseSource(path);
  const fail = (issues: ConfigIssue[]): ConfigError => new ConfigError(source, [...duplicates, ...issues]);
  if (overrides.length) source.overrides = overrides;
  if (source.doc.contents === null) throw fail([{ pos: { line: 1, col: 1 }, path: '', message: 'the file is empty; a pipeline file needs at least `name:` and `stages:`' }]);
  let data: unknown;
  try {
    // maxAliasCount bounds "billion laughs" alias expansion (yaml's default is 100).
    data = source.doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (e) {
    throw fail([{ pos: { line: 1, col: 1 }, path: '', message: `the document cannot be expanded: ${(e as Error).message} (too many or recursive aliases?)` }]);
  }
  if (overrides.length) {
    if (typeof data !== 'object' || data === null || Array.isArray(data)) throw fail([{ pos: { line: 1, col: 1 }, path: '', message: 'the file is not a mapping' }]);
    applyOverrides(data as Record<string, unknown>, overrides);
  }
  // NOTE: ajv runs allOf (the per-kind if/then) before `properties`, so a missing `with` would
  // get its `{}` default too late for the kind's own defaults: insert it first.
  const stages = (data as { stages?: unknown }).stages;
  if (stages && typeof stages === 'object' && !Array.isArray(stages)) {
    for (const s of Object.values(stages)) if (s && typeof s === 'object' && !Array.isArray(s) && !('with' in s)) (s as Record<string, unknown>)['with'] = {};
  }
  const validate = pipelineValidator();
  if (!validate(data)) {
    const issues: ConfigIssue[] = schemaIssues(validate.errors ?? [], data).map((i) => ({
      pos: positionOf(source, i.path, i.atKey),
      override: (overrideFor(i.path, overrides) ?? (source.doc.hasIn(i.path) ? undefined : createdBy(i.path, overrides)))?.expr,
      path: dotted(i.path),
      message: i.message + quoteHint(source, i.path, i.message),
    }));
    throw fail(issues);
  }
  if (duplicates.length) throw new ConfigError(source, duplicates, 'PIPE_YAML_SYNTAX');
  return { config: data as PipelineConfig, source };
}
