/**
 * A trial's earlier attempts as the MLflow server knows them (runs tagged `pipe.queue.job` with
 * the trial's job id): before a worker runs a trial it looks there, so a trial that finished in
 * an earlier attempt (its worker died before telling the queue) is not run again, and a run left
 * RUNNING by a worker that was killed is closed as KILLED.
 */
import { MlflowClient } from '../tracking/rest/client.js';
import { DEFAULT_RETRY } from '../tracking/rest/retry.js';
import { isServerUri } from '../tracking/uri.js';
import type { SweepState } from '../sweep/state.js';
import type { Run } from '../tracking/rest/types.js';
import type { RunSummary } from '../sweep/collect.js';
import type { Queue } from 'bullmq';
import { SUMMARY_TAG, TRIAL_KEY_TAG, WORKER_TAG, type TrialJobData, type TrialJobResult } from './job.js';

const tag = (r: Run, key: string): string | undefined => r.data.tags?.find((t) => t.key === key)?.value;

/** What the earlier attempts of a trial left. */
export interface EarlierAttempts {
  /** A finished attempt, with its summary. */
  finished?: { mlflowRunId: string; summary: RunSummary };
  /** MLflow run ids closed as KILLED now (they were still RUNNING). */
  closed: string[];
}

/**
 * Looks up the attempts of job `jobId` in experiment `experiment` and closes the RUNNING ones as
 * KILLED: a run of `lastSeen.worker` ends at `lastSeen.at` (its worker's last heartbeat: when it
 * died), others now. Call only while holding the job (BullMQ's lock), so no live attempt is closed.
 * @throws MlflowError when the server cannot be reached (after the client's retries).
 */
export async function settleEarlierAttempts(client: MlflowClient, experiment: string, jobId: string, lastSeen?: { worker: string; at: number }): Promise<EarlierAttempts> {
  const exp = await client.getExperimentByName(experiment);
  if (!exp) return { closed: [] };
  const { runs } = await client.searchRuns({ experimentIds: [exp.experiment_id], filter: `tags.${TRIAL_KEY_TAG} = '${jobId}'`, maxResults: 100 });
  const out: EarlierAttempts = { closed: [] };
  for (const r of runs) {
    const summary = tag(r, SUMMARY_TAG);
    if (r.info.status === 'FINISHED' && summary && !out.finished) out.finished = { mlflowRunId: r.info.run_id, summary: JSON.parse(summary) as RunSummary };
    else if (r.info.status === 'RUNNING') {
      const died = lastSeen && tag(r, WORKER_TAG) === lastSeen.worker ? Math.max(Number(r.info.start_time ?? 0), lastSeen.at) : Date.now();
      await client.updateRun(r.info.run_id, { status: 'KILLED', endTime: died });
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

/**
 * Sets the sweep's parent run RUNNING again when it ended (a retry or a recovery after the
 * submitter stopped following), so a trial never runs under an ended parent; the submitter ends
 * it when the sweep is done. A parent that cannot be read is left alone (the trial still runs).
 */
export async function reopenParent(client: MlflowClient, parentRunId: string): Promise<void> {
  const run = await client.getRun(parentRunId).catch(() => undefined);
  if (run && run.info.status !== 'RUNNING') await client.updateRun(parentRunId, { status: 'RUNNING' });
}

/**
 * Ends the sweep's parent run when every one of its `total` trials is completed or failed for
 * good: FINISHED when all completed, else FAILED. A parent already ended is left as it is.
 * Called by the worker after each trial's job is done and by a submitter that stopped following
 * and set the parent RUNNING again: each calls it after its own write (the job done; the parent
 * reopened), so whichever comes second sees the other's and the parent of a done sweep is ended.
 */
export async function endParentIfDone(queue: Queue<TrialJobData, TrialJobResult>, client: MlflowClient, d: Pick<TrialJobData, 'sweepId' | 'total' | 'parentRunId'>): Promise<void> {
  const done = { completed: 0, failed: 0 };
  for (const state of ['waiting', 'active', 'delayed', 'prioritized'] as const) {
    if ((await queue.getJobs([state])).some((j) => j?.data.sweepId === d.sweepId)) return;
  }
  for (const state of ['completed', 'failed'] as const) done[state] = (await queue.getJobs([state])).filter((j) => j?.data.sweepId === d.sweepId).length;
  if (done.completed + done.failed < d.total) return;
  const run = await client.getRun(d.parentRunId);
  if (run.info.status === 'RUNNING') await client.updateRun(d.parentRunId, { status: done.failed ? 'FAILED' : 'FINISHED', endTime: Date.now() });
}

/**
 * Sets a sweep's parent run RUNNING again after its submitter stopped following the sweep (the
 * trials go on; the worker that ends the last one ends the parent), and ends it at once when its
 * trials are all done by then: the worker that ended the last trial while the submitter was
 * ending the parent found it ended, or ended it just before the submitter overwrote its status.
 */
export async function keepParentRunning(queue: Queue<TrialJobData, TrialJobResult>, client: MlflowClient, d: Pick<TrialJobData, 'sweepId' | 'total' | 'parentRunId'>): Promise<void> {
  await client.updateRun(d.parentRunId, { status: 'RUNNING' });
  await endParentIfDone(queue, client, d);
}

/** The MLflow UI address of a run: `<server>/#/experiments/<experiment id>/runs/<run id>` (credentials removed). */
export function runLink(trackingUri: string, experimentId: string, mlflowRunId: string): string {
  const u = new URL(trackingUri);
  u.username = '';
  u.password = '';
  return `${u.toString().replace(/\/+$/, '')}/#/experiments/${experimentId}/runs/${mlflowRunId}`;
}

/**
 * A remote trial's summary as the submitter shows it: identified by its MLflow run id, with the
 * run's MLflow link as its place (`runDir`), never the worker's folder (which only that machine has).
 */
export function remoteSummary(summary: RunSummary, mlflowRunId: string | undefined, trackingUri: string, experimentId: string): RunSummary {
  const id = mlflowRunId ?? summary.mlflowRunId;
  return { ...summary, ...(id ? { runId: id, mlflowRunId: id, runDir: runLink(trackingUri, experimentId, id) } : {}) };
}

/**
 * A queued sweep's finished trials as recorded on the MLflow server of MLFLOW_TRACKING_URI (runs
 * tagged with the sweep id and carrying a summary), for `pipe runs compare`; undefined when that
 * is not a server or the server does not answer (the caller falls back to sweep.json).
 */
export async function queuedSweepTrials(sweep: SweepState, env: NodeJS.ProcessEnv = process.env): Promise<RunSummary[] | undefined> {
  const uri = env['MLFLOW_TRACKING_URI'] ?? '';
  if (!isServerUri(uri)) return undefined;
  const client = new MlflowClient(uri, { retry: { ...DEFAULT_RETRY, maxRetries: 1 } });
  try {
    const exp = await client.getExperimentByName(sweep.experiment ?? sweep.pipeline);
    if (!exp) return undefined;
    const out = new Map<string, RunSummary>();
    let pageToken: string | undefined;
    do {
      const page = await client.searchRuns({ experimentIds: [exp.experiment_id], filter: `tags.\`pipe.sweep.id\` = '${sweep.sweepId}'`, maxResults: 1000, ...(pageToken ? { pageToken } : {}) });
      for (const r of page.runs) {
        const summary = tag(r, SUMMARY_TAG);
        const name = tag(r, 'pipe.sweep.trial');
        if (r.info.status !== 'FINISHED' || !summary || !name || out.has(name)) continue;
        out.set(name, { ...remoteSummary(JSON.parse(summary) as RunSummary, r.info.run_id, uri, exp.experiment_id), name, status: 'FINISHED' });
      }
      pageToken = page.nextPageToken;
    } while (pageToken);
    return sweep.trials.flatMap((t) => out.get(t.name) ?? []);
  } catch {
    return undefined;
  } finally {
    await client.close();
  }
}
