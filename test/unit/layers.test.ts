/**
 * The direction of dependencies, read from the code's own imports (static, `import type`,
 * `export ... from` and dynamic `import()`): cli -> queue/sweep -> runner -> library (config,
 * dag, data, models, train, eval, plot, report, tracking, engine and the top-level modules such
 * as src/stage.ts, the stage contract). stages/ are adapters: they use the library only, and
 * only the CLI picks them up (it hands the stage table to the runner).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

/** The repository root (this file runs as dist/test/unit/layers.test.js). */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** Rank of a layer: a module may import its own rank or lower, never higher. */
type Layer = 'cli' | 'queue' | 'sweep' | 'runner' | 'library' | 'stages';
const RANK: Record<Exclude<Layer, 'stages'>, number> = { cli: 3, queue: 2, sweep: 2, runner: 1, library: 0 };

/** The layer of a repository path such as `src/runner/run.ts`. */
export function layerOf(path: string): Layer {
  if (path.startsWith('stages/')) return 'stages';
  const top = path.split('/')[1] ?? '';
  return top === 'cli' || top === 'queue' || top === 'sweep' || top === 'runner' ? top : 'library';
}

/** Relative module specifiers imported by `text` (static, type-only, re-exports and dynamic). */
export function importsOf(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+'(\.[^']+)'|import\(\s*'(\.[^']+)'\s*\)/g)) out.push((m[1] ?? m[2])!);
  return out;
}

/** Every broken rule among `edges` (importer path -> imported path, repository-relative, `.ts`). */
export function violations(edges: Array<[string, string]>): string[] {
  const bad: string[] = [];
  for (const [from, to] of edges) {
    const a = layerOf(from), b = layerOf(to);
    if (a === 'stages') {
      if (b !== 'stages' && b !== 'library') bad.push(`${from} -> ${to}: stages/ are adapters; they use the library only`);
    } else if (b === 'stages') {
      if (a !== 'cli') bad.push(`${from} -> ${to}: only the CLI picks up stages/ (it hands the stage table to the runner)`);
    } else if (RANK[a] < RANK[b]) bad.push(`${from} -> ${to}: ${a} must not depend on ${b} (cli -> queue/sweep -> runner -> library)`);
    else if (a === 'sweep' && b === 'queue') bad.push(`${from} -> ${to}: the queue builds on sweeps, not the other way round`);
  }
  return bad;
}

function tsFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(`${dir}/${e.name}`) : e.name.endsWith('.ts') ? [`${dir}/${e.name}`] : []);
}

function repoEdges(): Array<[string, string]> {
  return [...tsFiles('src'), ...tsFiles('stages')].flatMap((f) =>
    importsOf(readFileSync(join(ROOT, f), 'utf8')).map((spec) => [f, relative(ROOT, normalize(join(ROOT, dirname(f), spec))).replace(/\.js$/, '.ts')] as [string, string]));
}

describe('layers', () => {
  it('finds static, type-only, re-exported and dynamic imports', () => {
    const text = `import { a } from './a.js';\nimport type {\n  B,\n} from '../b/b.js';\nexport { c } from './c.js';\nconst d = () => import('../d.js');\nimport x from 'node:fs';\n// not '../e.js'\n`;
    assert.deepEqual(importsOf(text), ['./a.js', '../b/b.js', './c.js', '../d.js']);
  });

  it('the rules catch each wrong direction', () => {
    assert.deepEqual(violations([
      ['src/runner/run.ts', 'src/train/loop.ts'], ['src/cli/main.ts', 'stages/index.ts'], ['src/sweep/run.ts', 'src/runner/run.ts'],
      ['src/queue/submit.ts', 'src/sweep/prepare.ts'], ['stages/plot.ts', 'src/stage.ts'], ['stages/index.ts', 'stages/plot.ts'],
    ]), []);
    assert.equal(violations([
      ['src/runner/plan.ts', 'stages/index.ts'], ['src/train/stage.ts', 'src/runner/run.ts'], ['src/queue/trial-entry.ts', 'src/cli/main.ts'],
      ['src/sweep/run.ts', 'src/queue/submit.ts'], ['stages/plot.ts', 'src/runner/run.ts'], ['src/tracking/open.ts', 'src/sweep/list.ts'],
    ]).length, 6);
  });

  it('the code follows cli -> queue/sweep -> runner -> library, with stages/ as adapters', () => {
    const edges = repoEdges();
    assert.ok(edges.length > 300, `only ${edges.length} imports found; is the scanner broken?`);
    assert.deepEqual(violations(edges), []);
  });
});
