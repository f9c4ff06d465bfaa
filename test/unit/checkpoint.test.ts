/**
 * Per-epoch checkpoints: nothing leaks per epoch with checkpoints on (tfjs tensors and their
 * bytes stay flat), and the checkpoint files are complete after each epoch.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { BatchSource } from '../../src/data/batches.js';
import { initEngine } from '../../src/engine/backend.js';
import { buildClassifier } from '../../src/models/registry.js';
import { Rng } from '../../src/rng.js';
import { BestModel } from '../../src/train/best.js';
import { setTrainable } from '../../src/train/freeze.js';
import { trainPhase } from '../../src/train/loop.js';
import { buildOptimizer } from '../../src/train/optimizer.js';

function data(n: number, seed: number): BatchSource {
  const r = new Rng(seed);
  const split = { images: Uint8Array.from({ length: n * 64 }, () => r.int(256)), labels: Uint8Array.from({ length: n }, () => r.int(3)), count: n, height: 8, width: 8, channels: 1 };
  return new BatchSource(split, [{ normalize: { mean: [0.5], std: [0.25] } }], 16, { shuffle: true, seed });
}

test('no tensor leaks with checkpoints on: numTensors and tensor bytes flat from epoch 1 to epoch 4', async () => {
  await initEngine('wasm');
  const c = buildClassifier('mini_resnet', { height: 8, width: 8, channels: 1 }, 3, 'none', new Rng(7));
  setTrainable(c, 'all');
  const dir = mkdtempSync(join(tmpdir(), 'pipe-ckpt-'));
  const seen: { tensors: number; bytes: number }[] = [];
  const optimizer = buildOptimizer({ name: 'adam', lr: 0.01, weight_decay: 0, momentum: 0, nesterov: false });
  const r = await trainPhase({
    phase: 'unfreeze', classifier: c, train: data(32, 1), test: data(16, 2), epochs: 4, optimizer,
    // test_accuracy on random labels: the best epoch changes rarely, so the snapshot is not what varies.
    best: new BestModel('test_loss'), startEpoch: 0, startStep: 0, signal: new AbortController().signal,
    checkpointDir: dir, fingerprint: 'f',
    onIteration: () => {}, onEpoch: () => {},
    onCommit: () => void seen.push({ tensors: tf.memory().numTensors, bytes: tf.memory().numBytes }),
  });
  assert.equal(r.epochs.length, 4);
  assert.equal(seen.length, 4);
  // From epoch 2 on the best-model snapshot exists whatever the epoch, so counts must be equal.
  assert.deepEqual(seen.slice(1).map((s) => s.tensors), [seen[1]!.tensors, seen[1]!.tensors, seen[1]!.tensors], `numTensors after each checkpoint: ${seen.map((s) => s.tensors).join(', ')}`);
  assert.deepEqual(seen.slice(1).map((s) => s.bytes), [seen[1]!.bytes, seen[1]!.bytes, seen[1]!.bytes], `numBytes after each checkpoint: ${seen.map((s) => s.bytes).join(', ')}`);
  assert.deepEqual(readdirSync(dir).sort(), ['epoch-4', 'latest.json']);
  optimizer.dispose();
});
