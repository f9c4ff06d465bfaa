/**
 * A live worker that loses its job's lock (it did not renew it in time: its event loop was held
 * up on a loaded machine, or Redis was out of reach) no longer has the job: BullMQ's stalled-job
 * check gives it to another worker (https://docs.bullmq.io/guide/workers/stalled-jobs). The loss
 * is made here as it happens, without waiting for a clock: the lock's key is deleted while worker
 * wA runs the trial (`--attempts 1`: a counted attempt would fail it for good). wA stops writing
 * its heartbeat into the job, interrupts its trial (its run ends KILLED) and says so, without
 * counting an attempt; wB (or wA again, continuing its run) takes the job back and finishes it:
 * one FINISHED MLflow run, the interrupted one KILLED. (A worker that ran on would finish a second
 * run of the trial beside the one of the worker that took the job.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TrialJobProgress } from '../../src/queue/job.js';
import { makeTree, quickPipeline } from '../utils.js';
import { findFiles, jobOf, openQueue, queueEnv, skipQueue, startPipe, startRedis, startTracking, tagOf, teardown, until, type Proc } from './queue-harness.js';

test('a worker that lost its job\'s lock interrupts its trial and leaves the job to the queue: one run at a time, one finished run', { skip: skipQueue, timeout: 240_000 }, async () => {
  const redis = await startRedis();
  const tracking = await startTracking();
  const name = `qlock${redis.port}`;
  const pipeline = quickPipeline(name).replace('finetune: { kind: unfreeze-train, needs: [head], with: { epochs: 1,', 'finetune: { kind: unfreeze-train, needs: [head], with: { epochs: 12,');
  assert.ok(pipeline.includes('epochs: 12'));
  const env = queueEnv(tracking, redis);
  const queue = openQueue(redis);
  const procs: Proc[] = [];
  try {
    const root = makeTree({ 'p.yaml': pipeline });
    const submit = startPipe(['run', 'p.yaml', '--sweep', 'stages.head.with.optimizer.lr=0.003', '--queue', '--attempts', '1'], env, { root });
    procs.push(submit);
    const wA = startPipe(['worker', '--name', 'wA'], env);
    procs.push(wA);
    // wA runs the trial, past its first fine-tune checkpoint; wB waits for work.
    const job = await until(async () => {
      const j = await jobOf(queue, 'trial-1');
      return j && (await j.getState()) === 'active' && (j.progress as Partial<TrialJobProgress>).worker === 'wA' && (j.progress as Partial<TrialJobProgress>).pid ? j : undefined;
    });
    await until(() => findFiles(wA.root, 'latest.json').some((p) => p.includes('finetune')));
    const wB = startPipe(['worker', '--name', 'wB'], env);
    procs.push(wB);
    await until(() => wB.out().includes('waiting for trials'));

    // The lock expires under wA (as when it is not renewed in time).
    const client = await queue.getBackend().client;
    assert.equal(await client.del(`${queue.toKey(job.id!)}:lock`), 1);

    assert.equal(await submit.done, 0, submit.out() + wA.out() + wB.out());
    assert.match(wA.out(), /trial 1\/1 trial-1 \(job \S+, attempt 1\): lost the job: its lock expired before this worker renewed it .*; trial interrupted \(run \S+ can continue from its checkpoint on this machine\)/);
    const runs = (await tracking.runs(name)).filter((r) => tagOf(r, 'pipe.queue.job') === job.id);
    const finished = runs.filter((r) => r.info.status === 'FINISHED');
    assert.equal(finished.length, 1, `one finished run: ${runs.map((r) => `${tagOf(r, 'pipe.queue.worker')} ${r.info.status}`).join(', ')}`);
    // wA's interrupted run when wB took the job (wA itself would have continued that run).
    for (const r of runs.filter((x) => x !== finished[0])) assert.equal(r.info.status, 'KILLED');
    assert.equal((await jobOf(queue, 'trial-1'))!.returnvalue.reused, false);
  } finally {
    await teardown(procs, queue, redis, tracking);
  }
});
