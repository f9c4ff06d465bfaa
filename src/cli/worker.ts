/**
 * `pipe worker [--queue URL] [--concurrency N] [--backend B] [--name NAME]`: runs sweep trials
 * from the queue ($PIPE_QUEUE_URL without --queue) until Ctrl-C / SIGTERM. Argument handling
 * only: the work is src/queue/worker.ts.
 */
import { PipelineError } from '../errors.js';
import { onInterrupt } from './interrupts.js';
import { queueUrl } from '../queue/url.js';

/** Options of `pipe worker`. */
export interface WorkerCliOpts {
  queue?: string;
  concurrency?: string;
  backend?: string;
  name?: string;
}

/**
 * Runs the worker; resolves to 0 after a requested stop.
 * @throws PipelineError PIPE_USAGE (exit 2) for a bad `--concurrency`, no MLflow server, a
 *   backend that does not load, no queue URL, or a bad or unreachable queue.
 */
export async function cmdWorker(opts: WorkerCliOpts): Promise<number> {
  const concurrency = opts.concurrency === undefined ? 1 : Number(opts.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new PipelineError('PIPE_USAGE', `--concurrency ${opts.concurrency}: expected a whole number >= 1`);
  const url = queueUrl(opts.queue);
  const controller = new AbortController();
  const offInterrupt = onInterrupt(controller, (sig) => `\npipe worker: ${sig}: stopping: running trials end after their batch and go back to the queue (again to quit now)\n`);
  try {
    const { runWorker } = await import('../queue/worker.js');
    await runWorker(url, { concurrency, backend: opts.backend, name: opts.name, signal: controller.signal });
    return 0;
  } finally {
    offInterrupt();
  }
}
