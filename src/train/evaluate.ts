/** Inference over a whole split: mean cross-entropy loss, top-1 accuracy, predictions. */
import * as tf from '@tensorflow/tfjs';
import type { BatchSource } from '../data/batches.js';
import { fusedApply } from '../models/fused-forward.js';
import type { Classifier } from '../models/registry.js';

/** Logits [n, classes] of a batch x [n, h, w, c] (NHWC) in inference mode (conv + BN + ReLU folded: models/fused-forward.ts). */
export function predictLogits(c: Classifier, x: tf.Tensor4D): tf.Tensor2D {
  return tf.tidy(() => c.head.apply(fusedApply(c.backbone.model, x, false), { training: false }) as tf.Tensor2D);
}

/** One batch's inference-mode logits [n, classes] and its labels; the caller disposes `logits`. */
export interface BatchLogits {
  logits: tf.Tensor2D;
  labels: Int32Array;
  n: number;
}

/**
 * The one inference pass over a split, shared by evaluation (loss, accuracy) and the evaluate
 * stage's metrics (every logit kept): yields each batch of `source` (epoch 0, in the source's
 * order when it is unshuffled) with its logits.
 * @param maxBatches cap for quick runs. @defaultValue Infinity
 */
export async function* batchLogits(c: Classifier, source: BatchSource, maxBatches = Infinity): AsyncGenerator<BatchLogits> {
  for await (const b of source.epochAsync(0, maxBatches)) {
    yield { logits: tf.tidy(() => predictLogits(c, tf.tensor4d(b.x, b.shape))), labels: Int32Array.from(b.y.subarray(0, b.n)), n: b.n };
  }
}

/** Result of evaluating one split. */
export interface EvalResult {
  /** Mean softmax cross-entropy (nats). */
  loss: number;
  /** Top-1 accuracy in [0, 1]. */
  accuracy: number;
  count: number;
  /** Predicted class per image, in the source's order (unshuffled sources only). */
  predictions: Int32Array;
  /** Wall time, ms. */
  ms: number;
}

/**
 * Evaluates `c` on every batch of `source` (epoch 0, unshuffled when the source is).
 * @param maxBatches cap for quick runs. @defaultValue Infinity
 */
export async function evaluateSplit(c: Classifier, source: BatchSource, maxBatches = Infinity): Promise<EvalResult> {
  const t0 = performance.now();
  let lossSum = 0, correct = 0, count = 0;
  const preds: number[] = [];
  for await (const b of batchLogits(c, source, maxBatches)) {
    const [l, p] = tf.tidy(() => {
      const y = tf.tensor1d(b.labels, 'int32');
      const loss = tf.sum(tf.losses.softmaxCrossEntropy(tf.oneHot(y, c.numClasses), b.logits, undefined, undefined, tf.Reduction.NONE));
      return [loss, tf.argMax(b.logits, 1)];
    });
    b.logits.dispose();
    lossSum += (await l.data())[0]!;
    const pd = (await p.data()) as Int32Array;
    tf.dispose([l, p]);
    for (let i = 0; i < b.n; i++) {
      preds.push(pd[i]!);
      if (pd[i] === b.labels[i]) correct++;
    }
    count += b.n;
  }
  return { loss: lossSum / Math.max(1, count), accuracy: correct / Math.max(1, count), count, predictions: Int32Array.from(preds), ms: performance.now() - t0 };
}
