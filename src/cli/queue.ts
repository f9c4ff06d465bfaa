/**
 * `pipe run FILE --sweep ... --queue URL` (the sweep's trials on a Redis queue) and `pipe queue
 * status|drain|retry-failed --queue URL`. Argument handling only: the work is in src/queue/.
 */
import { join } from 'node:path';
import { parseOverride } from '../config/overrides.js';
import { PipelineError } from '../errors.js';
import { formatTable } from '../sweep/table.js';

/** The `pipe run` options queue mode uses. */
export interface QueueRunOpts {
  set?: string[];
  sweep?: string[];
  queue: string;
  attempts?: string;
  parallel?: string;
}

/**
 * `pipe run --queue`: enqueues the sweep, follows it, prints the comparison table.
 * @returns 0 all trials finished, 1 some failed, 130 stopped following.
 * @throws PipelineError PIPE_USAGE (exit 2) for `--parallel` (workers decide), a bad
 *   `--attempts`, no sweep, no MLflow server, or a bad or unreachable queue.
 */
export async function runQueueCli(file: string, opts: QueueRunOpts, signal: AbortSignal): Promise<number> {
  if (opts.parallel !== undefined) throw new PipelineError('PIPE_USAGE', `--parallel does not apply with --queue: trials at once are the workers' (pipe worker --concurrency N)`);
  const attempts = opts.attempts === undefined ? 3 : Number(opts.attempts);
  if (!Number.isInteger(attempts) || attempts < 1) throw new PipelineError('PIPE_USAGE', `--attempts ${opts.attempts}: expected a whole number >= 1`);
  const { runQueuedSweep } = await import('../queue/submit.js');
  const { statusTable } = await import('../queue/follow.js');
  const r = await runQueuedSweep(file, opts.queue, { stages: (await import('../../stages/index.js')).stageKinds, overrides: (opts.set ?? []).map(parseOverride), sweep: opts.sweep, attempts, signal });
  const failed = r.jobs.filter((j) => j.state !== 'completed');
  const lines = [
    '',
    statusTable(r.jobs),
    '',
    r.rows.length ? formatTable(r.rows) : 'no trial finished',
    '',
    r.interrupted ? `stopped following; the trials stay queued: rerun the same command to follow them again` : undefined,
    failed.length && !r.interrupted ? `${failed.length} of ${r.jobs.length} trials did not finish (pipe queue retry-failed --queue ... to run them again)` : undefined,
    `sweep: ${r.sweepId}  comparison: ${join(r.sweepDir, 'comparison')}  parent MLflow run ${r.mlflowRunId}`,
  ];
  process.stdout.write(`${lines.filter((l) => l !== undefined).join('\n')}\n`);
  return r.interrupted ? 130 : failed.length ? 1 : 0;
}

/** `pipe queue ACTION --queue URL`: status, drain or retry-failed. Resolves to the exit code. */
export async function cmdQueue(action: string, opts: { queue: string }): Promise<number> {
  const admin = await import('../queue/admin.js');
  if (action === 'status') process.stdout.write(`${await admin.queueStatus(opts.queue)}\n`);
  else if (action === 'drain') process.stdout.write(`removed ${await admin.drainQueue(opts.queue)} queued trial(s); running trials go on\n`);
  else if (action === 'retry-failed') {
    const names = await admin.retryFailed(opts.queue);
    process.stdout.write(names.length ? `queued again: ${names.join('; ')}\n` : 'no failed trials\n');
  } else throw new PipelineError('PIPE_USAGE', `pipe queue ${action}: expected status, drain or retry-failed`);
  return 0;
}

/** Error text with Redis passwords masked (for errors from the queue libraries). */