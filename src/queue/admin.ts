/**
 * The operator's view of the trial queue (`pipe queue status|drain|retry-failed`): job counts,
 * the running trials (and whether their worker still answers) and the failed ones; removing the
 * queued (not running) trials of a sweep; sending a sweep's failed trials back to the queue.
 * Commands that change the queue act on one sweep (`--sweep ID`) and on every sweep only when
 * asked (`--all`). BullMQ's own Queue API (https://api.docs.bullmq.io/classes/v5.Queue.html).
 */
import { Queue, type Job } from 'bullmq';
import { PipelineError } from '../errors.js';
import { formatTime, jobLocked, stoppedAnswering, type TrialJobData, type TrialJobProgress, type TrialJobResult } from './job.js';
import { connectOrFail, parseQueueUrl, queueName } from './url.js';

type TrialQueue = Queue<TrialJobData, TrialJobResult>;
type TrialJob = Job<TrialJobData, TrialJobResult>;

/** Which sweeps a command acts on: one sweep id, or all of them. */
export type SweepSelector = { sweep: string } | { all: true };

/**
 * The selector of `--sweep ID` / `--all`.
 * @throws PipelineError PIPE_USAGE (exit 2) for neither or both.
 */
export function sweepSelector(action: string, opts: { sweep?: string; all?: boolean }): SweepSelector {
  if (opts.sweep !== undefined && opts.all) throw new PipelineError('PIPE_USAGE', `pipe queue ${action}: give --sweep ID or --all, not both`);
  if (opts.sweep !== undefined) return { sweep: opts.sweep };
  if (opts.all) return { all: true };
  throw new PipelineError('PIPE_USAGE', `pipe queue ${action} changes the queue: name the sweep with --sweep ID (pipe queue status lists them), or pass --all for every sweep on the queue`);
}

/** Whether job `j` belongs to the selected sweeps: by sweep id, or by the sweep key prefix of its job id. */
const selects = (sel: SweepSelector, j: TrialJob): boolean => 'all' in sel || j.data.sweepId === sel.sweep || (j.id ?? '').startsWith(`${sel.sweep}-`);

async function withQueue<T>(url: string, fn: (q: TrialQueue, display: string) => Promise<T>): Promise<T> {
  const target = parseQueueUrl(url);
  let lastError = '';
  const q: TrialQueue = new Queue(queueName(), { connection: target.connection });
  q.on('error', (e: Error) => void (lastError = e.message));
  try {
    await connectOrFail(q.waitUntilReady(), target.display, () => lastError);
    return await fn(q, target.display);
  } finally {
    await q.close().catch(() => undefined);
  }
}

const label = (j: TrialJob): string => `${j.data.name} (sweep ${j.data.sweepId}, job ${j.id})`;

/** A worker's name from its Redis client name (`<prefix>:<base64 queue>:w:<name>`, set by BullMQ). */
export function workerName(rawClientName: string): string {
  const at = rawClientName.indexOf(':w:');
  return at >= 0 ? rawClientName.slice(at + 3) : rawClientName;
}

/** One line about a running job: its worker, or when that worker stopped answering (`locked`: jobLocked). */
export function runningLine(j: TrialJob, locked: boolean, now = Date.now()): string {
  const p = j.progress as Partial<TrialJobProgress>;
  const gone = stoppedAnswering(p, j.processedOn, now, locked);
  const attempt = `attempt ${j.attemptsMade + 1}`;
  return gone !== undefined
    ? `  worker ${p.worker ?? '?'} stopped answering at ${formatTime(gone)}: ${label(j)} (${attempt}) waits for a live worker to take it back`
    : `  running: ${label(j)} on ${p.worker ?? '?'} (${attempt})`;
}

/** Counts per state, the sweeps, the running trials with their worker, the failed ones with their error, the workers. */
export function queueStatus(url: string, opts: { sweep?: string } = {}): Promise<string> {
  return withQueue(url, async (q, display) => {
    const sel: SweepSelector = opts.sweep !== undefined ? { sweep: opts.sweep } : { all: true };
    const states = ['waiting', 'active', 'completed', 'failed', 'delayed', 'prioritized'] as const;
    const jobs: TrialJob[] = [];
    const stateOf = new Map<string, string>();
    for (const s of states) {
      for (const j of await q.getJobs([s])) {
        if (!j || !selects(sel, j) || stateOf.has(j.id!)) continue;
        jobs.push(j);
        stateOf.set(j.id!, s);
      }
    }
    const counts = states.map((s) => `${jobs.filter((j) => stateOf.get(j.id!) === s).length} ${s}`);
    const lines = [`queue ${queueName()} on ${display}${opts.sweep !== undefined ? `, sweep ${opts.sweep}` : ''}: ${counts.join(', ')}`];
    const sweeps = new Map<string, { pipeline: string; total: number; done: number }>();
    for (const j of jobs) {
      const s = sweeps.get(j.data.sweepId) ?? { pipeline: j.data.pipeline, total: j.data.total, done: 0 };
      if (stateOf.get(j.id!) === 'completed') s.done++;
      sweeps.set(j.data.sweepId, s);
    }
    for (const [id, s] of sweeps) lines.push(`  sweep ${id}: ${s.pipeline}, ${s.done} of ${s.total} trials finished`);
    for (const j of jobs.filter((x) => stateOf.get(x.id!) === 'active')) lines.push(runningLine(j, await jobLocked(q, j.id!)));
    for (const j of jobs.filter((x) => stateOf.get(x.id!) === 'failed')) lines.push(`  failed: ${label(j)} after ${j.attemptsMade} attempt(s): ${j.failedReason}`);
    const workers = (await q.getWorkers()).map((w) => workerName(String(w['rawname'] ?? w['name'] ?? w['addr'])));
    lines.push(`workers connected: ${workers.length}${workers.length ? ` (${workers.join(', ')})` : ''}`);
    return lines.join('\n');
  });
}

/** Removes the queued trials (not the running ones) of the selected sweeps; resolves to their labels. */
export function drainQueue(url: string, sel: SweepSelector): Promise<string[]> {
  return withQueue(url, async (q) => {
    const queued = (await q.getJobs(['waiting', 'delayed', 'prioritized'])).filter((j): j is TrialJob => j !== undefined && selects(sel, j));
    const removed: string[] = [];
    for (const j of queued) if ((await q.remove(j.id!)) === 1) removed.push(label(j));
    return removed;
  });
}

/** Sends the failed trials of the selected sweeps back to the queue (attempts start over); resolves to their labels. */
export function retryFailed(url: string, sel: SweepSelector): Promise<string[]> {
  return withQueue(url, async (q) => {
    const failed = (await q.getFailed()).filter((j) => selects(sel, j));
    for (const j of failed) await j.retry('failed', { resetAttemptsMade: true });
    return failed.map(label);
  });
}
