/**
 * Issue 17 points 4 and 5: operator commands act on one sweep (`--sweep ID`, or `--all` when
 * asked) and suggest only commands that work; one sweep has one parent MLflow run for its whole
 * life. Sweeps A and B have one trial each whose data is missing (they fail fast, for good);
 * sweep C has two trials that never run. No MLflow run exists before Redis answers; draining C
 * leaves A and B; retrying A's failures leaves B's; a retry after A's parent ended reopens that
 * parent and ends it again; resubmitting C after its drain queues its trials again under the
 * same sweep id and the same parent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { corruptFashionMnist, makeTree, quickPipeline } from '../utils.js';
import { openQueue, queueEnv, skipQueue, startPipe, startRedis, startTracking, tagOf, until, type Proc, teardown } from './queue-harness.js';

test('operator commands take --sweep or --all; one parent run per sweep through failures, retries, drains and resubmits; nothing in MLflow before Redis', { skip: skipQueue, timeout: 300_000 }, async () => {
  const redis = await startRedis();
  const tracking = await startTracking();
  const name = `qops${redis.port}`;
  const env = queueEnv(tracking, redis);
  const queue = openQueue(redis);
  const procs: Proc[] = [];
  const run = async (args: string[], extra: Record<string, string> = {}): Promise<{ code: number | null; out: string }> => {
    const p = startPipe(args, { ...env, ...extra }, { root });
    procs.push(p);
    return { code: await p.done, out: p.out() };
  };
  // bad-a, bad-b: corrupt data files, a failure only the run sees (validate checks that the files are there).
  const root = makeTree({ 'p.yaml': quickPipeline(name), ...corruptFashionMnist('bad-a'), ...corruptFashionMnist('bad-b') });
  const sweepA = ['run', 'p.yaml', '--set', `stages.data.with.source=${join(root, 'bad-a')}`, '--sweep', 'stages.head.with.optimizer.lr=0.001', '--queue'];
  const sweepB = ['run', 'p.yaml', '--set', `stages.data.with.source=${join(root, 'bad-b')}`, '--sweep', 'stages.head.with.optimizer.lr=0.001', '--queue'];
  const sweepC = ['run', 'p.yaml', '--sweep', 'stages.head.with.optimizer.lr=0.001,0.002', '--queue'];
  const idOf = (out: string): string => /pipe: sweep (\S+):/.exec(out)![1]!;
  const parents = async (): Promise<Awaited<ReturnType<typeof tracking.runs>>> => (await tracking.runs(name)).filter((r) => tagOf(r, 'pipe.sweep') === 'true');
  try {
    // Redis unreachable: exit 2, and nothing was created on the MLflow server or under runs/.
    const down = await run(sweepC, { PIPE_QUEUE_URL: 'redis://127.0.0.1:1/0', PIPE_QUEUE_CONNECT_MS: '1000' });
    assert.equal(down.code, 2, down.out);
    assert.match(down.out, /cannot reach the queue redis:\/\/127\.0\.0\.1:1\/0/);
    assert.deepEqual(await tracking.runs(name), []);
    assert.ok(!existsSync(join(root, 'runs')) || readdirSync(join(root, 'runs')).length === 0, 'nothing under runs/');

    const subA = startPipe(sweepA, env, { root });
    const subB = startPipe(sweepB, env, { root });
    const subC = startPipe(sweepC, env, { root });
    procs.push(subA, subB, subC);
    await until(async () => (await queue.getWaitingCount()) === 4);
    await until(() => [subA, subB, subC].every((s) => /pipe: sweep \S+:/.test(s.out())));
    const [a, b, c] = [subA, subB, subC].map((s) => idOf(s.out())) as [string, string, string];

    // Changing commands need a sweep (or --all); drain takes only C's queued trials.
    for (const action of ['drain', 'retry-failed']) {
      const bare = await run(['queue', action]);
      assert.equal(bare.code, 2);
      assert.match(bare.out, new RegExp(`pipe queue ${action} changes the queue: name the sweep with --sweep ID \\(pipe queue status lists them\\), or pass --all`));
    }
    const drained = await run(['queue', 'drain', '--sweep', c]);
    assert.equal(drained.code, 0, drained.out);
    assert.match(drained.out, /^removed 2 queued trial\(s\)/);
    assert.equal(await queue.getWaitingCount(), 2);
    for (const j of await queue.getWaiting()) assert.notEqual(j.data.sweepId, c);
    assert.equal(await subC.done, 1);
    assert.match(subC.out(), /2 of 2 trials were removed from the queue \(pipe queue drain\): rerun the same command to queue them again/);
    assert.doesNotMatch(subC.out(), /retry-failed/);

    // A worker fails A's and B's trials (bad data: once, for good); the hints name the sweep.
    const w1 = startPipe(['worker', '--name', 'w1'], env);
    procs.push(w1);
    assert.equal(await subA.done, 1, subA.out() + w1.out());
    assert.equal(await subB.done, 1, subB.out() + w1.out());
    w1.child.kill('SIGTERM');
    assert.equal(await w1.done, 0);
    assert.match(subA.out(), new RegExp(`1 of 1 trials failed: pipe queue retry-failed --sweep ${a} queues them again`));
    const parentA = (await parents()).find((r) => tagOf(r, 'pipe.sweep.id') === a)!;
    assert.equal(parentA.info.status, 'FAILED');
    const firstEnd = Number(parentA.info.end_time);

    // Retry A only; B's failure stays.
    const retried = await run(['queue', 'retry-failed', '--sweep', a]);
    assert.equal(retried.code, 0, retried.out);
    assert.match(retried.out, new RegExp(`^queued again: trial-1 \\(sweep ${a}, job `));
    const states = new Map<string, string>();
    for (const j of await queue.getJobs(['waiting', 'failed'])) states.set(j!.data.sweepId as string, await j!.getState());
    assert.deepEqual([states.get(a), states.get(b)], ['waiting', 'failed']);

    // The retry runs with nobody following: its worker reopens A's parent and ends it again.
    const w2 = startPipe(['worker', '--name', 'w2'], env);
    procs.push(w2);
    await until(async () => {
      const p = (await parents()).find((r) => tagOf(r, 'pipe.sweep.id') === a)!;
      return p.info.status === 'FAILED' && Number(p.info.end_time) > firstEnd ? p : undefined;
    });
    const trialsA = (await tracking.runs(name)).filter((r) => tagOf(r, 'pipe.sweep.id') === a && tagOf(r, 'pipe.queue.job'));
    assert.equal(trialsA.length, 2, 'two attempts of A\'s trial');
    for (const t of trialsA) assert.equal(tagOf(t, 'mlflow.parentRunId'), parentA.info.run_id);

    // Resubmitting the drained C: same sweep id, same parent, its trials queued again.
    const parentC = (await parents()).find((r) => tagOf(r, 'pipe.sweep.id') === c)!;
    w2.child.kill('SIGTERM');
    assert.equal(await w2.done, 0);
    const again = startPipe(sweepC, env, { root });
    procs.push(again);
    await until(() => /pipe: sweep \S+:/.test(again.out()));
    assert.equal(idOf(again.out()), c);
    assert.match(again.out(), new RegExp(`reopened its parent MLflow run ${parentC.info.run_id}`));
    await until(async () => (await queue.getWaitingCount()) === 2);
    again.child.kill('SIGINT');
    assert.equal(await again.done, 130);
    assert.match(again.out(), /stopped following; the trials stay queued/);
    // One parent per sweep, ever; C's stays RUNNING while its trials wait.
    const all = await parents();
    assert.deepEqual(all.map((r) => tagOf(r, 'pipe.sweep.id')).sort(), [a, b, c].sort());
    assert.equal(all.find((r) => tagOf(r, 'pipe.sweep.id') === c)!.info.status, 'RUNNING');

    // `status --sweep` shows that sweep only.
    const st = await run(['queue', 'status', '--sweep', c]);
    assert.match(st.out, new RegExp(`, sweep ${c}: 2 waiting, 0 active, 0 completed, 0 failed`));
    assert.match(st.out, new RegExp(`sweep ${c}: ${name}, 0 of 2 trials finished`));
    assert.doesNotMatch(st.out, new RegExp(`sweep ${a}`));
  } finally {
    await teardown(procs, queue, redis, tracking);
  }
});
