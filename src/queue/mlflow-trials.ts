/**
 * A trial's earlier attempts as the MLflow server knows them (runs tagged `pipe.queue.job` with
 * the trial's job id): before a worker runs a trial it looks there, so a trial that finished in
 * an earlier attempt (its worker died before telling the queue) is not run again, and a run left
 * RUNNING by a worker that was killed is closed as KILLED.
 */
import { MlflowClient } from '../tracking/rest/client.js';
import type { Run } from '../tracking/rest/types.js';
import type { RunSummary } from '../sweep/collect.js';
import { SUMMARY_TAG, TRIAL_KEY_TAG } from './job.js';

const tag = (r: Run, key: string): string | undefined => r.data.tags?.find((t) => t.key === key)?.value;

/** What the earlier attempts of a trial left. */
export interface EarlierAttempts {
  /** A finished attempt, with its summary. */
  finished?: { mlflowRunId: string; summary: RunSummary };
  /** MLflow run ids closed as KILLED now (they were still RUNNING). */
  closed: string[];
}

/**
 * Looks up the attempts of job `jobId` in experiment `experiment` and closes the RUNNING ones.
 * Call only while holding the job (BullMQ's lock), so no live attempt is closed.
 * @throws MlflowError when the server cannot be reached (after the client's retries).
 */
export async function settleEarlierAttempts(client: MlflowClient, experiment: string, jobId: string): Promise<EarlierAttempts> {
  const exp = await client.getExperimentByName(experiment);
  if (!exp) return { closed: [] };
  const { runs } = await client.searchRuns({ experimentIds: [exp.experiment_id], filter: `tags.${TRIAL_KEY_TAG} = '${jobId}'`, maxResults: 100 });
  const out: EarlierAttempts = { closed: [] };
  for (const r of runs) {
    const summary = tag(r, SUMMARY_TAG);
    if (r.info.status === 'FINISHED' && summary && !out.finished) out.finished = { mlflowRunId: r.info.run_id, summary: JSON.parse(summary) as RunSummary };
    else if (r.info.status === 'RUNNING') {
      await client.updateRun(r.info.run_id, { status: 'KILLED', endTime: Date.now() });
      out.closed.push(r.info.run_id);
    }
  }
  return out;
}

/** Records a finished trial's summary on its MLflow run (tag SUMMARY_TAG, JSON; MLflow allows 8000 characters, so the curve is dropped when longer). */
export async function recordSummary(client: MlflowClient, mlflowRunId: string, summary: RunSummary): Promise<void> {
  let value = JSON.stringify(summary);
  if (value.length > 8000) value = JSON.stringify({ ...summary, curve: [] });
  await client.logBatch(mlflowRunId, { tags: [{ key: SUMMARY_TAG, value }] });
}
