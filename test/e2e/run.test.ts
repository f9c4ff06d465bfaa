/**
 * `pipe run` end to end on a few hundred real Fashion-MNIST images (Debian's
 * dataset-fashion-mnist, installed by .ci/run), one epoch per phase: the MLflow file store
 * contents, the PNG files, and the exit codes of bad input and a failing stage.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileStore } from '../../src/tracking/file/store.js';
import { corruptFashionMnist, corruptFashionMnistWhy, e2ePipeline, FASHION_MNIST_DIR, quickPipeline, runCli, runCliIn } from '../utils.js';

const DATA_DIR = FASHION_MNIST_DIR;

const TINY = e2ePipeline('e2e');

/** The single run of the single non-default experiment in a store. */
function onlyRun(store: string): { exp: string; runId: string } {
  const exps = readdirSync(store).filter((d) => d !== '0' && d !== '.trash');
  assert.equal(exps.length, 1, `experiments: ${exps.join(', ')}`);
  const runs = readdirSync(join(store, exps[0]!)).filter((d) => /^[0-9a-f]{32}$/.test(d));
  assert.equal(runs.length, 1);
  return { exp: exps[0]!, runId: runs[0]! };
}

function pngSize(path: string): [number, number] {
  const b = readFileSync(path);
  assert.deepEqual([...b.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], `${path} is not a PNG`);
  return [b.readUInt32BE(16), b.readUInt32BE(20)];
}

test('pipe run: all seven stages, tracked in the local MLflow store', { skip: !existsSync(DATA_DIR) && `${DATA_DIR} is missing (apt-get install dataset-fashion-mnist)` }, async () => {
  const r = await runCli({ 'p.yaml': TINY }, ['run', 'p.yaml']);
  assert.equal(r.exitCode, 0, r.stderr + r.stdout);
  for (const s of ['data', 'aug', 'model', 'head', 'finetune', 'eval', 'plots']) assert.match(r.stdout, new RegExp(`${s} \\(`));
  const acc = /test accuracy: ([\d.]+)%/.exec(r.stdout);
  assert.ok(acc, r.stdout);

  const store = join(r.root, 'runs', 'mlruns');
  const { runId } = onlyRun(store);
  const run = await new FileStore(store).readRun(runId);
  // Status FINISHED (3) with an end time.
  assert.equal(run.meta['status'], 3);
  assert.equal(typeof run.meta['end_time'], 'number');
  // Params: the resolved config flattened, defaults included.
  assert.equal(run.params['stages.head.with.optimizer.lr'], '0.003');
  assert.equal(run.params['stages.head.with.optimizer.name'], 'adam');
  assert.equal(run.params['stages.aug.with.batch_size'], '64');
  assert.equal(run.params['seed'], '7');
  assert.equal(run.params['stages.finetune.needs'], '["head"]');
  // Tags.
  assert.equal(run.tags['mlflow.note.content'], 'e2e test run');
  assert.equal(run.tags['mlflow.source.name'], 'p.yaml');
  assert.match(run.tags['pipe.backend'] ?? '', /^(native \(oneDNN, \d+ threads?\) \+ wasm SIMD|wasm)$/);
  assert.equal(run.tags['pipe.unfreeze_epoch'], '2');
  assert.equal(run.tags['pipe.freeze.trainable_params'], '650');
  // 384 images / 64 = 6 batches per epoch, 3 epochs: iterations 0..17, epochs 1..3.
  assert.deepEqual(run.metrics['curves/batch_loss']!.map((p) => p.step), Array.from({ length: 18 }, (_, i) => i));
  assert.deepEqual(run.metrics['curves/test_accuracy']!.map((p) => p.step), [1, 2, 3]);
  assert.deepEqual(run.metrics['curves/lr']!.map((p) => p.value), [0.003, 0.002, 0.002]);
  const trainable = run.metrics['model/trainable_params']!.map((p) => p.value);
  assert.equal(trainable[0], 650);
  assert.ok(trainable[1]! > 650, 'unfreezing grows the trainable set');
  // The evaluate stage scores the best epoch's weights: its accuracy equals that epoch's.
  const best = Number(run.tags['pipe.best_epoch']);
  const bestAcc = run.metrics['curves/test_accuracy']!.find((p) => p.step === best)!.value;
  assert.equal(bestAcc, Math.max(...run.metrics['curves/test_accuracy']!.map((p) => p.value)));
  assert.ok(Math.abs(run.metrics['eval/test_accuracy']![0]!.value - bestAcc) < 1e-9);
  assert.equal((100 * bestAcc).toFixed(2), acc[1]);
  // Artifacts: pipeline, resolved config, report, plots, best model.
  const art = join(store, onlyRun(store).exp, runId, 'artifacts');
  for (const f of ['pipeline/p.yaml', 'pipeline/resolved.yaml', 'evaluation/report.json', 'best-model/model.json', 'best-model/weights.bin', 'plots/loss-per-iteration.svg', 'plots/metrics-per-epoch.svg']) {
    assert.ok(existsSync(join(art, f)), `artifact ${f}`);
  }
  const report = JSON.parse(readFileSync(join(art, 'evaluation/report.json'), 'utf8'));
  assert.equal(report.images, 192);
  for (const f of ['loss-per-iteration.png', 'metrics-per-epoch.png']) {
    const [w, h] = pngSize(join(art, 'plots', f));
    assert.ok(w >= 640 && h >= 320, `${f} is ${w}x${h}`);
  }
  // The epoch chart marks the unfreeze epoch.
  assert.match(readFileSync(join(art, 'plots/metrics-per-epoch.svg'), 'utf8'), /unfreeze \(epoch 2\)/);
});

test('bad input: exit 2, file:line:column, nothing under runs/', async () => {
  const r = await runCli({ 'p.yaml': 'name: x\nstages:\n  t: { kind: freeze-train, with: { epochs: -1 } }\n' }, ['run', 'p.yaml']);
  assert.equal(r.exitCode, 2);
  assert.equal(r.stderr, `pipe: 'p.yaml' validation failed: 1 error
p.yaml:3:44: stages.t.with.epochs: must be >= 0; found number -1
  3 |   t: { kind: freeze-train, with: { epochs: -1 } }
    |                                            ^
`);
  assert.equal(existsSync(join(r.root, 'runs')), false);
});

test('a missing pipeline file: exit 2, no stack trace', async () => {
  const r = await runCli({}, ['run', 'nope.yaml']);
  assert.equal(r.exitCode, 2);
  assert.equal(r.stderr, "pipe: cannot read pipeline file 'nope.yaml': no such file\n");
});

test('a stage that throws: task failed, run FAILED, exit 1', async () => {
  // Corrupt data files: a failure only the run sees (validate checks that the files are there).
  const yaml = 'name: f\nstages:\n  data: { kind: download, with: { dataset: fashion-mnist, source: ./bad } }\n  a: { kind: augment, needs: [data] }\n';
  const r = await runCli({ 'p.yaml': yaml, ...corruptFashionMnist('bad') }, ['run', 'p.yaml', '--plain']);
  assert.equal(r.exitCode, 1, r.stderr);
  assert.match(r.stderr, /^✖ data \(download\) \[FAILED/m, 'the task shows failed');
  assert.match(r.stderr, new RegExp(`^pipe: stage 'data' failed: ${corruptFashionMnistWhy('bad')}$`, 'm'));
  assert.match(r.stderr, /^Stage a was skipped due to this failure\.$/m);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  const store = join(r.root, 'runs', 'mlruns');
  const { runId } = onlyRun(store);
  const run = await new FileStore(store).readRun(runId);
  assert.equal(run.meta['status'], 4);
  assert.equal(typeof run.meta['end_time'], 'number');
});

test('a non-finite loss: the stage fails naming where, the run is FAILED, no JSON holds null, a rerun reuses the finished stages and fails the same way', { skip: !existsSync(DATA_DIR) && `${DATA_DIR} is missing` }, async () => {
  const yaml = quickPipeline('nan').replace('finetune: { kind: unfreeze-train, needs: [head], with: { epochs: 1, max_steps_per_epoch: 2, optimizer: { lr: 0.002 } } }', 'finetune: { kind: unfreeze-train, needs: [head], with: { epochs: 1, max_steps_per_epoch: 2, optimizer: { name: sgd, lr: 1000 } } }');
  const r = await runCli({ 'p.yaml': yaml }, ['run', 'p.yaml', '--plain']);
  assert.equal(r.exitCode, 1, r.stderr);
  const why = /^pipe: stage 'finetune' failed: (training loss is (NaN|Infinity) at epoch 2, batch \d \(lr 1000\)|test loss is (NaN|Infinity) after epoch 2 \(lr 1000\)); lower the learning rate$/m;
  assert.match(r.stderr, why);
  const store = join(r.root, 'runs', 'mlruns');
  const { runId } = onlyRun(store);
  assert.equal((await new FileStore(store).readRun(runId)).meta['status'], 4);
  // Every JSON file but tfjs's model.json (its format writes null for "any batch size" and "none").
  const jsons = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? jsons(join(dir, e.name)) : e.name.endsWith('.json') && e.name !== 'model.json' ? [join(dir, e.name)] : []));
  for (const f of jsons(join(r.root, 'runs'))) assert.doesNotMatch(readFileSync(f, 'utf8'), /\bnull\b/, f);
  const again = await runCliIn(r.root, ['run', 'p.yaml', '--plain']);
  assert.equal(again.exitCode, 1, again.stderr);
  assert.match(again.stderr, why);
  assert.doesNotMatch(again.stderr, /\n\s+at /, 'no stack trace');
});

test('transfer learning within one pipeline: classes selection, a torch-named state_dict from a training stage, weights: upstream with a new head', { skip: !existsSync(DATA_DIR) && `${DATA_DIR} is missing` }, async () => {
  const norm = '[ { normalize: { mean: [0.3], std: [0.3] } } ]';
  const yaml = `name: transfer
seed: 5
stages:
  data_a: { kind: download, with: { dataset: fashion-mnist, source: ${DATA_DIR}, classes: [0, 1], subset: { train: 64, test: 32 } } }
  aug_a: { kind: augment, needs: [data_a], with: { batch_size: 32, train: ${norm}, test: ${norm} } }
  model_a: { kind: build-model, needs: [data_a], with: { arch: test_resnet18 } }
  pretrain: { kind: unfreeze-train, needs: [aug_a, model_a], with: { epochs: 1, optimizer: { lr: 0.003 } } }
  data_b: { kind: download, with: { dataset: fashion-mnist, source: ${DATA_DIR}, classes: [Sandal, Bag], subset: { train: 64, test: 32 } } }
  aug_b: { kind: augment, needs: [data_b], with: { batch_size: 32, train: ${norm}, test: ${norm} } }
  model_b: { kind: build-model, needs: [data_b, pretrain], with: { arch: test_resnet18, weights: upstream } }
  head_b: { kind: freeze-train, needs: [aug_b, model_b], with: { epochs: 1, optimizer: { lr: 0.003 } } }
  eval_b: { kind: evaluate, needs: [head_b] }
`;
  const r = await runCli({ 'p.yaml': yaml }, ['run', 'p.yaml', '--plain']);
  assert.equal(r.exitCode, 0, r.stderr);
  const out = r.stdout + r.stderr;
  assert.match(out, /fashion-mnist: 64 train \/ 32 test images/);
  assert.match(out, /test_resnet18: .* 2 classes; re-initialised: head_fc, \d+ tensors loaded from .*\/pretrain\/best-model\/model\.safetensors/);
  const run = readdirSync(join(r.root, 'runs')).find((d) => /^\d{8}T/.test(d))!;
  const report = JSON.parse(readFileSync(join(r.root, 'runs', run, 'eval_b', 'report.json'), 'utf8')) as { classes: string[] };
  assert.deepEqual(report.classes, ['Sandal', 'Bag'], 'class names kept, in the order given');
});
