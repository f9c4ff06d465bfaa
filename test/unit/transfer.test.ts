/**
 * The pieces of transfer learning within one pipeline: the download stage's class selection
 * (relabelled 0..k-1, names kept), a training stage's best model as a torch-named state_dict,
 * and build-model's `weights: upstream` loading it with a new head.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selectClasses } from '../../src/data/dataset.js';
import { initEngine } from '../../src/engine/backend.js';
import { buildClassifier, torchStateDict } from '../../src/models/registry.js';
import { Safetensors } from '../../src/models/safetensors.js';
import { Rng } from '../../src/rng.js';
import { allWeights } from '../../src/train/freeze.js';

test('classes: keeps the chosen classes in split order, relabelled in the order given, names kept', () => {
  const split = { images: Uint8Array.from([10, 11, 12, 13, 14, 15]), labels: Uint8Array.from([0, 3, 1, 3, 2, 1]), count: 6, height: 1, width: 1, channels: 1 };
  const r = selectClasses(['a', 'b', 'c', 'd'], [split], [3, 'b']);
  assert.deepEqual(r.classes, ['d', 'b']);
  assert.deepEqual([...r.splits[0]!.images], [11, 12, 13, 15]);
  assert.deepEqual([...r.splits[0]!.labels], [0, 1, 0, 1]);
  assert.throws(() => selectClasses(['a', 'b'], [split], [2]), /classes: 2 is not a class of this dataset; its classes are 0..1: a, b/);
  assert.throws(() => selectClasses(['a', 'b'], [split], [1, 'b']), /classes: 'b' \(1\) is listed twice/);
});

test('a classifier exported as a torch state_dict loads back into a new one: backbone identical, a new head', async () => {
  await initEngine('wasm');
  const inp = { height: 28, width: 28, channels: 1 };
  const a = buildClassifier('test_resnet18', inp, 5, 'none', new Rng(1));
  const file = join(mkdtempSync(join(tmpdir(), 'pipe-export-')), 'model.safetensors');
  writeFileSync(file, torchStateDict(a));
  const st = Safetensors.read(file);
  assert.ok(st.tensors.has('layer4.1.bn2.running_var') && st.tensors.has('fc.weight'), 'torchvision key names');
  const b = buildClassifier('test_resnet18', inp, 5, file, new Rng(2), { newHead: true });
  assert.deepEqual(b.reinitialized, ['head_fc']);
  const [wa, wb] = [a, b].map((c) => allWeights(c).map((w) => w.read().dataSync()));
  const n = allWeights(a).length;
  for (let i = 0; i < n - 2; i++) assert.deepEqual(wb![i], wa![i], `backbone weight ${i}`);
  assert.notDeepEqual(wb![n - 2], wa![n - 2], 'the head is new');
  const same = buildClassifier('test_resnet18', inp, 5, file, new Rng(2));
  assert.deepEqual(same.reinitialized, [], 'without newHead a same-size head is kept');
});
