/**
 * The operator's view of the trial queue (`pipe queue status|drain|retry-failed`): job counts
 * and the running and failed trials; removing the queued (not running) trials; sending the
 * failed ones back to the queue. BullMQ's own Queue API (https://api.docs.bullmq.io/classes/v5.Queue.html).
 */
import { Queue, type Job } from 'bullmq';
import type { TrialJobData, TrialJobProgress, TrialJobResult } from './job.js';
import { connectOrFail, parseQueueUrl, queueName } from './url.js';

type TrialQueue = Queue<TrialJobData, TrialJobResult>;

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

const label = (j: Job<TrialJobData, TrialJobResult>): string => `${j.data.name} (sweep ${j.data.sweepId}, job ${j.id})`;

/** Counts per state, then the running trials with their worker and the failed ones with their error. */
export function queueStatus(url: string): Promise<string> {
  return withQueue(url, async (q, display) => {
    const counts = await q.getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed', 'prioritized');
    const lines = [`queue ${queueName()} on ${display}: ${Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(', ')}`];
    for (const j of await q.getActive()) lines.push(`  running: ${label(j)} on ${(j.progress as Partial<TrialJobProgress>).worker ?? '?'} (attempt ${j.attemptsMade + 1})`);
    for (const j of await q.getFailed()) lines.push(`  failed: ${label(j)} after ${j.attemptsMade} attempt(s): ${j.failedReason}`);
    const workers = await q.getWorkers();
    lines.push(`workers connected: ${workers.length}${workers.length ? ` (${workers.map((w) => w['name'] ?? w['addr']).join(', ')})` : ''}`);
    return lines.join('\n');
  });
}

/** Removes the queued trials (running ones finish); resolves to how many were removed. */
export function drainQueue(url: string): Promise<number> {
  return withQueue(url, async (q) => {
    const before = await q.getWaitingCount() + (await q.getDelayedCount()) + (await q.getPrioritizedCount());
    await q.drain(true);
    return before;
  });
}

/** Sends every failed trial back to the queue (attempts start over); resolves to their names. */
export function retryFailed(url: string): Promise<string[]> {
  return withQueue(url, async (q) => {
    const failed = await q.getFailed();
    for (const j of failed) await j.retry('failed', { resetAttemptsMade: true });
    return failed.map(label);
  });
}
