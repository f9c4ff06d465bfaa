/**
 * The training loop shared by freeze-train and unfreeze-train: one phase, epoch by epoch, with
 * per-iteration loss, per-epoch train/test metrics, ReduceLROnPlateau, EarlyStopping and the
 * best model across phases. The phases differ only in the trainable set and their defaults.
 */
import * as tf from '@tensorflow/tfjs';
import type { BatchSource } from '../data/batches.js';
import type { Classifier } from '../models/registry.js';
import type { BestModel } from './best.js';
import type { EarlyStopping, ReduceLROnPlateau } from './callbacks.js';
import { evaluateSplit } from './evaluate.js';
import { readCheckpoint, writeCheckpoint } from './checkpoint.js';
import { allWeights, countTrainable, trainableVariables } from './freeze.js';
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
  schedule?: { kind: 'cosine'; min_lr: number };
  early?: EarlyStopping;
  best: BestModel;
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
   * Without `checkpointDir` it is called at the same places, right after `onEpoch`.
   */
  onCommit?(c: { losses: { step: number; loss: number }[]; epochs: EpochRecord[] }): void | Promise<void>;
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

/**
 * Runs one phase.
 * @throws NonFiniteLossError naming epoch, batch and lr; an AbortError when `signal` aborts.
 */
export async function trainPhase(o: PhaseOptions): Promise<PhaseResult> {
  const c = o.classifier;
  const vars = trainableVariables(c);
  const trainableParams = countTrainable(c);
  const result: PhaseResult = { epochs: [], iterationLosses: [], stoppedEarly: false, lastEpoch: o.startEpoch, lastStep: o.startStep };
  let step = o.startStep;
  let baseLr = o.optimizer.lr;
  const perEpoch = Math.min(o.train.batchesPerEpoch, o.maxStepsPerEpoch ?? Infinity);
  const totalSteps = perEpoch * o.epochs;
  const lrAt = (phaseStep: number): number => {
    if (!o.schedule) return baseLr;
    const { min_lr } = o.schedule;
    return min_lr + (baseLr - min_lr) * 0.5 * (1 + Math.cos((Math.PI * phaseStep) / totalSteps));
  };
  let firstEpoch = 0;
  const restored = o.checkpointDir && o.resume ? await readCheckpoint(o.checkpointDir) : undefined;
  if (restored && restored.state.fingerprint === (o.fingerprint ?? '')) {
    const { state: s, tensors } = restored;
    allWeights(c).forEach((w, i) => w.write(tensors.model[i]!));
    tf.dispose(tensors.model);
    await o.optimizer.setState(tensors.optimizer);
    tf.dispose(tensors.optimizer.map((t) => t.tensor));
    if (o.plateau && s.plateau) Object.assign(o.plateau, s.plateau);
    if (o.early && s.early) Object.assign(o.early, s.early);
    o.best.restoreState(s.best, tensors.best);
    Object.assign(result, { epochs: s.epochs, iterationLosses: s.iterationLosses, lastEpoch: s.epoch, lastStep: s.step, stoppedEarly: s.stoppedEarly, resumedEpochs: s.phaseEpochsDone });
    [firstEpoch, step, baseLr] = [s.phaseEpochsDone, s.step, s.baseLr];
    o.onResume?.(s.phaseEpochsDone);
    await o.onCommit?.({ losses: s.iterationLosses.map((loss, i) => ({ step: o.startStep + i, loss })), epochs: s.epochs });
    if (s.stoppedEarly) return result;
  } else if (restored) {
    tf.dispose([...restored.tensors.model, ...restored.tensors.best, ...restored.tensors.optimizer.map((t) => t.tensor)]);
  }
  o.optimizer.lr = lrAt(step - o.startStep);
  for (let e = firstEpoch; e < o.epochs; e++) {
    const epoch = o.startEpoch + e + 1;
    const batches = perEpoch;
    const epochLr = lrAt(step - o.startStep);
    const t0 = performance.now();
    let lossSum = 0, correct = 0, seen = 0, b = 0;
    for await (const batch of o.train.epochAsync(epoch - 1, batches)) {
      // NOTE: wasm kernels and data() resolve without returning to the event loop, so signal
      // handlers (Ctrl-C) and timers would never run during training without this yield.
      await new Promise((r) => setImmediate(r));
      o.signal.throwIfAborted();
      o.optimizer.lr = lrAt(step - o.startStep);
      const tb = performance.now();
      const x = tf.tensor4d(batch.x, batch.shape);
      const y = tf.tensor1d(batch.y, 'int32');
      let predicted: tf.Tensor | undefined;
      const loss = o.optimizer.step(() => {
        const logits = c.head.apply(c.backbone.model.apply(x, { training: true }), { training: true }) as tf.Tensor2D;
        predicted = tf.keep(tf.argMax(logits, 1));
        return tf.losses.softmaxCrossEntropy(tf.oneHot(y, c.numClasses), logits) as tf.Scalar;
      }, vars);
      const lv = (await loss.data())[0]!;
      const pd = await predicted!.data();
      tf.dispose([x, y, loss, predicted!]);
      if (!Number.isFinite(lv)) throw new NonFiniteLossError(`training loss is ${lv} at epoch ${epoch}, batch ${b + 1} (lr ${o.optimizer.lr}); lower the learning rate`);
      for (let i = 0; i < batch.n; i++) if (pd[i] === batch.y[i]) correct++;
      lossSum += lv * batch.n;
      seen += batch.n;
      result.iterationLosses.push(lv);
      o.onIteration({ step, epoch, batch: ++b, batches, loss: lv, imagesPerSecond: batch.n / ((performance.now() - tb) / 1000) });
      step++;
    }
    const seconds = (performance.now() - t0) / 1000;
    const ev = await evaluateSplit(c, o.test);
    const lr = epochLr;
    const record: EpochRecord = {
      epoch, phase: o.phase,
      train_loss: lossSum / Math.max(1, seen), train_accuracy: correct / Math.max(1, seen),
      test_loss: ev.loss, test_accuracy: ev.accuracy,
      lr, epoch_seconds: seconds, images_per_second: seen / seconds,
      rss_bytes: process.memoryUsage().rss, tensor_bytes: tf.memory().numBytes, trainable_params: trainableParams,
    };
    result.epochs.push(record);
    o.best.update(c, epoch, o.phase, record as unknown as Record<string, number>);
    o.onEpoch(record);
    result.lastEpoch = epoch;
    result.lastStep = step;
    const logs = record as unknown as Record<string, number>;
    if (o.plateau) baseLr = o.plateau.onEpochEnd(logs, baseLr);
    o.optimizer.lr = lrAt(step - o.startStep);
    if (o.early?.onEpochEnd(epoch, logs)) result.stoppedEarly = true;
    if (o.checkpointDir) await saveCheckpoint(o, result, e + 1, baseLr);
    await o.onCommit?.({ losses: result.iterationLosses.slice(result.iterationLosses.length - b).map((loss, i) => ({ step: step - b + i, loss })), epochs: [record] });
    if (result.stoppedEarly) break;
  }
  return result;
}

async function saveCheckpoint(o: PhaseOptions, r: PhaseResult, phaseEpochsDone: number, baseLr: number): Promise<void> {
  const optimizer = await o.optimizer.getState();
  await writeCheckpoint(
    o.checkpointDir!,
    {
      fingerprint: o.fingerprint ?? '', phaseEpochsDone, epoch: r.lastEpoch, step: r.lastStep, baseLr,
      plateau: o.plateau && { best: o.plateau.best, wait: o.plateau.wait, cooldownCounter: o.plateau.cooldownCounter },
      early: o.early && { best: o.early.best, wait: o.early.wait },
      best: { value: o.best.value, epoch: o.best.epoch, phase: o.best.phase },
      epochs: r.epochs, iterationLosses: r.iterationLosses, stoppedEarly: r.stoppedEarly,
    },
    { model: allWeights(o.classifier).map((w) => w.read()), optimizer, best: o.best.snapshotTensors() },
  );
  // getWeights() makes a new scalar for the step count (tfjs saveIterations); the slots are the optimizer's own variables.
  tf.dispose(optimizer.map((t) => t.tensor).filter((t) => !(t instanceof tf.Variable)));
}
