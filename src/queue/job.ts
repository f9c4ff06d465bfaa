/**
 * What goes through the queue: one BullMQ job per sweep trial. The job id is the sweep key's
 * prefix and the trial's config hash, so enqueueing the same sweep twice adds nothing (BullMQ
 * ignores an add whose job id exists: https://docs.bullmq.io/guide/jobs/job-ids).
 */
import { createHash } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { RunSummary } from '../sweep/collect.js';

/** A trial job's data (JSON in Redis). */
export interface TrialJobData {
  version: 1;
  sweepId: string;
  /** The pipeline name. */
  pipeline: string;
  /** Base name of the pipeline file (the worker writes the content under this name). */
  fileName: string;
  /** The pipeline file's text. */
  content: string;
  /** sha256 (hex) of `content`; the worker refuses a mismatch. */
  sha256: string;
  /** `--set` expressions: the sweep's own, then the trial's. */
  sets: string[];
  /** The trial's resolved config (for people and tools; the worker re-resolves from `sets`). */
  config: unknown;
  configHash: string;
  name: string;
  /** 1-based trial position and the trial count. */
  index: number;
  total: number;
  /** The parent MLflow run ('' when the server was unreachable at submit time). */
  parentRunId: string;
  experiment: string;
}

/** A finished trial job's return value. */
export interface TrialJobResult {
  worker: string;
  runId: string;
  mlflowRunId?: string;
  summary?: RunSummary;
  /** True when the trial had finished before (an earlier attempt) and was not run again. */
  reused: boolean;
}

/** The job's progress, set by the worker when it starts the trial and renewed as its heartbeat. */
export interface TrialJobProgress {
  worker: string;
  /** The run folder (runs/<runId> on the worker's machine); a later attempt there resumes it. */
  runId: string;
  attempt: number;
  /** sha256 of the trial's `--set` expressions as run (a resume must run the same config). */
  setsHash: string;
  /** The trial process's id on the worker's machine. */
  pid?: number;
  /** When the worker last said it was alive, ms since the Unix epoch. */
  heartbeat: number;
  /** The worker's heartbeat period, ms. */
  heartbeatMs: number;
}

/** Heartbeats a worker may miss before it counts as gone. */
export const MISSED_HEARTBEATS = 3;

/**
 * When the worker of a running job stopped answering: the later of its last heartbeat and
 * `activeSince` (when the job last became active, BullMQ's `job.processedOn`), if that is older
 * than MISSED_HEARTBEATS periods at `now` (ms) and the job's lock has expired (`locked` false:
 * jobLocked); undefined while it is alive or unknown.
 * Counting from the activation matters for a retried job: until the worker that took it writes
 * its first heartbeat, the progress still holds the previous attempt's last one, which is as old
 * as the retry's backoff and says nothing about the new worker.
 * The lock matters on a loaded machine: a worker descheduled for a few heartbeat periods, or a
 * reader that reads the job late, sees an old heartbeat although the worker holds the job; while
 * its lock (renewed by the same worker, BullMQ lockDuration) lives, no other worker can take the
 * job back, so it is not reported as gone. Silence is when BullMQ itself would move the job back
 * (its stalled-job check: lock expired, https://docs.bullmq.io/guide/workers/stalled-jobs).
 */
export function stoppedAnswering(progress: unknown, activeSince: number | undefined, now: number, locked: boolean): number | undefined {
  const p = progress as Partial<TrialJobProgress> | undefined;
  if (locked || typeof p !== 'object' || !p || typeof p.heartbeat !== 'number' || typeof p.heartbeatMs !== 'number') return undefined;
  const last = Math.max(p.heartbeat, activeSince ?? 0);
  return now - last > MISSED_HEARTBEATS * p.heartbeatMs ? last : undefined;
}

/**
 * Whether BullMQ's lock of job `id` is held: its key `<job key>:lock` exists (BullMQ sets it for
 * lockDuration when a worker takes the job and the worker renews it; the stalled-job check treats
 * an active job without it as stalled).
 */
export async function jobLocked(queue: Queue, id: string): Promise<boolean> {
  const client = await queue.getBackend().client;
  return (await client.get(`${queue.toKey(id)}:lock`)) !== null;
}

/** `2026-12-03 10:41:07 UTC`: a time in messages. */
export function formatTime(ms: number): string {
  return `${new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, '')} UTC`;
}

/** sha256 (hex) of a text (UTF-8). */
export function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** BullMQ job id of a trial: `<first 16 hex of the sweep key>-<config hash>` (no `:`, not an integer). */
export function trialJobId(sweepKey: string, configHash: string): string {
  return `${sweepKey.slice(0, 16)}-${configHash}`;
}

/** MLflow tag naming the trial job on each of its runs (one per attempt): its value is the job id. */
export const TRIAL_KEY_TAG = 'pipe.queue.job';
/** MLflow tag with the worker that ran the attempt. */
export const WORKER_TAG = 'pipe.queue.worker';
/** MLflow tag holding the finished trial's RunSummary as JSON (set by the worker). */
export const SUMMARY_TAG = 'pipe.queue.summary';
