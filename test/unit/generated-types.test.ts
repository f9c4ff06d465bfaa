/**
 * The stage parameter types in src/config/generated/ are generated from schemas/stages/ by
 * scripts/gen-types.mjs (issue 18: the schemas are the one source). These tests fail when the
 * committed files are not what the schemas generate, i.e. when a schema changed without
 * `npm run gen:types` (tsc then checks the stages against the regenerated types). Likewise the
 * pipeline validator src/config/generated/validate-pipeline.ts, ajv's standalone code generated
 * by scripts/gen-validator.mjs (`npm run gen:validator`).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';

/** The repository root (this file runs as dist/test/unit/generated-types.test.js). */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const SCRIPT = join(ROOT, 'scripts', 'gen-types.mjs');

function check(root?: string): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [SCRIPT, '--check', ...(root ? ['--root', root] : [])], { cwd: ROOT, encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

test('the committed generated types are what the schemas generate', () => {
  const r = check();
  assert.equal(r.status, 0, r.stderr);
});

test('a schema change without regenerating is caught, naming the stale file', (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'pipe-gen-'));
  t.after(() => rmSync(tmp, { recursive: true, force: true }));
  cpSync(join(ROOT, 'schemas'), join(tmp, 'schemas'), { recursive: true });
  cpSync(join(ROOT, 'src', 'config', 'generated'), join(tmp, 'src', 'config', 'generated'), { recursive: true });
  assert.equal(check(tmp).status, 0, 'the copy starts in step');
  const file = join(tmp, 'schemas', 'stages', 'plot.schema.json');
  const schema = JSON.parse(readFileSync(file, 'utf8'));
  schema.properties.columns.maximum = 99;
  schema.properties.columns.description = 'Grid columns (changed).';
  writeFileSync(file, JSON.stringify(schema));
  const r = check(tmp);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /stale generated types \(run npm run gen:types\): src\/config\/generated\/plot\.ts$/m);
});

test('the generated types carry the schema descriptions and defaults as TSDoc; defaulted fields are required', () => {
  const download = readFileSync(join(ROOT, 'src', 'config', 'generated', 'download.ts'), 'utf8');
  const desc = JSON.parse(readFileSync(join(ROOT, 'schemas', 'stages', 'download.schema.json'), 'utf8')).properties.val_fraction.description;
  assert.ok(download.includes(`   * ${desc}\n   */\n  val_fraction?: number;`), 'val_fraction: optional, with its description');
  const evaluate = readFileSync(join(ROOT, 'src', 'config', 'generated', 'evaluate.ts'), 'utf8');
  assert.ok(evaluate.includes('   * @defaultValue 256\n   */\n  batch_size: number;'), 'batch_size: required after defaults, default in TSDoc');
});

/** scripts/gen-validator.mjs --check [--root DIR]: the precompiled pipeline validator (issue 21 point 4). */
function checkValidator(root?: string): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'gen-validator.mjs'), '--check', ...(root ? ['--root', root] : [])], { cwd: ROOT, encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

test('the committed pipeline validator is what ajv generates from the schemas', () => {
  const r = checkValidator();
  assert.equal(r.status, 0, r.stderr);
});

test('a schema change without regenerating the validator is caught', (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'pipe-genv-'));
  t.after(() => rmSync(tmp, { recursive: true, force: true }));
  cpSync(join(ROOT, 'schemas'), join(tmp, 'schemas'), { recursive: true });
  cpSync(join(ROOT, 'src', 'config', 'generated'), join(tmp, 'src', 'config', 'generated'), { recursive: true });
  assert.equal(checkValidator(tmp).status, 0, 'the copy starts in step');
  const file = join(tmp, 'schemas', 'stages', 'plot.schema.json');
  const schema = JSON.parse(readFileSync(file, 'utf8'));
  schema.properties.columns.maximum = 99;
  writeFileSync(file, JSON.stringify(schema));
  const r = checkValidator(tmp);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /stale generated validator \(run npm run gen:validator\): src\/config\/generated\/validate-pipeline\.ts$/m);
});

/**
 * The named object types of TypeScript source `text` (`interface X {...}`, `type X = {...}`),
 * each with its top-level field names, sorted and joined: a brace-matching scan of the text
 * without comments (the typescript package ships no compiler API to parse with).
 */
function objectTypes(text: string): { name: string; fields: string }[] {
  const t = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const out: { name: string; fields: string }[] = [];
  for (const m of t.matchAll(/(?:interface\s+(\w+)(?:<[^>{]*>)?(?:\s+extends[^{]*)?|type\s+(\w+)(?:<[^>=]*>)?\s*=)\s*\{/g)) {
    let depth = 0, top = '';
    for (let i = m.index + m[0].length; i < t.length; i++) {
      const c = t[i]!;
      if ('{[('.includes(c)) depth++;
      else if ('}])'.includes(c) && depth-- === 0) break;
      top += depth === 0 ? c : depth === 1 && '{[('.includes(c) ? ';' : '';
    }
    const fields = top.split(/[;,\n]/).map((s) => /^\s*(?:readonly\s+)?(\w+)\??\s*:/.exec(s)?.[1]).filter((f): f is string => f !== undefined);
    out.push({ name: (m[1] ?? m[2])!, fields: [...new Set(fields)].sort().join(',') });
  }
  return out;
}

const tsFiles = (dir: string): string[] => readdirSync(dir).flatMap((f) => {
  const p = join(dir, f);
  return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith('.ts') ? [p] : [];
});

test('one fact, one place: no hand-kept type in src/ or stages/ repeats the fields of a type generated from a schema (use the generated one)', () => {
  const GEN = join(ROOT, 'src', 'config', 'generated');
  const generated = new Map<string, string>();
  for (const f of tsFiles(GEN).filter((f) => !f.endsWith('validate-pipeline.ts'))) {
    for (const o of objectTypes(readFileSync(f, 'utf8'))) if (o.fields.split(',').length >= 3) generated.set(o.fields, `${o.name} of ${f.slice(ROOT.length + 1)}`);
  }
  assert.ok(generated.has('early_stopping,epochs,lr_schedule,max_steps_per_epoch,optimizer,reduce_lr_on_plateau'), 'the scan finds the generated types');
  const copies = [...tsFiles(join(ROOT, 'src')).filter((f) => !f.startsWith(GEN)), ...tsFiles(join(ROOT, 'stages'))]
    .flatMap((f) => objectTypes(readFileSync(f, 'utf8')).filter((o) => generated.has(o.fields)).map((o) => `${f.slice(ROOT.length + 1)}: ${o.name} has the fields of ${generated.get(o.fields)}`));
  assert.deepEqual(copies, []);
});
