/**
 * What goes through the queue: one BullMQ job per sweep trial. The job id is the sweep key's
 * prefix and the trial's config hash, so enqueueing the same sweep twice adds nothing (BullMQ
 * ignores an add whose job id exists: https://docs.bullmq.io/guide/jobs/job-ids).
 */
import { createHash } from 'node:crypto';
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

/** The job's progress, set by the worker when it starts the trial. */
export interface TrialJobProgress {
  worker: string;
  runId: string;
  attempt: number;
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
