/**
 * A live worker that loses its job's lock (it did not renew it in time: its event loop was held
 * up on a loaded machine, or Redis was out of reach) no longer has the job: BullMQ's stalled-job
 * check gives it to another worker (https://docs.bullmq.io/guide/workers/stalled-jobs). The loss
 * is made here as it happens, without waiting for a clock: the lock's key is deleted while one of
 * two workers runs the trial (`--attempts 1`: a counted attempt would fail it for good). That
 * worker stops writing its heartbeat into the job, interrupts its trial (its run ends KILLED) and
 * says so, without counting an attempt; the other (or the same one, continuing its run) takes the
 * job back and finishes it: one FINISHED MLflow run, the interrupted one KILLED. (A worker that ran
 * on would finish a second run of the trial beside the one of the worker that took the job.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TrialJobProgress } from '../../src/queue/job.js';
import { makeTree } from '../utils.js';
import { findFiles, jobOf, queueTest, skipQueue, startPipe, tagOf, teardown, until } from './queue-harness.js';

test('a worker that lost its job\'s lock interrupts its trial and leaves the job to the queue: one run at a time, one finished run', { skip: skipQueue, timeout: 240_000 }, async () => {
  const { redis, tracking, name, pipeline, env, queue, procs } = await queueTest('qlock', 20);
  try {
    const root = makeTree({ 'p.yaml': pipeline });
    const submit = startPipe(['run', 'p.yaml', '--sweep', 'stages.head.with.optimizer.lr=0.003', '--queue', '--attempts', '1'], env, { root });
    procs.push(submit);
    // Two workers: one takes the trial; once it is past its first fine-tune checkpoint (19 epochs
    // to go: the loss is noticed long before the trial could end), its lock goes.
    const workers = ['wA', 'wB'].map((w) => startPipe(['worker', '--name', w], env));
    procs.push(...workers);
    await until(() => workers.every((w) => w.out().includes('waiting for trials')));
    const job = await until(async () => {
      const j = await jobOf(queue, 'trial-1');
      const p = j?.progress as Partial<TrialJobProgress> | undefined;
      return j && (await j.getState()) === 'active' && p?.worker && p.pid ? j : undefined;
    });
    const holder = workers[['wA', 'wB'].indexOf((job.progress as TrialJobProgress).worker)]!;
    await until(() => findFiles(holder.root, 'latest.json').some((p) => p.includes('finetune')));

    // The lock expires under the holder (as when it is not renewed in time).
    const client = await queue.getBackend().client;
    assert.equal(await client.del(`${queue.toKey(job.id!)}:lock`), 1);

    assert.equal(await submit.done, 0, submit.out() + workers.map((w) => w.out()).join('\n'));
    assert.match(holder.out(), /trial 1\/1 trial-1 \(job \S+, attempt 1\): lost the job: its lock expired before this worker renewed it .*; trial interrupted \(run \S+ can continue from its checkpoint on this machine\)/);
    const runs = (await tracking.runs(name)).filter((r) => tagOf(r, 'pipe.queue.job') === job.id);
    const finished = runs.filter((r) => r.info.status === 'FINISHED');
    assert.equal(finished.length, 1, `one finished run: ${runs.map((r) => `${tagOf(r, 'pipe.queue.worker')} ${r.info.status}`).join(', ')}`);
    // The holder's interrupted run when the other worker took the job (the holder itself would have continued that run).
    for (const r of runs.filter((x) => x !== finished[0])) assert.equal(r.info.status, 'KILLED');
    assert.equal((await jobOf(queue, 'trial-1'))!.returnvalue.reused, false);
  } finally {
    await teardown(procs, queue, redis, tracking);
  }
});
