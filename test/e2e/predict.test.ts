/**
 * `pipe predict` as a user runs it (real `node bin/pipe.js` processes): `--top-k` values that are
 * not a whole number >= 1 are usage errors (exit 2, no NaN); one unreadable image among several
 * leaves the others predicted (exit 1), all unreadable is exit 2 with nothing on stdout; a run
 * killed (kill -9) while fine-tuning predicts with its checkpoint's best weights, exactly what
 * the same training saves as its best model when it finishes at that epoch; a model whose test
 * ops crop records the size they take (the dataset's), so predict resizes to it and crops as they do.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { initEngine } from '../../src/engine/backend.js';
import { saveClassifier } from '../../src/models/model-files.js';
import { tinyClassifier } from '../unit/tiny-model.js';
import { FASHION_MNIST_DIR, makeTree, REPO, runCliIn } from '../utils.js';

const root = makeTree({});
const model = join(root, 'best-model');

before(async () => {
  await initEngine('wasm');
  await saveClassifier(tinyClassifier(1, 4), model, { classes: ['zero', 'one', 'two'], preprocess: { test: [], input_size: [8, 8] } });
  for (const [name, v] of [['a.png', 40], ['b.png', 200]] as const) {
    await sharp(Buffer.alloc(64, v), { raw: { width: 8, height: 8, channels: 1 } }).toColourspace('b-w').png().toFile(join(root, name));
  }
  writeFileSync(join(root, 'broken.png'), 'not an image');
});

test('--top-k abc, 0, -1, 1.5: a usage error naming the option, exit 2, nothing on stdout, no NaN', async () => {
  for (const k of ['abc', '0', '-1', '1.5']) {
    const r = await runCliIn(root, ['predict', 'best-model', 'a.png', '--top-k', k]);
    assert.equal(r.exitCode, 2, `--top-k ${k}: ${r.stderr}`);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, `error: option '--top-k <n>' argument '${k}' is invalid. expected a whole number >= 1.\n`);
  }
});

test('one unreadable image among several: the others are predicted, its own error line, exit 1; all unreadable: exit 2', async () => {
  const r = await runCliIn(root, ['predict', 'best-model', 'a.png', 'broken.png', 'b.png', '--top-k', '2']);
  assert.equal(r.exitCode, 1, r.stderr);
  assert.deepEqual(r.stdout.split('\n').filter((l) => !l.startsWith(' ')), [`model: <root>/best-model`, 'a.png', 'b.png', '']);
  assert.equal(r.stdout.split('\n').filter((l) => /^ {3}[12]\. (zero|one|two) +\d+\.\d\d%$/.test(l)).length, 4, r.stdout);
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('pipe: '));
  assert.equal(errors.length, 1, r.stderr);
  assert.match(errors[0]!, /^pipe: cannot use image 'broken\.png': not a readable image \(/);

  const all = await runCliIn(root, ['predict', 'best-model', 'broken.png', 'missing.png']);
  assert.equal(all.exitCode, 2, all.stderr);
  assert.equal(all.stdout, '');
  assert.deepEqual(all.stderr.split('\n').filter((l) => l.startsWith('pipe: ')).map((l) => l.replace(/ \(.*/, '')), [
    `pipe: cannot use image 'broken.png': not a readable image`,
    `pipe: cannot use image 'missing.png': no such file`,
  ]);
});

const skip = !existsSync(FASHION_MNIST_DIR) && `${FASHION_MNIST_DIR} is missing (apt-get install dataset-fashion-mnist)`;

/** 128 train images in batches of 32: one head epoch, then `finetune` fine-tuning epochs. */
const pipeline = (finetune: number, test = '{ normalize: { mean: [0.3], std: [0.3] } }'): string => `name: killed
seed: 3
stages:
  data: { kind: download, with: { dataset: fashion-mnist, source: ${FASHION_MNIST_DIR}, subset: { train: 128, test: 64 } } }
  aug: { kind: augment, needs: [data], with: { batch_size: 32, test: [ ${test} ], train: [ ${test} ] } }
  model: { kind: build-model, needs: [data, aug], with: { arch: mini_resnet } }
  head: { kind: freeze-train, needs: [aug, model], with: { epochs: 1, optimizer: { lr: 0.003 } } }
  finetune: { kind: unfreeze-train, needs: [head], with: { epochs: ${finetune}, optimizer: { lr: 0.002 } } }
`;

/** The one run folder under `<root>/runs`, or undefined. */
const runDir = (root: string): string | undefined => {
  const runs = join(root, 'runs');
  const d = existsSync(runs) ? readdirSync(runs).find((n) => /^\d{8}T/.test(n)) : undefined;
  return d && join(runs, d);
};

/** `pipe run p.yaml` in `root`, killed with SIGKILL once `<run>/<stage>/checkpoint/latest.json` exists. */
function runKilledAtCheckpoint(root: string, stage: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(REPO, 'bin', 'pipe.js'), 'run', 'p.yaml', '--plain'], {
      cwd: root, env: { ...process.env, MLFLOW_TRACKING_URI: '', PIPE_RUNS_DIR: '', PIPE_CACHE: join(root, 'cache') }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const poll = setInterval(() => {
      const run = runDir(root);
      if (run && existsSync(join(run, stage, 'checkpoint', 'latest.json'))) child.kill('SIGKILL');
    }, 2);
    child.on('error', reject);
    child.on('close', (_code, signal) => {
      clearInterval(poll);
      if (signal === 'SIGKILL') resolve(runDir(root)!);
      else reject(new Error(`the run ended before a ${stage} checkpoint:\n${out}`));
    });
  });
}

interface PredictDoc { model: string; best_epoch: number; notes: string[]; results: Array<{ top: Array<{ class: string; probability: number }> }> }

test('a run killed while fine-tuning: predict uses the best weights of its last checkpoint (full classifier), equal to the best model the finished training saves; with a note', { skip }, async () => {
  // Enough epochs that the run cannot end before the kill, however late the kill lands on a loaded
  // machine; the lr is constant, so epoch E's weights do not depend on how many epochs follow.
  const killed = makeTree({ 'p.yaml': pipeline(40) });
  const run = await runKilledAtCheckpoint(killed, 'finetune');
  // Epoch 2 is the first fine-tuning epoch; the kill came while a later one trained.
  const epoch = JSON.parse(readFileSync(join(run, 'finetune', 'checkpoint', 'latest.json'), 'utf8')).epoch as number;
  assert.ok(epoch >= 2 && epoch < 41, `checkpoint epoch ${epoch}`);
  assert.ok(existsSync(join(run, 'head', 'best-model', 'model.json')) && !existsSync(join(run, 'finetune', 'best-model')));
  const image = join(killed, 'x.png');
  await sharp(Buffer.from(Uint8Array.from({ length: 784 }, (_, i) => (i * 53 + 7) % 256)), { raw: { width: 28, height: 28, channels: 1 } }).toColourspace('b-w').png().toFile(image);
  const p = await runCliIn(killed, ['predict', run, image, '--json', '--top-k', '10']);
  assert.equal(p.exitCode, 0, p.stderr);
  const doc = JSON.parse(p.stdout) as PredictDoc;
  assert.equal(doc.model, join(run, 'finetune', 'checkpoint').split(killed).join('<root>'));
  assert.match(doc.notes.join('\n'), /did not finish: stage 'finetune' stopped \(killed or failed\); using the best weights of its last epoch checkpoint \(epoch \d+, best epoch \d+\)/);
  assert.ok(doc.notes.join('\n').includes(`(epoch ${epoch}, best epoch `));
  const text = await runCliIn(killed, ['predict', run, image]);
  assert.equal(text.exitCode, 0, text.stderr);
  assert.match(text.stderr, /^pipe: note: run '.*' did not finish: stage 'finetune' stopped/m);

  // The same training, finished after that epoch: its best model gives the same probabilities.
  const done = makeTree({ 'p.yaml': pipeline(epoch - 1) });
  const r = await runCliIn(done, ['run', 'p.yaml', '--plain'], { PIPE_CACHE: join(done, 'cache') });
  assert.equal(r.exitCode, 0, r.stderr);
  writeFileSync(join(done, 'x.png'), readFileSync(image));
  const ref = await runCliIn(done, ['predict', runDir(done)!, 'x.png', '--json', '--top-k', '10']);
  assert.equal(ref.exitCode, 0, ref.stderr);
  const want = JSON.parse(ref.stdout) as PredictDoc;
  assert.match(want.model, /finetune\/best-model$/);
  assert.equal(doc.best_epoch, want.best_epoch);
  const probs = (d: PredictDoc): Map<string, number> => new Map(d.results[0]!.top.map((t) => [t.class, t.probability]));
  for (const [cls, pr] of probs(want)) assert.ok(Math.abs(probs(doc).get(cls)! - pr) < 1e-5, `${cls}: ${probs(doc).get(cls)} vs ${pr}`);
});

test('a model trained with a center_crop test op records the dataset\'s image size as its input size: predict resizes to 28x28 and crops as the test ops did', { skip }, async () => {
  const dir = makeTree({ 'p.yaml': pipeline(1, '{ center_crop: { size: 24 } }') });
  const r = await runCliIn(dir, ['run', 'p.yaml', '--plain'], { PIPE_CACHE: join(dir, 'cache') });
  assert.equal(r.exitCode, 0, r.stderr);
  const best = join(runDir(dir)!, 'finetune', 'best-model');
  const meta = JSON.parse(readFileSync(join(best, 'model.json'), 'utf8')).userDefinedMetadata.preprocess as { input_size: number[] };
  assert.deepEqual(meta.input_size, [28, 28], 'the test ops take 28x28 images (they give the model 24x24)');
  const px = Buffer.from(Uint8Array.from({ length: 784 }, (_, i) => (i * 29 + 3) % 256));
  await sharp(px, { raw: { width: 28, height: 28, channels: 1 } }).toColourspace('b-w').png().toFile(join(dir, 'x.png'));
  // The same image cropped by hand to its centre 24x24, given to a model that takes it as it is.
  const crop = Buffer.alloc(24 * 24);
  for (let y = 0; y < 24; y++) px.copy(crop, y * 24, (y + 2) * 28 + 2, (y + 2) * 28 + 26);
  await sharp(crop, { raw: { width: 24, height: 24, channels: 1 } }).toColourspace('b-w').png().toFile(join(dir, 'c.png'));
  // The same weights, told that they take 24x24 images as they are (no test ops).
  const bare = join(dir, 'bare');
  mkdirSync(bare);
  copyFileSync(join(best, 'weights.bin'), join(bare, 'weights.bin'));
  const json = JSON.parse(readFileSync(join(best, 'model.json'), 'utf8'));
  json.userDefinedMetadata.preprocess = { test: [], input_size: [24, 24] };
  writeFileSync(join(bare, 'model.json'), JSON.stringify(json));
  const a = await runCliIn(dir, ['predict', best, 'x.png', '--json', '--top-k', '10']);
  const b = await runCliIn(dir, ['predict', bare, 'c.png', '--json', '--top-k', '10']);
  assert.equal(a.exitCode, 0, a.stderr);
  assert.equal(b.exitCode, 0, b.stderr);
  const pa = JSON.parse(a.stdout) as PredictDoc & { results: Array<{ notes?: string[] }> };
  assert.deepEqual(pa.results[0]!.notes ?? [], [], 'a 28x28 image is not resized');
  const probs = (d: PredictDoc): Map<string, number> => new Map(d.results[0]!.top.map((t) => [t.class, t.probability]));
  const pb = probs(JSON.parse(b.stdout) as PredictDoc);
  for (const [cls, p] of probs(pa)) assert.ok(Math.abs(pb.get(cls)! - p) < 1e-6, `${cls}: ${p} vs ${pb.get(cls)}`);
});
