/**
 * Issue 17 point 2: a dead worker is noticed. One trial, three workers on three machines:
 * - wA is killed with SIGKILL (the worker alone): its trial process notices (stdin closed, EPIPE)
 *   and ends its MLflow run KILLED itself, and exits; with no live worker left, `pipe queue
 *   status` and the submitter say "worker wA stopped answering at <its last heartbeat>";
 * - wB takes the job back (stalled-job check), then its whole machine dies (SIGKILL to the
 *   worker's process group, trial included): wC's recovery closes wB's run KILLED with wB's
 *   last heartbeat as the end time, and runs the trial to the end.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeTree, quickPipeline } from '../utils.js';
import { formatTime, type TrialJobProgress } from '../../src/queue/job.js';
import { exited, jobOf, openQueue, queueEnv, skipQueue, startPipe, startRedis, startTracking, tagOf, until, type Proc, teardown } from './queue-harness.js';

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('a killed worker: its trial ends its run KILLED, status names the silent worker, a dead machine\'s run is closed at its last heartbeat', { skip: skipQueue, timeout: 300_000 }, async () => {
  const redis = await startRedis();
  const tracking = await startTracking();
  const name = `qdead${redis.port}`;
  const pipeline = quickPipeline(name).replace('finetune: { kind: unfreeze-train, needs: [head], with: { epochs: 1,', 'finetune: { kind: unfreeze-train, needs: [head], with: { epochs: 12,');
  const env = queueEnv(tracking, redis, { PIPE_QUEUE_MAX_STALLED: '5' });
  const queue = openQueue(redis);
  const procs: Proc[] = [];
  try {
    const root = makeTree({ 'p.yaml': pipeline });
    const submit = startPipe(['run', 'p.yaml', '--sweep', 'stages.head.with.optimizer.lr=0.003', '--queue'], env, { root });
    procs.push(submit);
    const trialRuns = async (): Promise<Awaited<ReturnType<typeof tracking.runs>>> => (await tracking.runs(name)).filter((r) => tagOf(r, 'pipe.queue.job'));
    /** Waits until `worker` runs the trial (its MLflow run RUNNING, its trial's pid in the job). */
    const runningOn = async (worker: string): Promise<{ runId: string; pid: number }> => {
      const runId = await until(async () => (await trialRuns()).find((r) => tagOf(r, 'pipe.queue.worker') === worker && r.info.status === 'RUNNING')?.info.run_id);
      const pid = await until(async () => ((await jobOf(queue, 'trial-1'))?.progress as Partial<TrialJobProgress> | undefined)?.pid);
      return { runId, pid };
    };

    // Worker A dies alone.
    const wA = startPipe(['worker', '--name', 'wA'], env);
    procs.push(wA);
    const a = await runningOn('wA');
    wA.child.kill('SIGKILL');
    await until(() => !alive(a.pid));
    const runA = (await trialRuns()).find((r) => r.info.run_id === a.runId)!;
    assert.equal(runA.info.status, 'KILLED', 'the orphaned trial ended its own run');
    assert.ok(Number(runA.info.end_time) > 0);
    // Nobody left to recover the job: it is still "active", but everyone is told its worker is gone.
    const heartbeat = ((await jobOf(queue, 'trial-1'))!.progress as TrialJobProgress).heartbeat;
    const silent = `worker wA stopped answering at ${formatTime(heartbeat)}`;
    const status = await until(async () => {
      const s = startPipe(['queue', 'status'], env, { root });
      await s.done;
      return s.out().includes(silent) ? s.out() : undefined;
    });
    assert.doesNotMatch(status, /running: trial-1/);
    await until(() => submit.out().includes(silent));

    // Worker B takes the job back; then its machine dies (worker and trial at once).
    const wB = startPipe(['worker', '--name', 'wB'], env, { detached: true });
    procs.push(wB);
    const b = await runningOn('wB');
    // (a heartbeat after the run started: the time of death the recovery will read)
    const startB = Number((await trialRuns()).find((r) => r.info.run_id === b.runId)!.info.start_time);
    await until(async () => ((await jobOf(queue, 'trial-1'))!.progress as TrialJobProgress).heartbeat > startB);
    process.kill(-wB.child.pid!, 'SIGKILL');
    await exited(wB.child);
    await until(() => !alive(b.pid));
    const lastBeat = ((await jobOf(queue, 'trial-1'))!.progress as TrialJobProgress).heartbeat;
    assert.equal((await trialRuns()).find((r) => r.info.run_id === b.runId)!.info.status, 'RUNNING', 'nobody closed it yet');

    // Worker C recovers the job, closes B's run at B's last heartbeat, and finishes the trial.
    const wC = startPipe(['worker', '--name', 'wC'], env);
    procs.push(wC);
    assert.equal(await submit.done, 0, submit.out() + procs.map((p) => p.out()).join('\n'));
    const runs = await trialRuns();
    const runB = runs.find((r) => r.info.run_id === b.runId)!;
    assert.equal(runB.info.status, 'KILLED');
    assert.equal(Number(runB.info.end_time), lastBeat);
    assert.match(wC.out(), new RegExp(`closed the run\\(s\\) ${b.runId} of an earlier attempt as KILLED`));
    assert.deepEqual(runs.map((r) => `${tagOf(r, 'pipe.queue.worker')} ${r.info.status}`).sort(), ['wA KILLED', 'wB KILLED', 'wC FINISHED']);
  } finally {
    await teardown(procs, queue, redis, tracking);
  }
});
