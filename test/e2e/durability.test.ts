/**
 * Faults with real processes, signals and file systems: `kill -9` at several moments of a run
 * and `--resume` (every step of every metric exactly once, in the local store and on an MLflow
 * server), runs whose process died closed as KILLED by the next command, two quick Ctrl-C, a
 * full disk (a real 8 MiB tmpfs), and several processes creating one experiment at once.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { FileStore, type MetricPoint } from '../../src/tracking/file/store.js';
import { mlflowMetricKey } from '../../src/tracking/layout.js';
import { FakeMlflow } from '../fake-mlflow.js';
import { FASHION_MNIST_DIR, makeTree, REPO, runCliIn } from '../utils.js';

const skip = !existsSync(FASHION_MNIST_DIR) && `${FASHION_MNIST_DIR} is missing (apt-get install dataset-fashion-mnist)`;

/** 128 train images in batches of 32: 4 steps an epoch; 3 freeze + 2 unfreeze epochs = steps 0..19, epochs 1..5. */
function pipeline(experiment: string): string {
  return `name: dur
experiment: ${experiment}
seed: 3
stages:
  data: { kind: download, with: { dataset: fashion-mnist, source: ${FASHION_MNIST_DIR}, subset: { train: 128, test: 64 } } }
  aug: { kind: augment, needs: [data], with: { batch_size: 32, test: [ { normalize: { mean: [0.3], std: [0.3] } } ], train: [ { normalize: { mean: [0.3], std: [0.3] } } ] } }
  model: { kind: build-model, needs: [data], with: { arch: mini_resnet } }
  head: { kind: freeze-train, needs: [aug, model], with: { epochs: 3, optimizer: { lr: 0.003 } } }
  finetune: { kind: unfreeze-train, needs: [head], with: { epochs: 2, optimizer: { lr: 0.002 } } }
  eval: { kind: evaluate, needs: [finetune] }
`;
}
const STEPS = Array.from({ length: 20 }, (_, i) => i);
const EPOCHS = [1, 2, 3, 4, 5];

/** A `pipe` child process in `root`; `done` resolves with its exit code (or signal) and output. */
function start(root: string, args: string[], env: Record<string, string> = {}): { child: ChildProcess; done: Promise<{ code: number | null; signal: string | null; out: string; err: string }> } {
  const child = spawn(process.execPath, [join(REPO, 'bin', 'pipe.js'), ...args], {
    cwd: root,
    env: { ...process.env, MLFLOW_TRACKING_URI: '', PIPE_RUNS_DIR: '', PIPE_CACHE: join(root, 'cache'), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '', err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const done = new Promise<{ code: number | null; signal: string | null; out: string; err: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, out, err }));
  });
  return { child, done };
}

/** When to kill: a line on stdout, or a file appearing under `root` (checked on every output chunk and every 2 ms). */
type Moment = RegExp | { file: (root: string) => boolean; name: string };
const label = (m: Moment): string => (m instanceof RegExp ? m.source : m.name);

/** Runs `pipe run p.yaml` (with `extra` args) and sends `signal` at `when`. */
async function runUntil(root: string, extra: string[], when: Moment, env: Record<string, string> = {}, signal: NodeJS.Signals = 'SIGKILL'): Promise<{ code: number | null; signal: string | null; out: string; err: string }> {
  const p = start(root, ['run', 'p.yaml', '--plain', ...extra], env);
  let seen = '', hit = false;
  const check = (): void => {
    if (hit || p.child.exitCode !== null) return;
    if (when instanceof RegExp ? when.test(seen) : when.file(root)) {
      hit = true;
      p.child.kill(signal);
    }
  };
  p.child.stdout!.on('data', (d: Buffer) => {
    seen += d.toString();
    check();
  });
  const poll = when instanceof RegExp ? undefined : setInterval(check, 2);
  const r = await p.done;
  clearInterval(poll);
  assert.ok(hit, `the run ended (exit ${r.code}) before '${label(when)}':\n${r.out}\n${r.err}`);
  return r;
}

/** Kills a run at each of `points` in turn (resuming it after the first), then resumes it to the end. */
async function killAndResume(root: string, points: Moment[], env: Record<string, string> = {}): Promise<{ out: string; err: string }> {
  for (const [i, when] of points.entries()) {
    const r = await runUntil(root, i === 0 ? [] : ['--resume'], when, env);
    assert.equal(r.signal, 'SIGKILL', `killed at '${label(when)}': exit ${r.code}\n${r.out}\n${r.err}`);
  }
  const last = await start(root, ['run', 'p.yaml', '--plain', '--resume'], env).done;
  assert.equal(last.code, 0, last.out + last.err);
  return last;
}

/** Asserts every metric of a finished run has each expected step exactly once. */
function assertExactlyOnce(metrics: Record<string, { step: number }[]>): void {
  // Named as the stages report them; the MLflow keys follow src/tracking/layout.ts.
  const steps = (k: string): number[] => (metrics[mlflowMetricKey(k)] ?? []).map((p) => p.step).sort((a, b) => a - b);
  assert.deepEqual(steps('batch_loss'), STEPS, 'batch_loss: steps 0..19, each once');
  for (const k of ['train_loss', 'train_accuracy', 'test_loss', 'test_accuracy', 'lr', 'epoch_seconds', 'trainable_params']) assert.deepEqual(steps(k), EPOCHS, `${k}: epochs 1..5, each once`);
  for (const [k, points] of Object.entries(metrics)) {
    const s = points.map((p) => p.step);
    assert.equal(new Set(s).size, s.length, `${k} has a step twice: ${s.join(', ')}`);
  }
  assert.deepEqual(steps('stage_seconds.head'), [0]);
  assert.deepEqual(steps('eval_test_accuracy').length, 1);
}

/** The one run of the one non-default experiment of a local store. */
async function localRun(root: string): Promise<{ meta: Record<string, unknown>; metrics: Record<string, MetricPoint[]> }> {
  const store = join(root, 'runs', 'mlruns');
  const exps = readdirSync(store).filter((d) => d !== '0' && d !== '.trash');
  assert.equal(exps.length, 1, `experiments: ${exps.join(', ')}`);
  const runs = readdirSync(join(store, exps[0]!)).filter((d) => /^[0-9a-f]{32}$/.test(d));
  assert.equal(runs.length, 1, `runs: ${runs.join(', ')}`);
  return new FileStore(store).readRun(runs[0]!);
}

/** True once a stage's checkpoint of the given epoch is in place (latest.json names it). */
const checkpointed = (stage: string, epoch: number) => ({
  name: `${stage} checkpoint of epoch ${epoch}`,
  file: (root: string): boolean => {
    const runs = join(root, 'runs');
    if (!existsSync(runs)) return false;
    return readdirSync(runs).some((d) => {
      try {
        return JSON.parse(readFileSync(join(runs, d, stage, 'checkpoint', 'latest.json'), 'utf8')).epoch === epoch;
      } catch {
        return false;
      }
    });
  },
});

// Moments: in the freeze phase's second epoch (epoch 1 is checkpointed; its record is printed
// just before the checkpoint is written), right after the unfreeze phase's first checkpoint
// (before or while its points are delivered), in the unfreeze phase's second epoch, and while
// evaluating. Each kill lands a few ms after its moment, wherever the process then is.
const KILL_POINTS: Moment[] = [/epoch 2\/\d+: train loss/, checkpointed('finetune', 4), /epoch 5\/\d+: train loss/, /test: scoring/];

test('kill -9 at four moments, --resume each time: every step of every metric exactly once (local store)', { skip }, async () => {
  const root = makeTree({ 'p.yaml': pipeline('dur-local') });
  await killAndResume(root, KILL_POINTS);
  const run = await localRun(root);
  assert.equal(run.meta['status'], 3, 'FINISHED');
  assert.equal(typeof run.meta['end_time'], 'number');
  assertExactlyOnce(run.metrics);
});

let fake: FakeMlflow;
before(async () => (fake = await FakeMlflow.start()));
after(async () => fake.close());

test('kill -9 at four moments, --resume each time: every step of every metric exactly once (MLflow server)', { skip }, async () => {
  const root = makeTree({ 'p.yaml': pipeline('dur-rest') });
  await killAndResume(root, KILL_POINTS, { MLFLOW_TRACKING_URI: fake.uri });
  const runs = [...fake.store.runs.values()].filter((r) => fake.store.experiments.get(r.info.experiment_id)?.name === 'dur-rest');
  assert.equal(runs.length, 1);
  const run = runs[0]!;
  assert.equal(run.info.status, 'FINISHED');
  const metrics: Record<string, { step: number }[]> = {};
  for (const p of run.points) (metrics[p.key] ??= []).push(p);
  assertExactlyOnce(metrics);
});

test('eight processes creating one experiment in one local store at the same moment make one experiment', async () => {
  const root = makeTree({});
  const store = join(root, 'mlruns');
  const storeJs = pathToFileURL(join(REPO, 'dist', 'src', 'tracking', 'file', 'store.js')).href;
  // Each child waits for the `go` file, so all of them ask at once.
  const script = `import { existsSync } from 'node:fs';
const { FileStore } = await import(${JSON.stringify(storeJs)});
while (!existsSync(${JSON.stringify(join(root, 'go'))})) await new Promise((r) => setTimeout(r, 1));
process.stdout.write(await new FileStore(${JSON.stringify(store)}).getOrCreateExperiment('race'));`;
  const children = Array.from({ length: 8 }, () => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    return new Promise<string>((resolve, reject) => child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(err)))));
  });
  await new Promise((r) => setTimeout(r, 300)); // let them load (the barrier makes this a head start, not a timing assumption)
  writeFileSync(join(root, 'go'), '');
  const ids = await Promise.all(children);
  assert.equal(new Set(ids).size, 1, `experiment ids: ${ids.join(', ')}`);
  const named = readdirSync(store).filter((d) => existsSync(join(store, d, 'meta.yaml')) && /name: race\n/.test(readFileSync(join(store, d, 'meta.yaml'), 'utf8')));
  assert.deepEqual(named, [ids[0]]);
});

test('a run whose process was killed is marked KILLED (with an end time) by the next `pipe runs`; --resume reopens and finishes it (local store)', { skip }, async () => {
  const root = makeTree({ 'p.yaml': pipeline('dur-dead') });
  await runUntil(root, [], /epoch 1\/\d+: train loss/);
  let run = await localRun(root);
  assert.equal(run.meta['status'], 1, 'still RUNNING in the store right after kill -9');
  const runs = await runCliIn(root, ['runs'], { PIPE_CACHE: join(root, 'cache') });
  assert.equal(runs.exitCode, 0, runs.stderr);
  assert.match(runs.stderr, /^pipe: run <root>\/runs\/\S+ was left RUNNING by process \d+, which is gone: marked KILLED/m);
  assert.match(runs.stdout, /\bKILLED\b/);
  run = await localRun(root);
  assert.equal(run.meta['status'], 5, 'KILLED');
  assert.equal(typeof run.meta['end_time'], 'number');
  assert.ok((run.meta['end_time'] as number) >= (run.meta['start_time'] as number));
  // Looking again changes nothing.
  const again = await runCliIn(root, ['runs'], { PIPE_CACHE: join(root, 'cache') });
  assert.doesNotMatch(again.stderr, /marked KILLED/);
  const resumed = await start(root, ['run', 'p.yaml', '--plain', '--resume']).done;
  assert.equal(resumed.code, 0, resumed.out + resumed.err);
  run = await localRun(root);
  assert.equal(run.meta['status'], 3, 'FINISHED');
  assertExactlyOnce(run.metrics);
});

test('a run on an MLflow server whose process was killed is marked KILLED there by the next `pipe run`', { skip }, async () => {
  const root = makeTree({ 'p.yaml': pipeline('dur-dead-rest'), 'q.yaml': pipeline('dur-dead-rest-2').replace('name: dur', 'name: other') });
  const env = { MLFLOW_TRACKING_URI: fake.uri };
  await runUntil(root, [], /freeze: [\d,]+ trainable/, env);
  const first = [...fake.store.runs.values()].find((r) => fake.store.experiments.get(r.info.experiment_id)?.name === 'dur-dead-rest')!;
  assert.equal(first.info.status, 'RUNNING');
  // Another pipeline's run is the next command that looks at runs/.
  const p = start(root, ['run', 'q.yaml', '--plain'], env);
  const r = await p.done;
  assert.equal(r.code, 0, r.out + r.err);
  assert.match(r.out, /pipe: run \S+ was left RUNNING by process \d+, which is gone: marked KILLED/);
  assert.equal(first.info.status, 'KILLED');
  assert.equal(typeof first.info.end_time, 'number');
});

test('two quick Ctrl-C: the run ends KILLED with an end time, exit 130', { skip }, async () => {
  const root = makeTree({ 'p.yaml': pipeline('dur-sigint') });
  const p = start(root, ['run', 'p.yaml', '--plain']);
  let sent = 0, outText = '';
  p.child.stdout!.on('data', (d: Buffer) => {
    outText += d.toString();
    if (sent === 0 && /freeze: [\d,]+ trainable/.test(outText)) {
      sent = 1;
      p.child.kill('SIGINT');
    }
  });
  p.child.stderr!.on('data', (d: Buffer) => {
    // The second one as soon as the first is acknowledged: "stopping after the current batch".
    if (sent === 1 && /stopping after the current batch/.test(d.toString())) {
      sent = 2;
      p.child.kill('SIGINT');
    }
  });
  const r = await p.done;
  assert.equal(sent, 2, r.out + r.err);
  assert.equal(r.code, 130, r.out + r.err);
  const run = await localRun(root);
  assert.equal(run.meta['status'], 5, 'KILLED');
  assert.equal(typeof run.meta['end_time'], 'number');
  assert.equal(JSON.parse(readFileSync(join(root, 'runs', readdirSync(join(root, 'runs')).find((d) => /^\d{8}T/.test(d))!, 'process.json'), 'utf8')).ended.status, 'KILLED');
});

/** Mounts a fresh tmpfs of `size` at `dir` (root only); resolves to false when that is impossible here. */
function mountTmpfs(dir: string, size: string): boolean {
  mkdirSync(dir, { recursive: true });
  return spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]).status === 0;
}

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

const canMount = ((): boolean => {
  if (process.getuid?.() !== 0) return false;
  const probe = makeTree({});
  const ok = mountTmpfs(join(probe, 'm'), '1m');
  if (ok) spawnSync('umount', [join(probe, 'm')]);
  return ok;
})();

for (const storeOnFullDisk of [true, false]) {
  const where = storeOnFullDisk ? 'the MLflow store on the full disk too' : 'the MLflow store on another disk';
  test(`a full disk (real 8 MiB tmpfs holding runs/, ${where}): one pipe: line with path and cause, exit 1, run FAILED with end time, no .tmp, lock.json consistent; after making room --resume completes`, { skip: skip || (!canMount && 'mounting a tmpfs needs root (mount -t tmpfs)') }, async () => {
    const root = makeTree({ 'p.yaml': pipeline(`dur-full-${storeOnFullDisk}`) });
    const runs = join(root, 'runs');
    assert.ok(mountTmpfs(runs, '8m'));
    try {
      // 6.5 MiB of filler leaves room for the data and model stages, not for training's checkpoints and models.
      writeFileSync(join(runs, 'filler'), Buffer.alloc(6.5 * 1024 * 1024, 1));
      const env: Record<string, string> = storeOnFullDisk ? {} : { MLFLOW_TRACKING_URI: `file://${join(root, 'store')}` };
      const store = storeOnFullDisk ? join(runs, 'mlruns') : join(root, 'store');
      const r = await start(root, ['run', 'p.yaml', '--plain'], env).done;
      assert.equal(r.code, 1, r.out + r.err);
      // listr's own line for the failed task (✖ ...) comes too; pipe says what happened once.
      const lines = r.err.split('\n').filter((l) => l.startsWith('pipe:'));
      assert.equal(lines.length, 1, `stderr: ${r.err}`);
      assert.doesNotMatch(r.err, /internal error|\n\s+at /, 'no stack trace');
      assert.match(lines[0]!, new RegExp(`^pipe: stage '\\w+' failed: no space left on the device \\(ENOSPC\\) while writing ${runs.replace(/[/.]/g, '\\$&')}/\\S+; make room there, then continue with \`pipe run p.yaml --resume \\d{8}T\\d{6}-[0-9a-f]+\`$`));
      const storeRun = async (): Promise<{ meta: Record<string, unknown>; metrics: Record<string, MetricPoint[]> }> => {
        const exp = readdirSync(store).find((d) => d !== '0' && d !== '.trash' && existsSync(join(store, d, 'meta.yaml')))!;
        const id = readdirSync(join(store, exp)).find((d) => /^[0-9a-f]{32}$/.test(d))!;
        return new FileStore(store).readRun(id);
      };
      const failed = await storeRun();
      assert.equal(failed.meta['status'], 4, 'FAILED');
      assert.equal(typeof failed.meta['end_time'], 'number');
      assert.deepEqual(filesUnder(runs).filter((f) => /\.tmp\b/.test(f)), [], 'no temporary files left');
      const runDir = join(runs, readdirSync(runs).find((d) => /^\d{8}T/.test(d))!);
      const lock = JSON.parse(readFileSync(join(runDir, 'lock.json'), 'utf8')) as { stages: Record<string, { status: string }> };
      const states = Object.values(lock.stages).map((s) => s.status);
      assert.ok(states.includes('failed') && !states.includes('running'), `stage states in lock.json: ${states.join(', ')}`);
      assert.equal(JSON.parse(readFileSync(join(runDir, 'process.json'), 'utf8')).ended.status, 'FAILED');

      rmSync(join(runs, 'filler'));
      const again = await start(root, ['run', 'p.yaml', '--plain', '--resume'], env).done;
      assert.equal(again.code, 0, again.out + again.err);
      const done = await storeRun();
      assert.equal(done.meta['status'], 3, 'FINISHED');
      assertExactlyOnce(done.metrics);
    } finally {
      spawnSync('umount', ['-l', runs]);
    }
  });
}

test('two quick Ctrl-C while the run is being set up (its MLflow run just opened): KILLED with an end time', { skip }, async () => {
  const root = makeTree({ 'p.yaml': pipeline('dur-sigint-setup') });
  const p = start(root, ['run', 'p.yaml', '--plain']);
  let sent = 0;
  // The first Ctrl-C as soon as process.json exists (written right after the store opened the run).
  const poll = setInterval(() => {
    const runs = join(root, 'runs');
    if (sent === 0 && existsSync(runs) && readdirSync(runs).some((d) => existsSync(join(runs, d, 'process.json')))) {
      sent = 1;
      p.child.kill('SIGINT');
    }
  }, 1);
  p.child.stderr!.on('data', (d: Buffer) => {
    if (sent === 1 && /again to quit now/.test(d.toString())) {
      sent = 2;
      p.child.kill('SIGINT');
    }
  });
  const r = await p.done;
  clearInterval(poll);
  assert.equal(sent, 2, r.out + r.err);
  assert.equal(r.code, 130, r.out + r.err);
  const run = await localRun(root);
  assert.equal(run.meta['status'], 5, `KILLED:\n${r.out}\n${r.err}`);
  assert.equal(typeof run.meta['end_time'], 'number');
});

test('a Ctrl-C that comes while the last stage finishes interrupts nothing: the run is FINISHED, exit 0', { skip }, async () => {
  const root = makeTree({ 'p.yaml': `${pipeline('dur-sigint-last')}  plots: { kind: plot, needs: [finetune, eval] }\n` });
  const p = start(root, ['run', 'p.yaml', '--plain']);
  let sent = false, outText = '';
  p.child.stdout!.on('data', (d: Buffer) => {
    outText += d.toString();
    if (!sent && /❯ plots \(plot\)/.test(outText)) {
      sent = true;
      p.child.kill('SIGINT');
    }
  });
  const r = await p.done;
  assert.ok(sent, r.out + r.err);
  assert.equal(r.code, 0, r.out + r.err);
  const run = await localRun(root);
  assert.equal(run.meta['status'], 3, 'FINISHED');
});

test('two --resume of one run at once: one runs it, the other is refused (exit 2); every step once', { skip }, async () => {
  const root = makeTree({ 'p.yaml': pipeline('dur-two-resumes') });
  await runUntil(root, [], /epoch 2\/\d+: train loss/);
  const [a, b] = await Promise.all([start(root, ['run', 'p.yaml', '--plain', '--resume']).done, start(root, ['run', 'p.yaml', '--plain', '--resume']).done]);
  const both = `${a.out}${a.err}\n---\n${b.out}${b.err}`;
  assert.deepEqual([a.code, b.code].sort(), [0, 2], both);
  // The loser says why: the run is held by the other process (or, if it came late, that it finished).
  assert.match([a, b].find((r) => r.code === 2)!.err, /is being run by process \d+|that run finished/, both);
  const run = await localRun(root);
  assert.equal(run.meta['status'], 3);
  assertExactlyOnce(run.metrics);
  assert.ok(!readdirSync(join(root, 'runs')).some((d) => existsSync(join(root, 'runs', d, 'run.claim'))), 'the claim is released');
});

for (const storeOnFullDisk of [true, false]) {
  test(`a disk full to the last block before the run folder exists (${storeOnFullDisk ? 'the MLflow store on it' : 'the MLflow store elsewhere'}): exit 1, one pipe: line naming the file it could not write`, { skip: skip || (!canMount && 'mounting a tmpfs needs root (mount -t tmpfs)') }, async () => {
    const root = makeTree({ 'p.yaml': pipeline(`dur-full-before-${storeOnFullDisk}`) });
    const runs = join(root, 'runs');
    assert.ok(mountTmpfs(runs, '64k'));
    try {
      assert.throws(() => writeFileSync(join(runs, 'filler'), Buffer.alloc(128 * 1024, 1)), /ENOSPC/);
      const r = await start(root, ['run', 'p.yaml', '--plain'], storeOnFullDisk ? {} : { MLFLOW_TRACKING_URI: `file://${join(root, 'store')}` }).done;
      assert.equal(r.code, 1, r.out + r.err);
      const lines = r.err.split('\n').filter((l) => l.startsWith('pipe: ') && !l.startsWith('pipe: engine'));
      assert.equal(lines.length, 1, r.err);
      const runsRe = runs.replace(/[/.]/g, '\\$&');
      // The store's first file (an experiment's meta.yaml), or the run folder's first file.
      assert.match(lines[0]!, new RegExp(storeOnFullDisk
        ? `^pipe: cannot write ${runsRe}/mlruns/\\S+/meta\\.yaml: no space left on the device; `
        : `^pipe: no space left on the device \\(ENOSPC\\) while writing ${runsRe}/\\d{8}T\\d{6}-[0-9a-f]+/\\S+; `), r.err);
    } finally {
      spawnSync('umount', ['-l', runs]);
    }
  });
}

test('a disk already full when the run starts: exit 1, one pipe: line, no RUNNING run left in the store', { skip: skip || (!canMount && 'mounting a tmpfs needs root (mount -t tmpfs)') }, async () => {
  const root = makeTree({ 'p.yaml': pipeline('dur-full-at-start') });
  const runs = join(root, 'runs');
  mkdirSync(runs);
  assert.ok(mountTmpfs(runs, '60k'));
  try {
    const r = await start(root, ['run', 'p.yaml', '--plain']).done;
    assert.equal(r.code, 1, r.out + r.err);
    const lines = r.err.split('\n').filter((l) => l.startsWith('pipe: ') && !l.startsWith('pipe: engine'));
    assert.equal(lines.length, 1, r.err);
    assert.match(lines[0]!, /no space left on the device/);
    assert.doesNotMatch(lines[0]!, /cannot \w+ :/, 'no empty path');
    const metas = spawnSync('find', [runs, '-name', 'meta.yaml']).stdout.toString().split('\n').filter(Boolean);
    for (const m of metas) assert.doesNotMatch(readFileSync(m, 'utf8'), /^status: 1$/m, `${m} is a RUNNING run`);
  } finally {
    spawnSync('umount', ['-l', runs]);
  }
});
