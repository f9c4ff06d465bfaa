/**
 * What freeze-train and unfreeze-train share: building the phase from the stage parameters,
 * running the loop, reporting, restoring and saving the best model. The kinds differ only in
 * the trainable set (head only, or blocks from `unfreeze`) and their defaults.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { AugmentedData } from '../data/batches.js';
import { writeDurable } from '../fs-durable.js';
import { torchStateDict, type Classifier } from '../models/registry.js';
import { saveClassifier } from '../models/model-files.js';
import type { StageContext } from '../stage.js';
import { BestModel } from './best.js';
import { EarlyStopping, ReduceLROnPlateau } from './callbacks.js';
import { allWeights, countTrainable, setTrainable } from './freeze.js';
import * as tf from '@tensorflow/tfjs';
import { trainPhase, type EpochRecord } from './loop.js';
import { buildOptimizer } from './optimizer.js';
import { bestFromJson, loadWeightsInto, readStateJson, writeStateJson } from './persist.js';
import type { FreezeTrainStageParameters } from '../config/generated/freeze-train.js';
import type { UnfreezeTrainStageParameters } from '../config/generated/unfreeze-train.js';

/**
 * The validated parameters of freeze-train and unfreeze-train (defaults filled): generated from
 * schemas/stages/{freeze,unfreeze}-train.schema.json, whose shared blocks (optimizer,
 * reduce_lr_on_plateau, lr_schedule, early_stopping) are train-common.schema.json's; the library's
 * config types (OptimizerConfig, PlateauConfig, EarlyStoppingConfig) are those generated blocks.
 * `SchemaAccepted` below makes tsc check that whatever both schemas accept is a TrainParams.
 */
export type TrainParams = FreezeTrainStageParameters & Partial<Pick<UnfreezeTrainStageParameters, 'unfreeze' | 'start_from'>>;

/**
 * Compile-time check (tsc fails here when a schema accepts what TrainParams does not): validated
 * freeze-train and unfreeze-train parameters are TrainParams. Not for use.
 */
export type SchemaAccepted<T extends TrainParams = FreezeTrainStageParameters | UnfreezeTrainStageParameters> = T;

/** The state a training stage hands downstream; history is cumulative over both phases. */
export interface TrainState {
  classifier: Classifier;
  data: AugmentedData;
  best: BestModel;
  epochs: EpochRecord[];
  iterationLosses: number[];
  lastEpoch: number;
  lastStep: number;
  /** Global epoch (1-based) at which the backbone was unfrozen, if it was. */
  unfreezeEpoch?: number;
  /** Saved best model folder (model.json + weights.bin). */
  modelDir?: string;
  /** The last epoch's weights (allWeights order; the classifier holds the best epoch's). */
  last?: tf.Tensor[];
}

/**
 * The best model of a stage follows the stage's own early-stopping monitor (else test
 * accuracy). When the previous stage chose on another monitor, its best epoch (the only earlier
 * weights kept) is the first candidate, scored on this stage's monitor. `c` holds `prev.best`'s weights.
 */
function bestFor(p: TrainParams, c: Classifier, prev: TrainState | undefined): BestModel {
  const monitor = p.early_stopping?.monitor ?? 'test_accuracy';
  const best = new BestModel(monitor, p.early_stopping?.mode);
  if (!prev) return best;
  if (prev.best.monitor === best.monitor && prev.best.mode === best.mode) return prev.best;
  const e = prev.epochs.find((r) => r.epoch === prev.best.epoch);
  if (e) best.update(c, e.epoch, e.phase, e as unknown as Record<string, number>);
  prev.best.dispose();
  return best;
}

/**
 * The training stage this one continues: the nearest upstream one, unless a build-model stage
 * is nearer (a new model built on a trained one's weights starts a new chain).
 */
function previousTraining(ctx: StageContext<TrainParams>): TrainState | undefined {
  const near = ctx.maybeUpstream<TrainState | Classifier>('build-model', 'freeze-train', 'unfreeze-train');
  return near !== undefined && 'classifier' in near ? near : undefined;
}

/** Runs one training phase as a stage. */
export async function runTrainingStage(ctx: StageContext<TrainParams>, phase: 'freeze' | 'unfreeze'): Promise<TrainState> {
  const p = ctx.params;
  const prev = previousTraining(ctx);
  const c = prev?.classifier ?? ctx.upstream<Classifier>('build-model');
  const state: TrainState = prev
    ? { ...prev, best: bestFor(p, c, prev), epochs: [...prev.epochs], iterationLosses: [...prev.iterationLosses], last: undefined }
    : { classifier: c, data: ctx.upstream<AugmentedData>('augment'), best: bestFor(p, c, undefined), epochs: [], iterationLosses: [], lastEpoch: 0, lastStep: 0 };
  if (prev?.last) {
    // The recipe continues from the last epoch; `start_from: best` keeps the best one.
    if ((p.start_from ?? 'last') === 'last') allWeights(c).forEach((w, i) => w.write(prev.last![i]!));
    tf.dispose(prev.last);
  }
  const before = countTrainable(c);
  setTrainable(c, phase === 'freeze' ? 'none' : p.unfreeze === undefined || p.unfreeze === 'all' ? 'all' : p.unfreeze.from);
  const trainable = countTrainable(c);
  if (phase === 'unfreeze') state.unfreezeEpoch = state.lastEpoch + 1;
  ctx.report.tags({ [`pipe.${phase}.trainable_params`]: String(trainable), ...(phase === 'unfreeze' ? { 'pipe.unfreeze_epoch': String(state.unfreezeEpoch) } : {}) });
  ctx.report.progress(`${phase}: ${trainable.toLocaleString('en')} trainable parameters${phase === 'unfreeze' ? ` (was ${before.toLocaleString('en')})` : ''}`);
  // A new optimizer per phase: tfjs optimizer slots are bound to the variable list.
  const optimizer = buildOptimizer(p.optimizer);
  ctx.report.tags({ [`pipe.${phase}.weight_decay_mode`]: optimizer.decayMode });
  try {
    const r = await trainPhase({
      phase, classifier: c, train: state.data.train, test: state.data.test,
      epochs: p.epochs, maxStepsPerEpoch: p.max_steps_per_epoch, optimizer,
      plateau: p.reduce_lr_on_plateau && new ReduceLROnPlateau(p.reduce_lr_on_plateau),
      schedule: p.lr_schedule,
      early: p.early_stopping && new EarlyStopping(p.early_stopping),
      best: state.best, startEpoch: state.lastEpoch, startStep: state.lastStep, signal: ctx.signal,
      // A checkpoint in this stage's own folder can only come from an interrupted attempt of
      // this run (--resume); the stage key guards against changed params or upstream stages.
      checkpointDir: join(ctx.outDir, 'checkpoint'), resume: true, fingerprint: ctx.key,
      onResume: (done) => ctx.report.progress(`${phase}: continuing from the epoch ${state.lastEpoch + done} checkpoint`),
      onIteration: (i) => ctx.report.batch({ epoch: i.epoch, epochs: state.lastEpoch + p.epochs, batch: i.batch, batches: i.batches, loss: i.loss, images_per_second: i.imagesPerSecond }),
      // Metrics go to the tracker once the epoch's checkpoint holds them (a kill never loses or doubles a step).
      // Those of a checkpoint an interrupted attempt wrote are marked `resumed` (the event stream tells them from new ones).
      onCommit: ({ losses, epochs, resumed }) => {
        for (const l of losses) ctx.report.metric('batch_loss', l.loss, l.step, { resumed });
        for (const e of epochs) for (const [k, v] of Object.entries(e)) if (typeof v === 'number' && k !== 'epoch') ctx.report.metric(k, v, e.epoch, { resumed });
      },
      onEpoch: (e) => ctx.report.epoch({
        epoch: e.epoch, epochs: state.lastEpoch + p.epochs, train_loss: e.train_loss, train_accuracy: e.train_accuracy,
        test_loss: e.test_loss, test_accuracy: e.test_accuracy, lr: e.lr, images_per_second: e.images_per_second,
      }),
    });
    state.epochs.push(...r.epochs);
    state.iterationLosses.push(...r.iterationLosses);
    state.lastEpoch = r.lastEpoch;
    state.lastStep = r.lastStep;
    if (r.stoppedEarly) ctx.report.tags({ [`pipe.${phase}.stopped_early_at_epoch`]: String(r.lastEpoch) });
  } finally {
    optimizer.dispose();
  }
  state.last = allWeights(c).map((w) => tf.keep(tf.clone(w.read())));
  await saveClassifier(c, join(ctx.outDir, 'last-model'), { arch: c.arch });
  state.best.restore(c);
  if (state.best.epoch !== undefined) {
    ctx.report.tags({ 'pipe.best_epoch': String(state.best.epoch), 'pipe.best_phase': state.best.phase!, [`pipe.best_${state.best.monitor}`]: String(state.best.value) });
  }
  state.modelDir = join(ctx.outDir, 'best-model');
  const files = await saveClassifier(c, state.modelDir, {
    classes: state.data.dataset.classes, arch: c.arch, best_epoch: state.best.epoch,
    // input_size: what the test ops take (the dataset's images), not what they give the model
    preprocess: { test: state.data.test.specs, input_size: [state.data.test.split.height, state.data.test.split.width] },
  });
  // Torch-layout nets also get their best model as a PyTorch state_dict (build-model's `weights: upstream`).
  if (c.backbone.bindings.length > 0) {
    const st = join(state.modelDir, 'model.safetensors');
    await writeDurable(st, Buffer.from(torchStateDict(c)));
    files.push(st);
  }
  for (const f of files) ctx.report.artifact(f, 'best-model');
  await rm(join(ctx.outDir, 'checkpoint'), { recursive: true, force: true }); // finished: state.json + best-model suffice
  const b = state.best;
  await writeStateJson(ctx.outDir, {
    epochs: state.epochs, iterationLosses: state.iterationLosses, lastEpoch: state.lastEpoch, lastStep: state.lastStep, unfreezeEpoch: state.unfreezeEpoch,
    best: { monitor: b.monitor, mode: b.mode, value: b.value, epoch: b.epoch, phase: b.phase },
  });
  return state;
}

/** Rebuilds a finished training stage's state from its folder (no training). */
export async function loadTrainingStage(ctx: StageContext<TrainParams>, dir: string, phase: 'freeze' | 'unfreeze'): Promise<TrainState> {
  const prev = previousTraining(ctx);
  const classifier = prev?.classifier ?? ctx.upstream<Classifier>('build-model');
  const data = prev?.data ?? ctx.upstream<AugmentedData>('augment');
  const modelDir = join(dir, 'best-model');
  await loadWeightsInto(classifier, join(dir, 'last-model'));
  const last = allWeights(classifier).map((w) => tf.keep(tf.clone(w.read())));
  await loadWeightsInto(classifier, modelDir);
  // Leave the trainable set as the stage left it, so the next stage reports what it changes.
  const p = ctx.params;
  setTrainable(classifier, phase === 'freeze' ? 'none' : p.unfreeze === undefined || p.unfreeze === 'all' ? 'all' : p.unfreeze.from);
  const s = await readStateJson(dir);
  prev?.best.dispose();
  if (prev?.last) tf.dispose(prev.last);
  return {
    classifier, data, best: bestFromJson(classifier, s.best), epochs: s.epochs, iterationLosses: s.iterationLosses,
    lastEpoch: s.lastEpoch, lastStep: s.lastStep, unfreezeEpoch: s.unfreezeEpoch, modelDir, last,
  };
}
