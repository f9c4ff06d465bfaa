/**
 * The evaluate and plot stages on a tiny classifier and in-memory data, with a recording
 * context: evaluate's numbers against the training loop's own `evaluateSplit` and a confusion
 * matrix counted here; plot's files, artifacts, report.html, and the grid showing the test
 * images evaluate listed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import evaluate, { type EvaluateParams } from '../../stages/evaluate.js';
import type { EvalReport } from '../../src/eval/report.js';
import plot, { type PlotParams } from '../../stages/plot.js';
import type { AugmentedData } from '../../src/data/batches.js';
import type { PipelineConfig } from '../../src/config/types.js';
import type { StageKindName } from '../../src/stage-kinds.js';
import { BatchSource } from '../../src/data/batches.js';
import type { Dataset, ImageSplit } from '../../src/data/dataset.js';
import { initEngine } from '../../src/engine/backend.js';
import { Rng } from '../../src/rng.js';
import type { StageContext } from '../../src/stage.js';
import { BestModel } from '../../src/train/best.js';
import { evaluateSplit } from '../../src/train/evaluate.js';
import type { TrainState } from '../../src/train/stage.js';
import { tinyClassifier } from './tiny-model.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'eval-stage-test-'));
process.on('exit', () => fs.rmSync(root, { recursive: true, force: true }));
const NORMALIZE = [{ normalize: { mean: [0.5], std: [0.25] } }];

function split(n: number, seed: number): ImageSplit {
  const r = new Rng(seed);
  return { images: Uint8Array.from({ length: n * 64 }, () => r.int(256)), labels: Uint8Array.from({ length: n }, (_, i) => i % 3), count: n, height: 8, width: 8, channels: 1 };
}

function state(): TrainState {
  const dataset: Dataset = { name: 'tiny', classes: ['a', 'b/c', 'd'], train: split(12, 1), test: split(9, 2), source: 'memory', digest: 'x' };
  const data: AugmentedData = {
    dataset,
    train: new BatchSource(dataset.train, [{ horizontal_flip: { p: 1 } }, ...NORMALIZE], 4, { shuffle: true, seed: 1 }),
    test: new BatchSource(dataset.test, NORMALIZE, 4, { shuffle: false, seed: 1 }),
  };
  const best = Object.assign(new BestModel('test_accuracy'), { epoch: 2, phase: 'unfreeze' as const });
  const epochs = [1, 2, 3].map((epoch) => ({
    epoch, phase: epoch >= 2 ? 'unfreeze' as const : 'freeze' as const, train_loss: 1 / epoch, train_accuracy: 0.3 * epoch, test_loss: 1.1 / epoch, test_accuracy: 0.25 * epoch,
    lr: epoch >= 2 ? 1e-4 : 1e-3, epoch_seconds: 1, images_per_second: 10, rss_bytes: 1, tensor_bytes: 1, trainable_params: 10,
  }));
  return { classifier: tinyClassifier(1, 7), data, best, epochs, iterationLosses: [1, 0.9, 0.8, 0.7, 0.6, 0.5], lastEpoch: 3, lastStep: 6, unfreezeEpoch: 2 };
}

interface Recorded { metrics: Map<string, number>; artifacts: Array<[string, string | undefined]> }

function context<P>(name: string, params: P, upstream: Partial<Record<StageKindName, unknown>>): StageContext<P> & { rec: Recorded } {
  const rec: Recorded = { metrics: new Map(), artifacts: [] };
  const pipeline: PipelineConfig = { name: 'tiny <run>', seed: 1, engine: { backend: 'wasm' }, stages: { e: { kind: 'evaluate', needs: [], with: {} } } };
  const find = (kinds: StageKindName[]) => kinds.map((k) => upstream[k]).find((v) => v !== undefined);
  return {
    name, key: `test-${name}`, params, pipeline, outDir: path.join(root, name), seed: 1, signal: new AbortController().signal,
    engine: { backend: 'wasm', requested: 'wasm', name: 'wasm', description: 'wasm' },
    report: { progress: () => {}, batch: () => {}, epoch: () => {}, metric: (k, v) => void rec.metrics.set(k, v), tags: () => {}, artifact: (p, a) => void rec.artifacts.push([p, a]), dataset: () => {} },
    upstream: <T>(...kinds: StageKindName[]) => { const v = find(kinds); if (v === undefined) throw new Error(`no ${kinds.join(' or ')}`); return v as T; },
    maybeUpstream: <T>(...kinds: StageKindName[]) => find(kinds) as T | undefined,
    upstreamNamed: (stage: string) => { throw new Error(`no stage ${stage} upstream`); },
    ancestors: () => [],
    rec,
  };
}

test('evaluate: test and train splits with the test ops; numbers match the training loop; report.json', async () => {
  await initEngine('wasm');
  const s = state();
  const ctx = context<EvaluateParams>('eval', { batch_size: 4, splits: ['train'], top_k: 2, max_misclassified: 5 }, { 'unfreeze-train': s });
  fs.mkdirSync(ctx.outDir, { recursive: true });
  const r = await evaluate.run(ctx);

  for (const [name, images] of [['test', s.data.dataset.test], ['train', s.data.dataset.train]] as const) {
    const ref = await evaluateSplit(s.classifier, new BatchSource(images, NORMALIZE, 5, { shuffle: false, seed: 0 }));
    const rep = r.splits[name]!;
    assert.ok(Math.abs(rep.loss - ref.loss) < 1e-5, `${name} loss ${rep.loss} vs ${ref.loss}`);
    assert.equal(rep.accuracy, ref.accuracy);
    const counted = [0, 1, 2].map((t) => [0, 1, 2].map((p) => ref.predictions.filter((q, i) => q === p && images.labels[i] === t).length));
    assert.deepEqual(rep.confusion_matrix, counted);
    assert.equal(rep.misclassified_count, ref.predictions.filter((q, i) => q !== images.labels[i]).length);
    assert.equal(ctx.rec.metrics.get(`eval_${name}_accuracy`), ref.accuracy);
  }
  assert.ok(r.splits.test.misclassified_count > 0, 'the random model makes mistakes for the grid below');
  assert.equal(r.test_accuracy, r.splits.test.accuracy);
  assert.deepEqual([r.images, r.best_epoch, r.best_phase, r.unfreeze_epoch, r.top_k], [9, 2, 'unfreeze', 2, 2]);
  assert.ok(ctx.rec.metrics.has('eval_test_precision.b_c') && ctx.rec.metrics.has('eval_test_top2_accuracy'));
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(ctx.outDir, 'report.json'), 'utf8')), JSON.parse(JSON.stringify(r)));
  assert.deepEqual(ctx.rec.artifacts.map(([p, a]) => [path.basename(p), a]).sort(), [
    ['confusion-matrix-test.csv', 'evaluation'], ['confusion-matrix-train.csv', 'evaluation'], ['report.json', 'evaluation'],
  ]);
  const val = context<EvaluateParams>('eval-val', { batch_size: 4, splits: ['val'], top_k: 5, max_misclassified: 5 }, { 'unfreeze-train': s });
  fs.mkdirSync(val.outDir, { recursive: true });
  await assert.rejects(evaluate.run(val), /stages\.eval-val\.with\.splits: the data has no val split/);
});

test('plot: five charts, artifacts, report.html, and the grid shows the listed test images', async () => {
  await initEngine('wasm');
  const s = state();
  const ectx = context<EvaluateParams>('eval2', { batch_size: 4, splits: ['test'], top_k: 2, max_misclassified: 5 }, { 'unfreeze-train': s });
  fs.mkdirSync(ectx.outDir, { recursive: true });
  const ev: EvalReport = await evaluate.run(ectx);
  const ctx = context<PlotParams>('plots', { width: 200, height: 120, misclassified: 4, columns: 2 }, { 'unfreeze-train': s, evaluate: ev });
  const out = await plot.run(ctx);
  const names = ['loss-per-iteration', 'metrics-per-epoch', 'lr-per-epoch', 'confusion-matrix', 'misclassified'];
  assert.deepEqual(out.files.map((f) => path.basename(f)).sort(), names.flatMap((n) => [`${n}.png`, `${n}.svg`]).sort());
  assert.deepEqual(ctx.rec.artifacts.filter(([, a]) => a === 'plots').length, 10);
  assert.deepEqual(ctx.rec.artifacts.find(([p]) => p.endsWith('report.html')), [path.join(ctx.outDir, 'report.html'), undefined]);

  const html = fs.readFileSync(out.report, 'utf8');
  assert.equal([...html.matchAll(/<img alt="[^"]*" src="data:image\/svg\+xml;base64,/g)].length, 5);
  assert.match(html, /<title>tiny &lt;run&gt;: pipe report<\/title>/);
  assert.match(html, /Evaluation: test split/);

  const svg = fs.readFileSync(path.join(ctx.outDir, 'misclassified.svg'), 'utf8');
  const uris = [...svg.matchAll(/xlink:href="data:image\/png;base64,([^"]+)"/g)].map((m) => m[1]!);
  const listed = ev.splits.test.misclassified.slice(0, 4);
  assert.equal(uris.length, listed.length);
  const test = s.data.dataset.test;
  for (const [i, m] of listed.entries()) {
    const { data, info } = await sharp(Buffer.from(uris[i]!, 'base64')).raw().toBuffer({ resolveWithObject: true });
    const f = info.width / 8; // enlarged by an integer factor, nearest neighbour
    const px = Array.from({ length: 64 }, (_, j) => data[(Math.floor(j / 8) * f * info.width + (j % 8) * f) * info.channels]);
    assert.deepEqual(px, [...test.images.subarray(m.index * 64, (m.index + 1) * 64)], `tile ${i} is test image ${m.index}`);
  }
  const lr = fs.readFileSync(path.join(ctx.outDir, 'lr-per-epoch.svg'), 'utf8');
  assert.match(lr, />unfreeze \(epoch 2\)<\/text>/);
});
