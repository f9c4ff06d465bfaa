/**
 * `pipe worker`: pulls trial jobs from the BullMQ queue and runs each as a normal pipeline run
 * in its own process (stage cache local to this machine), logging to the shared MLflow server.
 * Reliability is BullMQ's: a job is locked while its worker renews the lock; a worker that dies
 * (kill -9) stops renewing, the stalled-job check moves the job back to the wait list and another
 * worker takes it (https://docs.bullmq.io/guide/workers/stalled-jobs); a failed trial is retried
 * up to the job's `attempts` with exponential backoff, unless its failure repeats on every
 * attempt (bad config or data, a non-finite loss: src/sweep/trial-failure.ts), which fails the
 * job at once (BullMQ UnrecoverableError). Before running, the worker settles the trial's earlier
 * attempts on the MLflow server (mlflow-trials.ts): a finished one is returned as is, RUNNING
 * ones are closed as KILLED at their worker's last heartbeat. A live worker that lost a job's
 * lock (not renewed within lockDuration) lets it go: it stops its heartbeat, interrupts the trial
 * and leaves the job to the stalled-job check, so the trial never runs on beside another
 * worker's attempt (BullMQ alone would process it twice: https://docs.bullmq.io/bull/important-notes).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { Queue, UnrecoverableError, WaitingError, Worker, type Job } from 'bullmq';
import { PipelineError } from '../errors.js';
import { runsDir } from '../paths.js';
import { readLock } from '../runner/cache.js';
import { summarizeRun } from '../sweep/collect.js';
import { newRunId, readTrialResult } from '../sweep/state.js';
import { MlflowClient } from '../tracking/rest/client.js';
import { DEFAULT_RETRY } from '../tracking/rest/retry.js';
import { sha256, TRIAL_KEY_TAG, WORKER_TAG, type TrialJobData, type TrialJobProgress, type TrialJobResult } from './job.js';
import { launchQueuedTrial } from './launch.js';
import type { TrialProcess } from '../sweep/trial-process.js';
import { endParentIfDone, recordSummary, reopenParent, settleEarlierAttempts } from './mlflow-trials.js';
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

/** Backends `--backend` accepts (engine.backend). */
const BACKENDS = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;

/**
 * What a worker checks before it takes any job, so that a misconfigured machine refuses to start
 * instead of failing every trial it takes (1 of 2): the requested backend loads here.
 * @throws PipelineError PIPE_USAGE / PIPE_BACKEND (exit 2) naming what is wrong.
 */
export async function checkBackend(backend: string | undefined): Promise<void> {
  if (backend !== undefined) {
    if (!(BACKENDS as readonly string[]).includes(backend)) throw new PipelineError('PIPE_USAGE', `--backend ${backend}: expected one of ${BACKENDS.join(', ')}`);
    const { initEngine } = await import('../engine/backend.js');
    try {
      await initEngine(backend as (typeof BACKENDS)[number]);
    } catch (e) {
      throw new PipelineError('PIPE_BACKEND', `pipe worker --backend ${backend}: this machine cannot run it: ${(e as Error).message}`);
    }
  }
}

/**
 * The worker's check (2 of 2): the MLflow server answers (one request, one retry).
 * @throws PipelineError PIPE_USAGE (exit 2) naming the server and the error.
 */
export async function checkTracking(trackingUri: string): Promise<void> {
  const probe = new MlflowClient(trackingUri, { timeoutMs: envMs('PIPE_QUEUE_CONNECT_MS', 10_000), retry: { ...DEFAULT_RETRY, maxRetries: 1, baseDelayMs: 200 } });
  try {
    await probe.getExperimentByName('Default');
  } catch (e) {
    throw new PipelineError('PIPE_USAGE', `pipe worker: cannot reach the MLflow server ${maskSecrets(trackingUri)}: ${maskSecrets((e as Error).message)}; check MLFLOW_TRACKING_URI and the server`);
  } finally {
    await probe.close();
  }
}

/**
 * Redis script: sets a job's progress only while its lock holds the given token (KEYS[1] the
 * job's lock key, KEYS[2] the job's hash; ARGV[1] the token, ARGV[2] the progress as JSON, as
 * BullMQ's own updateProgress stores it). 1 when written, 0 when the lock is not this token's.
 */
const PROGRESS_IF_LOCKED = { name: 'pipeProgressIfLocked', numberOfKeys: 2, lua: "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('HSET', KEYS[2], 'progress', ARGV[2]) return 1 end return 0" };
/** The Redis clients PROGRESS_IF_LOCKED is defined on. */
const defined = new WeakSet<object>();

/**
 * Writes a running job's progress (the worker's heartbeat) only while `token` holds the job's
 * lock; false when it does not. A worker that lost the lock (it did not renew it in time: its
 * event loop was held up, or Redis was out of reach) may see the job taken by another worker
 * after BullMQ's stalled-job check, and must not overwrite that worker's progress.
 */
async function writeProgress(queue: Queue, job: Job, token: string | undefined, progress: Partial<TrialJobProgress>): Promise<boolean> {
  if (!token) {
    await job.updateProgress(progress);
    return true;
  }
  const client = await queue.getBackend().client;
  if (!defined.has(client)) {
    client.defineCommand(PROGRESS_IF_LOCKED.name, PROGRESS_IF_LOCKED);
    defined.add(client);
  }
  return Number(await client.runCommand(PROGRESS_IF_LOCKED.name, [`${queue.toKey(job.id!)}:lock`, queue.toKey(job.id!), token, JSON.stringify(progress)])) === 1;
}

/** A job this worker runs: whether it lost the job's lock, and the trial to interrupt when it does. */
interface Holding {
  lost: boolean;
  trial?: TrialProcess;
}

/** The run folder a new attempt can continue: the previous attempt's on this machine, unfinished, same config. */
async function resumableRun(prev: Partial<TrialJobProgress>, setsHash: string): Promise<string | undefined> {
  if (!prev.runId || prev.setsHash !== setsHash) return undefined;
  const dir = join(runsDir(), prev.runId);
  const lock = await readLock(dir);
  if (!lock || Object.values(lock.stages).every((s) => s.status === 'done')) return undefined;
  return (await readTrialResult(dir))?.status === 'finished' ? undefined : prev.runId;
}

/**
 * Runs a worker until `signal` aborts. Lock and stalled-check periods come from
 * $PIPE_QUEUE_LOCK_MS (BullMQ lockDuration, default 30000 ms) and $PIPE_QUEUE_STALLED_MS
 * (stalledInterval, default 30000 ms); $PIPE_QUEUE_MAX_STALLED (default 2) stalls move a job
 * back to the wait list before it fails; the heartbeat written to each running job's progress
 * every $PIPE_QUEUE_HEARTBEAT_MS (default 10000 ms) tells others when the worker stopped
 * answering. On abort the worker takes no more jobs, interrupts its trials (their runs end
 * KILLED) and puts their jobs back on the queue without counting an attempt; the next attempt on
 * this machine continues the interrupted run from its last epoch checkpoint.
 * @throws PipelineError PIPE_USAGE (exit 2) for a bad `--queue` URL, without an http(s)
 *   MLFLOW_TRACKING_URI, or when a check fails (checkBackend, checkTracking).
 */
export async function runWorker(queueUrl: string, opts: WorkerOptions = {}): Promise<void> {
  const out = opts.out ?? process.stdout;
  const trackingUri = requireTrackingServer('pipe worker');
  const target = parseQueueUrl(queueUrl);
  await checkBackend(opts.backend);
  const name = opts.name ?? `${hostname()}-${process.pid}`;
  const workDir = resolve(opts.workDir ?? join(runsDir(), 'queue-pipelines'));
  const heartbeatMs = envMs('PIPE_QUEUE_HEARTBEAT_MS', 10_000);
  const client = new MlflowClient(trackingUri);
  const running = new Set<TrialProcess>();
  let stopping = false;
  // The queue's jobs as a Queue (not the Worker): progress writes (writeProgress), and the sweep's
  // parent run that ends with its last trial, also when no submitter follows the sweep.
  const sweeps = new Queue<TrialJobData, TrialJobResult>(queueName(), { connection: target.connection });
  sweeps.on('error', () => undefined); // the worker's own 'error' handler reports connection trouble
  /** What to do when BullMQ says this worker lost a job's lock, by job id. */
  const onLost = new Map<string, () => void>();

  // The job's heartbeat starts as soon as the worker holds the job (before the MLflow look-ups),
  // so nobody reads the previous attempt's last heartbeat as this worker's silence. It is written
  // only while the worker holds the job's lock; once the lock is lost (a failed heartbeat or lock
  // renewal), the worker stops writing, interrupts the trial and leaves the job to the queue.
  const processor = async (job: Job<TrialJobData, TrialJobResult>, token?: string): Promise<TrialJobResult> => {
    const prev = (typeof job.progress === 'object' ? job.progress : {}) as Partial<TrialJobProgress>;
    const { pid: _pid, ...kept } = prev;
    const progress: Partial<TrialJobProgress> = { ...kept, worker: name, attempt: job.attemptsMade + 1, heartbeat: Date.now(), heartbeatMs };
    const held: Holding = { lost: false };
    let timer: NodeJS.Timeout | undefined;
    const lose = (): void => {
      if (held.lost) return;
      held.lost = true;
      clearInterval(timer);
      if (held.trial && running.has(held.trial)) held.trial.interrupt();
    };
    const beat = async (): Promise<void> => {
      if (!held.lost && !(await writeProgress(sweeps, job, token, { ...progress, heartbeat: Date.now() }))) lose();
    };
    onLost.set(job.id!, lose);
    try {
      await beat();
      timer = setInterval(() => void beat().catch(() => undefined), heartbeatMs);
      return await runJob(job, token, prev, progress, held, beat);
    } finally {
      clearInterval(timer);
      onLost.delete(job.id!);
    }
  };

  /**
   * Runs the trial of `job`; `progress` (the job's heartbeat content) is updated in place and
   * written by `beat`; `held` says when the job's lock was lost.
   */
  const runJob = async (job: Job<TrialJobData, TrialJobResult>, token: string | undefined, prev: Partial<TrialJobProgress>, progress: Partial<TrialJobProgress>, held: Holding, beat: () => Promise<void>): Promise<TrialJobResult> => {
    const d = job.data;
    const head = `trial ${d.index}/${d.total} ${d.name} (job ${job.id}, attempt ${job.attemptsMade + 1})`;
    const lostLine = (what: string): string => `pipe worker: ${head}: lost the job: its lock expired before this worker renewed it (held up, or cut off from Redis), so the queue may give it to another worker; ${what}\n`;
    if (sha256(d.content) !== d.sha256) throw new UnrecoverableError(`the pipeline content of job ${job.id} does not match its sha256; the job is corrupt`);
    const earlier = await settleEarlierAttempts(client, d.experiment, job.id!, prev.worker !== undefined && prev.heartbeat !== undefined ? { worker: prev.worker, at: prev.heartbeat } : undefined);
    if (earlier.closed.length) out.write(`pipe worker: ${head}: closed the run(s) ${earlier.closed.join(', ')} of an earlier attempt as KILLED\n`);
    if (earlier.finished) {
      out.write(`pipe worker: ${head}: finished in an earlier attempt (MLflow run ${earlier.finished.mlflowRunId}), not run again\n`);
      return { worker: name, runId: earlier.finished.summary.runId, mlflowRunId: earlier.finished.mlflowRunId, summary: earlier.finished.summary, reused: true };
    }
    if (held.lost) {
      // Not ours any more: start nothing, leave the job alone (WaitingError: BullMQ does not move it).
      out.write(lostLine('nothing started'));
      throw new WaitingError();
    }
    if (stopping && token) {
      // Stopped while looking the job up: hand it back before starting anything.
      await job.moveToWait(token);
      throw new WaitingError();
    }
    if (d.parentRunId) await reopenParent(client, d.parentRunId);
    const dir = join(workDir, d.sha256.slice(0, 16));
    await mkdir(dir, { recursive: true });
    const file = join(dir, d.fileName);
    await writeFile(file, d.content);
    const sets = [...d.sets, ...(opts.backend ? [`engine.backend=${opts.backend}`] : [])];
    const setsHash = sha256(JSON.stringify(sets));
    const resumed = await resumableRun(prev, setsHash);
    const runId = resumed ?? newRunId();
    Object.assign(progress, { runId, setsHash });
    await beat();
    out.write(`pipe worker: ${head}: ${resumed ? `continuing run ${runId} from its last checkpoint` : `started, run ${runId}`}\n`);
    const trial = launchQueuedTrial({
      file, sets, runId, name: d.name, resume: resumed !== undefined,
      tags: { ...(d.parentRunId ? { 'mlflow.parentRunId': d.parentRunId } : {}), 'pipe.sweep.id': d.sweepId, 'pipe.sweep.trial': d.name, [TRIAL_KEY_TAG]: job.id!, [WORKER_TAG]: name },
      logPath: join(runsDir(), runId, 'trial.log'),
    });
    if (trial.pid !== undefined) progress.pid = trial.pid;
    running.add(trial);
    held.trial = trial;
    if (stopping || held.lost) trial.interrupt(); // the stop or the loss came while it was starting
    await beat().catch(() => undefined); // the trial's pid, at once
    const exit = await trial.done.finally(() => running.delete(trial));
    const runDir = join(runsDir(), runId);
    const mlflowRunId = (await readLock(runDir))?.mlflowRunId;
    if (held.lost && exit.status !== 'finished') {
      // Not the trial's fault either, and the job is no longer this worker's to move: the queue
      // (its stalled-job check) gives it to a worker, which continues the run here or starts over.
      out.write(lostLine(`trial interrupted (run ${runId} can continue from its checkpoint on this machine)`));
      throw new WaitingError();
    }
    if (exit.status === 'killed' && stopping && token) {
      // A requested stop is not the trial's fault: back to the queue with attemptsMade unchanged
      // (Job.moveToWait, then WaitingError so the worker leaves the job alone:
      // https://api.docs.bullmq.io/classes/v5.Job.html#movetowait).
      await beat();
      await job.moveToWait(token);
      out.write(`pipe worker: ${head}: interrupted by the stop; back on the queue (attempt not counted; run ${runId} can continue from its checkpoint on this machine)\n`);
      throw new WaitingError();
    }
    if (exit.status !== 'finished') {
      const result = await readTrialResult(runDir);
      const why = exit.error ?? result?.error ?? 'interrupted';
      const final = result?.status === 'failed' && (result.failure === 'input' || result.failure === 'numeric');
      out.write(`pipe worker: ${head}: ${exit.status.toUpperCase()}${final ? ` (${result.failure === 'input' ? 'bad config or data' : 'numerical failure'}: not retried)` : ''}: ${why} (log: ${join(runDir, 'trial.log')})\n`);
      throw final ? new UnrecoverableError(why) : new Error(why);
    }
    const s = await summarizeRun(runDir);
    const summary = s && { ...s, name: d.name, status: 'FINISHED' as const, backend: s.backend ?? (await readTrialResult(runDir))?.backend };
    if (summary && mlflowRunId) await recordSummary(client, mlflowRunId, summary);
    if (held.lost) {
      // Finished before the loss was noticed: its summary is on its MLflow run, so the worker that
      // takes the job back returns it without running it again (settleEarlierAttempts).
      out.write(lostLine(`the trial had finished (MLflow run ${mlflowRunId ?? '?'}): the worker that takes the job back returns it without running it again`));
      throw new WaitingError();
    }
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
  const settle = (job: Job<TrialJobData, TrialJobResult> | undefined): void => {
    if (job?.data.parentRunId) void endParentIfDone(sweeps, client, job.data).catch((e: unknown) => out.write(`pipe worker: warning: parent run ${job.data.parentRunId} not ended: ${maskSecrets((e as Error).message)}\n`));
  };
  worker.on('completed', settle);
  worker.on('failed', settle);
  worker.on('lockRenewalFailed', (ids: string[]) => {
    for (const id of ids) onLost.get(id)?.();
  });
  let lastError = '';
  worker.on('error', (e) => {
    const msg = maskSecrets(e.message);
    if (msg !== lastError) out.write(`pipe worker: queue ${target.display}: ${msg}\n`);
    lastError = msg;
  });
  try {
    await connectOrFail(worker.waitUntilReady(), target.display, () => lastError);
    await checkTracking(trackingUri);
  } catch (e) {
    await worker.close(true).catch(() => undefined);
    await sweeps.close().catch(() => undefined);
    await client.close();
    throw e;
  }
  out.write(`pipe worker ${name}: waiting for trials on ${target.display} (queue ${queueName()}, ${opts.concurrency ?? 1} at a time); MLflow server ${maskSecrets(trackingUri)}\n`);
  const stopped = new Promise<void>((r) => {
    if (opts.signal?.aborted) r();
    opts.signal?.addEventListener('abort', () => r());
  });
  const runLoop = worker.run();
  await stopped;
  stopping = true;
  out.write(`pipe worker ${name}: stopping: takes no more trials; interrupting ${running.size} running trial(s), their jobs go back to the queue\n`);
  const closing = worker.close();
  for (const t of running) t.interrupt();
  await closing;
  await runLoop.catch(() => undefined);
  await sweeps.close().catch(() => undefined);
  await client.close();
}
