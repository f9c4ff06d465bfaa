/**
 * How a run ends when something goes wrong: a full or failing disk becomes one error naming the
 * path and the cause (exit 1); a second Ctrl-C closes the runs of this process as KILLED
 * (with an end time) before the process exits.
 */
import { isDiskError } from '../fs-durable.js';
import { PipelineError, StageFailedError } from '../errors.js';

const WHY: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'the disk quota is used up',
  EIO: 'the device reported an I/O error',
  EROFS: 'the file system is read-only',
  EFBIG: 'the file is too large for the file system',
};

/**
 * An interruption as "interrupted; continue with `<ctx.resume>`" (exit 130; `ctx.resume` is the
 * run's own resume command, from resumeCommand in interrupt-hint.ts); a disk
 * error (ENOSPC, EDQUOT, EIO, EROFS, EFBIG), thrown directly or by a stage, as a
 * PipelineError PIPE_DISK (exit 1) naming the path (or, when Node did not say which file, the
 * run folder) and the cause, and saying how to continue; any other error unchanged.
 */
export function describeFailure(e: unknown, ctx: { runDir: string; resume: string }): unknown {
  const stage = e instanceof StageFailedError ? e.stage : undefined;
  const cause = stage !== undefined ? (e as StageFailedError).cause : e;
  if (e instanceof PipelineError && e.code === 'PIPE_INTERRUPTED') return new PipelineError('PIPE_INTERRUPTED', `interrupted; continue with \`${ctx.resume}\``, 130);
  if (!isDiskError(cause)) return e;
  const where = cause.path !== undefined ? cause.path : `a file in ${ctx.runDir}`;
  const what = `${WHY[String(cause.code)] ?? String(cause.code)} (${String(cause.code)}) while writing ${where}`;
  return new PipelineError('PIPE_DISK', `${stage !== undefined ? `stage '${stage}' failed: ` : ''}${what}; make room there, then continue with \`${ctx.resume}\``, 1);
}

const active = new Set<() => Promise<void>>();

/** Registers `close` (ends a run as KILLED) until the returned function is called. */
export function onHardStop(close: () => Promise<void>): () => void {
  active.add(close);
  return () => void active.delete(close);
}

/**
 * Closes every registered run as KILLED, waiting at most `limitMs` (a second Ctrl-C means
 * "now"): called by the CLI before it exits on a second interrupt.
 */
export async function closeActiveRuns(limitMs = 3000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.allSettled([...active].map((c) => c())),
    new Promise((r) => (timer = setTimeout(r, limitMs))),
  ]);
  clearTimeout(timer);
}
