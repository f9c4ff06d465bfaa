/**
 * Issue 17 points 6 and 7: secrets stay off the command line, and the submitter works with what
 * remote workers produced. Redis requires a password; the submitter reads it from
 * PIPE_QUEUE_PASSWORD_FILE and the worker from PIPE_QUEUE_PASSWORD, both with the URL in
 * PIPE_QUEUE_URL (no `--queue URL`, so `ps` shows no password). After a two-trial sweep, `pipe
 * runs` on the submitter lists the queued sweep and its trials; `pipe runs compare SWEEP` reads
 * the trials from the MLflow server (the local sweep.json's copies are removed first) and equals
 * the runs' own metrics; the comparison names MLflow run ids and links, never a worker's folder.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mlflowMetricKey } from '../../src/tracking/layout.js';
import { MlflowClient } from '../../src/tracking/rest/client.js';
import { makeTree, quickPipeline } from '../utils.js';
import { exited, queueEnv, skipQueue, startPipe, startRedis, startTracking, tagOf, until, type Proc } from './queue-harness.js';

test('password from a file or a variable, never on a command line; pipe runs and runs compare see a queued sweep through MLflow', { skip: skipQueue, timeout: 240_000 }, async () => {
  const password = 'pw-from-the-environment';
  const redis = await startRedis(password);
  const tracking = await startTracking();
  const name = `qremote${redis.port}`;
  const env = queueEnv(tracking, redis);
  const procs: Proc[] = [];
  try {
    const root = makeTree({ 'p.yaml': quickPipeline(name), 'secret/redis-password': `${password}\n` });
    // Without the password Redis refuses: exit 2, and the message says so.
    const refused = startPipe(['queue', 'status'], { ...env, PIPE_QUEUE_CONNECT_MS: '2000' }, { root });
    assert.equal(await refused.done, 2);
    assert.match(refused.out(), /cannot reach the queue redis:\/\/127\.0\.0\.1:\d+\/0: .*(NOAUTH|auth)/i);

    const worker = startPipe(['worker', '--name', 'wR'], { ...env, PIPE_QUEUE_PASSWORD: password });
    procs.push(worker);
    const submit = startPipe(['run', 'p.yaml', '--sweep', 'stages.head.with.optimizer.lr=0.001,0.003', '--queue'], { ...env, PIPE_QUEUE_PASSWORD_FILE: join(root, 'secret', 'redis-password') }, { root });
    procs.push(submit);
    await until(() => worker.out().includes('started, run'));
    for (const p of [worker, submit]) {
      const cmdline = readFileSync(`/proc/${p.child.pid}/cmdline`, 'utf8');
      assert.ok(!cmdline.includes(password) && !cmdline.includes('redis://'), `no queue URL or password on the command line: ${cmdline}`);
    }
    assert.equal(await submit.done, 0, submit.out() + worker.out());
    for (const p of [worker, submit]) assert.ok(!p.out().includes(password));
    const sweepId = /pipe: sweep (\S+):/.exec(submit.out())![1]!;

    // The MLflow truth: each trial's finished run and its metrics.
    const children = (await tracking.runs(name)).filter((r) => tagOf(r, 'pipe.queue.job') && r.info.status === 'FINISHED');
    assert.equal(children.length, 2);
    const client = new MlflowClient(tracking.uri);
    const expId = children[0]!.info.experiment_id;

    // pipe runs: the queued sweep, FINISHED, with its two trials by MLflow run id.
    const listing = startPipe(['runs'], env, { root });
    assert.equal(await listing.done, 0, listing.out());
    assert.match(listing.out(), new RegExp(`^${sweepId} +sweep ${name} \\(2 trials\\) +FINISHED`, 'm'));
    for (const c of children) assert.match(listing.out(), new RegExp(`^  ${c.info.run_id} +${tagOf(c, 'pipe.sweep.trial')!.replace(/[.=]/g, '\\$&')} +FINISHED`, 'm'));

    // runs compare reads MLflow: the sweep.json copies of the summaries are gone first.
    const sweepFile = join(root, 'runs', sweepId, 'sweep.json');
    const state = JSON.parse(readFileSync(sweepFile, 'utf8')) as { trials: { summary?: unknown }[] };
    for (const t of state.trials) delete t.summary;
    writeFileSync(sweepFile, JSON.stringify(state));
    const cmp = startPipe(['runs', 'compare', sweepId, '--format', 'json'], env, { root });
    assert.equal(await cmp.done, 0, cmp.out());
    const rows = JSON.parse(cmp.out()) as { name: string; runId: string; runDir: string; mlflowRunId: string; bestTestAccuracy: number; bestEpoch: number }[];
    assert.deepEqual(rows.map((r) => r.mlflowRunId).sort(), children.map((c) => c.info.run_id).sort());
    for (const r of rows) {
      const child = children.find((c) => c.info.run_id === r.mlflowRunId)!;
      assert.equal(r.name, tagOf(child, 'pipe.sweep.trial'));
      assert.equal(r.runId, r.mlflowRunId);
      assert.equal(r.runDir, `${tracking.uri.replace(/\/+$/, '')}/#/experiments/${expId}/runs/${r.mlflowRunId}`);
      const acc = (await client.getMetricHistory(r.mlflowRunId, mlflowMetricKey('test_accuracy'))).map((m) => ({ value: Number(m.value), step: m.step })).sort((x, y) => y.value - x.value || x.step - y.step)[0]!;
      assert.ok(Math.abs(r.bestTestAccuracy - acc.value) < 1e-9, `${r.name}: ${r.bestTestAccuracy} != ${acc.value}`);
      assert.equal(r.bestEpoch, acc.step);
    }
    await client.close();

    // The submitter's own comparison: MLflow ids and links, no worker folder.
    const comparison = readFileSync(join(root, 'runs', sweepId, 'comparison', 'comparison.json'), 'utf8');
    assert.ok(!comparison.includes(worker.root), 'a worker path in the comparison');
    for (const c of children) assert.ok(comparison.includes(`/#/experiments/${expId}/runs/${c.info.run_id}`));
  } finally {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await Promise.all(procs.map((p) => exited(p.child)));
    await redis.stop();
    await tracking.close();
  }
});
