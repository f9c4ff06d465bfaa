/**
 * Sweeps on a Redis queue end to end: a real redis-server on a free 127.0.0.1 port (with a
 * password, passed in the URL to check that it is never printed), the MLflow server of
 * queue-harness.ts (the real one under CI), a submitter (`pipe run --sweep ... --queue URL`) and
 * two `pipe worker` processes on mini_resnet and 128/64 Fashion-MNIST images. One worker is
 * killed (SIGKILL) while it runs a trial: the sweep still completes, every trial finishes exactly
 * once, the killed attempt's run is closed KILLED, and the comparison equals the child runs' own
 * MLflow metrics.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { mlflowMetricKey } from '../../src/tracking/layout.js';
import { MlflowClient } from '../../src/tracking/rest/client.js';
import { makeTree, quickPipeline, runCliIn } from '../utils.js';
import { exited, queueEnv, skipQueue, startPipe, startRedis, startTracking, tagOf, until } from './queue-harness.js';

const PIPELINE = quickPipeline('qsweep');

test('queue mode refuses a local MLflow store (exit 2), for the submitter and the worker', async () => {
  const root = makeTree({ 'p.yaml': PIPELINE });
  const run = await runCliIn(root, ['run', 'p.yaml', '--sweep', 'stages.head.with.optimizer.lr=0.001,0.01', '--queue', 'redis://me:s3cret@127.0.0.1:1/0']);
  assert.equal(run.exitCode, 2);
  assert.match(run.stderr, /pipe run --queue needs a shared MLflow tracking server: set MLFLOW_TRACKING_URI/);
  const worker = await runCliIn(root, ['worker', '--queue', 'redis://me:s3cret@127.0.0.1:1/0'], { MLFLOW_TRACKING_URI: 'file:./mlruns' });
  assert.equal(worker.exitCode, 2);
  assert.match(worker.stderr, /pipe worker needs a shared MLflow tracking server.*'file:\.\/mlruns', a local store/);
  // An unreachable Redis: exit 2, the password masked.
  const down = await runCliIn(root, ['worker', '--queue', 'redis://me:s3cret@127.0.0.1:1/0'], { MLFLOW_TRACKING_URI: 'http://127.0.0.1:1', PIPE_QUEUE_CONNECT_MS: '1000' });
  assert.equal(down.exitCode, 2);
  assert.match(down.stderr, /cannot reach the queue redis:\/\/me:\*\*\*@127\.0\.0\.1:1\/0/);
  assert.ok(!(down.stdout + down.stderr).includes('s3cret'), 'password printed');
});

test('two workers, one killed mid-trial: every trial finishes exactly once, the table equals the child runs', { skip: skipQueue, timeout: 180_000 }, async () => {
  const password = 'pw-never-shown';
  const redis = await startRedis(password);
  const tracking = await startTracking();
  const name = `qsweep${redis.port}`;
  const queue = `redis://default:${password}@127.0.0.1:${redis.port}/0`;
  const env = { ...queueEnv(tracking, redis), PIPE_QUEUE_URL: '' };
  const workers = ['wA', 'wB'].map((w) => startPipe(['worker', '--queue', queue, '--name', w], env));
  const client = new MlflowClient(tracking.uri);
  try {
    const root = makeTree({ 'p.yaml': quickPipeline(name) });
    const submit = startPipe(['run', 'p.yaml', '--sweep', 'stages.head.with.optimizer.lr=0.001,0.003,0.01', '--queue', queue], env, { root });
    // Kill worker A (SIGKILL) once its trial's MLflow run is RUNNING (mid-trial).
    const running = await until(async () => (await tracking.runs(name)).find((x) => tagOf(x, 'pipe.queue.worker') === 'wA' && x.info.status === 'RUNNING'));
    workers[0]!.child.kill('SIGKILL');
    const killed = tagOf(running, 'pipe.sweep.trial')!;
    const everything = (): string => submit.out() + workers.map((w) => w.out()).join('\n');
    assert.equal(await submit.done, 0, everything());
    for (const text of [submit.out(), ...workers.map((w) => w.out())]) assert.ok(!text.includes(password), 'the Redis password was printed');

    const runs = await tracking.runs(name);
    const children = runs.filter((x) => tagOf(x, 'pipe.queue.job'));
    const parent = runs.find((x) => tagOf(x, 'pipe.sweep') === 'true')!;
    assert.equal(parent.info.status, 'FINISHED');
    const names = ['lr=1e-3', 'lr=3e-3', 'lr=0.01'];
    for (const trial of names) {
      const mine = children.filter((c) => tagOf(c, 'pipe.sweep.trial') === trial);
      assert.equal(mine.filter((c) => c.info.status === 'FINISHED').length, 1, `${trial}: finished runs`);
      for (const c of mine) assert.equal(tagOf(c, 'mlflow.parentRunId'), parent.info.run_id);
      if (trial === killed) {
        // The killed attempt's run is closed, not left RUNNING, and the trial finished on worker B.
        assert.deepEqual(mine.map((c) => c.info.status).sort(), ['FINISHED', 'KILLED']);
        assert.equal(tagOf(mine.find((c) => c.info.status === 'FINISHED')!, 'pipe.queue.worker'), 'wB');
      } else assert.equal(mine.length, 1, `${trial}: one attempt`);
    }

    // The comparison CSV equals each finished child run's own metrics.
    const sweeps = readdirSync(join(root, 'runs')).filter((d) => existsSync(join(root, 'runs', d, 'comparison', 'comparison.csv')));
    assert.equal(sweeps.length, 1);
    const [head, ...lines] = readFileSync(join(root, 'runs', sweeps[0]!, 'comparison', 'comparison.csv'), 'utf8').trim().split('\r\n').map((l) => [...l.matchAll(/(?:^|,)(?:"((?:[^"]|"")*)"|([^,]*))/g)].map((m) => (m[1] !== undefined ? m[1].replace(/""/g, '"') : m[2]!))); // RFC 4180 cells (the backend name has a comma)
    const rows = lines.map((l) => Object.fromEntries(head!.map((h, i) => [h, l[i] ?? ''])));
    assert.deepEqual(rows.map((x) => x['trial']).sort(), [...names].sort(), everything());
    const history = async (runId: string, key: string): Promise<{ value: number; step: number }[]> => (await client.getMetricHistory(runId, mlflowMetricKey(key))).map((m) => ({ value: Number(m.value), step: m.step }));
    for (const row of rows) {
      const child = children.find((c) => c.info.run_id === row['mlflow_run_id'])!;
      assert.equal(child.info.status, 'FINISHED');
      assert.equal(tagOf(child, 'pipe.sweep.trial'), row['trial']);
      const acc = (await history(child.info.run_id, 'test_accuracy')).sort((a, b) => b.value - a.value || a.step - b.step)[0]!;
      assert.ok(Math.abs(Number(row['best_test_accuracy']) - acc.value) < 1e-9, `${row['trial']}: ${row['best_test_accuracy']} != ${acc.value}`);
      assert.equal(Number(row['best_epoch']), acc.step);
      const secs = (await history(child.info.run_id, 'epoch_seconds')).reduce((sum, p) => sum + p.value, 0);
      assert.ok(Math.abs(Number(row['train_seconds']) - secs) < 1e-6 * Math.max(1, secs), `${row['trial']} seconds`);
    }
    assert.match(submit.out(), /^trial +status +best test acc/m);
    // The submitter noticed: wA went silent, the job came back, or (when no poll landed in
    // between) it was seen running on wB after wA.
    const k = killed.replace(/[.=]/g, '\\$&');
    assert.match(submit.out(), new RegExp(`(↻ trial \\d/3 ${k}: queued again|! trial \\d/3 ${k}: worker wA stopped answering at|↻ trial \\d/3 ${k}: taken back from wA by wB)`));

    // The operator's view: all three completed, none failed; the live worker by its name.
    const status = await runCliIn(root, ['queue', 'status', '--queue', queue], env);
    assert.equal(status.exitCode, 0, status.stderr);
    assert.match(status.stdout, /: 0 waiting, 0 active, 3 completed, 0 failed/);
    assert.match(status.stdout, /^workers connected: 1 \(wB\)$/m);
    assert.ok(!status.stdout.includes(password));
  } finally {
    for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
    await Promise.all(workers.map((w) => exited(w.child)));
    await client.close();
    await redis.stop();
    await tracking.close();
  }
});
