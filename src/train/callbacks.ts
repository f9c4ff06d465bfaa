/**
 * Training callbacks with Keras 3's hooks (keras/src/callbacks/callback.py): the loop calls
 * `onTrainBegin`, then per epoch `onEpochBegin`, per batch `onBatchBegin`/`onBatchEnd`, then
 * `onEpochEnd`, and finally `onTrainEnd`, on every callback in list order. The learning rate
 * lives in one place, the optimizer's `LearningRate` (optimizer.ts); callbacks change it there.
 *
 * - ReduceLROnPlateau: exactly torch.optim.lr_scheduler.ReduceLROnPlateau (PyTorch 1.13).
 * - EarlyStopping: the recipe's (no torch counterpart; Keras 3's EarlyStopping without
 *   restore_best_weights): stop after `patience` epochs in a row without an improvement larger
 *   than `min_delta` (absolute).
 * - CosineSchedule, BestModelCallback (best.ts), CheckpointCallback (checkpoint.ts).
 * `mode` comes from the config or from the metric registry (accuracy: max, loss: min), never
 * from guessing at the name. Anchor: keras/src/callbacks/monitor_callback.py.
 */
import type { FreezeTrainStageParameters } from '../config/generated/freeze-train.js';
import type { Classifier } from '../models/registry.js';
import type { Optimizer } from './optimizer.js';

/** Per-epoch metric names a callback can monitor, with their direction. */
export const METRIC_MODES = { train_loss: 'min', test_loss: 'min', train_accuracy: 'max', test_accuracy: 'max' } as const;

/** A metric name of METRIC_MODES. */
export type MonitorName = keyof typeof METRIC_MODES;

/** What the loop shares with its callbacks (Keras: `callback.model`). */
export interface TrainingContext {
  phase: 'freeze' | 'unfreeze';
  classifier: Classifier;
  optimizer: Optimizer;
  /** Global step (0-based, across phases) of the next batch, and the one the phase started at. */
  step: number;
  startStep: number;
  /** Steps this phase runs when it is not stopped early. */
  totalSteps: number;
  /** Set by a callback to end training after the current epoch (Keras `model.stop_training`). */
  stopTraining: boolean;
}

/** Per-epoch metrics (EpochRecord's numbers) by name. */
export type EpochLogs = Record<string, number>;

/** A training callback: every hook optional. `epoch` is global and 1-based. */
export interface TrainingCallback {
  onTrainBegin?(ctx: TrainingContext): void | Promise<void>;
  onEpochBegin?(epoch: number, ctx: TrainingContext): void | Promise<void>;
  onBatchBegin?(batch: number, ctx: TrainingContext): void | Promise<void>;
  onBatchEnd?(batch: number, logs: { loss: number }, ctx: TrainingContext): void | Promise<void>;
  onEpochEnd?(epoch: number, logs: EpochLogs, ctx: TrainingContext): void | Promise<void>;
  onTrainEnd?(ctx: TrainingContext): void | Promise<void>;
}

function monitored(monitor: string, logs: EpochLogs): number {
  const v = logs[monitor];
  if (v === undefined) throw new Error(`monitor '${monitor}' is not among the epoch metrics: ${Object.keys(logs).join(', ')}`);
  return v;
}

/**
 * The `early_stopping:` block, validated (defaults filled): the type generated from its schema
 * (schemas/stages/train-common.schema.json `earlyStopping`), where its fields, defaults and docs live.
 */
export type EarlyStoppingConfig = NonNullable<FreezeTrainStageParameters['early_stopping']>;

/** Stops when the monitor has not improved by more than min_delta for `patience` epochs. */
export class EarlyStopping implements TrainingCallback {
  readonly monitor: MonitorName;
  readonly mode: 'min' | 'max';
  readonly patience: number;
  readonly minDelta: number;
  best: number;
  wait = 0;
  stoppedEpoch: number | undefined;

  constructor(cfg: EarlyStoppingConfig) {
    this.monitor = cfg.monitor;
    this.mode = cfg.mode ?? METRIC_MODES[cfg.monitor];
    this.patience = cfg.patience;
    this.minDelta = cfg.min_delta;
    this.best = cfg.baseline ?? (this.mode === 'min' ? Infinity : -Infinity);
  }

  /** Records epoch `epoch`'s logs; returns true when training should stop. */
  update(epoch: number, logs: EpochLogs): boolean {
    const v = monitored(this.monitor, logs);
    if (this.mode === 'min' ? v < this.best - this.minDelta : v > this.best + this.minDelta) {
      this.best = v;
      this.wait = 0;
      return false;
    }
    this.wait += 1;
    if (this.wait < this.patience) return false;
    this.stoppedEpoch = epoch;
    return true;
  }

  onEpochEnd(epoch: number, logs: EpochLogs, ctx: TrainingContext): void {
    if (this.update(epoch, logs)) ctx.stopTraining = true;
  }

  state(): { best: number; wait: number } {
    return { best: this.best, wait: this.wait };
  }
}

/**
 * The `reduce_lr_on_plateau:` block (torch's arguments), validated (defaults filled): the type
 * generated from its schema (schemas/stages/train-common.schema.json `reduceLrOnPlateau`), where
 * its fields, defaults and docs live (an omitted `mode` follows the metric; torch: always 'min').
 */
export type PlateauConfig = NonNullable<FreezeTrainStageParameters['reduce_lr_on_plateau']>;

/** The `lr_schedule:` block, validated: generated from schemas/stages/train-common.schema.json `lrSchedule`. */
export type LrScheduleConfig = NonNullable<FreezeTrainStageParameters['lr_schedule']>;

/**
 * torch.optim.lr_scheduler.ReduceLROnPlateau (PyTorch 1.13, torch/optim/lr_scheduler.py), step for
 * step: after each epoch, an improvement (rel: v < best * (1 - threshold) for min, v > best *
 * (1 + threshold) for max; abs: v < best - threshold / v > best + threshold) resets the bad-epoch
 * count, else it grows; during cooldown it is held at 0; when it exceeds `patience` the lr
 * becomes max(lr * factor, min_lr), unless that changes it by eps or less, and cooldown starts.
 * With a schedule (lr_schedule), the schedule's base rate is what it lowers.
 */
export class ReduceLROnPlateau implements TrainingCallback {
  readonly cfg: PlateauConfig;
  readonly mode: 'min' | 'max';
  best: number;
  numBadEpochs = 0;
  cooldownCounter = 0;

  constructor(cfg: PlateauConfig) {
    this.cfg = cfg;
    this.mode = cfg.mode ?? METRIC_MODES[cfg.monitor];
    this.best = this.mode === 'min' ? Infinity : -Infinity;
  }

  private isBetter(a: number): boolean {
    const { threshold: t, threshold_mode: tm } = this.cfg;
    if (this.mode === 'min') return tm === 'rel' ? a < this.best * (1 - t) : a < this.best - t;
    return tm === 'rel' ? a > this.best * (t + 1) : a > this.best + t;
  }

  /** torch's `step(metrics)`: returns the lr for the next epoch given the current one. */
  step(logs: EpochLogs, lr: number): number {
    const current = monitored(this.cfg.monitor, logs);
    if (this.isBetter(current)) {
      this.best = current;
      this.numBadEpochs = 0;
    } else this.numBadEpochs += 1;
    if (this.cooldownCounter > 0) {
      this.cooldownCounter -= 1;
      this.numBadEpochs = 0;
    }
    if (this.numBadEpochs > this.cfg.patience) {
      const next = Math.max(lr * this.cfg.factor, this.cfg.min_lr);
      if (lr - next > this.cfg.eps) lr = next;
      this.cooldownCounter = this.cfg.cooldown;
      this.numBadEpochs = 0;
    }
    return lr;
  }

  onEpochEnd(_epoch: number, logs: EpochLogs, ctx: TrainingContext): void {
    ctx.optimizer.lr.base = this.step(logs, ctx.optimizer.lr.base);
  }

  state(): { best: number; numBadEpochs: number; cooldownCounter: number } {
    return { best: this.best, numBadEpochs: this.numBadEpochs, cooldownCounter: this.cooldownCounter };
  }
}

/**
 * Per-step cosine decay from the base lr to `min_lr` over all the phase's steps (Loshchilov &
 * Hutter 2017, SGDR, without restarts; Keras CosineDecay; torch CosineAnnealingLR's closed form
 * stepped per batch).
 */
export class CosineSchedule implements TrainingCallback {
  constructor(readonly minLr: number) {}

  private set(ctx: TrainingContext): void {
    const t = (ctx.step - ctx.startStep) / ctx.totalSteps;
    const min = this.minLr;
    ctx.optimizer.lr.schedule((base) => min + (base - min) * 0.5 * (1 + Math.cos(Math.PI * t)));
  }

  onEpochBegin(_epoch: number, ctx: TrainingContext): void {
    this.set(ctx);
  }

  onBatchBegin(_batch: number, ctx: TrainingContext): void {
    this.set(ctx);
  }

  onTrainEnd(ctx: TrainingContext): void {
    ctx.optimizer.lr.schedule(undefined);
  }
}
