/**
 * `pipe run FILE --sweep ... --queue [URL]` (the sweep's trials on a Redis queue) and `pipe queue
 * status|drain|retry-failed [--queue URL] [--sweep ID | --all]`. The URL defaults to
 * $PIPE_QUEUE_URL. Argument handling only: the work is in src/queue/.
 */
import { join } from 'node:path';
import { parseOverride } from '../config/overrides.js';
import { PipelineError } from '../errors.js';
import { formatTable } from '../sweep/table.js';
import { queueHint, queueUrl } from '../queue/url.js';

/** The `pipe run` options queue mode uses. */
export interface QueueRunOpts {
  set?: string[];
  sweep?: string[];
  /** The URL, or true for `--queue` without one ($PIPE_QUEUE_URL). */
  queue: string | boolean;
  attempts?: string;
  parallel?: string;
}

/**
 * `pipe run --queue`: enqueues the sweep, follows it, prints the comparison table.
 * @returns 0 all trials finished, 1 some failed, 130 stopped following.
 * @throws PipelineError PIPE_USAGE (exit 2) for `--parallel` (workers decide), a bad
 *   `--attempts`, no sweep, no MLflow server, no queue URL, or a bad or unreachable queue.
 */
export async function runQueueCli(file: string, opts: QueueRunOpts, signal: AbortSignal): Promise<number> {
  if (opts.parallel !== undefined) throw new PipelineError('PIPE_USAGE', `--parallel does not apply with --queue: trials at once are the workers' (pipe worker --concurrency N)`);
  const attempts = opts.attempts === undefined ? 3 : Number(opts.attempts);
  if (!Number.isInteger(attempts) || attempts < 1) throw new PipelineError('PIPE_USAGE', `--attempts ${opts.attempts}: expected a whole number >= 1`);
  const url = queueUrl(opts.queue);
  const { runQueuedSweep } = await import('../queue/submit.js');
  const { statusTable } = await import('../queue/follow.js');
  const r = await runQueuedSweep(file, url, { stages: (await import('../../stages/index.js')).stageKinds, overrides: (opts.set ?? []).map(parseOverride), sweep: opts.sweep, attempts, signal, queueHint: queueHint(opts.queue) });
  const failed = r.jobs.filter((j) => j.state === 'failed');
  const removed = r.jobs.filter((j) => j.state === 'unknown');
  const q = queueHint(opts.queue);
  const lines = [
    '',
    statusTable(r.jobs),
    '',
    r.rows.length ? formatTable(r.rows) : 'no trial finished',
    '',
    r.interrupted ? `stopped following; the trials stay queued: rerun the same command to follow them again` : undefined,
    failed.length && !r.interrupted ? `${failed.length} of ${r.jobs.length} trials failed: pipe queue retry-failed --sweep ${r.sweepId}${q} queues them again, then rerun the same command to follow them` : undefined,
    removed.length && !r.interrupted ? `${removed.length} of ${r.jobs.length} trials were removed from the queue (pipe queue drain): rerun the same command to queue them again` : undefined,
    `sweep: ${r.sweepId}  comparison: ${join(r.sweepDir, 'comparison')}  parent MLflow run ${r.mlflowRunId}`,
  ];
  process.stdout.write(`${lines.filter((l) => l !== undefined).join('\n')}\n`);
  return r.interrupted ? 130 : failed.length || removed.length ? 1 : 0;
}

/** Options of `pipe queue ACTION`. */
export interface QueueCliOpts {
  queue?: string;
  sweep?: string;
  all?: boolean;
}

/**
 * `pipe queue ACTION [--queue URL] [--sweep ID | --all]`: status (all sweeps unless --sweep),
 * drain or retry-failed (one sweep, or --all). Resolves to the exit code.
 * @throws PipelineError PIPE_USAGE (exit 2) for another action, drain/retry-failed without
 *   --sweep or --all, no queue URL, or a bad or unreachable queue.
 */
export async function cmdQueue(action: string, opts: QueueCliOpts): Promise<number> {
  const admin = await import('../queue/admin.js');
  if (!['status', 'drain', 'retry-failed'].includes(action)) throw new PipelineError('PIPE_USAGE', `pipe queue ${action}: expected status, drain or retry-failed`);
  if (action === 'status') {
    if (opts.all) throw new PipelineError('PIPE_USAGE', 'pipe queue status shows every sweep unless --sweep ID; --all does not apply');
    process.stdout.write(`${await admin.queueStatus(queueUrl(opts.queue), { sweep: opts.sweep })}\n`);
    return 0;
  }
  const sel = admin.sweepSelector(action, opts);
  const url = queueUrl(opts.queue);
  const q = queueHint(opts.queue);
  if (action === 'drain') {
    const names = await admin.drainQueue(url, sel);
    process.stdout.write(names.length ? `removed ${names.length} queued trial(s): ${names.join('; ')}\nrunning trials go on; rerun the sweep's pipe run --queue command to queue the removed ones again\n` : `no queued trials${'sweep' in sel ? ` of sweep ${sel.sweep}` : ''}\n`);
  } else {
    const names = await admin.retryFailed(url, sel);
    process.stdout.write(names.length ? `queued again: ${names.join('; ')}\nfollow them: pipe queue status${'sweep' in sel ? ` --sweep ${sel.sweep}` : ''}${q}, or rerun the sweep's pipe run --queue command\n` : `no failed trials${'sweep' in sel ? ` of sweep ${sel.sweep}` : ''}\n`);
  }
  return 0;
}
