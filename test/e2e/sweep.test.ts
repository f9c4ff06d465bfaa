/**
 * Sweeps end to end on mini_resnet and a little real Fashion-MNIST (128 train / 64 test images,
 * 2 steps per epoch, one epoch per phase): trials as MLflow child runs under a parent, shared
 * stages run once, the comparison equal to the child runs' own metrics, rerun and resume after
 * Ctrl-C without redoing finished trials, fail-fast and --keep-going with --parallel.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileStore, type MetricPoint } from '../../src/tracking/file/store.js';
import type { Lock } from '../../src/runner/cache.js';
import type { SweepState } from '../../src/sweep/state.js';
import { FASHION_MNIST_DIR, makeTree, quickPipeline, REPO, runCliIn } from '../utils.js';

const DATA_DIR = FASHION_MNIST_DIR;
const skip = !existsSync(DATA_DIR) && `${DATA_DIR} is missing (apt-get install dataset-fashion-mnist)`;

const pipeline = (name: string, sweep = ''): string => quickPipeline(name, sweep);

const json = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T;

function sweepOf(root: string): { dir: string; state: SweepState } {
  const runs = join(root, 'runs');
  const dirs = readdirSync(runs).filter((d) => existsSync(join(runs, d, 'sweep.json')));
  assert.equal(dirs.length, 1, `sweep folders: ${dirs.join(', ')}`);
  return { dir: join(runs, dirs[0]!), state: json<SweepState>(join(runs, dirs[0]!, 'sweep.json')) };
}

const lockOf = (root: string, runId: string): Lock => json<Lock>(join(root, 'runs', runId, 'lock.json'));

/** Every MLflow run id of the store's non-default experiments. */
function allRuns(store: string): string[] {
  return readdirSync(store).filter((d) => d !== '0' && d !== '.trash').flatMap((e) => readdirSync(join(store, e)).filter((r) => /^[0-9a-f]{32}$/.test(r)));
}

/** CSV without quoted fields (the test's names have no commas) as objects. */
/** RFC 4180 rows (cells with a comma or quote are quoted, `""` an inner quote; no line breaks in cells here). */
function parseCsv(text: string): Record<string, string>[] {
  const cells = (l: string): string[] => [...l.matchAll(/(?:^|,)(?:"((?:[^"]|"")*)"|([^,]*))/g)].map((m) => (m[1] !== undefined ? m[1].replace(/""/g, '"') : m[2]!));
  const [head, ...rows] = text.trim().split('\r\n').map(cells);
  return rows.map((r) => Object.fromEntries(head!.map((h, i) => [h, r[i] ?? ''])));
}

const close = (actual: number, expected: number, what: string): void => assert.ok(Math.abs(actual - expected) <= 1e-9 * Math.max(1, Math.abs(expected)), `${what}: ${actual} != ${expected}`);

test('a 3-trial sweep, 3 at once: child runs under a parent, shared stages once, the table equals the child metrics', { skip }, async () => {
  const root = makeTree({ 'p.yaml': pipeline('sweep3', 'sweep:\n  stages.head.with.optimizer.lr: [1.0e-3, 3.0e-3, 1.0e-2]\n') });
  // --parallel 3 on a cold cache: trials 2 and 3 must wait for trial 1's data, aug and model.
  const r = await runCliIn(root, ['run', 'p.yaml', '--parallel', '3']);
  assert.equal(r.exitCode, 0, r.stderr + r.stdout);
  const { dir, state } = sweepOf(root);
  assert.deepEqual(state.trials.map((t) => [t.name, t.status]), [['lr=1e-3', 'finished'], ['lr=3e-3', 'finished'], ['lr=0.01', 'finished']]);
  const store = join(root, 'runs', 'mlruns');
  const fs = new FileStore(store);
  const parent = await fs.readRun(state.mlflowRunId!);
  assert.equal(parent.meta['status'], 3);
  assert.equal(parent.tags['pipe.sweep'], 'true');
  assert.equal(parent.params['sweep.params.stages.head.with.optimizer.lr'], '[0.001,0.003,0.01]');
  assert.equal(allRuns(store).length, 4, 'the parent and three children');

  const children = await Promise.all(state.trials.map((t) => fs.readRun(t.mlflowRunId!)));
  children.forEach((c, i) => {
    assert.equal(c.tags['mlflow.parentRunId'], state.mlflowRunId);
    assert.equal(c.tags['mlflow.runName'], state.trials[i]!.name);
    assert.equal(c.params['stages.head.with.optimizer.lr'], ['0.001', '0.003', '0.01'][i]);
    assert.equal(c.meta['status'], 3);
  });

  // Shared stages ran in trial 1 only; trials 2 and 3 reused its folders.
  const locks = state.trials.map((t) => lockOf(root, t.runId!));
  for (const s of ['data', 'aug', 'model']) {
    assert.equal(locks[0]!.stages[s]!.reusedFrom, undefined, `${s} ran in trial 1`);
    for (const l of locks.slice(1)) assert.equal(l.stages[s]!.reusedFrom, locks[0]!.stages[s]!.outDir, `${s} reused`);
    // A reused stage's folder in the new run is a link to the folder it reused (issue 20: a complete run).
    for (const t of state.trials.slice(1)) {
      const here = join(root, 'runs', t.runId!, s);
      assert.ok(lstatSync(here).isSymbolicLink(), `${s} in ${t.name} is a link`);
      assert.equal(realpathSync(here), realpathSync(resolve(root, locks[0]!.stages[s]!.outDir)), `${s} in ${t.name} links to trial 1's folder`);
    }
  }
  for (const l of locks) assert.equal(l.stages['head']!.reusedFrom, undefined, 'head differs per trial');
  const logs = readdirSync(join(dir, 'logs')).map((f) => readFileSync(join(dir, 'logs', f), 'utf8'));
  assert.equal(logs.length, 3);
  assert.equal(logs.filter((l) => /^reused from the stage cache: data, aug, model$/m.test(l)).length, 2);

  // The comparison on the parent run, recomputed from each child run's own MLflow metrics.
  const artifacts = fileURLToPath(String(parent.meta['artifact_uri']));
  const rows = parseCsv(readFileSync(join(artifacts, 'comparison', 'comparison.csv'), 'utf8'));
  assert.equal(rows.length, 3);
  const params = children[0]!.tags['pipe.model.params'];
  for (const [i, t] of state.trials.entries()) {
    const row = rows.find((x) => x['trial'] === t.name)!;
    const m = children[i]!.metrics;
    const at = (k: string): Map<number, number> => new Map((m[k] ?? []).map((p: MetricPoint) => [p.step, p.value]));
    const acc = [...at('curves/test_accuracy')].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]!;
    const secs = at('system/epoch_seconds');
    const ips = at('system/images_per_second');
    const total = [...secs.values()].reduce((a, b) => a + b, 0);
    close(Number(row['best_test_accuracy']), acc[1], `${t.name} accuracy`);
    assert.equal(Number(row['best_epoch']), acc[0]);
    close(Number(row['train_seconds']), total, `${t.name} seconds`);
    close(Number(row['images_per_second']), [...secs].reduce((s, [e, v]) => s + v * ips.get(e)!, 0) / total, `${t.name} images/s`);
    assert.equal(Number(row['peak_rss_bytes']), Math.max(...(m['system/rss_bytes'] ?? []).map((p) => p.value)));
    assert.equal(row['params'], params);
    assert.equal(row['backend'], children[i]!.tags['pipe.backend']);
    assert.equal(row['mlflow_run_id'], t.mlflowRunId);
  }
  const accs = rows.map((x) => Number(x['best_test_accuracy']));
  assert.deepEqual(accs, [...accs].sort((a, b) => b - a), 'sorted by accuracy');
  for (const f of ['comparison.md', 'comparison.html', 'best-test-accuracy.png', 'train-time.svg', 'test-accuracy-curves.png', 'test-accuracy-curves.svg']) {
    assert.ok(existsSync(join(artifacts, 'comparison', f)), f);
  }
  assert.ok(existsSync(join(dir, 'comparison', 'comparison.csv')));
  assert.match(r.stdout, /^trial +status +best test acc/m);

  // Rerun: every trial is skipped, nothing new in the store.
  const mtime = statSync(join(root, 'runs', state.trials[0]!.runId!, 'lock.json')).mtimeMs;
  const again = await runCliIn(root, ['run', 'p.yaml']);
  assert.equal(again.exitCode, 0, again.stderr);
  assert.match(again.stdout, /3 trials finished earlier and skipped/);
  assert.equal(allRuns(store).length, 4);
  assert.equal(statSync(join(root, 'runs', state.trials[0]!.runId!, 'lock.json')).mtimeMs, mtime);

  const listed = await runCliIn(root, ['runs']);
  assert.equal(listed.exitCode, 0, listed.stderr);
  assert.match(listed.stdout, new RegExp(`^${state.sweepId} +sweep sweep3 \\(3 trials\\) +FINISHED`, 'm'));
  for (const t of state.trials) assert.match(listed.stdout, new RegExp(`^  ${t.runId} +${t.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} +FINISHED`, 'm'));
  const compared = await runCliIn(root, ['runs', 'compare', state.trials[2]!.runId!, state.trials[0]!.mlflowRunId!, '--format', 'csv']);
  assert.equal(compared.exitCode, 0, compared.stderr);
  assert.deepEqual(parseCsv(compared.stdout).map((x) => x['run_id']).sort(), [state.trials[0]!.runId, state.trials[2]!.runId].sort());
});

test('a sweep stopped by Ctrl-C is continued by rerunning it, without redoing finished trials', { skip }, async () => {
  const root = makeTree({ 'p.yaml': pipeline('sweepkill') });
  const args = ['run', 'p.yaml', '--sweep', 'stages.finetune.with.optimizer.lr=1e-3,2e-3,3e-3'];
  const child = spawn(process.execPath, [join(REPO, 'bin', 'pipe.js'), ...args], { cwd: root, env: { ...process.env, MLFLOW_TRACKING_URI: '', PIPE_RUNS_DIR: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('close', r));
  // Interrupt once trial 1 is done and a later trial has its run folder.
  const runs = join(root, 'runs');
  for (let i = 0; i < 600; i++) {
    const d = existsSync(runs) ? readdirSync(runs).find((x) => existsSync(join(runs, x, 'sweep.json'))) : undefined;
    const s = d ? json<SweepState>(join(runs, d, 'sweep.json')) : undefined;
    if (s?.trials[0]?.status === 'finished' && s.trials.some((t) => t.index > 1 && t.status === 'running' && existsSync(join(runs, t.runId!, 'lock.json')))) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGINT');
  assert.equal(await exited, 130, output);
  // Trials 1 and 2 both started (one at a time, their output echoed): the engine line is shown once.
  assert.equal(output.match(/^ {4}\[[^\]]+\] pipe: engine /gm)?.length, 1, output);
  const before = sweepOf(root).state;
  assert.equal(before.trials[0]!.status, 'finished');
  const unfinished = before.trials.filter((t) => t.status !== 'finished');
  assert.ok(unfinished.length >= 1, 'a trial was left unfinished');
  const store = join(runs, 'mlruns');
  const fs = new FileStore(store);
  assert.equal((await fs.readRun(before.mlflowRunId!)).meta['status'], 5, 'parent KILLED');
  const first = before.trials[0]!;
  const firstLock = statSync(join(runs, first.runId!, 'lock.json')).mtimeMs;

  const again = await runCliIn(root, args);
  assert.equal(again.exitCode, 0, again.stderr + again.stdout);
  assert.match(again.stdout, new RegExp(`trial 1/3 ${first.name}: finished earlier \\(run ${first.runId}\\), skipped`));
  const after = sweepOf(root).state;
  assert.equal(after.sweepId, before.sweepId);
  assert.equal(after.mlflowRunId, before.mlflowRunId, 'the same parent run');
  assert.ok(after.trials.every((t) => t.status === 'finished'));
  assert.equal(statSync(join(runs, first.runId!, 'lock.json')).mtimeMs, firstLock, 'trial 1 untouched');
  for (const t of unfinished.filter((u) => u.runId)) assert.equal(after.trials[t.index - 1]!.runId, t.runId, `${t.name} continued in its run folder`);
  assert.equal((await fs.readRun(after.mlflowRunId!)).meta['status'], 3);
  const names = await Promise.all(allRuns(store).map(async (id) => (await fs.readRun(id)).tags['mlflow.runName']));
  assert.equal(names.filter((n) => n === first.name).length, 1, 'trial 1 has one MLflow run');
});

test('a failing trial: fail-fast stops the sweep; --keep-going --parallel 2 runs the rest and reports it', { skip }, async () => {
  // Trial 1 reads a source folder whose files are corrupt (the one named is whichever is checked first):
  // a valid config, a failure at run time in stage 'data'. Trial 2 reads the real data.
  const corrupt = Object.fromEntries(['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz', 't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'].map((f) => [`bad/${f}`, 'not gzip data\n']));
  const root = makeTree({ 'p.yaml': pipeline('sweepfail'), ...corrupt });
  const sweep = ['--sweep', `stages.data.with.source=bad,${DATA_DIR}`];
  const ff = await runCliIn(root, ['run', 'p.yaml', ...sweep]);
  assert.equal(ff.exitCode, 1, ff.stderr + ff.stdout);
  assert.match(ff.stdout, /✗ trial 1\/2 source=bad: FAILED after [\d.]+ s: stage 'data' failed: fashion-mnist: bad\/(train|t10k)-(images|labels)-idx[13]-ubyte\.gz: content sha256 [0-9a-f]{64} does not match the expected [0-9a-f]{64}/);
  const s1 = sweepOf(root).state;
  assert.deepEqual(s1.trials.map((t) => t.status), ['failed', 'pending']);
  assert.equal(s1.trials[1]!.runId, undefined, 'trial 2 never started');

  const kg = await runCliIn(root, ['run', 'p.yaml', ...sweep, '--keep-going', '--parallel', '2']);
  assert.equal(kg.exitCode, 1, kg.stderr + kg.stdout);
  const live = kg.stdout.indexOf('✗ trial 1/2');
  assert.ok(live >= 0 && live < kg.stdout.search(/^trial +status/m), 'the failure is reported before the table');
  assert.match(kg.stdout, /1 of 2 trials did not finish: source=bad \(failed: stage 'data' failed/);
  const s2 = sweepOf(root).state;
  assert.deepEqual(s2.trials.map((t) => t.status), ['failed', 'finished']);
  assert.equal(s2.trials[0]!.runId, s1.trials[0]!.runId, 'the failed trial reran in its run folder');
  const fs = new FileStore(join(root, 'runs', 'mlruns'));
  assert.equal((await fs.readRun(s2.mlflowRunId!)).meta['status'], 4, 'parent FAILED');
  const artifacts = fileURLToPath(String((await fs.readRun(s2.mlflowRunId!)).meta['artifact_uri']));
  const rows = parseCsv(readFileSync(join(artifacts, 'comparison', 'comparison.csv'), 'utf8'));
  const label = `source=${DATA_DIR}`;
  assert.deepEqual(rows.map((r) => [r['trial'], r['status']]), [[label, 'FINISHED'], ['source=bad', 'FAILED']]);
});
