/**
 * Tracks the best epoch across both training phases on one monitor and keeps a copy of every
 * weight (BN moving statistics included) from that epoch, so the best model, not the last,
 * is what evaluate sees. Anchor: Keras EarlyStopping(restore_best_weights=True).
 */
import * as tf from '@tensorflow/tfjs';
import type { EpochLogs, MonitorName, TrainingCallback, TrainingContext } from './callbacks.js';
import { METRIC_MODES } from './callbacks.js';
import { allWeights } from './freeze.js';
import type { Classifier } from '../models/registry.js';

/** Best-model state, shared by the training stages of one run. */
export class BestModel {
  readonly mode: 'min' | 'max';
  value: number | undefined;
  epoch: number | undefined;
  phase: 'freeze' | 'unfreeze' | undefined;
  private snapshot: tf.Tensor[] | undefined;

  constructor(readonly monitor: MonitorName, mode?: 'min' | 'max') {
    this.mode = mode ?? METRIC_MODES[monitor];
  }

  /** Records epoch `epoch` if it beats the best so far; returns true when it did. */
  update(c: Classifier, epoch: number, phase: 'freeze' | 'unfreeze', logs: Record<string, number>): boolean {
    const v = logs[this.monitor];
    if (v === undefined || !Number.isFinite(v)) return false;
    if (this.value !== undefined && !(this.mode === 'min' ? v < this.value : v > this.value)) return false;
    tf.dispose(this.snapshot ?? []);
    this.snapshot = allWeights(c).map((w) => tf.keep(tf.clone(w.read())));
    Object.assign(this, { value: v, epoch, phase });
    return true;
  }

  /** Writes the best weights back into the model (no-op before the first epoch). */
  restore(c: Classifier): void {
    if (!this.snapshot) return;
    const ws = allWeights(c);
    ws.forEach((w, i) => w.write(tf.clone(this.snapshot![i]!)));
  }

  /** The best epoch's weights (not copies; empty before the first epoch). */
  snapshotTensors(): tf.Tensor[] {
    return this.snapshot ?? [];
  }

  /** Restores state saved in a checkpoint; takes ownership of `tensors`. */
  restoreState(s: { value?: number; epoch?: number; phase?: 'freeze' | 'unfreeze' }, tensors: tf.Tensor[]): void {
    tf.dispose(this.snapshot ?? []);
    this.snapshot = tensors.length ? tensors.map((t) => tf.keep(t)) : undefined;
    Object.assign(this, { value: s.value, epoch: s.epoch, phase: s.phase });
  }

  dispose(): void {
    tf.dispose(this.snapshot ?? []);
    this.snapshot = undefined;
  }
}

/** Updates a BestModel after each epoch (Keras ModelCheckpoint(save_best_only=True), in memory). */
export class BestModelCallback implements TrainingCallback {
  constructor(readonly best: BestModel) {}

  onEpochEnd(epoch: number, logs: EpochLogs, ctx: TrainingContext): void {
    this.best.update(ctx.classifier, epoch, ctx.phase, logs);
  }
}
