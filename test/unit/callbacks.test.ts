/** ReduceLROnPlateau and EarlyStopping on scripted metric sequences (Keras semantics). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EarlyStopping, ReduceLROnPlateau } from '../../src/train/callbacks.js';

test('early stopping on test_accuracy (max from the metric registry), patience 2', () => {
  const es = new EarlyStopping({ monitor: 'test_accuracy', patience: 2, min_delta: 0 });
  const accs = [0.5, 0.6, 0.59, 0.6, 0.58, 0.9];
  const stops: boolean[] = [];
  for (const [i, a] of accs.entries()) if (stops.push(es.onEpochEnd(i + 1, { test_accuracy: a })) && stops.at(-1)) break;
  // Best 0.6 at epoch 2; epochs 3 and 4 do not improve (0.6 is not > 0.6) -> stop at epoch 4.
  assert.deepEqual(stops, [false, false, false, true]);
  assert.equal(es.stoppedEpoch, 4);
  assert.equal(es.mode, 'max');
});

test('min_delta: a gain smaller than it is no improvement', () => {
  const es = new EarlyStopping({ monitor: 'test_loss', patience: 1, min_delta: 100 });
  assert.equal(es.onEpochEnd(1, { test_loss: 5 }), false);
  assert.equal(es.onEpochEnd(2, { test_loss: 1 }), true);
});

test('reduce lr on plateau: factor 0.5, patience 2, on test_loss', () => {
  const rl = new ReduceLROnPlateau({ monitor: 'test_loss', factor: 0.5, patience: 2, min_delta: 0, cooldown: 0, min_lr: 0 });
  let lr = 1e-3;
  const lrs: number[] = [];
  for (const loss of [1.0, 0.9, 0.95, 0.93, 0.92, 0.94, 0.8]) {
    lr = rl.onEpochEnd({ test_loss: loss }, lr);
    lrs.push(lr);
  }
  // Best 0.9 at epoch 2; epochs 3, 4 no better -> halve after epoch 4; 5, 6 no better -> halve after 6.
  assert.deepEqual(lrs, [1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4]);
});

test('reduce lr: cooldown and min_lr', () => {
  // Keras decrements the cooldown counter before testing it, so cooldown N skips N-1 epochs.
  const rl = new ReduceLROnPlateau({ monitor: 'train_loss', factor: 0.1, patience: 1, min_delta: 0, cooldown: 2, min_lr: 1e-4 });
  let lr = 1e-2;
  const lrs: number[] = [];
  for (const loss of [1, 1, 1, 1, 1, 1]) lrs.push((lr = rl.onEpochEnd({ train_loss: loss }, lr)));
  // epoch 2 reduce (1e-3), epoch 3 cooldown, epoch 4 reduce (1e-4 = min), then stays.
  assert.deepEqual(lrs.map((v) => Number(v.toPrecision(6))), [1e-2, 1e-3, 1e-3, 1e-4, 1e-4, 1e-4]);
});

test('a missing monitor names the available metrics', () => {
  const es = new EarlyStopping({ monitor: 'test_accuracy', patience: 1, min_delta: 0 });
  assert.throws(() => es.onEpochEnd(1, { train_loss: 1 }), /monitor 'test_accuracy' is not among the epoch metrics: train_loss/);
});
