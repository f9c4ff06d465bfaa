/**
 * Turns the `yaml` parser's syntax errors into messages that say what is wrong and how to fix
 * it, pointing at the character to change: an unclosed `{`, `[` or quote points at where it was
 * opened, bad indentation at the first character of the line and the keys it could line up
 * with, a duplicate key names the line of its first definition.
 * Anchor: DVC `utils/strictyaml.py` (`YAMLSyntaxError` shows the offending line).
 */
import { isMap, isScalar, visit, type YAMLError } from 'yaml';
import type { ConfigIssue } from './load.js';
import { offsetPos, type SourceFile } from './source.js';
import { MAX_DEPTH } from './yaml-rules.js';

/** An opening bracket or quote and its character offset. */
interface Opener {
  ch: string;
  offset: number;
}

/** True when a flow collection or quoted scalar may start at `i` (line start, or after `: `, `- `, `[`, `{`, `,`, `?`). */
function valueStart(text: string, i: number, inFlow: boolean): boolean {
  let j = i - 1;
  while (j >= 0 && (text[j] === ' ' || text[j] === '\t')) j--;
  if (j < 0 || text[j] === '\n') return true;
  const prev = text[j]!;
  if (prev === ',' || prev === '[' || prev === '{') return inFlow;
  return (prev === ':' || prev === '-' || prev === '?') && j < i - 1;
}

/**
 * Scans `text` up to offset `end`, skipping comments and quoted strings: the flow brackets still
 * open there (outermost first) and the quote left open, if any.
 */
function openAt(text: string, end: number): { brackets: Opener[]; quote?: Opener } {
  const brackets: Opener[] = [];
  let quote: Opener | undefined;
  for (let i = 0; i < end; i++) {
    const c = text[i]!;
    if (quote) {
      if (quote.ch === '"' && c === '\\') i++;
      else if (c === quote.ch && quote.ch === "'" && text[i + 1] === "'") i++;
      else if (c === quote.ch) quote = undefined;
      continue;
    }
    if (c === '#' && (i === 0 || /\s/.test(text[i - 1]!))) {
      const nl = text.indexOf('\n', i);
      if (nl < 0) break;
      i = nl;
    } else if ((c === '"' || c === "'") && valueStart(text, i, brackets.length > 0)) {
      quote = { ch: c, offset: i };
    } else if ((c === '{' || c === '[') && valueStart(text, i, brackets.length > 0)) {
      brackets.push({ ch: c, offset: i });
    } else if ((c === '}' || c === ']') && brackets.at(-1)?.ch === (c === '}' ? '{' : '[')) {
      brackets.pop();
    }
  }
  return { brackets, quote };
}

const lineStart = (text: string, offset: number): number => text.lastIndexOf('\n', offset - 1) + 1;
const indentOf = (line: string): number => /^ */.exec(line)![0].length;
const keyOf = (line: string): string => line.trim().replace(/^- +/, '').split(':')[0]!.trim();

/** Offset of the first non-blank character of the line holding `offset`. */
function firstCharOf(text: string, offset: number): number {
  const start = lineStart(text, offset);
  return start + /^[ \t]*/.exec(text.slice(start))![0].length;
}

/**
 * "line it up with 'kind' (line 4) or 'data' (line 3)": the keys of the enclosing block levels
 * nearest to the indentation of line `lineNo` (1-based), or '' when it matches one of them.
 */
function lineUpHint(lines: string[], lineNo: number): string {
  const indent = indentOf(lines[lineNo - 1]!);
  const levels: { indent: number; key: string; line: number }[] = [];
  let limit = Infinity;
  for (let l = lineNo - 1; l >= 1 && limit > 0; l--) {
    const text = lines[l - 1]!;
    if (text.trim() === '' || text.trim().startsWith('#')) continue;
    const ind = indentOf(text);
    if (ind < limit) levels.push({ indent: ind, key: keyOf(text), line: l }), (limit = ind);
  }
  if (levels.some((l) => l.indent === indent)) return '';
  const deeper = levels.filter((l) => l.indent > indent).at(-1);
  const shallower = levels.find((l) => l.indent < indent);
  const opts = [deeper, shallower].filter((l) => l !== undefined).map((l) => `'${l.key}' (line ${l.line})`);
  return opts.length ? `; line it up with ${opts.join(' or ')}` : '';
}

/** Where a duplicate key was first defined in the same mapping, found in the parsed document. */
function firstDefinition(file: SourceFile, offset: number): { key: string; offset: number } | undefined {
  let found: { key: string; offset: number } | undefined;
  visit(file.doc, {
    Map(_, map) {
      if (!isMap(map)) return;
      const dup = map.items.find((p) => isScalar(p.key) && p.key.range?.[0] === offset);
      if (!dup || !isScalar(dup.key)) return;
      const key = String(dup.key.value);
      const first = map.items.find((p) => isScalar(p.key) && String(p.key.value) === key);
      if (first && isScalar(first.key) && first.key.range) found = { key, offset: first.key.range[0] };
      return visit.BREAK;
    },
  });
  return found;
}

/** One located issue per parser error (several errors caused by one unclosed bracket on a line count once). */
export function syntaxIssues(file: SourceFile, errors: readonly YAMLError[]): ConfigIssue[] {
  const { text } = file;
  const lines = text.split(/\r?\n/);
  const issues: ConfigIssue[] = [];
  const at = (offset: number, message: string): void => {
    const pos = offsetPos(file, offset);
    if (!issues.some((i) => i.pos.line === pos.line && i.message === message)) issues.push({ pos, path: '', message });
  };
  const unclosedLines = new Set<number>();
  // An indentation error on a tab-indented line, or just below one, is the tab's doing.
  const tabLines = new Set(errors.filter((e) => e.code === 'TAB_AS_INDENT').map((e) => offsetPos(file, e.pos[0]).line));
  const INDENT_CODES = ['BAD_INDENT', 'MULTILINE_IMPLICIT_KEY', 'BLOCK_AS_IMPLICIT_KEY'];
  const exhausted = errors.filter((e) => e.code === 'RESOURCE_EXHAUSTION');
  if (exhausted.length) {
    // The parser ran out of stack on deep nesting: one issue, at the bracket that passes the limit when flow.
    const first = Math.min(...exhausted.map((e) => e.pos[0]));
    const open = openAt(text, first).brackets;
    at(open[MAX_DEPTH - 1]?.offset ?? first, `nesting deeper than ${MAX_DEPTH} levels of mappings and lists; a pipeline file needs far fewer`);
  }
  for (const e of errors) {
    const offset = e.pos[0];
    if (e.code === 'RESOURCE_EXHAUSTION') continue;
    if (e.code === 'MULTIPLE_DOCS') {
      at(offset, 'one pipeline per file: a second YAML document starts here; put each pipeline in a file of its own');
      continue;
    }
    const flow = /^Flow (map|sequence)/.exec(e.message);
    const line = offsetPos(file, offset).line;
    if (!flow && INDENT_CODES.includes(e.code) && (tabLines.has(line) || tabLines.has(line - 1))) continue;
    if (e.code === 'TAB_AS_INDENT') {
      at(offset, 'tabs are not allowed for indentation in YAML; indent with spaces');
    } else if (e.code === 'DUPLICATE_KEY') {
      const first = firstDefinition(file, offset);
      const where = first ? offsetPos(file, first.offset) : undefined;
      const same = where && where.line === offsetPos(file, offset).line;
      at(offset, `duplicate key '${first?.key ?? keyOf(text.slice(offset))}'${where ? ` (first defined on line ${where.line}${same ? `, column ${where.col}` : ''})` : ''}; remove one of them`);
    } else if (flow) {
      const want = flow[1] === 'map' ? '{' : '[';
      const opener = openAt(text, offset).brackets.filter((b) => b.ch === want).at(-1);
      const openLine = opener ? offsetPos(file, opener.offset).line : -1;
      if (opener && unclosedLines.has(openLine)) continue;
      unclosedLines.add(openLine);
      if (opener) at(opener.offset, want === '{' ? "this '{' is never closed; end the mapping with '}'" : "this '[' is never closed; end the list with ']'");
      else at(offset, e.message.split('\n')[0]!);
    } else if (e.code === 'MISSING_CHAR' && /quote/.test(e.message)) {
      const q = openAt(text, text.length).quote;
      at(q?.offset ?? offset, `this ${q?.ch ?? ''}-quoted string is never closed; add the closing ${q?.ch ?? 'quote'}`);
    } else if (e.code === 'BAD_INDENT') {
      const lineNo = offsetPos(file, offset).line;
      at(firstCharOf(text, offset), `bad indentation: the keys of one mapping must start at the same column${lineUpHint(lines, lineNo)}`);
    } else if (e.code === 'MULTILINE_IMPLICIT_KEY' || (e.code === 'BLOCK_AS_IMPLICIT_KEY' && errors.some((o) => o.code === 'MULTILINE_IMPLICIT_KEY' && o.pos[0] === offset))) {
      // `kind: download` followed by a deeper-indented line: that line reads as the rest of the value.
      const lineNo = offsetPos(file, offset).line;
      const next = lines.findIndex((l, i) => i >= lineNo && l.trim() !== '' && !l.trim().startsWith('#'));
      const key = keyOf(lines[lineNo - 1]!);
      if (next < 0) at(offset, 'a key must fit on one line');
      else at(file.lines.lineStarts[next]! + indentOf(lines[next]!), `bad indentation: this line is indented under '${key}' (line ${lineNo}), which already has a value; line it up with '${key}'`);
    } else if (e.code === 'BLOCK_AS_IMPLICIT_KEY') {
      const rest = text.slice(offset, text.indexOf('\n', offset) < 0 ? undefined : text.indexOf('\n', offset)).trim();
      at(offset, `a nested mapping cannot start on the same line as its key; move it to the next line, indented, or write it as { ${rest} }`);
    } else {
      at(offset, e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, ''));
    }
  }
  return issues;
}
