/**
 * ReduceLROnPlateau and EarlyStopping with Keras semantics on one monitor base.
 * Anchor: keras/src/callbacks/monitor_callback.py, early_stopping.py, reduce_lr_on_plateau.py.
 * `mode` comes from the config or from the metric registry (accuracy: max, loss: min), never
 * from guessing at the name.
 */

/** Per-epoch metric names a callback can monitor, with their direction. */
export const METRIC_MODES = { train_loss: 'min', test_loss: 'min', train_accuracy: 'max', test_accuracy: 'max' } as const;

/** A metric name of METRIC_MODES. */
export type MonitorName = keyof typeof METRIC_MODES;

/** Base: holds monitor, mode, minDelta, baseline and the best value seen. */
export class MonitorBase {
  readonly mode: 'min' | 'max';
  best: number;

  constructor(
    readonly monitor: MonitorName,
    mode: 'min' | 'max' | undefined,
    readonly minDelta: number,
    readonly baseline?: number,
  ) {
    this.mode = mode ?? METRIC_MODES[monitor];
    this.best = baseline ?? (this.mode === 'min' ? Infinity : -Infinity);
  }

  /** True when `value` beats the best by more than minDelta. */
  isImprovement(value: number): boolean {
    return this.mode === 'min' ? value < this.best - this.minDelta : value > this.best + this.minDelta;
  }

  protected value(logs: Record<string, number>): number {
    const v = logs[this.monitor];
    if (v === undefined) throw new Error(`monitor '${this.monitor}' is not among the epoch metrics: ${Object.keys(logs).join(', ')}`);
    return v;
  }
}

/** Stops when the monitor has not improved for `patience` epochs. */
export class EarlyStopping extends MonitorBase {
  wait = 0;
  stoppedEpoch: number | undefined;

  constructor(cfg: { monitor: MonitorName; mode?: 'min' | 'max'; patience: number; min_delta: number; baseline?: number }) {
    super(cfg.monitor, cfg.mode, cfg.min_delta, cfg.baseline);
    this.patience = cfg.patience;
  }
  readonly patience: number;

  /** Call after each epoch; returns true when training should stop. */
  onEpochEnd(epoch: number, logs: Record<string, number>): boolean {
    const v = this.value(logs);
    if (this.isImprovement(v)) {
      this.best = v;
      this.wait = 0;
      return false;
    }
    this.wait += 1;
    if (this.wait >= this.patience) {
      this.stoppedEpoch = epoch;
      return true;
    }
    return false;
  }
}

/** Multiplies the learning rate by `factor` after `patience` epochs without improvement. */
export class ReduceLROnPlateau extends MonitorBase {
  wait = 0;
  cooldownCounter = 0;
  readonly factor: number;
  readonly patience: number;
  readonly cooldown: number;
  readonly minLr: number;

  constructor(cfg: { monitor: MonitorName; mode?: 'min' | 'max'; factor: number; patience: number; min_delta: number; cooldown: number; min_lr: number }) {
    super(cfg.monitor, cfg.mode, cfg.min_delta);
    this.factor = cfg.factor;
    this.patience = cfg.patience;
    this.cooldown = cfg.cooldown;
    this.minLr = cfg.min_lr;
  }

  /** Call after each epoch with the current lr; returns the lr for the next epoch. */
  onEpochEnd(logs: Record<string, number>, lr: number): number {
    const v = this.value(logs);
    if (this.cooldownCounter > 0) {
      this.cooldownCounter -= 1;
      this.wait = 0;
    }
    if (this.isImprovement(v)) {
      this.best = v;
      this.wait = 0;
      return lr;
    }
    if (this.cooldownCounter > 0) return lr;
    this.wait += 1;
    if (this.wait >= this.patience && lr > this.minLr) {
      this.cooldownCounter = this.cooldown;
      this.wait = 0;
      return Math.max(lr * this.factor, this.minLr);
    }
    return lr;
  }
}
