/**
 * Issue 17 point 3: failures are classified. Workers that cannot work refuse to start (exit 2)
 * and take no job: an unknown backend, a backend this machine cannot load, an MLflow server that
 * does not answer. With `--attempts 3`, a trial whose loss goes non-finite and a trial whose data
 * is missing fail after one attempt (retrying cannot help); a trial whose process is killed (a
 * transient failure) is retried after the exponential backoff (1.5 s, then 3 s) and finishes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Job, Queue } from 'bullmq';
import { corruptFashionMnist, corruptFashionMnistWhy, makeTree, quickPipeline } from '../utils.js';
import type { TrialJobProgress } from '../../src/queue/job.js';
import { openQueue, queueEnv, skipQueue, startPipe, startRedis, startTracking, tagOf, until, type Proc, teardown } from './queue-harness.js';

const LR = 'stages.finetune.with.optimizer.lr';
/** The job whose `--set` expressions include `set`. */
async function jobWith(q: Queue, set: string): Promise<Job | undefined> {
  return (await q.getJobs(['waiting', 'active', 'completed', 'failed', 'delayed', 'prioritized'])).find((j) => (j?.data?.sets as string[] | undefined)?.includes(set));
}

/** A backend `pipe worker --backend` cannot load here (tfjs-node packages are optional), if any. */
async function unloadableBackend(): Promise<string | undefined> {
  for (const [name, pkg] of [['tensorflow-gpu', '@tensorflow/tfjs-node-gpu'], ['tensorflow', '@tensorflow/tfjs-node']] as const) {
    try {
      await import(pkg);
    } catch {
      return name;
    }
  }
  return undefined;
}

test('workers that cannot work refuse to start; NaN and missing data fail at once; a killed trial is retried with exponential backoff', { skip: skipQueue, timeout: 300_000 }, async () => {
  const redis = await startRedis();
  const tracking = await startTracking();
  const name = `qfail${redis.port}`;
  const pipeline = quickPipeline(name).replace('finetune: { kind: unfreeze-train, needs: [head], with: { epochs: 1, max_steps_per_epoch: 2, optimizer: { lr: 0.002 } } }', 'finetune: { kind: unfreeze-train, needs: [head], with: { epochs: 6, max_steps_per_epoch: 2, optimizer: { name: sgd, lr: 0.002 } } }');
  assert.ok(pipeline.includes('name: sgd'));
  const env = queueEnv(tracking, redis, { PIPE_QUEUE_BACKOFF_MS: '1500' });
  const queue = openQueue(redis);
  const procs: Proc[] = [];
  try {
    const root = makeTree({ 'p.yaml': pipeline, ...corruptFashionMnist('bad') });
    const submit = startPipe(['run', 'p.yaml', '--sweep', `${LR}=1000,0.002`, '--queue', '--attempts', '3'], env, { root });
    procs.push(submit);
    await until(async () => (await queue.getWaitingCount()) === 2);

    // Preflight: each bad worker exits 2 with the reason, and no job moved.
    const refused = async (args: string[], extra: Record<string, string>, why: RegExp): Promise<void> => {
      const w = startPipe(['worker', ...args], { ...env, ...extra });
      assert.equal(await w.done, 2, w.out());
      assert.match(w.out(), why);
      assert.doesNotMatch(w.out(), /\n\s+at /, 'no stack trace');
    };
    await refused(['--backend', 'tpu'], {}, /--backend tpu: expected one of auto, tensorflow-gpu, tensorflow, wasm, cpu/);
    const unloadable = await unloadableBackend();
    if (unloadable) await refused(['--backend', unloadable], {}, new RegExp(`pipe worker --backend ${unloadable}: this machine cannot run it: engine.backend '${unloadable}' cannot load`));
    await refused([], { MLFLOW_TRACKING_URI: 'http://127.0.0.1:1', PIPE_QUEUE_CONNECT_MS: '2000' }, /pipe worker: cannot reach the MLflow server http:\/\/127\.0\.0\.1:1/);
    assert.equal(await queue.getWaitingCount(), 2);
    for (const j of await queue.getWaiting()) assert.equal(j.attemptsMade, 0);

    // A good worker: the NaN trial fails once for good; the other one is killed twice and retried.
    const w = startPipe(['worker', '--name', 'wA'], env);
    procs.push(w);
    const pids: number[] = [];
    const killedAt: number[] = [];
    for (let kill = 1; kill <= 2; kill++) {
      const pid = await until(async () => {
        const j = await jobWith(queue, `${LR}=0.002`);
        const p = j?.progress as Partial<TrialJobProgress> | undefined;
        return j && (await j.getState()) === 'active' && p?.pid && !pids.includes(p.pid) ? p.pid : undefined;
      });
      pids.push(pid);
      killedAt.push(Date.now());
      process.kill(pid, 'SIGKILL');
      await until(async () => (await jobWith(queue, `${LR}=0.002`))?.attemptsMade === kill);
    }
    assert.equal(await submit.done, 1, submit.out() + w.out());
    const nan = (await jobWith(queue, `${LR}=1000`))!;
    assert.equal(await nan.getState(), 'failed');
    assert.equal(nan.attemptsMade, 1);
    assert.match(nan.failedReason, /(training|test) loss is (NaN|Infinity|-Infinity)/);
    assert.match(w.out(), /FAILED \(numerical failure: not retried\)/);
    const ok = (await jobWith(queue, `${LR}=0.002`))!;
    assert.equal(await ok.getState(), 'completed');
    assert.equal(ok.attemptsMade, 3, 'three attempts: two killed, the third finished');
    // The backoff BullMQ applied, from its event stream (the job's own `delay` field is reset when
    // the retry is promoted, so a poll that comes late would miss it): each move to the delayed set
    // records the due time (`delay`: the worker's clock at the failure + the backoff) in an entry
    // whose id is Redis's clock at the move. The failure came after the kill and before the move:
    // due - move <= backoff <= due - kill.
    const events = (await (await queue.getBackend().client).runCommand('xrange', [queue.toKey('events'), '-', '+'])) as [string, string[]][];
    const field = (f: string[], k: string): string | undefined => f[f.indexOf(k) + 1];
    const delayed = events.filter(([, f]) => field(f, 'event') === 'delayed' && field(f, 'jobId') === ok.id).map(([id, f]) => ({ movedAt: Number(id.split('-')[0]), due: Number(field(f, 'delay')) }));
    assert.equal(delayed.length, 2, 'two retries after a delay');
    for (const [i, d] of delayed.entries()) {
      const backoff = 1500 * 2 ** i;
      assert.ok(d.due - d.movedAt <= backoff && backoff <= d.due - killedAt[i]!, `exponential backoff: 1.5 s, then 3 s; retry ${i + 1}: due ${d.due}, moved at ${d.movedAt}, killed at ${killedAt[i]}`);
    }
    assert.doesNotMatch(submit.out(), /stopped answering/, 'a live worker is never reported silent');
    assert.match(submit.out(), /FAILED after 1 attempt\(s\): .*(training|test) loss is/);
    const runs = await tracking.runs(name);
    assert.equal(runs.filter((r) => tagOf(r, 'pipe.queue.job') === nan.id).length, 1, 'the NaN trial ran once');

    // Bad data (corrupt files: validate sees them there, the run refuses them): one attempt, failed for good.
    const missing = startPipe(['run', 'p.yaml', '--set', `stages.data.with.source=${join(root, 'bad')}`, '--sweep', `${LR}=0.001`, '--queue', '--attempts', '3'], env, { root });
    procs.push(missing);
    assert.equal(await missing.done, 1, missing.out() + w.out());
    const gone = (await jobWith(queue, `${LR}=0.001`))!;
    assert.equal(await gone.getState(), 'failed');
    assert.equal(gone.attemptsMade, 1);
    assert.match(gone.failedReason, new RegExp(corruptFashionMnistWhy(join(root, 'bad'))));
    assert.match(w.out(), /FAILED \(bad config or data: not retried\)/);
  } finally {
    await teardown(procs, queue, redis, tracking);
  }
});
