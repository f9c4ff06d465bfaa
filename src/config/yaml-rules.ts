/**
 * YAML a pipeline file may not use, found in the parsed document before anything reads it:
 * a `%YAML` directive other than 1.2 (the README promises YAML 1.2; 1.1 would silently turn
 * `yes` into true and `012` into 10), merge keys (`<<`, YAML 1.1 only), tags the core schema
 * does not know (`!!python/object`, `!foo`: never dropped silently), non-finite numbers (`.inf`,
 * `.nan`: no setting takes them), and nesting deeper than MAX_DEPTH. Each is a located issue.
 * Anchor: DVC `utils/strictyaml.py` (refuse at load time, name the line).
 */
import { isCollection, isMap, isPair, isScalar, isSeq, type Node } from 'yaml';
import type { ConfigIssue } from './load.js';
import { offsetPos, type SourceFile } from './source.js';

/** Deepest nesting of mappings and lists a pipeline file may have (the schema needs about 8). */
export const MAX_DEPTH = 64;

/** Largest pipeline file read, in bytes (a pipeline is a few kB; this refuses the wrong file fast). */
export const MAX_FILE_BYTES = 1024 * 1024;

/** What to say about `<<`. */
export const MERGE_KEY_MESSAGE = 'YAML merge keys are not part of YAML 1.2; repeat the keys, or use an anchor on the whole mapping';

/** `Infinity is not allowed` / `NaN is not allowed`, for a non-finite number written as `text`. */
export function nonFiniteMessage(value: number, text: string): string {
  const what = Number.isNaN(value) ? 'NaN' : String(value);
  return `${what} is not allowed (written ${text}); give a finite number`;
}

/** The issue at character `offset` of `file`. */
const at = (file: SourceFile, offset: number, message: string): ConfigIssue => ({ pos: offsetPos(file, offset), path: '', message });

/** Every refused use of YAML in `file` (parsed without errors), in document order. */
export function yamlRuleIssues(file: SourceFile): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const { doc, text } = file;
  const directive = doc.directives?.yaml;
  if (directive?.explicit && directive.version !== '1.2') {
    const offset = Math.max(0, text.search(/^%YAML/m));
    issues.push(at(file, offset, `%YAML ${directive.version}: pipe reads YAML 1.2 only (in YAML 1.1 \`yes\` is true and \`012\` is 10); remove the directive`));
  }
  for (const w of doc.warnings) {
    if (w.code !== 'TAG_RESOLVE_FAILED') continue;
    const tag = text.slice(w.pos[0], w.pos[1]).split(/\s/)[0]!;
    issues.push(at(file, w.pos[0], `unknown tag '${tag}': a pipeline file holds plain YAML 1.2 data (strings, numbers, booleans, null, lists, mappings); remove the tag`));
  }
  // Iterative walk (an explicit stack): the depth check must not itself exhaust the call stack.
  const stack: { node: unknown; depth: number }[] = [{ node: doc.contents, depth: 0 }];
  let tooDeep = false;
  while (stack.length) {
    const { node, depth } = stack.pop()!;
    if (isScalar(node)) {
      if (typeof node.value === 'number' && !Number.isFinite(node.value) && node.range) {
        issues.push(at(file, node.range[0], nonFiniteMessage(node.value, text.slice(node.range[0], node.range[1]))));
      }
      continue;
    }
    if (!isCollection(node)) continue;
    if (depth >= MAX_DEPTH) {
      if (!tooDeep && node.range) issues.push(at(file, node.range[0], `nesting deeper than ${MAX_DEPTH} levels of mappings and lists; a pipeline file needs far fewer`));
      tooDeep = true;
      continue;
    }
    const children: unknown[] = [];
    if (isMap(node)) {
      for (const p of node.items) {
        if (isScalar(p.key) && p.key.value === '<<' && p.key.range) issues.push(at(file, p.key.range[0], MERGE_KEY_MESSAGE));
        children.push(p.key, p.value);
      }
    } else if (isSeq(node)) {
      for (const item of node.items) children.push(isPair(item) ? item.value : item);
    }
    for (const c of children.reverse()) stack.push({ node: c as Node, depth: depth + 1 });
  }
  return issues.sort((a, b) => a.pos.line - b.pos.line || a.pos.col - b.pos.col);
}
