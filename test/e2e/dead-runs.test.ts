/**
 * Runs whose process died at the very end, with real processes and kill -9: a run killed after
 * every one of its stages was done (here: a run whose only stage comes from the stage cache,
 * killed as soon as its lock.json says so) is marked KILLED by the next command, which advises
 * `pipe run p.yaml --resume <run>`; that command must then finish it (FINISHED in the store, the
 * run's report lines), and the temporary files write-file-atomic leaves beside a file it was
 * writing when the process died (`lock.json.<digits>`) are removed. And a sweep whose own
 * process is killed with kill -9 (runs/<sweep>/process.json, as a run's): the next command marks
 * its parent MLflow run KILLED, and running the sweep again continues and finishes it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { FileStore } from '../../src/tracking/file/store.js';
import { FASHION_MNIST_DIR, makeTree, REPO, runCliIn } from '../utils.js';

const skip = !existsSync(FASHION_MNIST_DIR) && `${FASHION_MNIST_DIR} is missing (apt-get install dataset-fashion-mnist)`;

const PIPELINE = `name: dead
experiment: dead-end
stages:
  data: { kind: download, with: { dataset: fashion-mnist, source: ${FASHION_MNIST_DIR}, subset: { train: 128, test: 64 } } }
`;

/** The run folders under root/runs, oldest first. */
const runDirs = (root: string): string[] => (existsSync(join(root, 'runs')) ? readdirSync(join(root, 'runs')).filter((d) => /^\d{8}T\d{6}-[0-9a-f]+$/.test(d)).sort() : []);

/** True when the run folder's lock.json says every stage is done. */
function allDone(dir: string): boolean {
  try {
    const lock = JSON.parse(readFileSync(join(dir, 'lock.json'), 'utf8')) as { stages: Record<string, { status: string }> };
    return Object.values(lock.stages).length > 0 && Object.values(lock.stages).every((s) => s.status === 'done');
  } catch {
    return false;
  }
}

/**
 * `pipe run p.yaml`, killed with SIGKILL after a new run folder's lock.json has every stage done
 * (polled every 2 ms) and before the run recorded its end. The process is stopped (SIGSTOP) when
 * the poll sees the stages done, wherever it then is, and killed only if its store still says
 * RUNNING; else (a late poll on a loaded machine: the run had recorded its end) it continues and
 * ends by itself. Undefined when the run ended by itself (then the caller tries again).
 */
function runKilledAtTheEnd(root: string): Promise<string | undefined> {
  const before = new Set(runDirs(root));
  const child = spawn(process.execPath, [join(REPO, 'bin', 'pipe.js'), 'run', 'p.yaml', '--plain'], {
    cwd: root, env: { ...process.env, MLFLOW_TRACKING_URI: '', PIPE_RUNS_DIR: '', PIPE_CACHE: join(root, 'cache') }, stdio: 'ignore',
  });
  let killed: string | undefined;
  let stopped = false;
  const poll = setInterval(() => {
    const dir = runDirs(root).find((d) => !before.has(d));
    if (dir && allDone(join(root, 'runs', dir)) && child.exitCode === null && !stopped) {
      stopped = true;
      child.kill('SIGSTOP');
      void storeStatus(root, dir).catch(() => undefined).then((status) => {
        if (status === 1) {
          killed = dir;
          child.kill('SIGKILL');
        } else child.kill('SIGCONT');
      });
    }
  }, 2);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (_code, signal) => {
      clearInterval(poll);
      resolve(signal === 'SIGKILL' ? killed : undefined);
    });
  });
}

/** The MLflow status of the run whose run folder is `dir` (local store; 1 RUNNING, 3 FINISHED, 5 KILLED). */
async function storeStatus(root: string, dir: string): Promise<unknown> {
  const lock = JSON.parse(readFileSync(join(root, 'runs', dir, 'lock.json'), 'utf8')) as { mlflowRunId: string };
  return (await new FileStore(join(root, 'runs', 'mlruns')).readRun(lock.mlflowRunId)).meta['status'];
}

test('a run killed after all its stages were done: the next command marks it KILLED, and the --resume it advises finishes it', { skip }, async () => {
  const root = makeTree({ 'p.yaml': PIPELINE });
  const env = { PIPE_CACHE: join(root, 'cache') };
  const first = await runCliIn(root, ['run', 'p.yaml', '--plain'], env); // fills the stage cache
  assert.equal(first.exitCode, 0, first.stderr);
  let dead: string | undefined;
  for (let i = 0; i < 5 && !dead; i++) dead = await runKilledAtTheEnd(root);
  assert.ok(dead, 'one of five runs was killed after its stages were done');
  assert.equal(await storeStatus(root, dead), 1, 'RUNNING right after kill -9');
  // What write-file-atomic leaves when the process dies in the middle of a write.
  const temp = join(root, 'runs', dead, 'lock.json.3141592653');
  writeFileSync(temp, '{"half":');

  const runs = await runCliIn(root, ['runs'], env);
  assert.equal(runs.exitCode, 0, runs.stderr);
  assert.match(runs.stderr, new RegExp(`^pipe: run <root>/runs/${dead} was left RUNNING by process \\d+, which is gone: marked KILLED \\(continue it with \`pipe run p\\.yaml --resume ${dead}\`\\)$`, 'm'));
  assert.equal(await storeStatus(root, dead), 5, 'KILLED');
  // Its row in the listing advises the same command.
  assert.match(runs.stdout, new RegExp(`^${dead}\\s+dead-${dead}\\s+KILLED .*\\n  -> KILLED; continue with \`pipe run p\\.yaml --resume ${dead}\`$`, 'm'));
  assert.equal(existsSync(temp), false, 'the temporary file of the dead process is removed');

  // The advised command, word for word.
  const resumed = await runCliIn(root, ['run', 'p.yaml', '--resume', dead, '--plain'], env);
  assert.equal(resumed.exitCode, 0, resumed.stdout + resumed.stderr);
  assert.match(resumed.stdout, new RegExp(`^run: ${dead}  outputs: <root>/runs/${dead}$`, 'm'));
  assert.equal(await storeStatus(root, dead), 3, 'FINISHED');
  // Finished now: --resume has nothing more to do, and says so.
  const again = await runCliIn(root, ['run', 'p.yaml', '--plain', '--resume'], env);
  assert.equal(again.exitCode, 2);
  assert.match(again.stderr, /^pipe: --resume: no unfinished run of 'p\.yaml'/);
  const byId = await runCliIn(root, ['run', 'p.yaml', '--plain', '--resume', dead], env);
  assert.equal(byId.exitCode, 2);
  assert.match(byId.stderr, new RegExp(`^pipe: --resume ${dead}: that run finished; nothing to resume`));
});

/** The folders under root/runs holding a sweep.json (sweeps), oldest first. */
const sweepDirs = (root: string): string[] => runDirs(root).filter((d) => existsSync(join(root, 'runs', d, 'sweep.json')));

test('kill -9 of a sweep\'s own process: the next command marks the sweep KILLED (parent MLflow run too); the same command continues and finishes it', { skip }, async () => {
  const root = makeTree({ 'p.yaml': `${PIPELINE}sweep:\n  stages.data.with.subset.train: [64, 96]\n` });
  const env = { PIPE_CACHE: join(root, 'cache') };
  // Killed once its first trial is running (sweep.json says so).
  const child = spawn(process.execPath, [join(REPO, 'bin', 'pipe.js'), 'run', 'p.yaml', '--plain'], {
    cwd: root, env: { ...process.env, MLFLOW_TRACKING_URI: '', PIPE_RUNS_DIR: '', ...env }, stdio: 'ignore',
  });
  const poll = setInterval(() => {
    const dir = sweepDirs(root)[0];
    if (!dir) return;
    try {
      const state = JSON.parse(readFileSync(join(root, 'runs', dir, 'sweep.json'), 'utf8')) as { trials: Array<{ status: string }> };
      if (state.trials.some((t) => t.status === 'running')) child.kill('SIGKILL');
    } catch {
      // being written
    }
  }, 5);
  const signal = await new Promise((resolve) => child.on('close', (_c, sig) => resolve(sig)));
  clearInterval(poll);
  assert.equal(signal, 'SIGKILL', 'the sweep was killed while a trial ran');
  const sweep = sweepDirs(root)[0]!;
  const parent = (JSON.parse(readFileSync(join(root, 'runs', sweep, 'sweep.json'), 'utf8')) as { mlflowRunId: string }).mlflowRunId;
  const status = async (): Promise<unknown> => (await new FileStore(join(root, 'runs', 'mlruns')).readRun(parent)).meta['status'];
  // Its trial notices the lost parent by itself or is closed below; wait for it to be gone.
  for (let i = 0; i < 200 && runDirs(root).some((d) => !existsSync(join(root, 'runs', d, 'sweep.json')) && isLive(join(root, 'runs', d))); i++) await new Promise((r) => setTimeout(r, 100));

  // The next pipe command marks the sweep KILLED: `pipe runs` below, or, when the trial process
  // was starting as the sweep died, that trial itself (a `pipe run`, which closes dead runs as it
  // starts: its note is then in the trial's log, and the parent run is KILLED before `pipe runs`).
  const closed = new RegExp(`^pipe: sweep <root>/runs/${sweep} was left RUNNING by process \\d+, which is gone: marked KILLED \\(continue it with the same \`pipe run p\\.yaml \\.\\.\\.\` command that started it: finished trials are kept\\)$`, 'm');
  const logs = join(root, 'runs', sweep, 'logs');
  const byTrial = existsSync(logs) && readdirSync(logs).some((f) => /was left RUNNING by process \d+, which is gone: marked KILLED/.test(readFileSync(join(logs, f), 'utf8')));
  assert.equal(await status(), byTrial ? 5 : 1, byTrial ? 'KILLED by the trial that noticed it' : 'RUNNING after kill -9 until a command notices');
  const runs = await runCliIn(root, ['runs'], env);
  assert.equal(runs.exitCode, 0, runs.stderr);
  if (!byTrial) assert.match(runs.stderr, closed);
  assert.equal(await status(), 5, 'the parent run is KILLED');
  assert.match(runs.stdout, new RegExp(`${sweep}\\s+sweep dead \\(2 trials\\)\\s+KILLED`));
  const again = await runCliIn(root, ['runs'], env);
  assert.doesNotMatch(again.stderr, /sweep .* marked KILLED/, 'closed once');

  const rerun = await runCliIn(root, ['run', 'p.yaml', '--plain'], env);
  assert.equal(rerun.exitCode, 0, rerun.stdout + rerun.stderr);
  assert.match(rerun.stdout, new RegExp(`^pipe: sweep ${sweep} \\(continued\\)`, 'm'));
  assert.equal(await status(), 3, 'the parent run is FINISHED');
  assert.equal((JSON.parse(readFileSync(join(root, 'runs', sweep, 'process.json'), 'utf8')) as { ended: { status: string } }).ended.status, 'FINISHED');
});

/** True while the run folder's process.json names a process that has not ended it and still exists. */
function isLive(dir: string): boolean {
  try {
    const p = JSON.parse(readFileSync(join(dir, 'process.json'), 'utf8')) as { pid: number; ended?: unknown };
    if (p.ended) return false;
    process.kill(p.pid, 0);
    return true;
  } catch {
    return false;
  }
}
