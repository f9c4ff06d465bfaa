/**
 * Issue 17 point 1: a graceful stop of a worker returns its work without cost. One trial with
 * `--attempts 1` (a counted attempt would fail it for good) is stopped twice mid-training: first
 * by a SIGTERM to the worker alone (Kubernetes, `kill`), then by a SIGTERM to the worker's whole
 * process group (systemd's `systemctl stop`, Ctrl-C in a terminal), which reaches the trial
 * process too. Each time the trial's MLflow run ends KILLED (not left RUNNING), the job goes back
 * to the queue with no attempt used, and the next worker on the machine continues the same run
 * from its last epoch checkpoint; the trial finishes as one MLflow run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTree } from '../utils.js';
import { exited, findFiles, jobOf, queueTest, skipQueue, startPipe, tagOf, until, type Proc } from './queue-harness.js';

test('SIGTERM to a worker, then to a worker\'s process group: the run ends KILLED, the job returns unused, the next worker continues from the checkpoint', { skip: skipQueue, timeout: 240_000 }, async () => {
  const { redis, tracking, name, pipeline, env, queue, procs } = await queueTest('qstop', 12);
  try {
    const root = makeTree({ 'p.yaml': pipeline });
    const submit = startPipe(['run', 'p.yaml', '--sweep', 'stages.head.with.optimizer.lr=0.003', '--queue', '--attempts', '1'], env, { root });
    procs.push(submit);
    const machine = makeTree({}); // the workers' machine: they share its runs/ folder, as successive workers on one host do

    /** The epoch of the fine-tune's latest checkpoint on the workers' machine (0 before the first). */
    const checkpointEpoch = (): number => {
      const latest = findFiles(join(machine, 'runs'), 'latest.json').find((p) => p.includes(`${join('finetune', 'checkpoint')}`));
      return latest ? (JSON.parse(readFileSync(latest, 'utf8')) as { epoch: number }).epoch : 0;
    };

    /**
     * Starts a worker, waits for a finetune checkpoint past `after`, stops it with `stop`, returns
     * the epoch of the checkpoint the stop left: read once the worker has exited, since the trial
     * may checkpoint more epochs between the test seeing one and the stop reaching the trial.
     */
    const stopMidTraining = async (worker: string, after: number, stop: (w: Proc) => void): Promise<number> => {
      const w = startPipe(['worker', '--name', worker], env, { root: machine, detached: true });
      procs.push(w);
      await until(() => checkpointEpoch() > after);
      stop(w);
      assert.equal(await w.done, 0, w.out());
      const epoch = checkpointEpoch();
      assert.ok(epoch > after, `the stop left the epoch ${epoch} checkpoint`);
      assert.match(w.out(), /interrupted by the stop; back on the queue \(attempt not counted/);
      // The run ended KILLED with an end time; the job waits again with no attempt used.
      const runs = (await tracking.runs(name)).filter((r) => tagOf(r, 'pipe.queue.job'));
      assert.equal(runs.length, 1, 'one MLflow run for the trial, resumed each time');
      assert.equal(runs[0]!.info.status, 'KILLED');
      assert.ok(Number(runs[0]!.info.end_time) > 0);
      const job = await jobOf(queue, 'trial-1');
      assert.equal(await job!.getState(), 'waiting');
      assert.equal(job!.attemptsMade, 0);
      return epoch;
    };

    const first = await stopMidTraining('wA', 0, (w) => w.child.kill('SIGTERM'));
    const second = await stopMidTraining('wB', first, (w) => process.kill(-w.child.pid!, 'SIGTERM'));
    const last = startPipe(['worker', '--name', 'wC'], env, { root: machine });
    procs.push(last);
    assert.equal(await submit.done, 0, submit.out() + procs.map((p) => p.out()).join('\n'));

    // wB and wC continued the run wA started, each from the checkpoint the stop left.
    const runs = (await tracking.runs(name)).filter((r) => tagOf(r, 'pipe.queue.job'));
    assert.equal(runs.length, 1);
    assert.equal(runs[0]!.info.status, 'FINISHED');
    const log = readFileSync(findFiles(join(machine, 'runs'), 'trial.log')[0]!, 'utf8');
    assert.match(log, new RegExp(`continuing from the epoch ${first} checkpoint`));
    assert.match(log, new RegExp(`continuing from the epoch ${second} checkpoint`));
    assert.match(procs[2]!.out(), /continuing run \S+ from its last checkpoint/);
    assert.match(last.out(), /continuing run \S+ from its last checkpoint/);
    assert.match(submit.out(), /✓ trial 1\/1 trial-1: finished on wC/);
  } finally {
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    await Promise.all(procs.map((p) => exited(p.child)));
    await queue.close();
    await redis.stop();
    await tracking.close();
  }
});
