/**
 * `pipe predict` on a tiny saved model: probabilities equal the classifier's own softmax on the
 * image preprocessed by hand; the preprocessing comes from model.json, else the run's
 * resolved.yaml; a run folder picks its newest model; errors name the file and exit 2.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { stringify } from 'yaml';
import { cmdPredict } from '../../src/cli/predict.js';
import { initEngine } from '../../src/engine/backend.js';
import { isPrediction, MAX_INPUT_SIDE, predictImages, type ImageFailure, type ImagePrediction } from '../../src/eval/predict.js';
import { saveClassifier } from '../../src/models/model-files.js';
import type { Classifier } from '../../src/models/registry.js';
import { predictLogits } from '../../src/train/evaluate.js';
import { tinyClassifier } from './tiny-model.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'predict-test-'));
process.on('exit', () => fs.rmSync(root, { recursive: true, force: true }));
const CLASSES = ['zero', 'one', 'two'];
const NORMALIZE = { normalize: { mean: [0.5], std: [0.25] } };

/** A run folder `run` with the resolved.yaml of a head + finetune chain whose test op is NORMALIZE. */
function writeRunConfig(run: string): void {
  const config = {
    name: 'p', seed: 0, stages: {
      data: { kind: 'download', needs: [], with: {} },
      aug: { kind: 'augment', needs: ['data'], with: { batch_size: 4, train: [], test: [NORMALIZE] } },
      model: { kind: 'build-model', needs: ['data'], with: {} },
      head: { kind: 'freeze-train', needs: ['aug', 'model'], with: {} },
      finetune: { kind: 'unfreeze-train', needs: ['head'], with: {} },
    },
  };
  fs.mkdirSync(run, { recursive: true });
  fs.writeFileSync(path.join(run, 'resolved.yaml'), stringify(config));
}
const PIXELS = Uint8Array.from({ length: 64 }, (_, i) => (i * 37 + 11) % 256);

/** The prediction `r` (failing the test when it is an error). */
function ok(r: ImagePrediction | ImageFailure | undefined): ImagePrediction {
  assert.ok(r && isPrediction(r), `no prediction: ${JSON.stringify(r)}`);
  return r;
}

/** Softmax of the classifier on one grey 8x8 image given as [0, 1] values after the ops. */
function expected(c: Classifier, x: Float32Array): number[] {
  return tf.tidy(() => [...(tf.softmax(predictLogits(c, tf.tensor4d(x, [1, 8, 8, 1]))).dataSync() as Float32Array)]);
}
const normalized = (px: Uint8Array) => Float32Array.from(px, (v) => (v / 255 - 0.5) / 0.25);

async function writeGrey(file: string, px: Uint8Array, side = 8): Promise<string> {
  await sharp(Buffer.from(px), { raw: { width: side, height: side, channels: 1 } }).toColourspace('b-w').png().toFile(file);
  return file;
}

function assertTop(top: Array<{ class: string; index: number; probability: number }>, probs: number[], k: number): void {
  const order = probs.map((p, i) => [p, i] as const).sort((a, b) => b[0] - a[0]).slice(0, k);
  assert.deepEqual(top.map((t) => t.index), order.map(([, i]) => i));
  top.forEach((t, j) => {
    assert.equal(t.class, CLASSES[t.index]);
    assert.ok(Math.abs(t.probability - order[j]![0]) < 1e-5, `${t.probability} vs ${order[j]![0]}`);
  });
}

/** Runs cmdPredict with its output collected. */
async function capture(target: string, images: string[], opts: { json?: boolean; topK?: number; stage?: string }): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [], err: string[] = [];
  const code = await cmdPredict(target, images, opts, { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) } });
  return { code, stdout: out.join(''), stderr: err.join('') };
}

test('model.json preprocessing: probabilities equal the classifier softmax; top-k capped at the classes', async () => {
  await initEngine('wasm');
  const c = tinyClassifier(1, 1);
  const dir = path.join(root, 'solo', 'best-model');
  await saveClassifier(c, dir, { classes: CLASSES, arch: 'tiny', best_epoch: 2, preprocess: { test: [NORMALIZE], input_size: [8, 8] } });
  const img = await writeGrey(path.join(root, 'a.png'), PIXELS);
  const r = await predictImages(dir, [img], { topK: 5 });
  assert.equal(r.model.preprocess.source, 'model.json');
  assert.deepEqual(r.input, [8, 8, 1]);
  assert.deepEqual(ok(r.results[0]).notes, []);
  assertTop(ok(r.results[0]).top, expected(c, normalized(PIXELS)), 3);

  // an RGB image of neutral grey converts exactly (with a note), and a 16x16 one is resized
  const rgb = path.join(root, 'rgb.png');
  await sharp(Buffer.alloc(8 * 8 * 3, 200), { raw: { width: 8, height: 8, channels: 3 } }).png().toFile(rgb);
  const big = await writeGrey(path.join(root, 'big.png'), new Uint8Array(256).fill(90), 16);
  const r2 = await predictImages(dir, [rgb, big], { topK: 2 });
  assert.deepEqual(ok(r2.results[0]).notes, ['converted RGB to greyscale: the model takes 1 channel']);
  assertTop(ok(r2.results[0]).top, expected(c, normalized(new Uint8Array(64).fill(200))), 2);
  assert.deepEqual(ok(r2.results[1]).notes, ['resized 16x16 to 8x8 (cover, centre crop)']);
  assertTop(ok(r2.results[1]).top, expected(c, normalized(new Uint8Array(64).fill(90))), 2);
});

test('a run folder: the newest best-model, preprocessing from resolved.yaml; run ids resolve under PIPE_RUNS_DIR', async () => {
  await initEngine('wasm');
  const run = path.join(root, 'runs', '20250101T000000-abc123');
  writeRunConfig(run);
  const older = tinyClassifier(1, 10), newer = tinyClassifier(1, 20);
  await saveClassifier(older, path.join(run, 'head', 'best-model'), { classes: CLASSES });
  await saveClassifier(newer, path.join(run, 'finetune', 'best-model'), { classes: CLASSES });
  fs.utimesSync(path.join(run, 'head', 'best-model', 'model.json'), new Date(1000), new Date(1000));
  const img = await writeGrey(path.join(root, 'b.png'), PIXELS);
  const r = await predictImages(run, [img], { topK: 3 });
  assert.equal(r.model.dir, path.join(run, 'finetune', 'best-model'));
  assert.equal(r.model.preprocess.source, 'resolved.yaml');
  assertTop(ok(r.results[0]).top, expected(newer, normalized(PIXELS)), 3);

  process.env['PIPE_RUNS_DIR'] = path.join(root, 'runs');
  try {
    assert.equal((await predictImages('20250101T000000-abc123', [img])).model.dir, r.model.dir);
  } finally {
    delete process.env['PIPE_RUNS_DIR'];
  }
  // the head stage's own folder: its model, the augment stage found through needs
  const h = await predictImages(path.join(run, 'head', 'best-model'), [img], { topK: 3 });
  assertTop(ok(h.results[0]).top, expected(older, normalized(PIXELS)), 3);

  // no preprocessing anywhere: pixels in [0, 1], with a note
  const bare = path.join(root, 'bare', 'm');
  await saveClassifier(older, bare, {});
  const b = await predictImages(bare, [img], { topK: 3 });
  assert.equal(b.model.preprocess.source, 'none');
  assert.match(b.notes.join('\n'), /no preprocessing found/);
  assert.match(b.notes.join('\n'), /stores no names for its 3 classes/);
  const probs = expected(older, Float32Array.from(PIXELS, (v) => v / 255));
  assert.deepEqual(ok(b.results[0]).top.map((t) => t.class), probs.map((p, i) => [p, i] as const).sort((x, y) => y[0] - x[0]).map(([, i]) => `class_${i}`));
});

test('cmdPredict: text and --json output', async () => {
  const dir = path.join(root, 'solo', 'best-model');
  const img = path.join(root, 'a.png');
  const j = await capture(dir, [img], { json: true, topK: 2 });
  assert.equal(j.code, 0, j.stderr);
  const doc = JSON.parse(j.stdout);
  assert.equal(doc.model, dir);
  assert.equal(doc.arch, 'tiny');
  assert.equal(doc.best_epoch, 2);
  assert.equal(doc.preprocess, 'model.json');
  assert.equal(doc.results[0].image, img);
  assert.equal(doc.results[0].top.length, 2);
  const t = await capture(dir, [img], { topK: 3 });
  assert.equal(t.code, 0, t.stderr);
  const lines = t.stdout.trimEnd().split('\n');
  assert.equal(lines[0], `model: ${dir} (tiny, best epoch 2)`);
  assert.equal(lines[1], img);
  assert.equal(lines.length, 5);
  const top1 = doc.results[0].top[0];
  const width = Math.max(...CLASSES.map((c) => c.length)); // all three classes are listed with k = 3
  assert.equal(lines[2], `   1. ${top1.class.padEnd(width)}  ${(100 * top1.probability).toFixed(2).padStart(6)}%`);
});

test('a run of several training chains: no guess (exit 2 listing each chain\'s best model) unless the folder or --stage names one', async () => {
  await initEngine('wasm');
  const id = '20250102T000000-def456';
  const run = path.join(root, 'runs', id);
  const train = (needs: string[]) => ({ kind: 'freeze-train', needs, with: {} });
  const config = {
    name: 'p', seed: 0, stages: {
      data: { kind: 'download', needs: [], with: {} },
      aug: { kind: 'augment', needs: ['data'], with: { batch_size: 4, train: [], test: [NORMALIZE] } },
      model_a: { kind: 'build-model', needs: ['data'], with: {} }, head_a: train(['aug', 'model_a']), tune_a: { ...train(['head_a']), kind: 'unfreeze-train' },
      model_b: { kind: 'build-model', needs: ['data'], with: {} }, head_b: train(['aug', 'model_b']), tune_b: { ...train(['head_b']), kind: 'unfreeze-train' },
    },
  };
  fs.mkdirSync(run, { recursive: true });
  fs.writeFileSync(path.join(run, 'resolved.yaml'), stringify(config));
  const models = { head_a: tinyClassifier(1, 31), tune_a: tinyClassifier(1, 32), head_b: tinyClassifier(1, 33), tune_b: tinyClassifier(1, 34) };
  for (const [stage, c] of Object.entries(models)) await saveClassifier(c, path.join(run, stage, 'best-model'), { classes: CLASSES });
  const img = await writeGrey(path.join(root, 'c.png'), PIXELS);
  const before = process.cwd();
  process.chdir(root);
  try {
    // tune_b's model is the newest; still no guess: both chains' models are listed, as paths from here.
    const r = await capture(path.join('runs', id), [img], {});
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, `pipe: run '${path.join('runs', id)}' has 2 training chains with a best model each; name one (the folder, or --stage <stage>):\n  ${path.join('runs', id, 'tune_a', 'best-model')}\n  ${path.join('runs', id, 'tune_b', 'best-model')}\n`);
    const bad = await capture(path.join('runs', id), [img], { stage: 'nope' });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^pipe: --stage nope: no best model at runs\/20250102T000000-def456\/nope\/best-model \(not a training stage of that run, or it did not finish\); the run's chains have:\n {2}runs\/.*\/tune_a\/best-model\n {2}runs\/.*\/tune_b\/best-model\n$/);
    const onModel = await capture(path.join('runs', id, 'tune_a', 'best-model'), [img], { stage: 'tune_a' });
    assert.equal(onModel.code, 2);
    assert.match(onModel.stderr, /is a model folder already/);
  } finally {
    process.chdir(before);
  }
  for (const stage of ['tune_a', 'tune_b', 'head_b'] as const) {
    const r = await predictImages(run, [img], { topK: 3, stage });
    assert.equal(r.model.dir, path.join(run, stage, 'best-model'));
    assertTop(ok(r.results[0]).top, expected(models[stage], normalized(PIXELS)), 3);
  }
  assert.equal((await predictImages(path.join(run, 'tune_a', 'best-model'), [img])).model.dir, path.join(run, 'tune_a', 'best-model'));
  // One chain without a best model (it failed): the other chain's, not the newest model (head_b's).
  fs.rmSync(path.join(run, 'tune_b'), { recursive: true });
  fs.utimesSync(path.join(run, 'tune_a', 'best-model', 'model.json'), new Date(1000), new Date(1000));
  assert.equal((await predictImages(run, [img])).model.dir, path.join(run, 'tune_a', 'best-model'));
});

test('errors name the file and exit 2', async () => {
  const dir = path.join(root, 'solo', 'best-model');
  const img = path.join(root, 'a.png');
  const cases: Array<[string, string[], number | undefined, RegExp]> = [
    [path.join(root, 'nope'), [img], undefined, /no model at '.*nope': no such file or folder/],
    [path.join(root, 'runs-empty'), [img], undefined, /no model at '.*runs-empty': no model\.json in it/],
    [dir, [path.join(root, 'missing.png')], undefined, /cannot use image '.*missing\.png': no such file/],
    [dir, [path.join(root, 'broken.png')], undefined, /cannot use image '.*broken\.png': not a readable image/],
    [dir, [img], 0, /--top-k must be a whole number >= 1, got 0/],
  ];
  fs.mkdirSync(path.join(root, 'runs-empty', 'x'), { recursive: true });
  fs.writeFileSync(path.join(root, 'broken.png'), 'not an image');
  for (const [target, images, topK, message] of cases) {
    const r = await capture(target, images, { topK });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, message);
    assert.match(r.stderr, /^pipe: /);
    assert.equal(r.stdout, '');
  }
  // a model taking 2 channels and a grey image: no conversion exists
  const two = path.join(root, 'two', 'best-model');
  await saveClassifier(tinyClassifier(2, 3), two, { classes: CLASSES });
  const r = await capture(two, [img], {});
  assert.equal(r.code, 2);
  assert.match(r.stderr, /cannot use image '.*a\.png': it has 1 colour channel\(s\) \(b-w\) but the model takes 2; convert it first/);
});

test('NaN weights (a diverged training): a clear error naming the weight, exit 2, no NaN% printed', async () => {
  await initEngine('wasm');
  const img = await writeGrey(path.join(root, 'n.png'), PIXELS);
  const c = tinyClassifier(1, 5);
  const fc = c.head.getLayer('head_fc');
  const [kernel, bias] = fc.getWeights();
  const k = kernel!.arraySync() as number[][];
  k[2]![1] = Number.NaN; // flat index 2 * 3 + 1 = 7 of the [4, 3] kernel
  fc.setWeights([tf.tensor2d(k), bias!]);
  const dir = path.join(root, 'nan', 'best-model');
  await saveClassifier(c, dir, { classes: CLASSES, preprocess: { test: [NORMALIZE], input_size: [8, 8] } });
  for (const json of [false, true]) {
    const r = await capture(dir, [img], { json });
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, `pipe: model '${dir}' cannot predict: weight head_fc/kernel (in weights.bin) holds 1 non-finite value (NaN at index 7); the training that saved it diverged (retrain it, e.g. with a lower learning rate)\n`);
  }
});

test('a class list of another length than the head\'s outputs: exit 2 saying so, nothing on stdout', async () => {
  await initEngine('wasm');
  const img = await writeGrey(path.join(root, 'k.png'), PIXELS);
  const dir = path.join(root, 'two-names', 'best-model');
  await saveClassifier(tinyClassifier(1, 7), dir, { classes: ['zero', 'one'], preprocess: { test: [NORMALIZE], input_size: [8, 8] } });
  for (const json of [false, true]) {
    const r = await capture(dir, [img], { json });
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, `pipe: model '${dir}/model.json' lists 2 classes (userDefinedMetadata.classes) but its head has 3 outputs: the names cannot be matched to the outputs (the file was edited, or its weights belong to another model)\n`);
  }
  const notNames = path.join(root, 'not-names', 'best-model');
  await saveClassifier(tinyClassifier(1, 7), notNames, { classes: 'zero,one,two' });
  const r = await capture(notNames, [img], {});
  assert.equal(r.code, 2);
  assert.equal(r.stderr, `pipe: model '${notNames}/model.json': userDefinedMetadata.classes must be a list of class names, one per output of the head (3)\n`);
});

test('weights.bin shorter or longer than model.json describes: exit 2 naming the file and both sizes', async () => {
  await initEngine('wasm');
  const img = await writeGrey(path.join(root, 'w.png'), PIXELS);
  const dir = path.join(root, 'sizes', 'best-model');
  await saveClassifier(tinyClassifier(1, 8), dir, { classes: CLASSES, preprocess: { test: [NORMALIZE], input_size: [8, 8] } });
  const bin = path.join(dir, 'weights.bin');
  const full = fs.readFileSync(bin);
  // conv kernel 3x3x1x4 + bias 4, dense kernel 4x3 + bias 3: 55 float32 values
  assert.equal(full.length, 55 * 4);
  for (const [bytes, how] of [[full.subarray(0, 100), 'truncated'], [Buffer.concat([full, full]), 'longer than its manifest']] as const) {
    fs.writeFileSync(bin, bytes);
    const r = await capture(dir, [img], {});
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, `pipe: model '${bin}' holds ${bytes.length} bytes but ${dir}/model.json describes 220 bytes of weights (4 tensors): the file is ${how} or belongs to another model\n`);
  }
  fs.writeFileSync(bin, full);
  assert.equal((await capture(dir, [img], {})).code, 0);
});

test('an input side above MAX_INPUT_SIDE (model.json edited): exit 2 with the limit and its reason, before any image is decoded', async () => {
  await initEngine('wasm');
  const img = await writeGrey(path.join(root, 'h.png'), PIXELS);
  const reason = `pipe predict takes at most ${MAX_INPUT_SIDE} px a side (one 4096x4096 RGB image is 192 MiB as float32 before the first layer; the zoo's largest input is 299 px)`;
  // preprocess.input_size: the size images are resized to
  const sized = path.join(root, 'huge-size', 'best-model');
  await saveClassifier(tinyClassifier(1, 9), sized, { classes: CLASSES, preprocess: { test: [NORMALIZE], input_size: [100000, 8] } });
  let r = await capture(sized, [img], {});
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, `pipe: model '${sized}/model.json': userDefinedMetadata.preprocess.input_size is 100000x8 px; ${reason}\n`);
  // the model's own input (a fully convolutional net takes any size)
  const wide = path.join(root, 'huge-input', 'best-model');
  await saveClassifier(tinyClassifier(1, 9), wide, { classes: CLASSES });
  const mj = path.join(wide, 'model.json');
  const text = fs.readFileSync(mj, 'utf8');
  assert.match(text, /"batch_input_shape":\[null,8,8,1\]/);
  fs.writeFileSync(mj, text.replaceAll('"batch_input_shape":[null,8,8,1]', '"batch_input_shape":[null,8,100000,1]'));
  r = await capture(wide, [img], {});
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stderr, `pipe: model '${mj}': its input (modelTopology) is 8x100000 px; ${reason}\n`);
  // not [height, width]
  await saveClassifier(tinyClassifier(1, 9), sized, { classes: CLASSES, preprocess: { test: [], input_size: [8, 'x'] } });
  r = await capture(sized, [img], {});
  assert.equal(r.code, 2);
  assert.equal(r.stderr, `pipe: model '${sized}/model.json': userDefinedMetadata.preprocess.input_size must be [height, width] in px, got [8,"x"]\n`);
});

test('one unreadable image among several: the others are predicted, it gets its own error line, exit 1; all bad: exit 2, nothing on stdout', async () => {
  await initEngine('wasm');
  const dir = path.join(root, 'solo', 'best-model');
  const c = tinyClassifier(1, 1); // the model of the first test (same seed)
  const a = await writeGrey(path.join(root, 'm1.png'), PIXELS);
  const b = await writeGrey(path.join(root, 'm2.png'), new Uint8Array(64).fill(90));
  const broken = path.join(root, 'm-broken.png');
  fs.writeFileSync(broken, 'not an image');
  const missing = path.join(root, 'm-missing.png');
  const t = await capture(dir, [a, broken, b, missing], { topK: 3 });
  assert.equal(t.code, 1, t.stderr);
  const errs = t.stderr.split('\n').filter((l) => l.startsWith('pipe: cannot use image'));
  assert.equal(errs.length, 2, t.stderr);
  assert.match(errs[0]!, /^pipe: cannot use image '.*m-broken\.png': not a readable image \(/);
  assert.equal(errs[1], `pipe: cannot use image '${missing}': no such file`);
  const blocks = t.stdout.split('\n');
  assert.equal(blocks[1], a);
  assert.equal(blocks[5], b);
  assert.equal(blocks.length, 10); // model line, 2 x (path + 3 classes), final newline
  assert.doesNotMatch(t.stdout, /m-broken|m-missing|NaN|undefined/);

  const j = await capture(dir, [a, broken, b], { json: true, topK: 3 });
  assert.equal(j.code, 1);
  const doc = JSON.parse(j.stdout);
  assert.deepEqual(doc.results.map((x: { image: string }) => x.image), [a, broken, b]);
  assert.match(doc.results[1].error, /^cannot use image '.*m-broken\.png': not a readable image/);
  assert.equal(doc.results[1].top, undefined);
  assertTop(doc.results[0].top, expected(c, normalized(PIXELS)), 3);
  assertTop(doc.results[2].top, expected(c, normalized(new Uint8Array(64).fill(90))), 3);

  for (const json of [false, true]) {
    const all = await capture(dir, [broken, missing], { json });
    assert.equal(all.code, 2, all.stderr);
    assert.equal(all.stdout, '');
    assert.equal(all.stderr.split('\n').filter((l) => l.startsWith('pipe: cannot use image')).length, 2, all.stderr);
  }
});

test('a run that stopped before its chain finished: never the build-model stage\'s untrained model; an earlier stage\'s best model with a note; none: exit 2 saying so', async () => {
  await initEngine('wasm');
  const id = '20250103T000000-aaa111';
  const run = path.join(root, 'runs', id);
  writeRunConfig(run);
  // build-model's saved model (untrained head), written last: the newest model.json of the run
  await saveClassifier(tinyClassifier(1, 41), path.join(run, 'model', 'model'), { classes: CLASSES, arch: 'tiny' });
  const img = await writeGrey(path.join(root, 'k2.png'), PIXELS);
  const none = await capture(run, [img], {});
  assert.equal(none.code, 2, none.stderr);
  assert.equal(none.stdout, '');
  assert.equal(none.stderr, `pipe: no model at '${run}': its training stopped before the first epoch checkpoint (the run was killed or failed); continue it with \`pipe run <pipeline> --resume ${id}\`\n`);

  // head finished, finetune killed before its first epoch: head's best model, said so
  const head = tinyClassifier(1, 42);
  await saveClassifier(head, path.join(run, 'head', 'best-model'), { classes: CLASSES, best_epoch: 1, preprocess: { test: [NORMALIZE], input_size: [8, 8] } });
  await saveClassifier(head, path.join(run, 'head', 'last-model'), { arch: 'tiny' });
  fs.mkdirSync(path.join(run, 'finetune'));
  fs.utimesSync(path.join(run, 'head', 'best-model', 'model.json'), new Date(1000), new Date(1000));
  const r = await capture(run, [img], { json: true, topK: 3 });
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  assert.equal(doc.model, path.join(run, 'head', 'best-model'));
  assert.deepEqual(doc.notes, [`run '${run}' did not finish: stage 'finetune' stopped before its first epoch (killed or failed); using the best model of stage 'head': ${path.join(run, 'head', 'best-model')}`]);
  assertTop(doc.results[0].top, expected(head, normalized(PIXELS)), 3);
});
