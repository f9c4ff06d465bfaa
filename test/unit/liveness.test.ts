/**
 * Dead runs: a run folder whose process.json names a process that is gone (or a pid now used by
 * another process) is closed KILLED, with the end time of its last lock.json write; a live one
 * is left alone; closing twice changes nothing; `pipe sync` closes the run it is given.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { cmdSync } from '../../src/cli/sync.js';
import { closeDeadRuns, procStartOf, processFile, type RunProcess } from '../../src/runner/liveness.js';
import { FileStore } from '../../src/tracking/file/store.js';

/** A run folder with lock.json (written at `lockTime`) and process.json for `proc`, tracked in a new local store. */
async function runFolder(proc: Partial<RunProcess>, lockTime: number): Promise<{ dir: string; store: FileStore; runId: string }> {
  const base = mkdtempSync(join(tmpdir(), 'pipe-live-'));
  const store = new FileStore(join(base, 'mlruns'));
  const exp = await store.getOrCreateExperiment('live');
  const { runId } = await store.createRun(exp, { runName: 'r', startTime: 1_000 });
  const dir = join(base, '20260101T000000-abcdef');
  mkdirSync(dir);
  writeFileSync(join(dir, 'lock.json'), JSON.stringify({ pipeline: 'p', file: 'p.yaml', runId: '20260101T000000-abcdef', mlflowRunId: runId, createdAt: 1_000, stages: {} }));
  utimesSync(join(dir, 'lock.json'), lockTime / 1000, lockTime / 1000);
  const p: RunProcess = { pid: process.pid, host: hostname(), startedAt: 1_000, store: store.root, mlflowRunId: runId, ...proc };
  writeFileSync(processFile(dir), JSON.stringify(p));
  utimesSync(processFile(dir), 1, 1); // written when the run started
  return { dir, store, runId };
}

/** The pid of a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(r.stdout.toString());
}

test('a run whose process is gone: KILLED with the last lock.json write as end time, once', async () => {
  const { dir, store, runId } = await runFolder({ pid: deadPid() }, 1_700_000_000_000);
  const lines = await closeDeadRuns([dir]);
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /was left RUNNING by process \d+, which is gone: marked KILLED/);
  const h = await store.readRunHeader(runId);
  assert.equal(h?.status, 'KILLED');
  assert.equal(h?.endTime, 1_700_000_000_000);
  assert.deepEqual(JSON.parse(readFileSync(processFile(dir), 'utf8')).ended, { status: 'KILLED', at: 1_700_000_000_000, by: 'next command' });
  assert.deepEqual(await closeDeadRuns([dir]), [], 'already closed');
});

test('a live process is left alone; the same pid with another start time is a reused pid: closed', async () => {
  const live = await runFolder({ procStart: procStartOf(process.pid) }, 2_000);
  assert.deepEqual(await closeDeadRuns([live.dir]), []);
  assert.equal((await live.store.readRunHeader(live.runId))?.status, 'RUNNING');
  const reused = await runFolder({ procStart: `${procStartOf(process.pid)}0` }, 2_000);
  assert.equal((await closeDeadRuns([reused.dir])).length, 1);
  assert.equal((await reused.store.readRunHeader(reused.runId))?.status, 'KILLED');
});

test('a killed process its parent has not reaped yet (a zombie) is gone: closed', async () => {
  // `sleep 0` exits at once; its parent became `sleep 30` (exec), which never reaps it: a zombie for 30 s.
  const parent = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const pid = Number(await new Promise<string>((r) => parent.stdout.once('data', (d: Buffer) => r(d.toString()))));
    const state = (): string => readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0]!;
    for (let i = 0; i < 500 && state() !== 'Z'; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(state(), 'Z', 'the child is a zombie');
    const zombie = await runFolder({ pid, procStart: procStartOf(pid) }, 2_000);
    assert.equal((await closeDeadRuns([zombie.dir])).length, 1);
    assert.equal((await zombie.store.readRunHeader(zombie.runId))?.status, 'KILLED');
  } finally {
    parent.kill('SIGKILL');
  }
});

test('another host: cannot tell from here, left alone', async () => {
  const other = await runFolder({ pid: deadPid(), host: `${hostname()}-elsewhere` }, 2_000);
  assert.deepEqual(await closeDeadRuns([other.dir]), []);
  assert.equal((await other.store.readRunHeader(other.runId))?.status, 'RUNNING');
});

test('a run already FINISHED in the store is not changed', async () => {
  const { dir, store, runId } = await runFolder({ pid: deadPid() }, 2_000);
  await store.endRun(runId, 'FINISHED', 5_000);
  await closeDeadRuns([dir]);
  const h = await store.readRunHeader(runId);
  assert.equal(h?.status, 'FINISHED');
  assert.equal(h?.endTime, 5_000);
});

test('pipe sync RUN_DIR closes that run when its process is gone', async () => {
  const { dir, store, runId } = await runFolder({ pid: deadPid() }, 3_000);
  const write = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  let said = '';
  process.stdout.write = ((s: string) => ((said += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((said += s), true)) as typeof process.stderr.write;
  try {
    assert.equal(await cmdSync(dir), 0);
  } finally {
    process.stdout.write = write;
    process.stderr.write = err;
  }
  assert.match(said, /pipe: sync: run \S+ was left RUNNING by process \d+, which is gone: marked KILLED/);
  assert.equal((await store.readRunHeader(runId))?.status, 'KILLED');
});
