/**
 * RestTracker against the fake MLflow server: what a run logs (params in batches of 100 with
 * sanitised keys and truncation tags, metrics in batches of at most 1000, non-finite values,
 * tags, inputs, artifacts, final status), and the spool: an outage in the middle of logging 500
 * metric points loses nothing (every point on the server, in order, exactly once), a server
 * that is down for the whole run is caught up by `pipe sync`.
 */
import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cmdSync } from '../../src/cli/sync.js';
import { MlflowError } from '../../src/tracking/rest/errors.js';
import type { RetryPolicy } from '../../src/tracking/rest/retry.js';
import { Spool } from '../../src/tracking/rest/spool.js';
import { RestTracker, type RestTrackerOptions } from '../../src/tracking/rest/tracker.js';
import { FakeMlflow } from '../fake-mlflow.js';
import type { Point } from '../fake-mlflow-store.js';

let fake: FakeMlflow;
before(async () => (fake = await FakeMlflow.start()));
after(async () => fake.close());
beforeEach(() => {
  fake.faults = [];
  fake.auth = undefined;
});

const FAST: RetryPolicy = { maxRetries: 2, baseDelayMs: 10, maxDelayMs: 40, jitterMs: 5, maxRetryAfterMs: 100 };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const tmp = (): string => mkdtempSync(join(tmpdir(), 'pipe-rest-'));

function start(experiment: string, warnings: string[], extra: Partial<RestTrackerOptions> = {}): Promise<RestTracker> {
  return RestTracker.start(fake.uri, {
    experiment, runName: `${experiment}-run`, user: 'tester', tags: { 'mlflow.source.name': 'p.yaml', 'mlflow.source.type': 'LOCAL' },
    spoolDir: tmp(), client: { retry: FAST, env: {}, timeoutMs: 2000 }, onWarning: (m) => void warnings.push(m), ...extra,
  });
}
const runOf = (experiment: string) => [...fake.store.runs.values()].filter((r) => fake.store.experiments.get(r.info.experiment_id)?.name === experiment);
const series = (points: Point[], key: string): Point[] => points.filter((p) => p.key === key);

test('a run: params, tags, metrics, inputs, artifacts and status reach the server, within the batch limits', async () => {
  const warnings: string[] = [];
  const t = await start('full', warnings);
  assert.match(t.runId, /^[0-9a-f]{32}$/);
  const params: Record<string, string> = {};
  for (let i = 0; i < 250; i++) params[`stages.s${i}.with.lr`] = String(i / 1000);
  params['long'] = 'v'.repeat(7000);
  params['bad@key'] = 'x';
  await t.logParams(params);
  await t.logParams({ 'stages.s1.with.lr': '0.001' }); // same value again: fine
  await assert.rejects(t.logParams({ 'stages.s1.with.lr': '9' }), /Changing param values is not allowed/);
  await t.setTags(Object.fromEntries(Array.from({ length: 150 }, (_, i) => [`pipe.t${i}`, String(i)])));
  for (let i = 0; i < 2500; i++) t.metric('batch_loss', 1 / (i + 1), i);
  t.metric('nan', NaN, 0);
  t.metric('inf', Infinity, 0);
  t.metric('neg_inf', -Infinity, 0);
  await t.logInputs([{ name: 'fashion-mnist', digest: 'abc123', source: '/data/fm', context: 'train', count: 384 }]);
  const dir = tmp();
  writeFileSync(join(dir, 'report.json'), '{"acc": 0.5}');
  await t.logArtifact(join(dir, 'report.json'), 'evaluation');
  await t.end('FINISHED');

  const [run] = runOf('full');
  assert.ok(run);
  assert.equal(run.info.run_id, t.runId);
  assert.equal(run.info.status, 'FINISHED');
  assert.ok(run.info.end_time! >= run.info.start_time && run.info.start_time > 0);
  assert.equal(run.params.size, 252);
  assert.equal(run.params.get('stages.s7.with.lr'), '0.007');
  assert.equal(run.params.get('long'), 'v'.repeat(6000));
  assert.equal(run.params.get('bad_key'), 'x');
  assert.match(run.tags.get('pipe.truncated_params')!, /^long \(7000 characters\)/);
  assert.equal(run.tags.get('pipe.renamed_keys'), 'bad@key -> bad_key');
  assert.equal(run.tags.get('mlflow.runName'), 'full-run');
  assert.equal(run.tags.get('mlflow.user'), 'tester');
  assert.equal(run.tags.get('mlflow.source.type'), 'LOCAL');
  assert.equal(run.tags.get('pipe.t149'), '149');
  const batches = fake.requests.filter((r) => r.path.endsWith('runs/log-batch') && r.body.includes(t.runId)).map((r) => JSON.parse(r.body) as { metrics: unknown[]; params: unknown[]; tags: unknown[] });
  assert.equal(batches.filter((b) => b.params.length).length, 3, '252 params in 3 requests');
  assert.ok(batches.every((b) => b.metrics.length <= 1000 && b.params.length <= 100 && b.tags.length <= 100));
  const loss = series(run.points, 'batch_loss');
  assert.deepEqual(loss.map((p) => p.step), Array.from({ length: 2500 }, (_, i) => i));
  assert.equal(loss[3]!.value, 0.25);
  assert.ok(Number.isNaN(series(run.points, 'nan')[0]!.value));
  assert.equal(series(run.points, 'inf')[0]!.value, Infinity);
  assert.equal(series(run.points, 'neg_inf')[0]!.value, -Infinity);
  assert.deepEqual(run.inputs, [{ tags: [{ key: 'mlflow.data.context', value: 'train' }], dataset: { name: 'fashion-mnist', digest: 'abc123', source_type: 'local', source: '{"uri":"/data/fm"}', profile: '{"num_rows":384}' } }]);
  assert.equal(fake.store.artifacts.get(`${run.info.experiment_id}/${run.info.run_id}/artifacts/evaluation/report.json`)?.toString(), '{"acc": 0.5}');
  assert.deepEqual(warnings, []);
});

test('an outage in the middle of 500 metric points: every point on the server, in order, exactly once', async () => {
  const warnings: string[] = [];
  const t = await start('outage', warnings, { batchSize: 20, flushIntervalMs: 30, probeIntervalMs: 80 });
  const spoolDir = (t as unknown as { spool: Spool }).spool.dir;
  for (let i = 0; i < 500; i++) {
    if (i === 150) {
      // First requests are applied but unanswered (the worst case), then nothing gets through.
      const now = Date.now();
      fake.faults = [{ kind: 'drop-after', until: now + 250 }, { kind: 'drop', until: now + 1200 }];
    }
    t.metric('loss', i / 1000, i);
    if (i % 25 === 24) await t.flush(); // stage ends
    await sleep(4);
  }
  await t.end('FINISHED');
  const [run] = runOf('outage');
  const steps = series(run!.points, 'loss').map((p) => p.step);
  assert.deepEqual(steps, Array.from({ length: 500 }, (_, i) => i));
  assert.deepEqual(series(run!.points, 'loss').map((p) => p.value), Array.from({ length: 500 }, (_, i) => i / 1000));
  assert.equal(run!.info.status, 'FINISHED');
  assert.ok(fake.requests.filter((r) => r.answered === 'dropped').length > 0, 'the outage hit some requests');
  const spool = new Spool(spoolDir);
  const records = await spool.records();
  assert.ok(records.some((r) => r.op === 'batch' && r.metrics?.length), 'points went through the spool');
  assert.equal((await spool.state()).applied, records.length, 'the spool was replayed to the end');
  assert.ok(warnings.some((w) => /unreachable/.test(w)) && warnings.some((w) => /answers again/.test(w)), warnings.join('\n'));
});

test('a server down for the whole run: the run is created and filled by `pipe sync`, once', async () => {
  const warnings: string[] = [];
  fake.faults = [{ kind: 'drop' }];
  const t = await start('offline', warnings, { probeIntervalMs: 60_000 });
  assert.equal(t.runId, '', 'no server run yet');
  const spoolDir = (t as unknown as { spool: Spool }).spool.dir;
  await t.logParams({ 'stages.train.with.epochs': '3' });
  await t.setTags({ 'pipe.best_epoch': '2' });
  for (let i = 0; i < 30; i++) t.metric('loss', 30 - i, i);
  const file = join(tmp(), 'loss.svg');
  writeFileSync(file, '<svg/>');
  await t.logArtifact(file, 'plots');
  writeFileSync(file, 'changed after logging'); // the spool kept its own copy
  await t.end('FAILED');
  assert.equal(runOf('offline').length, 0);
  assert.match(warnings.at(-1)!, new RegExp(`pipe sync ${spoolDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));

  fake.faults = [];
  assert.equal(await cmdSync(spoolDir), 0);
  assert.equal(await cmdSync(spoolDir), 0, 'a second sync has nothing to send');
  const runs = runOf('offline');
  assert.equal(runs.length, 1);
  const run = runs[0]!;
  assert.equal(run.info.run_name, 'offline-run');
  assert.equal(run.info.status, 'FAILED');
  assert.equal(typeof run.info.end_time, 'number');
  assert.equal(run.params.get('stages.train.with.epochs'), '3');
  assert.equal(run.tags.get('pipe.best_epoch'), '2');
  assert.deepEqual(series(run.points, 'loss').map((p) => [p.step, p.value]), Array.from({ length: 30 }, (_, i) => [i, 30 - i]));
  assert.equal(fake.store.artifacts.get(`${run.info.experiment_id}/${run.info.run_id}/artifacts/plots/loss.svg`)?.toString(), '<svg/>');
});

test('pipe sync: refuses a spool held by a live process, reports a server still down', async () => {
  const dir = tmp();
  const spool = new Spool(dir);
  await spool.append({ op: 'open', uri: fake.uri, ref: { runId: 'r', experimentId: '1' } });
  writeFileSync(spool.paths.lock, String(process.ppid));
  assert.equal(await cmdSync(dir), 2);
  writeFileSync(spool.paths.lock, '999999999'); // a process that is gone: stale lock
  await spool.append({ op: 'end', status: 'FINISHED', endTime: 5 });
  fake.faults = [{ kind: 503 }];
  assert.equal(await cmdSync(dir, { client: { retry: FAST, env: {} } }), 1);
  assert.equal((await spool.state()).applied, 1, 'the open record is done, the end record waits');
  assert.equal(await cmdSync(join(dir, 'missing')), 2);
  assert.ok(readFileSync(spool.paths.log, 'utf8').split('\n').filter(Boolean).length === 2);
});

test('a server that refuses the credentials stops the run at the start with a clear error', async () => {
  fake.auth = 'Basic nope';
  await assert.rejects(start('auth', []), (e: MlflowError) => e instanceof MlflowError && e.status === 401 && e.exitCode === 2);
});
