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
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
