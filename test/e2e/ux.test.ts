/**
 * What a user sees (issue 20, task ux2), end to end on one tiny real-data pipeline run once:
 * `pipe plan --sweep` gives each trial's own run/skip decisions; one short engine name (the
 * route the heavy work takes) on the engine line, the run-start event, the `pipe.backend` tag,
 * the report header and the `runs compare` backend column.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PlanJson } from '../../src/cli/validate.js';
import type { RunEvent } from '../../src/runner/events.js';
import { FileStore } from '../../src/tracking/file/store.js';
import { makeTree, REPO, runCliIn } from '../utils.js';

const DATA_DIR = '/usr/share/datasets/fashion-mnist';
const skip = !existsSync(DATA_DIR) && `${DATA_DIR} is missing (apt-get install dataset-fashion-mnist)`;

const PIPELINE = `name: uxtest
seed: 5
stages:
  data: { kind: download, with: { dataset: fashion-mnist, source: ${DATA_DIR}, subset: { train: 128, test: 64 } } }
  aug: { kind: augment, needs: [data], with: { batch_size: 32, test: [ { normalize: { mean: [0.3], std: [0.3] } } ], train: [ { normalize: { mean: [0.3], std: [0.3] } } ] } }
  model: { kind: build-model, needs: [data], with: { arch: mini_resnet } }
  head: { kind: freeze-train, needs: [aug, model], with: { epochs: 1, max_steps_per_epoch: 2, optimizer: { lr: 0.003 } } }
  finetune: { kind: unfreeze-train, needs: [head], with: { epochs: 1, max_steps_per_epoch: 2, optimizer: { lr: 0.002 } } }
  eval: { kind: evaluate, needs: [finetune] }
  plots: { kind: plot, needs: [finetune, eval], with: { misclassified: 0 } }
`;

let root = '';
let events: RunEvent[] = [];

before(async () => {
  if (skip) return;
  root = makeTree({ 'p.yaml': PIPELINE });
  const r = await runCliIn(root, ['run', 'p.yaml', '--log-format', 'json'], { PIPE_NATIVE_THREADS: '1' });
  assert.equal(r.exitCode, 0, r.stderr);
  events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as RunEvent);
});

test('plan --sweep: each trial its own run/skip decisions, labelled with the trial name (text and json)', { skip }, async () => {
  const sweep = ['--sweep', 'stages.model.with.arch=mini_resnet,test_resnet18'];
  const json = await runCliIn(root, ['plan', 'p.yaml', ...sweep, '--format', 'json']);
  assert.equal(json.exitCode, 0, json.stderr);
  const p = JSON.parse(json.stdout) as PlanJson;
  const decisions = (name: string): string[] => p.trials!.find((t) => t.name === name)!.stages.map((s) => `${s.name}: ${s.decision}`);
  assert.deepEqual(p.trials!.map((t) => [t.name, t.sets]), [['arch=mini_resnet', ['stages.model.with.arch=mini_resnet']], ['arch=test_resnet18', ['stages.model.with.arch=test_resnet18']]]);
  // mini_resnet is what just ran: all reused; test_resnet18 shares data and aug, and retrains from model on.
  assert.deepEqual(decisions('arch=mini_resnet'), ['data: skip', 'aug: skip', 'model: skip', 'head: skip', 'finetune: skip', 'eval: skip', 'plots: skip']);
  assert.deepEqual(decisions('arch=test_resnet18'), ['data: skip', 'aug: skip', 'model: run', 'head: run', 'finetune: run', 'eval: run', 'plots: run']);
  const text = await runCliIn(root, ['plan', 'p.yaml', ...sweep]);
  assert.equal(text.exitCode, 0, text.stderr);
  const section = (name: string): string => text.stdout.split(/^trials? /m).find((s) => s.startsWith(`${name}:`)) ?? '';
  assert.match(section('arch=mini_resnet'), /^ {2}3\. model \[build-model\] <- data: skip \(unchanged\)$/m, text.stdout);
  assert.match(section('arch=test_resnet18'), /^ {2}3\. model \[build-model\] <- data: run \(.*arch.*\)$/m, text.stdout);
  assert.match(section('arch=test_resnet18'), /^ {2}2\. aug \[augment\] <- data: skip \(unchanged\)$/m, text.stdout);
});

test('the engine is named by its route, one short name everywhere', { skip }, async () => {
  // The repository's addon (built by `npm run build:native`) takes the heavy work when it exists; 1 thread by PIPE_NATIVE_THREADS.
  const name = existsSync(join(REPO, 'build', 'Release', 'pipe_dnnl.node')) ? 'native (oneDNN, 1 thread) + wasm SIMD' : 'wasm';
  const notes = events.flatMap((e) => (e.type === 'note' ? [e.text] : []));
  // One engine line: the name (and, for an addon built before the current kernels, how to rebuild it).
  const line = notes.filter((t) => t.startsWith('engine ')).join('|');
  assert.ok(line === `engine ${name}` || line.startsWith(`engine ${name}; native addon built before `), line);
  assert.ok(!notes.some((t) => /not installed|skipped/.test(t)), notes.join('\n'));
  const start = events.find((e) => e.type === 'run-start');
  assert.ok(start?.type === 'run-start');
  const runDir = start.runDir.replace('<root>', root);
  assert.equal(start.engine, name);
  assert.match(start.engineDetail, /tfjs-node is not installed/, 'the skipped backends and why: in the JSON stream only');
  const lock = JSON.parse(readFileSync(join(runDir, 'lock.json'), 'utf8')) as { mlflowRunId: string };
  const run = await new FileStore(join(root, 'runs', 'mlruns')).readRun(lock.mlflowRunId);
  assert.equal(run.tags['pipe.backend'], name);
  const report = readFileSync(join(runDir, 'plots', 'report.html'), 'utf8');
  assert.ok(report.includes(`<dt>backend</dt><dd>${name}</dd>`), report.slice(0, 2000));
  const compare = await runCliIn(root, ['runs', 'compare', start.runId, '--format', 'json']);
  assert.equal(compare.exitCode, 0, compare.stderr);
  assert.equal((JSON.parse(compare.stdout) as Array<{ backend?: string }>)[0]!.backend, name);
});

test('one parameter count everywhere: learnable parameters, as torchvision counts them', { skip }, async () => {
  // mini_resnet (src/models/resnet.ts) with a 10-class head, worked by hand. Convs have no bias; BatchNorm learns gamma and beta.
  // stem conv 3x3 3->16: 432, bn 32; layer1_0: 2 x (3x3 16->16: 2304, bn 32) = 4672;
  // layer2_0: 3x3 16->32 4608 + 3x3 32->32 9216 + 1x1 16->32 512 + 3 bn x 64 = 14528;
  // layer3_0: 3x3 32->64 18432 + 3x3 64->64 36864 + 1x1 32->64 2048 + 3 bn x 128 = 57728; head 64x10 + 10 = 650.
  const learnable = 432 + 32 + 4672 + 14528 + 57728 + 650; // 78,042
  // Running mean and variance of its 16 + 2x16 + 3x32 + 3x64 = 336 BatchNorm channels.
  const withStats = learnable + 2 * 336; // 78,714
  const start = events.find((e) => e.type === 'run-start');
  assert.ok(start?.type === 'run-start');
  const line = events.flatMap((e) => (e.type === 'stage-progress' && e.stage === 'model' ? [e.text] : [])).find((t) => t.startsWith('mini_resnet: '));
  assert.match(line ?? '', /^mini_resnet: 78,042 parameters \(head 650; 78,714 incl\. BatchNorm running statistics\), 10 classes/);
  const lock = JSON.parse(readFileSync(join(start.runDir.replace('<root>', root), 'lock.json'), 'utf8')) as { mlflowRunId: string };
  const run = await new FileStore(join(root, 'runs', 'mlruns')).readRun(lock.mlflowRunId);
  assert.equal(run.tags['pipe.model.params'], String(learnable));
  assert.equal(run.tags['pipe.model.params_incl_bn_stats'], String(withStats));
  const compare = await runCliIn(root, ['runs', 'compare', start.runId, '--format', 'json']);
  assert.equal((JSON.parse(compare.stdout) as Array<{ params?: number }>)[0]!.params, learnable);
});

test('--log-format json: each stage-epoch field names its MLflow keys, and the stage-metric events log the same value there', { skip }, () => {
  const epochs = events.filter((e): e is Extract<RunEvent, { type: 'stage-epoch' }> => e.type === 'stage-epoch');
  assert.deepEqual(epochs.map((e) => `${e.stage}:${e.epoch}`), ['head:1', 'finetune:2']);
  const metric = (key: string, step: number): number | undefined => events.find((m) => m.type === 'stage-metric' && m.key === key && m.step === step)?.['value' as never];
  for (const e of epochs) {
    // One pipeline, one chain: each field under curves/ (learning curves) or system/ (resources).
    assert.deepEqual(e.keys, {
      train_loss: ['curves/train_loss'], train_accuracy: ['curves/train_accuracy'], test_loss: ['curves/test_loss'], test_accuracy: ['curves/test_accuracy'],
      lr: ['curves/lr'], images_per_second: ['system/images_per_second'],
    });
    for (const [field, keys] of Object.entries(e.keys)) for (const k of keys) assert.equal(metric(k, e.epoch), e[field as keyof typeof e], `${e.stage} ${field} -> ${k}`);
  }
});
