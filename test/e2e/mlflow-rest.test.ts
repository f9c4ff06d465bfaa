/**
 * `pipe run` end to end with MLFLOW_TRACKING_URI pointing at the fake MLflow server
 * (test/fake-mlflow.ts): every param of the resolved config, the metric histories, tags,
 * artifacts and the final status arrive over REST; SIGTERM ends the run KILLED.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { flattenParams } from '../../src/tracking/params.js';
import { FakeMlflow } from '../fake-mlflow.js';
import type { FakeRun } from '../fake-mlflow-store.js';
import { e2ePipeline, FASHION_MNIST_DIR, makeTree, REPO, runCli } from '../utils.js';

const DATA_DIR = FASHION_MNIST_DIR;
const TINY = e2ePipeline('e2e-rest');

let fake: FakeMlflow;
before(async () => (fake = await FakeMlflow.start()));
after(async () => fake.close());

/** The one run of experiment `name` on the fake server. */
function onlyRun(name: string): FakeRun {
  const runs = [...fake.store.runs.values()].filter((r) => fake.store.experiments.get(r.info.experiment_id)?.name === name);
  assert.equal(runs.length, 1, `runs in ${name}: ${runs.length}`);
  return runs[0]!;
}
const history = (run: FakeRun, key: string): { step: number; value: number }[] => run.points.filter((p) => p.key === key).map(({ step, value }) => ({ step, value }));

test('pipe run against an MLflow server: params, metrics, tags, artifacts, status', { skip: !existsSync(DATA_DIR) && `${DATA_DIR} is missing (apt-get install dataset-fashion-mnist)` }, async () => {
  const r = await runCli({ 'p.yaml': TINY }, ['run', 'p.yaml', '--plain'], { MLFLOW_TRACKING_URI: fake.uri });
  assert.equal(r.exitCode, 0, r.stderr + r.stdout);
  assert.doesNotMatch(r.stderr, /warning/, 'no tracking warnings with a healthy server');
  const run = onlyRun('e2e-rest');
  assert.equal(run.info.status, 'FINISHED');
  assert.ok(typeof run.info.end_time === 'number' && run.info.end_time >= run.info.start_time);

  // Every param: the resolved config the run wrote, flattened, equals what the server holds.
  const runDirs = readdirSync(join(r.root, 'runs')).filter((d) => existsSync(join(r.root, 'runs', d, 'resolved.yaml')));
  assert.equal(runDirs.length, 1);
  const runDir = join(r.root, 'runs', runDirs[0]!);
  const expected = flattenParams(parse(readFileSync(join(runDir, 'resolved.yaml'), 'utf8')));
  assert.deepEqual(Object.fromEntries([...run.params].sort()), Object.fromEntries(Object.entries(expected).sort()));
  assert.equal(run.params.get('stages.head.with.optimizer.lr'), '0.003');
  assert.equal(run.params.get('seed'), '7');
  assert.equal(run.params.get('stages.finetune.needs'), '["head"]');
  assert.equal(existsSync(join(runDir, 'mlflow-spool.jsonl')), false, 'nothing was spooled');

  // Tags.
  assert.equal(run.tags.get('mlflow.runName'), run.info.run_name);
  assert.equal(run.tags.get('mlflow.note.content'), 'e2e test run');
  assert.equal(run.tags.get('mlflow.source.name'), 'p.yaml');
  assert.equal(run.tags.get('mlflow.source.type'), 'LOCAL');
  assert.ok(run.tags.get('mlflow.user'));
  assert.match(run.tags.get('pipe.backend') ?? '', /^(native \(oneDNN, \d+ threads?\) \+ wasm SIMD|wasm)$/);
  assert.equal(run.tags.get('pipe.unfreeze_epoch'), '2');
  assert.equal(run.tags.get('pipe.run_dir'), runDir);

  // Metrics: 384 images / 64 = 6 batches per epoch, 3 epochs: iterations 0..17, epochs 1..3.
  assert.deepEqual(history(run, 'curves/batch_loss').map((p) => p.step), Array.from({ length: 18 }, (_, i) => i));
  assert.ok(history(run, 'curves/batch_loss').every((p) => Number.isFinite(p.value) && p.value > 0));
  assert.deepEqual(history(run, 'curves/test_accuracy').map((p) => p.step), [1, 2, 3]);
  assert.deepEqual(history(run, 'curves/lr').map((p) => p.value), [0.003, 0.002, 0.002]);
  const best = Number(run.tags.get('pipe.best_epoch'));
  const bestAcc = history(run, 'curves/test_accuracy').find((p) => p.step === best)!.value;
  assert.ok(Math.abs(history(run, 'eval/test_accuracy')[0]!.value - bestAcc) < 1e-9);

  // Artifacts, through the proxy under the run's artifact root.
  const root = `${run.info.experiment_id}/${run.info.run_id}/artifacts`;
  for (const f of ['pipeline/p.yaml', 'pipeline/resolved.yaml', 'evaluation/report.json', 'best-model/model.json', 'best-model/weights.bin', 'plots/loss-per-iteration.svg', 'plots/metrics-per-epoch.png']) {
    assert.ok(fake.store.artifacts.has(`${root}/${f}`), `artifact ${f}`);
  }
  assert.equal(fake.store.artifacts.get(`${root}/pipeline/p.yaml`)!.toString(), TINY);
  assert.equal(JSON.parse(fake.store.artifacts.get(`${root}/evaluation/report.json`)!.toString()).images, 192);
});

test('SIGTERM during training: the server run ends KILLED with an end time', { skip: !existsSync(DATA_DIR) && `${DATA_DIR} is missing` }, async () => {
  const root = makeTree({ 'p.yaml': TINY.replace('experiment: e2e-rest', 'experiment: e2e-rest-killed') });
  const child = spawn(process.execPath, [join(REPO, 'bin', 'pipe.js'), 'run', 'p.yaml', '--plain'], {
    cwd: root, env: { ...process.env, MLFLOW_TRACKING_URI: fake.uri, PIPE_RUNS_DIR: '' }, stdio: 'ignore',
  });
  const seen = fake.requests.length; // only this run's requests count below
  const exited = new Promise<number | null>((r) => child.on('close', r));
  // Wait until the head stage has started training (it tags its trainable count first), then stop the run.
  for (let i = 0; i < 600 && !fake.requests.slice(seen).some((q) => q.body.includes('pipe.freeze.trainable_params')); i++) await new Promise((r) => setTimeout(r, 100));
  child.kill('SIGTERM');
  assert.equal(await exited, 130);
  const run = onlyRun('e2e-rest-killed');
  assert.equal(run.info.status, 'KILLED');
  assert.equal(typeof run.info.end_time, 'number');
  // The reason, on the run: the stage that was running when the signal came.
  assert.match(run.tags.get('pipe.error') ?? '', /^(head|finetune|aug|model|data): interrupted$/);
  assert.match(run.tags.get('mlflow.note.content') ?? '', /^e2e test run\n\n\*\*KILLED\*\*: \w+: interrupted$/);
});
