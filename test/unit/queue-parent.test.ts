/**
 * A queued sweep's parent MLflow run when its submitter stops following (Ctrl-C) just as the last
 * trial ends: the submitter ends the parent (KILLED, releasing its tracker) and sets it RUNNING
 * again; the worker that finished the last trial ends the parent once the sweep is done, unless
 * it found it not RUNNING. Both orders of the two, on the fake MLflow server and a queue whose
 * job states are given (BullMQ's getJobs).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Queue } from 'bullmq';
import { endParentIfDone, keepParentRunning } from '../../src/queue/mlflow-trials.js';
import type { TrialJobData, TrialJobResult } from '../../src/queue/job.js';
import { MlflowClient } from '../../src/tracking/rest/client.js';
import { FakeMlflow } from '../fake-mlflow.js';

let fake: FakeMlflow;
let client: MlflowClient;
before(async () => {
  fake = await FakeMlflow.start();
  client = new MlflowClient(fake.uri, { env: {} });
});
after(async () => {
  await client.close();
  await fake.close();
});

/** A queue holding the sweep's jobs in the given states (only getJobs is used). */
const queueOf = (states: Record<string, string>): Queue<TrialJobData, TrialJobResult> =>
  ({ getJobs: async (wanted: string[]) => Object.entries(states).filter(([, s]) => wanted.includes(s)).map(([name]) => ({ data: { sweepId: 'sw', name } })) }) as unknown as Queue<TrialJobData, TrialJobResult>;

async function parentRun(name: string): Promise<string> {
  const exp = await client.createExperiment(name);
  return (await client.createRun({ experimentId: exp, runName: 'sweep', startTime: 1000, tags: [] })).run_id;
}

test('the worker ended the parent of the done sweep first: the submitter that stops following ends it again, not RUNNING', async () => {
  const parentRunId = await parentRun('parent-worker-first');
  const done = queueOf({ a: 'completed', b: 'completed' });
  const sweep = { sweepId: 'sw', total: 2, parentRunId };
  // The worker saw the last job completed and the parent RUNNING: FINISHED.
  await endParentIfDone(done, client, sweep);
  assert.equal((await client.getRun(parentRunId)).info.status, 'FINISHED');
  // The submitter, whose last poll saw that job still running, ends its tracker (KILLED) and keeps the parent running.
  await client.updateRun(parentRunId, { status: 'KILLED', endTime: 2000 });
  await keepParentRunning(done, client, sweep);
  assert.equal((await client.getRun(parentRunId)).info.status, 'FINISHED', 'a done sweep does not stay RUNNING');
});

test('the worker looked while the submitter had the parent KILLED: the submitter ends it; with a trial left, it stays RUNNING for its worker', async () => {
  const parentRunId = await parentRun('parent-submitter-between');
  const sweep = { sweepId: 'sw', total: 2, parentRunId };
  await client.updateRun(parentRunId, { status: 'KILLED', endTime: 2000 });
  await endParentIfDone(queueOf({ a: 'completed', b: 'failed' }), client, sweep);
  assert.equal((await client.getRun(parentRunId)).info.status, 'KILLED', 'the worker leaves an ended parent alone');
  await keepParentRunning(queueOf({ a: 'completed', b: 'failed' }), client, sweep);
  assert.equal((await client.getRun(parentRunId)).info.status, 'FAILED', 'a trial failed for good');

  const other = await parentRun('parent-trial-left');
  await client.updateRun(other, { status: 'KILLED', endTime: 2000 });
  await keepParentRunning(queueOf({ a: 'completed', b: 'active' }), client, { ...sweep, parentRunId: other });
  assert.equal((await client.getRun(other)).info.status, 'RUNNING');
});
