/**
 * Freeze contract on mini_resnet with synthetic data: a frozen backbone's weights, BatchNorm
 * moving statistics included, are bit-identical after training; unfreezing grows the trainable
 * set; partial unfreezing keeps earlier blocks frozen.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import { BatchSource } from '../../src/data/batches.js';
import { initEngine } from '../../src/engine/backend.js';
import { buildClassifier, type Classifier } from '../../src/models/registry.js';
import { Rng } from '../../src/rng.js';
import { BestModel } from '../../src/train/best.js';
import { countTrainable, setTrainable } from '../../src/train/freeze.js';
import { trainPhase } from '../../src/train/loop.js';
import { buildOptimizer } from '../../src/train/optimizer.js';

function digestOf(ws: tf.LayerVariable[]): Map<string, string> {
  return new Map(ws.map((w) => [w.name, createHash('sha256').update(new Uint8Array((w.read().dataSync() as Float32Array).buffer)).digest('hex')]));
}

function data(n: number, seed: number) {
  const r = new Rng(seed);
  const split = { images: Uint8Array.from({ length: n * 64 }, () => r.int(256)), labels: Uint8Array.from({ length: n }, () => r.int(3)), count: n, height: 8, width: 8, channels: 1 };
  return new BatchSource(split, [{ normalize: { mean: [0.5], std: [0.25] } }], 16, { shuffle: true, seed });
}

async function train(c: Classifier, phase: 'freeze' | 'unfreeze', epochs = 1) {
  return trainPhase({
    phase, classifier: c, train: data(48, 1), test: data(16, 2), epochs, optimizer: buildOptimizer({ name: 'adam', lr: 0.01, weight_decay: 1e-4, momentum: 0, nesterov: false }),
    best: new BestModel('test_accuracy'), startEpoch: 0, startStep: 0, signal: new AbortController().signal, onIteration: () => {}, onEpoch: () => {},
  });
}

test('freeze: backbone weights and BN statistics unchanged, head trained; unfreeze changes them', async () => {
  await initEngine('wasm');
  const c = buildClassifier('mini_resnet', { height: 8, width: 8, channels: 1 }, 3, 'none', new Rng(5));
  setTrainable(c, 'none');
  assert.equal(countTrainable(c), 64 * 3 + 3);
  const before = digestOf(c.backbone.model.weights);
  const headBefore = digestOf(c.head.weights);
  assert.ok([...before.keys()].some((k) => k.includes('moving_mean')), 'BN moving statistics are among the checked weights');
  await train(c, 'freeze');
  assert.deepEqual(digestOf(c.backbone.model.weights), before);
  assert.notDeepEqual(digestOf(c.head.weights), headBefore);

  setTrainable(c, 'all');
  assert.equal(countTrainable(c), c.backbone.model.countParams() + c.head.countParams() - movingStatsCount(c));
  await train(c, 'unfreeze');
  const after = digestOf(c.backbone.model.weights);
  for (const [k, v] of before) assert.notEqual(after.get(k), v, `${k} should change once unfrozen`);
});

function movingStatsCount(c: Classifier): number {
  return c.backbone.model.weights.filter((w) => /moving_(mean|variance)/.test(w.name)).reduce((n, w) => n + (w.shape as number[]).reduce((a, b) => a * b, 1), 0);
}

test('partial unfreeze from layer3 keeps stem, layer1 and layer2 frozen', async () => {
  await initEngine('wasm');
  const c = buildClassifier('mini_resnet', { height: 8, width: 8, channels: 1 }, 3, 'none', new Rng(6));
  setTrainable(c, 'layer3');
  const before = digestOf(c.backbone.model.weights);
  await train(c, 'unfreeze');
  const after = digestOf(c.backbone.model.weights);
  for (const [k, v] of before) {
    if (/^(stem|layer1|layer2)_/.test(k)) assert.equal(after.get(k), v, `${k} must stay frozen`);
    else if (/^layer3_/.test(k)) assert.notEqual(after.get(k), v, `${k} must train`);
  }
  assert.throws(() => setTrainable(c, 'layer9'), /unfreeze.from 'layer9' is not a block of mini_resnet; blocks: stem, layer1, layer2, layer3/);
});

test('no tensor leaks: tf.memory().numTensors is the same after epoch 1 and epoch 3', async () => {
  await initEngine('wasm');
  const c = buildClassifier('mini_resnet', { height: 8, width: 8, channels: 1 }, 3, 'none', new Rng(7));
  setTrainable(c, 'all');
  const counts: number[] = [];
  const r = await trainPhase({
    phase: 'unfreeze', classifier: c, train: data(32, 1), test: data(16, 2), epochs: 3, optimizer: buildOptimizer({ name: 'adam', lr: 0.01, weight_decay: 0, momentum: 0, nesterov: false }),
    best: new BestModel('test_loss'), startEpoch: 0, startStep: 0, signal: new AbortController().signal, onIteration: () => {}, onEpoch: () => counts.push(tf.memory().numTensors),
  });
  assert.equal(r.epochs.length, 3);
  assert.equal(counts[2], counts[0], `numTensors per epoch: ${counts.join(', ')}`);
});
