/**
 * Batches for training and evaluation: a seeded shuffle per epoch, the op chain applied per image
 * on the fly, NHWC float32 out. The same (seed, epoch) gives the same batches; epochs differ.
 */
import { Rng } from '../rng.js';
import type { ImageSplit } from './dataset.js';
import { buildOp, outputSize, type Img, type OpSpec } from './transforms.js';

/** One batch: `x` is [n, h, w, c] NHWC float32, `y` the class indices. */
export interface Batch {
  x: Float32Array;
  y: Int32Array;
  n: number;
  shape: [number, number, number, number];
}

/** Batches of one split with one op chain. */
export class BatchSource {
  readonly height: number;
  readonly width: number;
  private readonly ops;

  constructor(
    readonly split: ImageSplit,
    readonly specs: readonly OpSpec[],
    readonly batchSize: number,
    private readonly opts: { shuffle: boolean; seed: number },
  ) {
    this.ops = specs.map(buildOp);
    [this.height, this.width] = outputSize(specs, split.height, split.width);
  }

  /** Number of batches per epoch (the last may be smaller). */
  get batchesPerEpoch(): number {
    return Math.ceil(this.split.count / this.batchSize);
  }

  /** The batches of epoch `epoch` (0-based), lazily. */
  *epoch(epoch: number, maxBatches = Infinity): Generator<Batch> {
    const rng = new Rng((this.opts.seed * 1_000_003 + epoch * 7919) >>> 0);
    const { split, batchSize } = this;
    const order = this.opts.shuffle ? rng.permutation(split.count) : Uint32Array.from({ length: split.count }, (_, i) => i);
    const px = split.height * split.width * split.channels;
    const outPx = this.height * this.width * split.channels;
    for (let b = 0, start = 0; start < split.count && b < maxBatches; b++, start += batchSize) {
      const n = Math.min(batchSize, split.count - start);
      const x = new Float32Array(n * outPx);
      const y = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const idx = order[start + i]!;
        const src = split.images.subarray(idx * px, (idx + 1) * px);
        let img: Img = { data: Float32Array.from(src, (v) => v / 255), h: split.height, w: split.width, c: split.channels };
        for (const op of this.ops) img = op(img, rng);
        x.set(img.data, i * outPx);
        y[i] = split.labels[idx]!;
      }
      yield { x, y, n, shape: [n, this.height, this.width, split.channels] };
    }
  }
}
