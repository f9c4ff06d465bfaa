/**
 * `pipe predict` as a user runs it (real `node bin/pipe.js` processes): `--top-k` values that are
 * not a whole number >= 1 are usage errors (exit 2, no NaN); one unreadable image among several
 * leaves the others predicted (exit 1), all unreadable is exit 2 with nothing on stdout.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { initEngine } from '../../src/engine/backend.js';
import { saveClassifier } from '../../src/models/model-files.js';
import { tinyClassifier } from '../unit/tiny-model.js';
import { makeTree, runCliIn } from '../utils.js';

const root = makeTree({});
const model = join(root, 'best-model');

before(async () => {
  await initEngine('wasm');
  await saveClassifier(tinyClassifier(1, 4), model, { classes: ['zero', 'one', 'two'], preprocess: { test: [], input_size: [8, 8] } });
  for (const [name, v] of [['a.png', 40], ['b.png', 200]] as const) {
    await sharp(Buffer.alloc(64, v), { raw: { width: 8, height: 8, channels: 1 } }).toColourspace('b-w').png().toFile(join(root, name));
  }
  writeFileSync(join(root, 'broken.png'), 'not an image');
});

test('--top-k abc, 0, -1, 1.5: a usage error naming the option, exit 2, nothing on stdout, no NaN', async () => {
  for (const k of ['abc', '0', '-1', '1.5']) {
    const r = await runCliIn(root, ['predict', 'best-model', 'a.png', '--top-k', k]);
    assert.equal(r.exitCode, 2, `--top-k ${k}: ${r.stderr}`);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, `error: option '--top-k <n>' argument '${k}' is invalid. expected a whole number >= 1.\n`);
  }
});

test('one unreadable image among several: the others are predicted, its own error line, exit 1; all unreadable: exit 2', async () => {
  const r = await runCliIn(root, ['predict', 'best-model', 'a.png', 'broken.png', 'b.png', '--top-k', '2']);
  assert.equal(r.exitCode, 1, r.stderr);
  assert.deepEqual(r.stdout.split('\n').filter((l) => !l.startsWith(' ')), [`model: <root>/best-model`, 'a.png', 'b.png', '']);
  assert.equal(r.stdout.split('\n').filter((l) => /^ {3}[12]\. (zero|one|two) +\d+\.\d\d%$/.test(l)).length, 4, r.stdout);
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('pipe: '));
  assert.equal(errors.length, 1, r.stderr);
  assert.match(errors[0]!, /^pipe: cannot use image 'broken\.png': not a readable image \(/);

  const all = await runCliIn(root, ['predict', 'best-model', 'broken.png', 'missing.png']);
  assert.equal(all.exitCode, 2, all.stderr);
  assert.equal(all.stdout, '');
  assert.deepEqual(all.stderr.split('\n').filter((l) => l.startsWith('pipe: ')).map((l) => l.replace(/ \(.*/, '')), [
    `pipe: cannot use image 'broken.png': not a readable image`,
    `pipe: cannot use image 'missing.png': no such file`,
  ]);
});
