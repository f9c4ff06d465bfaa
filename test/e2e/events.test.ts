/**
 * What a run tells its user and its scripts, end to end: the JSON event stream
 * (`--log-format json`) checked against the MLflow store the same run wrote, the plain output of
 * a non-terminal (each finished epoch one line, the report and best model at the end), each
 * error printed once, and `--quiet`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { RunEvent } from '../../src/runner/events.js';
import { FileStore } from '../../src/tracking/file/store.js';
import { mlflowMetricKey } from '../../src/tracking/layout.js';
import { corruptFashionMnist, corruptFashionMnistWhy, e2ePipeline, FASHION_MNIST_DIR, quickPipeline, runCli, runCliIn } from '../utils.js';

const skip = !existsSync(FASHION_MNIST_DIR) && `${FASHION_MNIST_DIR} is missing (apt-get install dataset-fashion-mnist)`;
// Corrupt data files: a failure only the run sees (validate checks that the files are there).
const FAILING = { 'p.yaml': 'name: f\nstages:\n  data: { kind: download, with: { dataset: fashion-mnist, source: ./bad } }\n  a: { kind: augment, needs: [data] }\n', ...corruptFashionMnist('bad') };
const WHY = 'does not match the expected';

/** Every line of `stdout` as an event (each must be one JSON object). */
function eventsOf(stdout: string): RunEvent[] {
  return stdout.trim().split('\n').map((l) => JSON.parse(l) as RunEvent);
}
const count = (text: string, part: string): number => text.split(part).length - 1;

test('--log-format json: every stdout line is an event; stages, epochs, metrics and the run end agree with the MLflow store', { skip }, async () => {
  const r = await runCli({ 'p.yaml': e2ePipeline('events') }, ['run', 'p.yaml', '--log-format', 'json']);
  assert.equal(r.exitCode, 0, r.stderr + r.stdout);
  const evs = eventsOf(r.stdout);
  const of = <T extends RunEvent['type']>(t: T): Extract<RunEvent, { type: T }>[] => evs.filter((e): e is Extract<RunEvent, { type: T }> => e.type === t);
  const start = of('run-start')[0]!;
  assert.deepEqual(start.stages.map((s) => [s.name, s.decision, s.epochs]), [
    ['data', 'run', undefined], ['aug', 'run', undefined], ['model', 'run', undefined], ['head', 'run', 1], ['finetune', 'run', 2], ['eval', 'run', undefined], ['plots', 'run', undefined]]);
  assert.deepEqual(of('stage-start').map((e) => e.stage), ['data', 'aug', 'model', 'head', 'finetune', 'eval', 'plots']);
  assert.deepEqual(of('stage-finish').map((e) => [e.stage, e.reused]), start.stages.map((s) => [s.name, false]));
  const epochs = of('stage-epoch');
  assert.deepEqual(epochs.map((e) => [e.stage, e.epoch, e.epochs]), [['head', 1, 1], ['finetune', 2, 3], ['finetune', 3, 3]]);

  const store = join(r.root, 'runs', 'mlruns');
  const exp = readdirSync(store).find((d) => d !== '0' && d !== '.trash')!;
  const runId = readdirSync(join(store, exp)).find((d) => /^[0-9a-f]{32}$/.test(d))!;
  const run = await new FileStore(store).readRun(runId);
  assert.deepEqual(epochs.map((e) => e.test_accuracy), run.metrics[mlflowMetricKey('test_accuracy')]!.map((p) => p.value));
  assert.deepEqual(epochs.map((e) => e.lr), run.metrics[mlflowMetricKey('lr')]!.map((p) => p.value));
  // One naming: each stage-metric event carries the MLflow key the run logged, with the same points.
  const points = new Map<string, string[]>();
  for (const e of of('stage-metric')) points.set(e.key, [...(points.get(e.key) ?? []), `${e.step}:${e.value}`]);
  assert.deepEqual([...points.keys()].sort(), Object.keys(run.metrics).sort());
  for (const [key, got] of points) assert.deepEqual(got.sort(), run.metrics[key]!.map((p) => `${p.step}:${p.value}`).sort(), key);
  assert.ok(points.has('curves/batch_loss') && points.has('eval/test_accuracy') && points.has('system/epoch_seconds'), [...points.keys()].join(' '));

  const end = of('run-end');
  assert.equal(end.length, 1);
  assert.equal(evs.at(-1), end[0]);
  assert.equal(end[0]!.status, 'FINISHED');
  const local = (p: string | undefined): string => (p ?? '').split('<root>').join(r.root);
  assert.equal(end[0]!.reportHtml, `${end[0]!.runDir}/plots/report.html`);
  assert.ok(existsSync(local(end[0]!.reportHtml)));
  assert.equal(end[0]!.bestModel, `${end[0]!.runDir}/finetune/best-model`);
  assert.ok(existsSync(join(local(end[0]!.bestModel), 'model.json')));
});

test('plain output (not a terminal): each finished epoch one line, once; the run ends with the report and the best model', { skip }, async () => {
  const yaml = quickPipeline('plain', '  plots: { kind: plot, needs: [finetune, eval] }\n');
  const r = await runCli({ 'p.yaml': yaml }, ['run', 'p.yaml']);
  assert.equal(r.exitCode, 0, r.stderr + r.stdout);
  assert.equal(count(r.stdout, 'epoch 1/1: train loss '), 1, r.stdout);
  assert.equal(count(r.stdout, 'epoch 2/2: train loss '), 1, r.stdout);
  assert.match(r.stdout, /^› epoch 2\/2: train loss \d\.\d{4} acc \d+\.\d\d% \| test loss \d\.\d{4} acc \d+\.\d\d% \| lr 2\.0e-3 \| \d+ images\/s$/m);
  const runDir = /^run: \S+ {2}outputs: (\S+)$/m.exec(r.stdout)?.[1];
  assert.ok(runDir, r.stdout);
  assert.match(r.stdout, new RegExp(`^report: ${runDir}/plots/report\\.html$`, 'm'));
  assert.match(r.stdout, new RegExp(`^best model: ${runDir}/finetune/best-model$`, 'm'));

  // A rerun reuses every stage: its end lines name the new run's folder (the reused stages are linked there), not the old one's.
  const again = await runCliIn(r.root, ['run', 'p.yaml']);
  assert.equal(again.exitCode, 0, again.stderr + again.stdout);
  assert.match(again.stdout, /^reused from the stage cache: data, aug, model, head, finetune, eval, plots$/m);
  const runDir2 = /^run: \S+ {2}outputs: (\S+)$/m.exec(again.stdout)?.[1];
  assert.ok(runDir2 && runDir2 !== runDir, again.stdout);
  assert.match(again.stdout, new RegExp(`^report: ${runDir2}/plots/report\\.html$`, 'm'));
  assert.match(again.stdout, new RegExp(`^best model: ${runDir2}/finetune/best-model$`, 'm'));
  const local = (p: string): string => p.split('<root>').join(r.root);
  assert.ok(existsSync(`${local(runDir2)}/plots/report.html`));
  assert.ok(existsSync(`${local(runDir2)}/finetune/best-model/model.json`));
});

test('a failing stage: its error is printed once (plain), and in the JSON stream once, in stage-fail and run-end', async () => {
  const plain = await runCli(FAILING, ['run', 'p.yaml', '--plain']);
  assert.equal(plain.exitCode, 1, plain.stderr);
  assert.equal(count(plain.stdout + plain.stderr, WHY), 1, plain.stdout + plain.stderr);
  assert.match(plain.stderr, /^✖ data \(download\) \[FAILED/m);

  const json = await runCli(FAILING, ['run', 'p.yaml', '--log-format', 'json']);
  assert.equal(json.exitCode, 1, json.stderr);
  const evs = eventsOf(json.stdout);
  assert.deepEqual(evs.filter((e) => e.type === 'stage-fail').map((e) => e.type === 'stage-fail' && [e.stage, e.message.includes(WHY)]), [['data', true]]);
  assert.deepEqual(evs.filter((e) => e.type === 'stage-skip').map((e) => e.type === 'stage-skip' && e.stage), ['a']);
  const end = evs.at(-1)!;
  assert.ok(end.type === 'run-end' && end.status === 'FAILED' && end.error?.includes(WHY), JSON.stringify(end));
  assert.equal(count(json.stderr, WHY), 1, json.stderr);
});

test('--quiet: nothing but the error', async () => {
  const r = await runCli(FAILING, ['run', 'p.yaml', '--quiet']);
  assert.equal(r.exitCode, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr.trim().split('\n')[0]!, new RegExp(`^pipe: stage 'data' failed: ${corruptFashionMnistWhy('bad')}$`));
});
