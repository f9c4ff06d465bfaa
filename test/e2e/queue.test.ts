/**
 * Sweeps on a Redis queue end to end: a real redis-server on a free 127.0.0.1 port, the fake
 * MLflow server, a submitter (`pipe run --sweep ... --queue`) and two `pipe worker` processes on
 * mini_resnet and 128/64 Fashion-MNIST images. One worker is killed (SIGKILL) while it runs a
 * trial: the sweep still completes, every trial finishes exactly once, the killed attempt's run
 * is closed KILLED, and the comparison equals the child runs' own MLflow metrics.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { FakeMlflow } from '../fake-mlflow.js';
import { FASHION_MNIST_DIR, makeTree, quickPipeline, REPO, runCliIn } from '../utils.js';

const DATA_DIR = FASHION_MNIST_DIR;
const hasRedis = spawnSync('redis-server', ['--version']).status === 0;
const skip = !existsSync(DATA_DIR) ? `${DATA_DIR} is missing (apt-get install dataset-fashion-mnist)` : !hasRedis ? 'redis-server is missing (apt-get install redis-server; .ci/run installs it)' : false;

const PIPELINE = quickPipeline('qsweep');

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Starts redis-server (no persistence) and resolves once it accepts connections. */
async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let log = '';
    child.stdout!.on('data', (d: Buffer) => {
      log += d.toString();
      if (log.includes('Ready to accept connections')) resolve();
    });
    child.on('exit', (c) => reject(new Error(`redis-server exited ${c}: ${log}`)));
  });
  return child;
}

/** A `pipe worker` in its own folder; `out` collects its stdout and stderr. */
function startWorker(name: string, env: Record<string, string>, queue: string): { child: ChildProcess; out: () => string; root: string } {
  const root = makeTree({});
  let out = '';
  const child = spawn(process.execPath, [join(REPO, 'bin', 'pipe.js'), 'worker', '--queue', queue, '--name', name], { cwd: root, env: { ...process.env, PIPE_RUNS_DIR: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return { child, out: () => out, root };
}

const exited = (c: ChildProcess): Promise<void> => (c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise((r) => c.once('exit', () => r())));

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

test('two workers, one killed mid-trial: every trial finishes exactly once, the table equals the child runs', { skip, timeout: 180_000 }, async () => {
  const port = await freePort();
  const redis = await startRedis(port);
  const mlflow = await FakeMlflow.start();
  const password = 'pw-never-shown';
  spawnSync('redis-cli', ['-p', String(port), 'CONFIG', 'SET', 'requirepass', password]);
  const queue = `redis://default:${password}@127.0.0.1:${port}/0`;
  const env = { MLFLOW_TRACKING_URI: mlflow.uri, PIPE_QUEUE_LOCK_MS: '2000', PIPE_QUEUE_STALLED_MS: '1000', PIPE_QUEUE_NAME: `t${port}` };
  const workers = [startWorker('wA', env, queue), startWorker('wB', env, queue)];
  try {
    const root = makeTree({ 'p.yaml': PIPELINE });
    const submit = runCliIn(root, ['run', 'p.yaml', '--sweep', 'stages.head.with.optimizer.lr=0.001,0.003,0.01', '--queue', queue], env);
    // Kill worker A (SIGKILL) once its trial's MLflow run is RUNNING (mid-trial).
    const killed = await new Promise<string>((resolve) => {
      const t = setInterval(() => {
        const run = [...mlflow.store.runs.values()].find((x) => x.tags.get('pipe.queue.worker') === 'wA' && x.info.status === 'RUNNING');
        if (run) {
          clearInterval(t);
          workers[0]!.child.kill('SIGKILL');
          resolve(run.tags.get('pipe.sweep.trial')!);
        }
      }, 50);
    });
    const r = await submit;
    assert.equal(r.exitCode, 0, r.stderr + r.stdout + workers.map((w) => w.out()).join('\n'));
    for (const text of [r.stdout, r.stderr, ...workers.map((w) => w.out())]) assert.ok(!text.includes(password), 'the Redis password was printed');

    const runs = [...mlflow.store.runs.values()];
    const children = runs.filter((x) => x.tags.get('pipe.queue.job'));
    const parent = runs.find((x) => x.tags.get('pipe.sweep') === 'true')!;
    assert.equal(parent.info.status, 'FINISHED');
    const names = ['lr=1e-3', 'lr=3e-3', 'lr=0.01'];
    for (const name of names) {
      const mine = children.filter((c) => c.tags.get('pipe.sweep.trial') === name);
      assert.equal(mine.filter((c) => c.info.status === 'FINISHED').length, 1, `${name}: finished runs`);
      for (const c of mine) assert.equal(c.tags.get('mlflow.parentRunId'), parent.info.run_id);
      if (name === killed) {
        // The killed attempt's run is closed, not left RUNNING, and the trial finished on worker B.
        assert.deepEqual(mine.map((c) => c.info.status).sort(), ['FINISHED', 'KILLED']);
        assert.equal(mine.find((c) => c.info.status === 'FINISHED')!.tags.get('pipe.queue.worker'), 'wB');
      } else assert.equal(mine.length, 1, `${name}: one attempt`);
    }

    // The comparison CSV equals each finished child run's own metrics.
    const sweeps = readdirSync(join(root, 'runs')).filter((d) => existsSync(join(root, 'runs', d, 'comparison', 'comparison.csv')));
    assert.equal(sweeps.length, 1);
    const [head, ...lines] = readFileSync(join(root, 'runs', sweeps[0]!, 'comparison', 'comparison.csv'), 'utf8').trim().split('\r\n').map((l) => l.split(','));
    const rows = lines.map((l) => Object.fromEntries(head!.map((h, i) => [h, l[i] ?? ''])));
    assert.deepEqual(rows.map((x) => x['trial']).sort(), [...names].sort());
    for (const row of rows) {
      const child = children.find((c) => c.info.run_id === row['mlflow_run_id'])!;
      assert.equal(child.info.status, 'FINISHED');
      assert.equal(child.tags.get('pipe.sweep.trial'), row['trial']);
      const acc = child.points.filter((p) => p.key === 'curves/test_accuracy').sort((a, b) => b.value - a.value || a.step - b.step)[0]!;
      assert.ok(Math.abs(Number(row['best_test_accuracy']) - acc.value) < 1e-9, `${row['trial']}: ${row['best_test_accuracy']} != ${acc.value}`);
      assert.equal(Number(row['best_epoch']), acc.step);
      const secs = child.points.filter((p) => p.key === 'system/epoch_seconds').reduce((s, p) => s + p.value, 0);
      assert.ok(Math.abs(Number(row['train_seconds']) - secs) < 1e-6 * Math.max(1, secs), `${row['trial']} seconds`);
    }
    assert.match(r.stdout, /^trial +status +best test acc/m);
    assert.match(r.stdout, new RegExp(`↻ trial \\d/3 ${killed.replace(/[.=]/g, '\\$&')}: queued again`));

    // The operator's view: all three completed, none failed.
    const status = await runCliIn(root, ['queue', 'status', '--queue', queue], env);
    assert.equal(status.exitCode, 0, status.stderr);
    assert.match(status.stdout, /: 0 waiting, 0 active, 3 completed, 0 failed/);
    assert.ok(!status.stdout.includes(password));
  } finally {
    for (const w of workers) w.child.kill('SIGKILL');
    await Promise.all(workers.map((w) => exited(w.child)));
    redis.kill('SIGKILL');
    await exited(redis);
    await mlflow.close();
  }
});
