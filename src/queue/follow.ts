/**
 * Follows a queued sweep's jobs until each is completed or failed for good: one line per change
 * (queued, running on which worker and attempt, finished, failed and retried), and the status
 * table at the end. Polls Redis (BullMQ getJob + getState) every `pollMs`.
 */
import type { Job, Queue } from 'bullmq';
import { formatTime, jobLocked, stoppedAnswering, type TrialJobData, type TrialJobProgress, type TrialJobResult } from './job.js';

/** Where one trial's job stands, as last seen. */
export interface JobView {
  id: string;
  name: string;
  index: number;
  /** BullMQ state: waiting, active, completed, failed, delayed, prioritized, unknown. */
  state: string;
  worker?: string;
  /** Set while active: the last heartbeat of a worker that stopped answering (ms since the Unix epoch). */
  silentSince?: number;
  attempts: number;
  /** The next retry's delay, ms (a failed attempt waiting in the delayed state). */
  retryInMs?: number;
  error?: string;
  result?: TrialJobResult;
}

const isDone = (v: JobView): boolean => v.state === 'completed' || v.state === 'failed' || v.state === 'unknown';

async function view(queue: Queue<TrialJobData, TrialJobResult>, id: string, prev: JobView): Promise<JobView> {
  // The state first, then the job: a job read before it completed has no return value yet, and a
  // view that says completed without a result would never be read again.
  const state = await queue.getJobState(id);
  const job = (await queue.getJob(id)) as Job<TrialJobData, TrialJobResult> | undefined;
  if (!job || state === 'unknown') return { ...prev, state: 'unknown', error: 'the job was removed from the queue (pipe queue drain?)' };
  const p = job.progress as Partial<TrialJobProgress> | number;
  const locked = state === 'active' && (await jobLocked(queue, id));
  const silent = state === 'active' ? stoppedAnswering(p, job.processedOn, Date.now(), locked) : undefined;
  const { silentSince: _s, retryInMs: _r, ...rest } = prev;
  return {
    ...rest, state, attempts: job.attemptsMade,
    ...(typeof p === 'object' && p.worker ? { worker: p.worker } : {}),
    ...(silent !== undefined ? { silentSince: silent } : {}),
    ...(state === 'delayed' && job.delay > 0 ? { retryInMs: job.delay } : {}),
    ...(job.failedReason ? { error: job.failedReason } : {}),
    ...(state === 'completed' && job.returnvalue ? { result: job.returnvalue } : {}),
  };
}

const headOf = (v: JobView, total: number): string => `trial ${v.index}/${total} ${v.name}`;

function describe(v: JobView, total: number, requeued: boolean): string {
  const head = headOf(v, total);
  switch (v.state) {
    case 'active': return v.silentSince !== undefined
      ? `! ${head}: worker ${v.worker ?? '?'} stopped answering at ${formatTime(v.silentSince)} (attempt ${v.attempts + 1}); the job goes back to the queue when a live worker checks for stalled jobs`
      : `> ${head}: running on ${v.worker ?? 'a worker'} (attempt ${v.attempts + 1})`;
    case 'completed': return `✓ ${head}: finished on ${v.result?.worker ?? v.worker ?? '?'}${v.result?.reused ? ' (in an earlier attempt)' : ''}${v.result?.summary?.bestTestAccuracy !== undefined ? `, best test accuracy ${(100 * v.result.summary.bestTestAccuracy).toFixed(2)}%` : ''}`;
    case 'failed': return `✗ ${head}: FAILED after ${v.attempts} attempt(s): ${v.error ?? '?'}`;
    case 'waiting': case 'prioritized': case 'delayed': case 'waiting-children':
      return requeued ? `↻ ${head}: queued again (${v.error ? `attempt ${v.attempts} failed: ${v.error}${v.retryInMs !== undefined ? `; retry in ${(v.retryInMs / 1000).toFixed(1)} s` : ''}` : `its worker ${v.worker ?? ''} stopped or stalled; attempts used: ${v.attempts}`})` : `  ${head}: queued`;
    default: return `? ${head}: ${v.state}${v.error ? `: ${v.error}` : ''}`;
  }
}

/**
 * Polls until every job is done (or `signal` aborts), writing a line per change to `out`.
 * @returns the last view of each job, in trial order.
 */
export async function followJobs(queue: Queue<TrialJobData, TrialJobResult>, jobs: JobView[], total: number, out: NodeJS.WritableStream, opts: { pollMs?: number; signal?: AbortSignal; onChange?: (views: JobView[]) => Promise<void> } = {}): Promise<JobView[]> {
  const views = new Map(jobs.map((j) => [j.id, j]));
  const shown = new Map<string, string>();
  const wasActive = new Set<string>();
  // The worker (and attempts used) each job was last seen running on: a job seen running on one
  // worker, then on another, went back to the queue and was taken again between two polls.
  const runningOn = new Map<string, { worker: string; attempts: number }>();
  for (;;) {
    let changed = false;
    for (const [id, prev] of views) {
      if (isDone(prev) && shown.has(id)) continue;
      const v = await view(queue, id, prev);
      views.set(id, v);
      if (v.state === 'active') wasActive.add(id);
      const on = runningOn.get(id);
      if (v.state === 'active' && v.worker) {
        if (on && on.worker !== v.worker) {
          out.write(`↻ ${headOf(v, total)}: taken back from ${on.worker} by ${v.worker} (${v.attempts > on.attempts ? `attempt ${on.attempts + 1} failed${v.error ? `: ${v.error}` : ''}` : `its worker stopped or stalled; attempts used: ${v.attempts}`})\n`);
          changed = true;
        }
        runningOn.set(id, { worker: v.worker, attempts: v.attempts });
      } else if (v.state !== 'active') runningOn.delete(id);
      const line = describe(v, total, wasActive.has(id));
      if (shown.get(id) !== line) {
        out.write(`${line}\n`);
        changed = true;
      }
      shown.set(id, line);
    }
    if (changed) await opts.onChange?.([...views.values()]);
    if ([...views.values()].every(isDone) || opts.signal?.aborted) break;
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 500));
  }
  return [...views.values()].sort((a, b) => a.index - b.index);
}

/** The status table: trial, state, worker, attempts, MLflow run. */
export function statusTable(views: readonly JobView[]): string {
  const cells = [['trial', 'state', 'worker', 'attempts', 'MLflow run'], ...views.map((v) => [v.name, v.state, v.result?.worker ?? v.worker ?? '-', String(v.attempts), v.result?.mlflowRunId ?? '-'])];
  const widths = cells[0]!.map((_, c) => Math.max(...cells.map((r) => r[c]!.length)));
  return cells.map((r) => r.map((x, c) => x.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n');
}
