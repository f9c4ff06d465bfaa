/**
 * `pipe worker`: pulls trial jobs from the BullMQ queue and runs each as a normal pipeline run
 * in its own process (stage cache local to this machine), logging to the shared MLflow server.
 * Reliability is BullMQ's: a job is locked while its worker renews the lock; a worker that dies
 * (kill -9) stops renewing, the stalled-job check moves the job back to the wait list and another
 * worker takes it (https://docs.bullmq.io/guide/workers/stalled-jobs); a failed trial is retried
 * up to the job's `attempts`. Before running, the worker settles the trial's earlier attempts on
 * the MLflow server (mlflow-trials.ts): a finished one is returned as is, RUNNING ones are closed
 * as KILLED.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { Worker, type Job } from 'bullmq';
import { runsDir } from '../paths.js';
import { readLock } from '../runner/cache.js';
import { summarizeRun } from '../sweep/collect.js';
import { newRunId, readTrialResult } from '../sweep/state.js';
import { MlflowClient } from '../tracking/rest/client.js';
import { sha256, TRIAL_KEY_TAG, WORKER_TAG, type TrialJobData, type TrialJobProgress, type TrialJobResult } from './job.js';
import { launchQueuedTrial } from './launch.js';
import type { TrialProcess } from '../sweep/trial-process.js';
import { recordSummary, settleEarlierAttempts } from './mlflow-trials.js';
import { connectOrFail, envMs, maskSecrets, parseQueueUrl, queueName, requireTrackingServer } from './url.js';

/** Options of a worker. */
export interface WorkerOptions {
  /** Trials at once (each in its own process). @defaultValue 1 */
  concurrency?: number;
  /** `engine.backend` for every trial (`--set engine.backend=...`); default: the pipeline's. */
  backend?: string;
  /** Name shown in the submitter's table and tagged on runs. @defaultValue `<hostname>-<pid>` */
  name?: string;
  /** Where the pipeline files of jobs are written. @defaultValue `<runs>/queue-pipelines` */
  workDir?: string;
  /** Lines go here. @defaultValue process.stdout */
  out?: NodeJS.WritableStream;
  /** Stop taking jobs and interrupt running trials when aborted. */
  signal?: AbortSignal;
}

/**
 * Runs a worker until `signal` aborts. Lock and stalled-check periods come from
 * $PIPE_QUEUE_LOCK_MS (BullMQ lockDuration, default 30000 ms) and $PIPE_QUEUE_STALLED_MS
 * (stalledInterval, default 30000 ms); $PIPE_QUEUE_MAX_STALLED (default 2) stalls move a job
 * back to the wait list before it fails.
 * @throws PipelineError PIPE_USAGE (exit 2) for a bad `--queue` URL or without an http(s)
 *   MLFLOW_TRACKING_URI.
 */
export async function runWorker(queueUrl: string, opts: WorkerOptions = {}): Promise<void> {
  const out = opts.out ?? process.stdout;
  const trackingUri = requireTrackingServer('pipe worker');
  const target = parseQueueUrl(queueUrl);
  const name = opts.name ?? `${hostname()}-${process.pid}`;
  const workDir = resolve(opts.workDir ?? join(runsDir(), 'queue-pipelines'));
  const client = new MlflowClient(trackingUri);
  const running = new Set<TrialProcess>();

  const processor = async (job: Job<TrialJobData, TrialJobResult>): Promise<TrialJobResult> => {
    const d = job.data;
    const head = `trial ${d.index}/${d.total} ${d.name} (job ${job.id}, attempt ${job.attemptsMade + 1})`;
    if (sha256(d.content) !== d.sha256) throw new Error(`the pipeline content of job ${job.id} does not match its sha256; the job is corrupt`);
    const earlier = await settleEarlierAttempts(client, d.experiment, job.id!);
    if (earlier.closed.length) out.write(`pipe worker: ${head}: closed the run(s) ${earlier.closed.join(', ')} of an earlier attempt as KILLED\n`);
    if (earlier.finished) {
      out.write(`pipe worker: ${head}: finished in an earlier attempt (MLflow run ${earlier.finished.mlflowRunId}), not run again\n`);
      return { worker: name, runId: earlier.finished.summary.runId, mlflowRunId: earlier.finished.mlflowRunId, summary: earlier.finished.summary, reused: true };
    }
    const dir = join(workDir, d.sha256.slice(0, 16));
    await mkdir(dir, { recursive: true });
    const file = join(dir, d.fileName);
    await writeFile(file, d.content);
    const runId = newRunId();
    await job.updateProgress({ worker: name, runId, attempt: job.attemptsMade + 1 } satisfies TrialJobProgress);
    out.write(`pipe worker: ${head}: started, run ${runId}\n`);
    const trial = launchQueuedTrial({
      file, sets: [...d.sets, ...(opts.backend ? [`engine.backend=${opts.backend}`] : [])], runId, name: d.name, resume: false,
      tags: { ...(d.parentRunId ? { 'mlflow.parentRunId': d.parentRunId } : {}), 'pipe.sweep.id': d.sweepId, 'pipe.sweep.trial': d.name, [TRIAL_KEY_TAG]: job.id!, [WORKER_TAG]: name },
      logPath: join(runsDir(), runId, 'trial.log'),
    });
    running.add(trial);
    const exit = await trial.done.finally(() => running.delete(trial));
    const runDir = join(runsDir(), runId);
    const mlflowRunId = (await readLock(runDir))?.mlflowRunId;
    if (exit.status !== 'finished') {
      out.write(`pipe worker: ${head}: ${exit.status.toUpperCase()}: ${exit.error ?? 'interrupted'} (log: ${join(runDir, 'trial.log')})\n`);
      throw new Error(exit.error ?? 'interrupted');
    }
    const s = await summarizeRun(runDir);
    const summary = s && { ...s, name: d.name, status: 'FINISHED' as const, backend: s.backend ?? (await readTrialResult(runDir))?.backend };
    if (summary && mlflowRunId) await recordSummary(client, mlflowRunId, summary);
    out.write(`pipe worker: ${head}: finished${summary?.bestTestAccuracy !== undefined ? `, best test accuracy ${(100 * summary.bestTestAccuracy).toFixed(2)}%` : ''}\n`);
    return { worker: name, runId, ...(mlflowRunId ? { mlflowRunId } : {}), ...(summary ? { summary } : {}), reused: false };
  };

  const worker = new Worker<TrialJobData, TrialJobResult>(queueName(), processor, {
    connection: target.connection,
    concurrency: Math.max(1, opts.concurrency ?? 1),
    name,
    lockDuration: envMs('PIPE_QUEUE_LOCK_MS', 30_000),
    stalledInterval: envMs('PIPE_QUEUE_STALLED_MS', 30_000),
    maxStalledCount: envMs('PIPE_QUEUE_MAX_STALLED', 2),
    autorun: false,
  });
  let lastError = '';
  worker.on('error', (e) => {
    const msg = maskSecrets(e.message);
    if (msg !== lastError) out.write(`pipe worker: queue ${target.display}: ${msg}\n`);
    lastError = msg;
  });
  try {
    await connectOrFail(worker.waitUntilReady(), target.display, () => lastError);
  } catch (e) {
    await worker.close(true).catch(() => undefined);
    throw e;
  }
  out.write(`pipe worker ${name}: waiting for trials on ${target.display} (queue ${queueName()}, ${opts.concurrency ?? 1} at a time); MLflow server ${maskSecrets(trackingUri)}\n`);
  const stopped = new Promise<void>((r) => {
    if (opts.signal?.aborted) r();
    opts.signal?.addEventListener('abort', () => r());
  });
  const runLoop = worker.run();
  await stopped;
  out.write(`pipe worker ${name}: stopping: interrupting ${running.size} running trial(s); their jobs go back to the queue\n`);
  for (const t of running) t.interrupt();
  await worker.close();
  await runLoop.catch(() => undefined);
  await client.close();
}
