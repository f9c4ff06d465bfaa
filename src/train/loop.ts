/**
 * The training loop shared by freeze-train and unfreeze-train: one phase, epoch by epoch, with
 * per-iteration loss and per-epoch train/test metrics; everything else (schedule, best model,
 * ReduceLROnPlateau, EarlyStopping, checkpoints) is a callback with Keras 3's hooks
 * (callbacks.ts). The phases differ only in the trainable set and their defaults.
 */
import * as tf from '@tensorflow/tfjs';
import type { BatchSource } from '../data/batches.js';
import { fusedApply } from '../models/fused-forward.js';
import type { Classifier } from '../models/registry.js';
import { BestModelCallback, type BestModel } from './best.js';
import { CosineSchedule, type EarlyStopping, type EpochLogs, type LrScheduleConfig, type ReduceLROnPlateau, type TrainingCallback, type TrainingContext } from './callbacks.js';
import { CheckpointCallback } from './checkpoint-callback.js';
import { evaluateSplit } from './evaluate.js';
import { countTrainable, trainableVariables } from './freeze.js';
import type { Optimizer } from './optimizer.js';

/** Per-epoch record; `epoch` is global across phases, 1-based. */
export interface EpochRecord {
  epoch: number;
  phase: 'freeze' | 'unfreeze';
  train_loss: number;
  train_accuracy: number;
  test_loss: number;
  test_accuracy: number;
  /** Learning rate used during the epoch. */
  lr: number;
  /** Wall time of the epoch's training part, s. */
  epoch_seconds: number;
  /** Training throughput, images/s. */
  images_per_second: number;
  /** Process resident set size at the end of the epoch, bytes. */
  rss_bytes: number;
  /** Bytes held by tfjs tensors at the end of the epoch. */
  tensor_bytes: number;
  trainable_params: number;
}

/** Per-iteration progress. `step` is the global iteration across phases (0-based). */
export interface IterationInfo {
  step: number;
  epoch: number;
  batch: number;
  batches: number;
  loss: number;
  imagesPerSecond: number;
}

/** Everything one phase needs. */
export interface PhaseOptions {
  phase: 'freeze' | 'unfreeze';
  classifier: Classifier;
  train: BatchSource;
  test: BatchSource;
  epochs: number;
  maxStepsPerEpoch?: number;
  optimizer: Optimizer;
  plateau?: ReduceLROnPlateau;
  /**
   * Per-step schedule within the phase: cosine decay from the epoch's base lr to `min_lr` over
   * all the phase's steps (Loshchilov & Hutter 2017, SGDR, without restarts; Keras CosineDecay).
   */
  schedule?: LrScheduleConfig;
  early?: EarlyStopping;
  best: BestModel;
  /** More callbacks, called after the built-in ones (schedule, best, plateau, early stopping, checkpoint). */
  callbacks?: TrainingCallback[];
  /** Folder for per-epoch checkpoints of this phase; none when undefined. */
  checkpointDir?: string;
  /** Continue from the checkpoint in checkpointDir, if there is one with this fingerprint. */
  resume?: boolean;
  /** Identifies the configuration a checkpoint belongs to (e.g. the stage params as JSON). */
  fingerprint?: string;
  /** Called once when the phase continues from a checkpoint, with the epochs it will not redo. */
  onResume?(epochsDone: number): void;
  /**
   * What the tracker may record, handed over only once it is durable: after each epoch's
   * checkpoint is written, that epoch's per-iteration losses (global steps) and its record; on
   * resuming from a checkpoint, everything the checkpoint holds for this phase (a kill may have
   * come before it was all delivered: the receiver drops points it already has). Points of an
   * epoch that a kill interrupts are never handed over, so a resumed run logs each step once.
   * `resumed` is true for what the checkpoint holds (handed over again), false for new epochs.
   * Without `checkpointDir` it is called at the same places, right after `onEpoch`.
   */
  onCommit?(c: { losses: { step: number; loss: number }[]; epochs: EpochRecord[]; resumed: boolean }): void | Promise<void>;
  /** Global epoch and step this phase starts after. */
  startEpoch: number;
  startStep: number;
  signal: AbortSignal;
  onIteration(i: IterationInfo): void;
  onEpoch(r: EpochRecord): void;
}

/** What a phase did. */
export interface PhaseResult {
  epochs: EpochRecord[];
  iterationLosses: number[];
  stoppedEarly: boolean;
  lastEpoch: number;
  lastStep: number;
  /** Set when the phase continued from a checkpoint: the epochs it did not redo. */
  resumedEpochs?: number;
}

/** A non-finite loss stopped training. */
export class NonFiniteLossError extends Error {}

/** The built-in callbacks of a phase, in the order they run, then `o.callbacks`. */
function callbacksOf(o: PhaseOptions, checkpoint: CheckpointCallback | undefined): TrainingCallback[] {
  return [
    ...(o.schedule ? [new CosineSchedule(o.schedule.min_lr)] : []),
    new BestModelCallback(o.best),
    ...(o.plateau ? [o.plateau] : []),
    ...(o.early ? [o.early] : []),
    ...(checkpoint ? [checkpoint] : []),
    ...(o.callbacks ?? []),
  ];
}

/**
 * Runs one phase.
 * @throws NonFiniteLossError naming epoch, batch and lr (train loss) or the epoch (test loss);
 *   an AbortError when `signal` aborts.
 */
export async function trainPhase(o: PhaseOptions): Promise<PhaseResult> {
  const c = o.classifier;
  const vars = trainableVariables(c);
  const trainableParams = countTrainable(c);
  const result: PhaseResult = { epochs: [], iterationLosses: [], stoppedEarly: false, lastEpoch: o.startEpoch, lastStep: o.startStep };
  const perEpoch = Math.min(o.train.batchesPerEpoch, o.maxStepsPerEpoch ?? Infinity);
  const ctx: TrainingContext = { phase: o.phase, classifier: c, optimizer: o.optimizer, step: o.startStep, startStep: o.startStep, totalSteps: perEpoch * o.epochs, stopTraining: false };
  const checkpoint = o.checkpointDir ? new CheckpointCallback(o, result) : undefined;
  const callbacks = callbacksOf(o, checkpoint);
  const each = async (hook: (cb: TrainingCallback) => void | Promise<void> | undefined): Promise<void> => {
    for (const cb of callbacks) await hook(cb);
  };
  const firstEpoch = (o.resume && (await checkpoint?.restore(ctx))) || 0;
  if (result.resumedEpochs !== undefined) {
    await o.onCommit?.({ losses: result.iterationLosses.map((loss, i) => ({ step: o.startStep + i, loss })), epochs: result.epochs, resumed: true });
    if (result.stoppedEarly) return result;
  }
  await each((cb) => cb.onTrainBegin?.(ctx));
  for (let e = firstEpoch; e < o.epochs; e++) {
    const epoch = o.startEpoch + e + 1;
    await each((cb) => cb.onEpochBegin?.(epoch, ctx));
    const epochLr = o.optimizer.lr.value;
    const t0 = performance.now();
    let lossSum = 0, correct = 0, seen = 0, b = 0;
    for await (const batch of o.train.epochAsync(epoch - 1, perEpoch)) {
      // NOTE: wasm kernels and data() resolve without returning to the event loop, so signal
      // handlers (Ctrl-C) and timers would never run during training without this yield.
      await new Promise((r) => setImmediate(r));
      o.signal.throwIfAborted();
      await each((cb) => cb.onBatchBegin?.(b + 1, ctx));
      const tb = performance.now();
      const x = tf.tensor4d(batch.x, batch.shape);
      const y = tf.tensor1d(batch.y, 'int32');
      let predicted: tf.Tensor | undefined;
      const loss = o.optimizer.step(() => {
        const logits = c.head.apply(fusedApply(c.backbone.model, x, true), { training: true }) as tf.Tensor2D;
        predicted = tf.keep(tf.argMax(logits, 1));
        return tf.losses.softmaxCrossEntropy(tf.oneHot(y, c.numClasses), logits) as tf.Scalar;
      }, vars);
      const lv = (await loss.data())[0]!;
      const pd = await predicted!.data();
      tf.dispose([x, y, loss, predicted!]);
      if (!Number.isFinite(lv)) throw new NonFiniteLossError(`training loss is ${lv} at epoch ${epoch}, batch ${b + 1} (lr ${o.optimizer.lr.value}); lower the learning rate`);
      for (let i = 0; i < batch.n; i++) if (pd[i] === batch.y[i]) correct++;
      lossSum += lv * batch.n;
      seen += batch.n;
      result.iterationLosses.push(lv);
      o.onIteration({ step: ctx.step, epoch, batch: ++b, batches: perEpoch, loss: lv, imagesPerSecond: batch.n / ((performance.now() - tb) / 1000) });
      ctx.step++;
      await each((cb) => cb.onBatchEnd?.(b, { loss: lv }, ctx));
    }
    const seconds = (performance.now() - t0) / 1000;
    const ev = await evaluateSplit(c, o.test);
    if (!Number.isFinite(ev.loss)) throw new NonFiniteLossError(`test loss is ${ev.loss} after epoch ${epoch} (lr ${epochLr}); lower the learning rate`);
    const record: EpochRecord = {
      epoch, phase: o.phase,
      train_loss: lossSum / Math.max(1, seen), train_accuracy: correct / Math.max(1, seen),
      test_loss: ev.loss, test_accuracy: ev.accuracy,
      lr: epochLr, epoch_seconds: seconds, images_per_second: seen / seconds,
      rss_bytes: process.memoryUsage().rss, tensor_bytes: tf.memory().numBytes, trainable_params: trainableParams,
    };
    result.epochs.push(record);
    result.lastEpoch = epoch;
    result.lastStep = ctx.step;
    await each((cb) => cb.onEpochEnd?.(epoch, record as unknown as EpochLogs, ctx));
    o.onEpoch(record);
    // After the checkpoint callback: what is handed over is durable.
    await o.onCommit?.({ losses: result.iterationLosses.slice(result.iterationLosses.length - b).map((loss, i) => ({ step: ctx.step - b + i, loss })), epochs: [record], resumed: false });
    if (ctx.stopTraining) {
      result.stoppedEarly = true;
      break;
    }
  }
  await each((cb) => cb.onTrainEnd?.(ctx));
  return result;
}
