/**
 * The stage cache and --resume, end to end on a tiny real-data pipeline: a rerun with nothing
 * changed reuses every cacheable stage; a param change reruns that stage and its descendants;
 * --force and --from; a run interrupted midway is finished by --resume without redoing the
 * finished stages, in the same MLflow run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { RunEvent } from '../../src/runner/events.js';
import { FileStore } from '../../src/tracking/file/store.js';
import { makeTree, REPO, runCliIn } from '../utils.js';

const DATA_DIR = '/usr/share/datasets/fashion-mnist';
const skip = !existsSync(DATA_DIR) && `${DATA_DIR} is missing (apt-get install dataset-fashion-mnist)`;

const pipeline = (epochs: number): string => `name: cachetest
seed: 3
stages:
  data: { kind: download, with: { dataset: fashion-mnist, source: ${DATA_DIR}, subset: { train: 192, test: 64 } } }
  aug: { kind: augment, needs: [data], with: { batch_size: 32, test: [ { normalize: { mean: [0.3], std: [0.3] } } ], train: [ { normalize: { mean: [0.3], std: [0.3] } } ] } }
  model: { kind: build-model, needs: [data], with: { arch: mini_resnet } }
  head: { kind: freeze-train, needs: [aug, model], with: { epochs: 1, optimizer: { lr: 0.003 } } }
  finetune: { kind: unfreeze-train, needs: [head], with: { epochs: ${epochs}, optimizer: { lr: 0.002 } } }
  eval: { kind: evaluate, needs: [finetune] }
`;

/** Stage name -> decision from `pipe plan` text output. */
function decisions(stdout: string): Record<string, string> {
  return Object.fromEntries([...stdout.matchAll(/^\s+\d+\. (\w+) \[[\w-]+\](?: <- [\w, ]+)?: (run|skip) \((.*)\)$/gm)].map((m) => [m[1]!, `${m[2]} (${m[3]})`]));
}

/** The events of a `--log-format json` run (src/runner/events.ts), one per stdout line. */
const eventsOf = (stdout: string): RunEvent[] => stdout.trim().split('\n').map((l) => JSON.parse(l) as RunEvent);
/** Stage name -> reused, from the stage-finish events. */
const finished = (evs: RunEvent[]): [string, boolean][] => evs.flatMap((e) => (e.type === 'stage-finish' ? [[e.stage, e.reused] as [string, boolean]] : []));
/** The value of metric `key` the run reported (last point). */
const metric = (evs: RunEvent[], key: string): number | undefined => evs.filter((e) => e.type === 'stage-metric' && e.key === key).map((e) => (e as { value: number }).value).at(-1);

test('rerun reuses unchanged stages; a param change reruns that stage and its descendants', { skip }, async () => {
  const root = makeTree({ 'p.yaml': pipeline(1) });
  const first = await runCliIn(root, ['run', 'p.yaml', '--log-format', 'json']);
  assert.equal(first.exitCode, 0, first.stderr);
  const plan = await runCliIn(root, ['plan', 'p.yaml']);
  assert.deepEqual(decisions(plan.stdout), {
    data: 'skip (unchanged)', aug: 'skip (unchanged)', model: 'skip (unchanged)', head: 'skip (unchanged)', finetune: 'skip (unchanged)', eval: 'skip (unchanged)',
  });
  const changed = await runCliIn(root, ['plan', 'p.yaml', '--set', 'stages.finetune.with.optimizer.lr=0.001']);
  assert.deepEqual(decisions(changed.stdout), {
    data: 'skip (unchanged)', aug: 'skip (unchanged)', model: 'skip (unchanged)', head: 'skip (unchanged)',
    finetune: 'run (params changed: optimizer.lr: 0.002 -> 0.001)', eval: 'run (upstream changed: finetune)',
  });
  const second = await runCliIn(root, ['run', 'p.yaml', '--log-format', 'json']);
  assert.equal(second.exitCode, 0, second.stderr);
  const [e1, e2] = [eventsOf(first.stdout), eventsOf(second.stdout)];
  assert.deepEqual(finished(e1), ['data', 'aug', 'model', 'head', 'finetune', 'eval'].map((s) => [s, false]));
  assert.deepEqual(finished(e2), ['data', 'aug', 'model', 'head', 'finetune', 'eval'].map((s) => [s, true]));
  // Same numbers: the reused stages' outputs are the ones of the first run.
  const acc = metric(e1, 'eval/test_accuracy');
  assert.ok(acc !== undefined && acc > 0, first.stdout);
  assert.equal(metric(e2, 'eval/test_accuracy'), acc);
  const forced = await runCliIn(root, ['plan', 'p.yaml', '--from', 'head']);
  assert.deepEqual(Object.values(decisions(forced.stdout)).map((d) => d.split(' ')[0]), ['skip', 'skip', 'skip', 'run', 'run', 'run']);
  const all = await runCliIn(root, ['plan', 'p.yaml', '--force']);
  assert.ok(Object.values(decisions(all.stdout)).every((d) => d === 'run (forced (--force))'));
  const bad = await runCliIn(root, ['plan', 'p.yaml', '--from', 'nope']);
  assert.equal(bad.exitCode, 2);
  assert.match(bad.stderr, /--from nope: no such stage; stages: data, aug, model, head, finetune, eval/);
});

test('an interrupted run is finished by --resume without redoing finished stages', { skip }, async () => {
  const root = makeTree({ 'p.yaml': pipeline(12) });
  const child = spawn(process.execPath, [join(REPO, 'bin', 'pipe.js'), 'run', 'p.yaml', '--plain'], { cwd: root, env: { ...process.env, MLFLOW_TRACKING_URI: '', PIPE_RUNS_DIR: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('close', r));
  // Wait until the unfreeze phase has checkpointed an epoch or two, then Ctrl-C.
  const runs = join(root, 'runs');
  const lockPath = (): string | undefined => (existsSync(runs) ? readdirSync(runs).filter((d) => /^\d{8}T/.test(d)).map((d) => join(runs, d, 'lock.json'))[0] : undefined);
  for (let i = 0; i < 1200; i++) {
    const p = lockPath();
    const latest = p && join(p, '..', 'finetune', 'checkpoint', 'latest.json');
    if (latest && existsSync(latest) && JSON.parse(readFileSync(latest, 'utf8')).epoch >= 3) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGINT');
  assert.equal(await exited, 130, stderr);
  assert.match(stderr, /^pipe: interrupted; continue with `pipe run p\.yaml --resume \d{8}T\d{6}-[0-9a-f]+`$/m);
  const lock1 = JSON.parse(readFileSync(lockPath()!, 'utf8'));
  assert.equal(lock1.stages.head.status, 'done');
  assert.notEqual(lock1.stages.finetune.status, 'done');
  const store = join(runs, 'mlruns');
  const fs = new FileStore(store);
  const killed = await fs.readRun(lock1.mlflowRunId);
  assert.equal(killed.meta['status'], 5, 'KILLED');
  assert.match(killed.tags['pipe.error'] ?? '', /interrupted/, 'the KILLED run says why');
  const headDone = statSync(join(lock1.stages.head.outDir, '.done')).mtimeMs;

  // Resuming with another config is refused: the run must finish on what it started with.
  const changedCfg = await runCliIn(root, ['run', 'p.yaml', '--resume', '--set', 'stages.finetune.with.optimizer.lr=0.005']);
  assert.equal(changedCfg.exitCode, 2, changedCfg.stderr);
  assert.match(changedCfg.stderr, /^pipe: --resume: the config changed since run \S+ started:\n {2}stages\.finetune\.with\.optimizer\.lr: "0\.002" -> "0\.005"\n/);
  const resumed = await runCliIn(root, ['run', 'p.yaml', '--resume', '--log-format', 'json']);
  // data..head are reused, not redone; finetune continues from its last epoch checkpoint.
  assert.equal(resumed.exitCode, 0, resumed.stderr);
  const evs = eventsOf(resumed.stdout);
  assert.deepEqual(evs.flatMap((e) => (e.type === 'stage-reused' ? [e.stage] : [])), ['data', 'aug', 'model', 'head']);
  const cont = evs.flatMap((e) => (e.type === 'stage-progress' ? [/^unfreeze: continuing from the epoch (\d+) checkpoint$/.exec(e.text)] : [])).find(Boolean);
  assert.ok(cont, resumed.stdout);
  const done = Number(cont[1]); // global epoch of the checkpoint: head's 1, then finetune's
  assert.ok(done >= 3 && done < 13, String(done));
  // The event stream tells the epochs the interrupted attempt trained (re-emitted from the
  // checkpoint, `resumed: true`) from the ones this attempt trains; stage-epoch only for the new ones.
  const points = (key: string, resumedToo: boolean): number[] => evs.flatMap((e) => (e.type === 'stage-metric' && e.stage === 'finetune' && e.key === key && (e.resumed === true) === resumedToo ? [e.step] : []));
  const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i);
  assert.deepEqual(points('curves/test_accuracy', true), range(2, done));
  assert.deepEqual(points('curves/test_accuracy', false), range(done + 1, 13));
  assert.deepEqual(evs.flatMap((e) => (e.type === 'stage-epoch' ? [[e.stage, e.epoch]] : [])), range(done + 1, 13).map((n) => ['finetune', n]));
  const [oldLoss, newLoss] = [points('curves/batch_loss', true), points('curves/batch_loss', false)];
  assert.ok(oldLoss.length > 0 && newLoss.length > 0 && Math.max(...oldLoss) + 1 === Math.min(...newLoss), `${oldLoss} | ${newLoss}`);
  assert.ok(evs.every((e) => e.type !== 'stage-metric' || e.resumed === undefined || e.stage === 'finetune'), 'only the resumed stage re-emits');
  assert.equal(statSync(join(lock1.stages.head.outDir, '.done')).mtimeMs, headDone);
  const lock2 = JSON.parse(readFileSync(lockPath()!, 'utf8'));
  assert.equal(lock2.runId, lock1.runId);
  assert.ok(Object.values(lock2.stages).every((s) => (s as { status: string }).status === 'done'));
  const run = await fs.readRun(lock1.mlflowRunId);
  assert.equal(run.meta['status'], 3, 'FINISHED, in the same MLflow run');
  // The interrupted attempt's reason is gone once the run finished (no "KILLED: ..." on a FINISHED run).
  assert.equal(run.tags['pipe.error'], undefined);
  assert.doesNotMatch(run.tags['mlflow.note.content'] ?? '', /KILLED|FAILED/);
  const again = await runCliIn(root, ['run', 'p.yaml', '--resume', lock1.runId]);
  assert.equal(again.exitCode, 2);
  assert.match(again.stderr, /that run finished; nothing to resume/);
  // Every epoch logged exactly once across the interruption: 1 freeze + 12 unfreeze epochs.
  assert.deepEqual(run.metrics['curves/test_accuracy']!.map((p) => p.step), Array.from({ length: 13 }, (_, i) => i + 1));
  const stored = new Map(run.metrics['curves/test_accuracy']!.map((p) => [p.step, p.value]));
  for (const e of evs) if (e.type === 'stage-metric' && e.key === 'curves/test_accuracy') assert.equal(e.value, stored.get(e.step), `step ${e.step}`);
  assert.equal(readdirSync(join(store)).filter((d) => d !== '0' && d !== '.trash').flatMap((e) => readdirSync(join(store, e)).filter((r) => /^[0-9a-f]{32}$/.test(r))).length, 1);
});

test('a cache entry whose files are gone is rebuilt, not trusted', { skip }, async () => {
  const root = makeTree({ 'p.yaml': pipeline(1) });
  const first = await runCliIn(root, ['run', 'p.yaml', '--plain']);
  assert.equal(first.exitCode, 0, first.stderr);
  const runs = join(root, 'runs');
  const run1 = readdirSync(runs).filter((d) => /^\d{8}T/.test(d))[0]!;
  rmSync(join(runs, run1, 'model', 'model', 'weights.bin'));
  const second = await runCliIn(root, ['run', 'p.yaml', '--plain']);
  assert.equal(second.exitCode, 0, second.stderr);
  assert.match(second.stdout, /^› cached outputs in <root>\/runs\/\S+\/model do not load \(ENOENT: .*weights\.bin'\); running the stage again$/m);
  assert.match(second.stdout, /reused from the stage cache: data, aug, head, finetune, eval\n/);
});

test('the resume command printed after Ctrl-C carries the run\'s --set overrides (shell-quoted) and works when pasted', { skip }, async () => {
  const root = makeTree({ 'p.yaml': pipeline(1) });
  // 12 fine-tune epochs: the Ctrl-C comes after the first, and the 11 others (not 5) are the margin
  // for a poll that runs late on a loaded machine: the run must not end before the signal lands.
  const sets = ['--set', 'stages.finetune.with.epochs=12', '--set', "description=it's a test"];
  const child = spawn(process.execPath, [join(REPO, 'bin', 'pipe.js'), 'run', 'p.yaml', ...sets, '--log-format', 'json'], { cwd: root, env: { ...process.env, MLFLOW_TRACKING_URI: '', PIPE_RUNS_DIR: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '', stdout = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('close', r));
  const runs = join(root, 'runs');
  const runDir = (): string | undefined => (existsSync(runs) ? readdirSync(runs).filter((d) => /^\d{8}T/.test(d)).map((d) => join(runs, d))[0] : undefined);
  for (let i = 0; i < 1200; i++) {
    const d = runDir();
    const latest = d && join(d, 'finetune', 'checkpoint', 'latest.json');
    if (latest && existsSync(latest) && JSON.parse(readFileSync(latest, 'utf8')).epoch >= 2) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGINT');
  assert.equal(await exited, 130, stderr);
  const runId = basename(runDir()!);
  const hint = /^pipe: interrupted; continue with `(.+)`$/m.exec(stderr)?.[1];
  assert.equal(hint, `pipe run p.yaml --set stages.finetune.with.epochs=12 --set 'description=it'\\''s a test' --resume ${runId}`, stderr);
  // `pipe runs` gives the same command under the KILLED run.
  const listed = await runCliIn(root, ['runs']);
  assert.equal(listed.exitCode, 0, listed.stderr);
  assert.ok(listed.stdout.includes(`-> finetune: interrupted; continue with \`${hint}\``), listed.stdout);
  // Its best test accuracy is the best any checkpointed epoch reached, the fine-tune's included (as for a FINISHED run).
  const epochs = eventsOf(stdout).flatMap((e) => (e.type === 'stage-epoch' ? [{ epoch: e.epoch, acc: e.test_accuracy }] : []));
  assert.ok(epochs.length >= 2, `the head epoch and one or more fine-tune epochs were checkpointed: ${JSON.stringify(epochs)} ${[...new Set(eventsOf(stdout).map((e) => e.type))].join(',')}`);
  const json = JSON.parse((await runCliIn(root, ['runs', '--json'])).stdout) as Array<{ kind: string; run: { bestTestAccuracy?: number; curve: { epoch: number; testAccuracy: number }[] } }>;
  const killed = json.find((e) => e.kind === 'run')!.run;
  assert.deepEqual(killed.curve.map((c) => c.epoch), epochs.map((e) => e.epoch));
  assert.equal(killed.bestTestAccuracy, Math.max(...epochs.map((e) => e.acc)));
  assert.ok(listed.stdout.includes(`KILLED  ${(100 * killed.bestTestAccuracy!).toFixed(2)}%`), listed.stdout);
  // Pasted into a shell as printed, with `pipe` on the PATH: it resumes the run and finishes it.
  const bin = join(root, 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'pipe'), `#!/bin/sh\nexec "${process.execPath}" "${join(REPO, 'bin', 'pipe.js')}" "$@"\n`, { mode: 0o755 });
  const pasted = spawnSync('/bin/sh', ['-c', hint!], { cwd: root, env: { ...process.env, PATH: `${bin}:${process.env['PATH']}`, MLFLOW_TRACKING_URI: '', PIPE_RUNS_DIR: '' }, encoding: 'utf8' });
  assert.equal(pasted.status, 0, pasted.stderr);
  assert.match(pasted.stdout, /unfreeze: continuing from the epoch \d+ checkpoint/);
  const lock = JSON.parse(readFileSync(join(runs, runId, 'lock.json'), 'utf8'));
  assert.ok(Object.values(lock.stages).every((s) => (s as { status: string }).status === 'done'), JSON.stringify(lock.stages));
  const run = await new FileStore(join(runs, 'mlruns')).readRun(lock.mlflowRunId);
  assert.equal(run.meta['status'], 3, 'FINISHED');
  assert.deepEqual(run.metrics['curves/test_accuracy']!.map((p) => p.step), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13], '1 freeze + 12 unfreeze epochs: the --set was kept');
});
