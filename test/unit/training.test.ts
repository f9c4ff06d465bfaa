/**
 * The training loop's contract on mini_resnet with synthetic data: an interrupted-then-resumed
 * phase gives the same metrics and weights as an uninterrupted one; a non-finite loss stops at
 * that batch with epoch, batch and lr; the first unfreeze epoch uses exactly the configured lr;
 * the best epoch across phases is what the model holds at the end; a backend that cannot load
 * is an error before any work.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { BatchSource } from '../../src/data/batches.js';
import { initEngine } from '../../src/engine/backend.js';
import { PipelineError } from '../../src/errors.js';
import { buildClassifier, type Classifier } from '../../src/models/registry.js';
import { Rng } from '../../src/rng.js';
import { BestModel } from '../../src/train/best.js';
import { ReduceLROnPlateau } from '../../src/train/callbacks.js';
import { allWeights, setTrainable } from '../../src/train/freeze.js';
import { NonFiniteLossError, trainPhase, type PhaseOptions } from '../../src/train/loop.js';
import { buildOptimizer } from '../../src/train/optimizer.js';
import { loadTrainingStage, runTrainingStage, type TrainParams, type TrainState } from '../../src/train/stage.js';
import type { AugmentedData } from '../../src/data/batches.js';
import type { Dataset } from '../../src/data/dataset.js';
import type { PipelineConfig } from '../../src/config/types.js';
import type { StageContext } from '../../src/stage.js';

function data(n: number, seed: number, specs = [{ normalize: { mean: [0.5], std: [0.25] } }]) {
  const r = new Rng(seed);
  const split = { images: Uint8Array.from({ length: n * 64 }, () => r.int(256)), labels: Uint8Array.from({ length: n }, () => r.int(3)), count: n, height: 8, width: 8, channels: 1 };
  return new BatchSource(split, specs as never, 16, { shuffle: true, seed });
}

function model(seed: number): Classifier {
  const c = buildClassifier('mini_resnet', { height: 8, width: 8, channels: 1 }, 3, 'none', new Rng(seed));
  setTrainable(c, 'all');
  return c;
}

function options(c: Classifier, extra: Partial<PhaseOptions>): PhaseOptions {
  return {
    phase: 'unfreeze', classifier: c, train: data(48, 1), test: data(16, 2), epochs: 4,
    optimizer: buildOptimizer({ name: 'adam', lr: 0.01, weight_decay: 1e-4, momentum: 0, nesterov: false }),
    // threshold 100 (abs): no epoch after the first counts as an improvement, so with patience 0
    // the lr halves after each epoch from the second on (Keras' trick for forcing a callback's outcome).
    plateau: new ReduceLROnPlateau({ monitor: 'train_loss', factor: 0.5, patience: 0, threshold: 100, threshold_mode: 'abs', cooldown: 0, min_lr: 0, eps: 1e-8 }),
    best: new BestModel('test_accuracy'), startEpoch: 0, startStep: 0, signal: new AbortController().signal,
    onIteration: () => {}, onEpoch: () => {}, ...extra,
  };
}

const weightsOf = (c: Classifier): Float32Array[] => allWeights(c).map((w) => w.read().dataSync() as Float32Array);

for (const at of [{ epoch: 2, batch: 2 }, { epoch: 3, batch: 1 }]) {
  test(`interrupted at epoch ${at.epoch} batch ${at.batch} and resumed: bit-identical metrics and weights to an uninterrupted run`, async () => {
    await initEngine('wasm');
    const a = model(11);
    const straight = await trainPhase(options(a, {}));

    const dir = join(mkdtempSync(join(tmpdir(), 'pipe-ckpt-')), 'checkpoint');
    const b = model(11);
    const stop = new AbortController();
    await assert.rejects(
      trainPhase(options(b, { checkpointDir: dir, fingerprint: 'k', signal: stop.signal, onIteration: (i) => i.epoch === at.epoch && i.batch === at.batch && stop.abort() })),
      (e: unknown) => (e as Error).name === 'AbortError',
    );
    // A fresh process: new model (same init), new optimizer and callbacks, state from the checkpoint.
    const c = model(11);
    const resumed = await trainPhase(options(c, { checkpointDir: dir, fingerprint: 'k', resume: true }));
    assert.equal(resumed.resumedEpochs, at.epoch - 1);
    assert.equal(resumed.epochs.length, 4);
    for (const [i, r] of resumed.epochs.entries()) {
      const s = straight.epochs[i]!;
      for (const k of ['train_loss', 'train_accuracy', 'test_loss', 'test_accuracy', 'lr'] as const) assert.equal(r[k], s[k], `epoch ${r.epoch} ${k}`);
    }
    assert.deepEqual(resumed.iterationLosses, straight.iterationLosses);
    assert.ok(straight.epochs.some((e) => e.lr < 0.01), 'the plateau scheduler acted, so its state had to survive the restart');
    const wa = weightsOf(a), wc = weightsOf(c);
    wa.forEach((w, i) => assert.deepEqual(wc[i], w, `weight ${i}`));
  });
}

test('a checkpoint of another configuration is ignored', async () => {
  await initEngine('wasm');
  const dir = join(mkdtempSync(join(tmpdir(), 'pipe-ckpt-')), 'checkpoint');
  await trainPhase(options(model(3), { epochs: 1, checkpointDir: dir, fingerprint: 'old' }));
  const r = await trainPhase(options(model(3), { epochs: 1, checkpointDir: dir, fingerprint: 'new', resume: true }));
  assert.equal(r.resumedEpochs, undefined);
});

test('a non-finite loss stops training at that batch, naming epoch, batch and lr', async () => {
  await initEngine('wasm');
  const c = model(5);
  const seen: number[] = [];
  // Two good epochs, then a NaN in the head's bias poisons the logits from the next batch on.
  const o = options(c, { onIteration: (i) => seen.push(i.step), onEpoch: (r) => {
    if (r.epoch !== 2) return;
    const fc = c.head.getLayer('head_fc');
    fc.setWeights([fc.getWeights()[0]!, tf.fill([3], NaN)]);
  } });
  await assert.rejects(trainPhase(o), (e: unknown) => e instanceof NonFiniteLossError && (e as Error).message === 'training loss is NaN at epoch 3, batch 1 (lr 0.005); lower the learning rate');
  assert.deepEqual(seen, [0, 1, 2, 3, 4, 5], 'no batch after the bad one was reported');
});

test('a non-finite test loss stops training after that epoch, before it can become the best model or a checkpoint', async () => {
  await initEngine('wasm');
  const c = model(5);
  const best = new BestModel('test_loss');
  const dir = join(mkdtempSync(join(tmpdir(), 'pipe-ckpt-')), 'checkpoint');
  // A NaN in the head's bias makes the test loss NaN (training's own loss too, but the poison
  // goes in after the last batch of epoch 2, before its evaluation).
  const o = options(c, { best, checkpointDir: dir, fingerprint: 'k', onIteration: (i) => {
    if (i.epoch !== 2 || i.batch !== 3) return;
    const fc = c.head.getLayer('head_fc');
    fc.setWeights([fc.getWeights()[0]!, tf.fill([3], NaN)]);
  } });
  await assert.rejects(trainPhase(o), (e: unknown) => e instanceof NonFiniteLossError && /^test loss is NaN after epoch 2 \(lr 0.01\); lower the learning rate$/.test((e as Error).message));
  assert.equal(best.epoch, 1);
  const { readCheckpoint } = await import('../../src/train/checkpoint.js');
  assert.equal((await readCheckpoint(dir))!.state.epoch, 1);
});

test('the first unfreeze epoch runs at exactly the configured lr, whatever the freeze phase did', async () => {
  await initEngine('wasm');
  const c = model(7);
  setTrainable(c, 'none');
  const best = new BestModel('test_accuracy');
  const freeze = await trainPhase(options(c, { phase: 'freeze', epochs: 3, best }));
  assert.ok(freeze.epochs.at(-1)!.lr < 0.01, 'the plateau scheduler lowered the freeze lr');
  setTrainable(c, 'all');
  const unfreeze = await trainPhase(options(c, { epochs: 1, best, startEpoch: freeze.lastEpoch, startStep: freeze.lastStep, optimizer: buildOptimizer({ name: 'adam', lr: 1e-4, weight_decay: 0, momentum: 0, nesterov: false }) }));
  assert.equal(unfreeze.epochs[0]!.lr, 1e-4);
  assert.equal(unfreeze.epochs[0]!.epoch, 4);
});

test('the best epoch across phases is restored, and it can come from the freeze phase', async () => {
  await initEngine('wasm');
  const c = model(9);
  const best = new BestModel('test_loss');
  setTrainable(c, 'none');
  const f = await trainPhase(options(c, { phase: 'freeze', epochs: 2, best }));
  setTrainable(c, 'all');
  // A huge lr ruins the unfreeze phase, so the best epoch stays in the freeze phase.
  await trainPhase(options(c, { epochs: 1, best, startEpoch: 2, optimizer: buildOptimizer({ name: 'sgd', lr: 50, weight_decay: 0, momentum: 0, nesterov: false }) })).catch(() => undefined);
  assert.equal(best.phase, 'freeze');
  const bestLoss = Math.min(...f.epochs.map((e) => e.test_loss));
  assert.equal(best.value, bestLoss);
  best.restore(c);
  const { evaluateSplit } = await import('../../src/train/evaluate.js');
  const ev = await evaluateSplit(c, data(16, 2));
  assert.ok(Math.abs(ev.loss - bestLoss) < 1e-5, `restored model's test loss ${ev.loss} vs best ${bestLoss}`);
});

test('an explicitly requested backend that cannot load is an error before any work', async () => {
  await assert.rejects(initEngine('tensorflow'), (e: unknown) => e instanceof PipelineError && e.exitCode === 2 && /^engine.backend 'tensorflow' cannot load: @tensorflow\/tfjs-node /.test(e.message));
  assert.equal(tf.getBackend(), 'wasm');
});

test('a saved model (tfjs layers format, our file handler) loads back to identical predictions', async () => {
  await initEngine('wasm');
  const { saveClassifier, loadModel } = await import('../../src/models/model-files.js');
  const { predictLogits } = await import('../../src/train/evaluate.js');
  const c = model(13);
  await trainPhase(options(c, { epochs: 1 }));
  const dir = join(mkdtempSync(join(tmpdir(), 'pipe-model-')), 'best-model');
  await saveClassifier(c, dir, { classes: ['a', 'b', 'c'] });
  const loaded = await loadModel(dir);
  const x = tf.randomNormal([5, 8, 8, 1], 0, 1, 'float32', 3) as tf.Tensor4D;
  // Bit for bit against the same layer-by-layer execution (predictLogits folds BatchNorm into
  // the convs, models/fused-forward.ts, which rounds differently: within 1e-5 of it).
  const want = tf.tidy(() => c.head.apply(c.backbone.model.apply(x, { training: false }), { training: false }) as tf.Tensor).dataSync();
  const got = (loaded.predict(x) as tf.Tensor).dataSync();
  assert.deepEqual([...got], [...want]);
  const fused = predictLogits(c, x).dataSync();
  fused.forEach((v, i) => assert.ok(Math.abs(v - want[i]!) <= 1e-5 * Math.max(1, Math.abs(want[i]!)), `logit ${i}: ${v} vs ${want[i]}`));
});

/** A recording stage context for the training stages (in-memory upstream outputs). */
function stageContext(name: string, params: TrainParams, upstream: Partial<Record<string, unknown>>, root: string): StageContext<TrainParams> {
  const pipeline = { name: 'p', seed: 1, engine: { backend: 'wasm' }, stages: {} } as unknown as PipelineConfig;
  const find = (kinds: string[]) => kinds.map((k) => upstream[k]).find((v) => v !== undefined);
  return {
    name, key: `test-${name}`, params, pipeline, outDir: join(root, name), seed: 1, signal: new AbortController().signal,
    engine: { backend: 'wasm', requested: 'wasm', name: 'wasm', description: 'wasm' } as never,
    report: { progress: () => {}, batch: () => {}, epoch: () => {}, metric: () => {}, tags: () => {}, artifact: () => {}, dataset: () => {} } as never,
    upstream: <T>(...kinds: string[]) => find(kinds) as T,
    maybeUpstream: <T>(...kinds: string[]) => find(kinds) as T | undefined,
    upstreamNamed: (stage: string) => { throw new Error(`no stage ${stage} upstream`); },
    ancestors: () => [],
  } as StageContext<TrainParams>;
}

const adam = (lr: number) => ({ name: 'adam' as const, lr, weight_decay: 0, momentum: 0, nesterov: false });

async function freezeStage(root: string): Promise<{ freeze: TrainState; data: AugmentedData }> {
  const split = (n: number, seed: number) => {
    const r = new Rng(seed);
    return { images: Uint8Array.from({ length: n * 64 }, () => r.int(256)), labels: Uint8Array.from({ length: n }, () => r.int(3)), count: n, height: 8, width: 8, channels: 1 };
  };
  const dataset = { name: 'tiny', classes: ['a', 'b', 'c'], train: split(48, 1), test: split(16, 2), source: 'memory', digest: 'x' } as unknown as Dataset;
  const specs = [{ normalize: { mean: [0.5], std: [0.25] } }] as never;
  const data: AugmentedData = { dataset, train: new BatchSource(dataset.train, specs, 16, { shuffle: true, seed: 1 }), test: new BatchSource(dataset.test, specs, 16, { shuffle: false, seed: 1 }) };
  const c = buildClassifier('mini_resnet', { height: 8, width: 8, channels: 1 }, 3, 'none', new Rng(21));
  // Monitor train_loss in max mode: the best epoch is the first (the loss falls), so best != last.
  const params: TrainParams = { epochs: 3, optimizer: adam(0.01), early_stopping: { monitor: 'train_loss', mode: 'max', patience: 5, min_delta: 0 } };
  const freeze = await runTrainingStage(stageContext('head', params, { 'build-model': c, augment: data }, root), 'freeze');
  return { freeze, data };
}

for (const startFrom of ['last', 'best'] as const) {
  test(`unfreeze-train starts from the previous stage's ${startFrom} weights${startFrom === 'last' ? ' (the default, as the recipe)' : ' (start_from: best)'}`, async () => {
    await initEngine('wasm');
    const root = mkdtempSync(join(tmpdir(), 'pipe-stage-'));
    const { freeze } = await freezeStage(root);
    assert.equal(freeze.best.epoch, 1, 'precondition: the best epoch is not the last');
    const bestW = weightsOf(freeze.classifier);
    const lastW = freeze.last!.map((t) => t.dataSync() as Float32Array);
    assert.notDeepEqual(lastW, bestW);
    // 0 epochs: the stage's last weights are the weights it started from.
    const params: TrainParams = { epochs: 0, optimizer: adam(1e-3), unfreeze: 'all', ...(startFrom === 'best' ? { start_from: 'best' } : {}), early_stopping: { monitor: 'train_loss', mode: 'max', patience: 5, min_delta: 0 } };
    const un = await runTrainingStage(stageContext('finetune', params, { 'freeze-train': freeze }, root), 'unfreeze');
    assert.deepEqual(un.last!.map((t) => t.dataSync() as Float32Array), startFrom === 'last' ? lastW : bestW);
  });
}

test('the best model follows the unfreeze stage\'s own monitor; a finished stage reloads (cached rerun) with no null in its JSON', async () => {
  await initEngine('wasm');
  const root = mkdtempSync(join(tmpdir(), 'pipe-stage-'));
  const { freeze } = await freezeStage(root);
  const params: TrainParams = { epochs: 2, optimizer: adam(1e-3), unfreeze: 'all', early_stopping: { monitor: 'test_loss', patience: 5, min_delta: 0 } };
  const ctx = stageContext('finetune', params, { 'freeze-train': freeze }, root);
  const un = await runTrainingStage(ctx, 'unfreeze');
  assert.equal(un.best.monitor, 'test_loss');
  // Candidates: the freeze stage's best epoch (1) and both unfreeze epochs.
  const candidates = un.epochs.filter((e) => e.epoch === 1 || e.phase === 'unfreeze');
  const min = Math.min(...candidates.map((e) => e.test_loss));
  assert.equal(un.best.value, min);
  const { evaluateSplit } = await import('../../src/train/evaluate.js');
  assert.equal((await evaluateSplit(un.classifier, un.data.test)).loss, min, 'the classifier holds the best epoch on test_loss');
  const { readFileSync } = await import('node:fs');
  assert.doesNotMatch(readFileSync(join(ctx.outDir, 'state.json'), 'utf8'), /null/);
  // A cached rerun rebuilds the state from the folder.
  const again = await loadTrainingStage(ctx, ctx.outDir, 'unfreeze');
  assert.deepEqual(weightsOf(again.classifier), weightsOf(un.classifier));
  assert.deepEqual(again.last!.map((t) => t.dataSync()), un.last!.map((t) => t.dataSync()));
  assert.equal(again.best.epoch, un.best.epoch);
});
