/**
 * The checkpoint callback of a training phase (Keras 3's BackupAndRestore): after every epoch it
 * writes the phase's whole state (checkpoint.ts); `restore` puts a matching checkpoint back
 * before training starts. The state is everything the rest of the phase depends on: every weight
 * (BN statistics included), the optimizer's slots (Adam's moments and step count, from which its
 * bias correction is computed: optimizer.ts), the learning rate's base, the plateau,
 * early-stopping and best-model state, the counters and the history. Batches depend only on
 * (seed, epoch). So a phase interrupted at any batch and resumed from its last epoch checkpoint
 * redoes the unfinished epoch exactly and ends bit-identical to an uninterrupted one.
 */
import * as tf from '@tensorflow/tfjs';
import type { EpochLogs, TrainingCallback, TrainingContext } from './callbacks.js';
import { readCheckpoint, writeCheckpoint } from './checkpoint.js';
import { allWeights } from './freeze.js';
import type { PhaseOptions, PhaseResult } from './loop.js';

/** Saves a checkpoint after each epoch into `o.checkpointDir`; restores one on request. */
export class CheckpointCallback implements TrainingCallback {
  constructor(
    private readonly o: PhaseOptions,
    private readonly result: PhaseResult,
  ) {}

  /**
   * Restores the checkpoint in `checkpointDir` when it has this phase's fingerprint (a
   * checkpoint of another configuration is ignored).
   * @returns the phase epochs it holds, or undefined when none was restored.
   */
  async restore(ctx: TrainingContext): Promise<number | undefined> {
    const o = this.o;
    const restored = await readCheckpoint(o.checkpointDir!);
    if (!restored) return undefined;
    const { state: s, tensors } = restored;
    if (s.fingerprint !== (o.fingerprint ?? '')) {
      tf.dispose([...tensors.model, ...tensors.best, ...tensors.optimizer.map((t) => t.tensor)]);
      return undefined;
    }
    allWeights(o.classifier).forEach((w, i) => w.write(tensors.model[i]!));
    tf.dispose(tensors.model);
    await o.optimizer.setState(tensors.optimizer);
    tf.dispose(tensors.optimizer.map((t) => t.tensor));
    o.optimizer.lr.base = s.baseLr;
    if (o.plateau && s.plateau) Object.assign(o.plateau, s.plateau);
    if (o.early && s.early) Object.assign(o.early, s.early);
    o.best.restoreState(s.best, tensors.best);
    Object.assign(this.result, { epochs: s.epochs, iterationLosses: s.iterationLosses, lastEpoch: s.epoch, lastStep: s.step, stoppedEarly: s.stoppedEarly, resumedEpochs: s.phaseEpochsDone });
    ctx.step = s.step;
    o.onResume?.(s.phaseEpochsDone);
    return s.phaseEpochsDone;
  }

  async onEpochEnd(epoch: number, _logs: EpochLogs, ctx: TrainingContext): Promise<void> {
    const { o, result: r } = this;
    const optimizer = await o.optimizer.getState();
    await writeCheckpoint(
      o.checkpointDir!,
      {
        fingerprint: o.fingerprint ?? '', phaseEpochsDone: epoch - o.startEpoch, epoch, step: ctx.step, baseLr: o.optimizer.lr.base,
        plateau: o.plateau?.state(),
        early: o.early?.state(),
        best: { value: o.best.value, epoch: o.best.epoch, phase: o.best.phase },
        epochs: r.epochs, iterationLosses: r.iterationLosses, stoppedEarly: ctx.stopTraining,
      },
      { model: allWeights(o.classifier).map((w) => w.read()), optimizer, best: o.best.snapshotTensors() },
    );
    // getWeights() makes a new scalar for the step count (tfjs saveIterations); the slots are the optimizer's own variables.
    tf.dispose(optimizer.map((t) => t.tensor).filter((t) => !(t instanceof tf.Variable)));
  }
}
