/** Runs a classifier over a whole split and keeps every logit, for the metrics in `./metrics.ts`. */
import type { BatchSource } from '../data/batches.js';
import type { Classifier } from '../models/registry.js';
import { batchLogits } from '../train/evaluate.js';
import type { Logits } from './metrics.js';

/** Logits and labels of one split, in the source's order. */
export interface SplitLogits {
  logits: Logits;
  /** True class per image, length `logits.n`. */
  labels: Int32Array;
  /** Wall time of the pass (batch assembly, op chain and forward pass), ms. */
  ms: number;
}

/**
 * Inference-mode logits of every image of `source` (epoch 0; pass an unshuffled source to keep
 * the split's order, so that image i of the result is image i of the split).
 * Batches are NHWC float32 as the source builds them; logits come back [n, classes] row-major.
 * @param maxBatches cap for quick runs. @defaultValue Infinity
 */
export async function collectLogits(c: Classifier, source: BatchSource, maxBatches = Infinity): Promise<SplitLogits> {
  const t0 = performance.now();
  const parts: Float32Array[] = [];
  const labels: number[] = [];
  let n = 0;
  for await (const b of batchLogits(c, source, maxBatches)) {
    parts.push((await b.logits.data()) as Float32Array);
    b.logits.dispose();
    for (let i = 0; i < b.n; i++) labels.push(b.labels[i]!);
    n += b.n;
  }
  const values = new Float32Array(n * c.numClasses);
  let off = 0;
  for (const p of parts) values.set(p, off), (off += p.length);
  return { logits: { values, n, classes: c.numClasses }, labels: Int32Array.from(labels), ms: performance.now() - t0 };
}
