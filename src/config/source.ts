/**
 * A pipeline file's source: its text (readSourceText; a pipe is read once per process), and
 * config paths (['stages', 'train', 'with', 'epochs']) mapped to line and column in it.
 * Anchor: DVC `utils/strictyaml.py` `determine_linecol`: when the node itself has no position
 * (a missing key), step up to its parent, at most 5 levels.
 */
import { open, stat } from 'node:fs/promises';
import { isMap, isPair, isScalar, isSeq, LineCounter, type Document, type Node } from 'yaml';
import { PipelineError } from '../errors.js';
import type { Override } from './overrides.js';

/** A position in a source file; line and column are 1-based. */
export interface SourcePos {
  line: number;
  col: number;
}

/** A parsed YAML file with what is needed to point at its lines. */
export interface SourceFile {
  /** The path as the user gave it (shown in messages). */
  path: string;
  text: string;
  doc: Document.Parsed;
  lines: LineCounter;
  /** The `--set` overrides applied to it, so later checks can point at them. */
  overrides?: readonly Override[];
}

/** Text of the pipes already read, by path: a pipe gives its bytes once. */
const piped = new Map<string, string>();

/**
 * The bytes of the pipeline file at `path`, decoded as UTF-8 (invalid bytes become U+FFFD).
 * A regular file over `maxBytes` is refused unread. A pipe, FIFO, socket or character device
 * (`pipe validate <(cat f)`, `/dev/stdin`) has no size beforehand and gives its bytes only once:
 * it is read to its end (refused past `maxBytes`) the first time, and later calls for the same
 * path in this process get the same text (validate, plan and run read the file more than once).
 * @throws PipelineError PIPE_YAML_SYNTAX (exit 2) for a file over `maxBytes`; the `fs` error
 *   (ENOENT, EISDIR, EACCES, ...) when it cannot be read.
 */
export async function readSourceText(path: string, maxBytes: number): Promise<string> {
  const known = piped.get(path);
  if (known !== undefined) return known;
  const tooLarge = (what: string): PipelineError =>
    new PipelineError('PIPE_YAML_SYNTAX', `'${path}' is ${what}; a pipeline file is at most ${maxBytes / 1024 / 1024} MB (is it the right file?)`, 2);
  const st = await stat(path);
  if (st.isFile() && st.size > maxBytes) throw tooLarge(`${(st.size / 1024 / 1024).toFixed(1)} MB`);
  if (st.isDirectory()) throw Object.assign(new Error(`EISDIR: illegal operation on a directory, read '${path}'`), { code: 'EISDIR' });
  const fh = await open(path, 'r');
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for (;;) {
      const buf = Buffer.alloc(64 * 1024);
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      chunks.push(buf.subarray(0, bytesRead));
      total += bytesRead;
      if (total > maxBytes) throw tooLarge(`more than ${maxBytes / 1024 / 1024} MB`);
    }
  } finally {
    await fh.close();
  }
  const text = Buffer.concat(chunks, total).toString('utf8');
  if (!st.isFile()) piped.set(path, text);
  return text;
}

/** The text read from `path` when it is a pipe (see readSourceText), else undefined. */
export function pipedText(path: string): string | undefined {
  return piped.get(path);
}

/** Finds the node at `path`; with `key: true`, the key node of the last segment instead. */
function findNode(file: SourceFile, path: readonly (string | number)[], key: boolean): Node | undefined {
  let node: unknown = file.doc.contents;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]!;
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) return undefined;
      if (key && i === path.length - 1) return pair.key as Node;
      node = pair.value;
    } else if (isSeq(node)) {
      node = node.items[Number(seg)];
    } else {
      return undefined;
    }
  }
  return isPair(node) ? undefined : (node as Node | undefined);
}

/**
 * Line and column of the value at `path` (or its key with `key: true`), stepping up to the
 * nearest parent that exists (at most 5 levels). The document start when nothing matches.
 */
export function positionOf(file: SourceFile, path: readonly (string | number)[], key = false): SourcePos {
  for (let up = 0; up <= Math.min(5, path.length); up++) {
    const p = path.slice(0, path.length - up);
    const node = findNode(file, p, key && up === 0) ?? (p.length > 0 && up > 0 ? findNode(file, p, true) : undefined);
    if (node?.range) return offsetPos(file, node.range[0]);
  }
  return { line: 1, col: 1 };
}

/** Position of a character offset. */
export function offsetPos(file: SourceFile, offset: number): SourcePos {
  const { line, col } = file.lines.linePos(offset);
  return { line, col };
}

/** Longest part of a source line an error message quotes, in characters. */
export const EXCERPT_WIDTH = 200;

/**
 * The source line with its number and a caret under the column, for error messages; a line
 * longer than EXCERPT_WIDTH is cut to that many characters around the column, `...` marking
 * the cuts.
 */
export function excerpt(file: SourceFile, pos: SourcePos): string {
  const line = lineAt(file, pos.line);
  const col = Math.max(0, pos.col - 1);
  const start = line.length <= EXCERPT_WIDTH ? 0 : Math.max(0, Math.min(col - EXCERPT_WIDTH / 2, line.length - EXCERPT_WIDTH));
  const end = Math.min(line.length, start + EXCERPT_WIDTH);
  const head = start > 0 ? '...' : '';
  const text = `${head}${line.slice(start, end)}${end < line.length ? '...' : ''}`;
  const num = String(pos.line);
  const gutter = ' '.repeat(num.length);
  // Tabs stay tabs under the line so the caret lines up whatever the terminal's tab width.
  const pad = (head + line.slice(start, col)).replace(/[^\t]/g, ' ');
  return `  ${num} | ${text}\n  ${gutter} | ${pad}^`;
}

/** Line `n` (1-based) of the file, without its line break; '' past the end. */
function lineAt(file: SourceFile, n: number): string {
  const from = file.lines.lineStarts[n - 1];
  if (from === undefined) return '';
  const to = file.lines.lineStarts[n] ?? file.text.length;
  return file.text.slice(from, to).replace(/\r?\n$/, '');
}

/** The source text of the scalar at `path` (`1.10` for a value read as 1.1), if it is one. */
export function scalarSource(file: SourceFile, path: readonly (string | number)[]): string | undefined {
  const node = findNode(file, path, false);
  return isScalar(node) && node.range ? file.text.slice(node.range[0], node.range[1]) : undefined;
}

/** `a.b.0.c` form of a config path, as used in messages and `--set`. */
export function dotted(path: readonly (string | number)[]): string {
  return path.length === 0 ? '(top level)' : path.join('.');
}
