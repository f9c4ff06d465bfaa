/**
 * Batches for training and evaluation: a seeded shuffle per epoch, the op chain applied per image
 * on the fly, NHWC float32 out. Every batch is a pure function of (seed, epoch, batch index): the
 * same seed gives the same batches, epochs differ, and worker threads (`epochAsync`) produce
 * exactly what the synchronous `epoch` does. No tfjs tensors are created here.
 */
import { Rng } from '../rng.js';
import { Chain } from './chain.js';
import type { Dataset, ImageSplit } from './dataset.js';
import { prefetchBatches } from './prefetch.js';
import type { OpSpec } from './transforms.js';

/** One batch: `x` is [n, h, w, c] NHWC float32, `y` the class indices. */
export interface Batch {
  x: Float32Array;
  y: Int32Array;
  n: number;
  shape: [number, number, number, number];
}

/** How a BatchSource orders, seeds and prefetches. */
export interface BatchOptions {
  /** Shuffle the images each epoch (train) or keep their order (test). */
  shuffle: boolean;
  seed: number;
  /** Worker threads for `epochAsync`; 0 computes batches on the calling thread. @defaultValue 1 */
  workers?: number;
  /** Batches computed ahead of the consumer in `epochAsync`. @defaultValue 4 */
  prefetch?: number;
}

/** murmur3's 32-bit finaliser. */
function fmix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A 32-bit seed derived from several integers (order matters). */
export function deriveSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) h = fmix32((h ^ fmix32((p >>> 0) + 0x7f4a7c15)) >>> 0);
  return h;
}

/** Batches of one split with one op chain. */
export class BatchSource {
  readonly height: number;
  readonly width: number;
  /** Channels of the output images (an op such as grayscale may change them). */
  readonly channels: number;
  private readonly chain: Chain;
  private orderCache: { epoch: number; order: Uint32Array } | undefined;

  /**
   * @param split uint8 NHWC images and labels
   * @param specs the op chain, applied in order to every image
   * @param batchSize images per batch (the last batch of an epoch may be smaller)
   * @throws Error naming the op (`[0] random_crop: ...`) when the chain does not fit the images
   */
  constructor(
    readonly split: ImageSplit,
    readonly specs: readonly OpSpec[],
    readonly batchSize: number,
    readonly opts: BatchOptions,
  ) {
    this.chain = new Chain(specs, [split.height, split.width, split.channels]);
    [this.height, this.width, this.channels] = this.chain.outShape;
  }

  /** Number of batches per epoch (the last may be smaller). */
  get batchesPerEpoch(): number {
    return Math.ceil(this.split.count / this.batchSize);
  }

  /** The image order of `epoch`: a seeded permutation, or 0..count-1 without shuffling. */
  order(epoch: number): Uint32Array {
    if (this.orderCache?.epoch === epoch) return this.orderCache.order;
    const n = this.split.count;
    const order = this.opts.shuffle ? new Rng(deriveSeed(this.opts.seed, epoch, 0x5eed)).permutation(n) : Uint32Array.from({ length: n }, (_, i) => i);
    this.orderCache = { epoch, order };
    return order;
  }

  /** Batch `b` (0-based) of epoch `epoch` (0-based). */
  batch(epoch: number, b: number): Batch {
    const { split, batchSize, chain } = this;
    const order = this.order(epoch);
    const start = b * batchSize;
    const n = Math.max(0, Math.min(batchSize, split.count - start));
    const rng = new Rng(deriveSeed(this.opts.seed, epoch, b, 0xba7c));
    const px = split.height * split.width * split.channels;
    const x = new Float32Array(n * chain.outSize);
    const y = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const idx = order[start + i]!;
      chain.run(split.images.subarray(idx * px, (idx + 1) * px), rng, x, i * chain.outSize);
      y[i] = split.labels[idx]!;
    }
    return { x, y, n, shape: [n, this.height, this.width, this.channels] };
  }

  /** The batches of epoch `epoch` (0-based), computed lazily on this thread. */
  *epoch(epoch: number, maxBatches = Infinity): Generator<Batch> {
    const total = Math.min(this.batchesPerEpoch, maxBatches);
    for (let b = 0; b < total; b++) yield this.batch(epoch, b);
  }

  /**
   * The same batches as `epoch`, computed ahead of the consumer by `opts.workers` worker threads
   * (`opts.prefetch` batches in flight). Breaking out of the loop stops the workers.
   * @example for await (const batch of source.epochAsync(epoch, maxBatches)) { ... }
   */
  async *epochAsync(epoch: number, maxBatches = Infinity): AsyncGenerator<Batch> {
    const total = Math.min(this.batchesPerEpoch, maxBatches);
    const workers = this.opts.workers ?? 1;
    if (workers <= 0 || total <= 1) {
      for (let b = 0; b < total; b++) {
        yield this.batch(epoch, b);
        await new Promise((resolve) => setImmediate(resolve));
      }
      return;
    }
    yield* prefetchBatches(this, epoch, total, Math.min(workers, total), Math.max(1, this.opts.prefetch ?? 4));
  }
}

/** What the augment stage hands to training and evaluation. */
export interface AugmentedData {
  dataset: Dataset;
  train: BatchSource;
  test: BatchSource;
  /** The validation split with the test ops, when the download stage made one. */
  val?: BatchSource;
}
