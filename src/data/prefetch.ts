/**
 * Prefetching for BatchSource.epochAsync: worker threads (node:worker_threads) compute batches
 * ahead of the training loop. The images are shared with the workers through a
 * SharedArrayBuffer (no copy when the split already lives in one, as splits read from the compact
 * cache do; otherwise one copy per split). Each worker builds the same BatchSource, so a batch is
 * bit-identical whichever thread made it.
 */
import { Worker } from 'node:worker_threads';
import type { Batch, BatchSource } from './batches.js';
import type { ImageSplit } from './dataset.js';

/** What a worker receives at start (see batch-worker.ts). */
export interface WorkerInit {
  split: ImageSplit;
  specs: BatchSource['specs'];
  batchSize: number;
  shuffle: boolean;
  seed: number;
}

/** A request (main -> worker) and its answer (worker -> main). */
export interface BatchRequest { epoch: number; b: number }
export type BatchReply = { b: number; batch: Batch } | { b: number; error: string };

const shared = new WeakMap<ImageSplit, ImageSplit>();

/** The split with its images in a SharedArrayBuffer (copied once per split when needed). */
export function sharedSplit(split: ImageSplit): ImageSplit {
  if (split.images.buffer instanceof SharedArrayBuffer) return split;
  let s = shared.get(split);
  if (!s) {
    const images = new Uint8Array(new SharedArrayBuffer(split.images.byteLength));
    images.set(split.images);
    s = { ...split, images };
    shared.set(split, s);
  }
  return s;
}

/** One worker thread with its outstanding requests. */
class BatchWorker {
  private readonly worker: Worker;
  private readonly waiting = new Map<number, { resolve(b: Batch): void; reject(e: Error): void }>();
  private failed: Error | undefined;

  constructor(init: WorkerInit) {
    this.worker = new Worker(new URL('./batch-worker.js', import.meta.url), { workerData: init });
    this.worker.on('message', (m: BatchReply) => {
      const w = this.waiting.get(m.b);
      this.waiting.delete(m.b);
      if ('error' in m) w?.reject(new Error(`augmentation worker: ${m.error}`));
      else w?.resolve(m.batch);
    });
    const fail = (e: Error): void => {
      this.failed = e;
      for (const w of this.waiting.values()) w.reject(e);
      this.waiting.clear();
    };
    this.worker.on('error', (e) => fail(new Error(`augmentation worker failed: ${e.message}`)));
    this.worker.on('exit', (code) => fail(new Error(`augmentation worker exited (code ${code})`)));
  }

  request(epoch: number, b: number): Promise<Batch> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.waiting.set(b, { resolve, reject });
      this.worker.postMessage({ epoch, b } satisfies BatchRequest);
    });
  }

  async close(): Promise<void> {
    this.failed ??= new Error('augmentation worker closed');
    await this.worker.terminate();
  }
}

/**
 * Yields batches 0..total-1 of `epoch` in order, keeping up to `depth` batches in flight across
 * `workers` threads (batch b goes to worker b mod workers). The workers stop when the consumer
 * finishes, breaks out, or throws.
 * @throws Error when a worker fails (the message says why).
 */
export async function* prefetchBatches(source: BatchSource, epoch: number, total: number, workers: number, depth: number): AsyncGenerator<Batch> {
  const init: WorkerInit = { split: sharedSplit(source.split), specs: source.specs, batchSize: source.batchSize, shuffle: source.opts.shuffle, seed: source.opts.seed };
  const pool = Array.from({ length: workers }, () => new BatchWorker(init));
  const pending = new Map<number, Promise<Batch>>();
  let next = 0;
  const fill = (): void => {
    while (next < total && pending.size < depth) {
      const p = pool[next % workers]!.request(epoch, next);
      p.catch(() => undefined); // consumed below; this keeps an abandoned one from being "unhandled"
      pending.set(next++, p);
    }
  };
  try {
    for (let b = 0; b < total; b++) {
      fill();
      const batch = await pending.get(b)!;
      pending.delete(b);
      fill();
      yield batch;
    }
  } finally {
    await Promise.all(pool.map((w) => w.close()));
  }
}
