/**
 * ReduceLROnPlateau (torch's semantics) and EarlyStopping (the recipe's) on hand-worked metric
 * sequences; torch's own outputs on scripted sequences are in parity.test.ts (d).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EarlyStopping, ReduceLROnPlateau, type PlateauConfig } from '../../src/train/callbacks.js';

const plateau = (over: Partial<PlateauConfig>): ReduceLROnPlateau =>
  new ReduceLROnPlateau({ monitor: 'test_loss', factor: 0.1, patience: 10, threshold: 1e-4, threshold_mode: 'rel', cooldown: 0, min_lr: 0, eps: 1e-8, ...over });

test('early stopping on test_accuracy (max from the metric registry), patience 2', () => {
  const es = new EarlyStopping({ monitor: 'test_accuracy', patience: 2, min_delta: 0 });
  const accs = [0.5, 0.6, 0.59, 0.6, 0.58, 0.9];
  const stops: boolean[] = [];
  for (const [i, a] of accs.entries()) if (stops.push(es.update(i + 1, { test_accuracy: a })) && stops.at(-1)) break;
  // Best 0.6 at epoch 2; epochs 3 and 4 do not improve (0.6 is not > 0.6) -> stop at epoch 4.
  assert.deepEqual(stops, [false, false, false, true]);
  assert.equal(es.stoppedEpoch, 4);
  assert.equal(es.mode, 'max');
});

test('early stopping min_delta: a gain smaller than it is no improvement', () => {
  const es = new EarlyStopping({ monitor: 'test_loss', patience: 1, min_delta: 100 });
  assert.equal(es.update(1, { test_loss: 5 }), false);
  assert.equal(es.update(2, { test_loss: 1 }), true);
});

test('reduce lr on plateau counts patience as torch does: the lr drops on the (patience + 1)-th bad epoch', () => {
  const rl = plateau({ factor: 0.5, patience: 2 });
  let lr = 1;
  const lrs = [1.0, 0.9, 0.95, 0.96, 0.97, 0.8, 0.81, 0.82, 0.83].map((v) => (lr = rl.step({ test_loss: v }, lr)));
  // Best 0.9 at epoch 2; epochs 3, 4, 5 are bad: the third (> patience) halves after epoch 5; again after 9.
  assert.deepEqual(lrs, [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25]);
});

test('reduce lr: the default threshold is relative 1e-4, not an absolute delta', () => {
  const rl = plateau({ patience: 0 });
  assert.equal(rl.step({ test_loss: 1 }, 1), 1);
  // 0.99995 is better than 1 by 5e-5 < 1e-4 * 1: no improvement, so with patience 0 the lr drops.
  assert.equal(rl.step({ test_loss: 0.99995 }, 1), 0.1);
});

test('reduce lr: cooldown holds the bad-epoch count at 0; min_lr floors the lr; eps skips tiny reductions', () => {
  const rl = plateau({ monitor: 'train_loss', patience: 0, cooldown: 2, min_lr: 1e-4 });
  let lr = 1e-2;
  const lrs = [1, 1, 1, 1, 1, 1, 1].map((v) => (lr = rl.step({ train_loss: v }, lr)));
  // epoch 1 improves; 2 reduces (1e-3) and starts cooldown 2; 3, 4 cooldown; 5 reduces to min 1e-4; 6, 7 cooldown.
  assert.deepEqual(lrs.map((v) => Number(v.toPrecision(6))), [1e-2, 1e-3, 1e-3, 1e-3, 1e-4, 1e-4, 1e-4]);
  const tiny = plateau({ patience: 0, eps: 1e-8 });
  tiny.step({ test_loss: 1 }, 1e-8);
  assert.equal(tiny.step({ test_loss: 1 }, 1e-8), 1e-8, 'a reduction of 9e-9 <= eps is skipped');
});

test('a missing monitor names the available metrics', () => {
  const es = new EarlyStopping({ monitor: 'test_accuracy', patience: 1, min_delta: 0 });
  assert.throws(() => es.update(1, { train_loss: 1 }), /monitor 'test_accuracy' is not among the epoch metrics: train_loss/);
});
