/**
 * Classification metrics computed from logits and labels in plain JS: mean cross-entropy,
 * top-k accuracy, the confusion matrix and per-class precision / recall / F1 / accuracy.
 * Conventions follow scikit-learn (`sklearn.metrics.confusion_matrix`,
 * `precision_recall_fscore_support` with `zero_division=0`) and TensorFlow
 * (`tf.math.in_top_k` for ties), cited at each function.
 */

/** Logits of `n` images, row-major [n, classes] (one row per image). */
export interface Logits {
  values: Float32Array;
  n: number;
  classes: number;
}

/** Metrics of one class (one-vs-rest). */
export interface ClassMetrics {
  /** TP / (TP + FP): of the images predicted as this class, the fraction that are. 0 when none are predicted. */
  precision: number;
  /** TP / (TP + FN): of the images of this class, the fraction found. 0 when the class has no images. */
  recall: number;
  /** Harmonic mean 2PR / (P + R). 0 when P + R = 0. */
  f1: number;
  /**
   * Per-class accuracy: correct predictions among the images of this class, TP / support
   * (torchmetrics `MulticlassAccuracy(average=None)`); equal to recall by definition.
   */
  accuracy: number;
  /** Number of images whose true label is this class. */
  support: number;
}

/** Macro and support-weighted averages of the per-class metrics. */
export interface AveragedMetrics {
  /** Unweighted mean over classes (sklearn `average='macro'`). */
  macro: { precision: number; recall: number; f1: number };
  /** Mean weighted by support (sklearn `average='weighted'`). */
  weighted: { precision: number; recall: number; f1: number };
}

function checkLabel(v: number, classes: number, what: string, i: number): void {
  if (!Number.isInteger(v) || v < 0 || v >= classes) throw new RangeError(`${what}[${i}] = ${v} is not a class index in [0, ${classes})`);
}

/**
 * Index of the largest value in each row (first one on ties, like `tf.argMax` and `np.argmax`).
 * @returns Int32Array of length `n`.
 */
export function argmaxRows(l: Logits): Int32Array {
  const out = new Int32Array(l.n);
  for (let i = 0; i < l.n; i++) {
    let best = 0;
    let bv = l.values[i * l.classes]!;
    for (let c = 1; c < l.classes; c++) {
      const v = l.values[i * l.classes + c]!;
      if (v > bv) (bv = v), (best = c);
    }
    out[i] = best;
  }
  return out;
}

/** Softmax of one row of logits, computed stably (max subtracted first). */
export function softmaxRow(l: Logits, i: number): Float64Array {
  const row = l.values.subarray(i * l.classes, (i + 1) * l.classes);
  let max = -Infinity;
  for (const v of row) if (v > max) max = v;
  const out = Float64Array.from(row, (v) => Math.exp(v - max));
  const sum = out.reduce((a, b) => a + b, 0);
  for (let c = 0; c < out.length; c++) out[c] = out[c]! / sum;
  return out;
}

/**
 * Mean softmax cross-entropy in nats: mean over images of `logsumexp(logits) - logits[label]`
 * (what `tf.losses.softmaxCrossEntropy` computes with one-hot labels, no label smoothing).
 * 0 for no images.
 * @throws RangeError for a label outside [0, classes).
 */
export function crossEntropy(l: Logits, labels: ArrayLike<number>): number {
  if (l.n === 0) return 0;
  let sum = 0;
  for (let i = 0; i < l.n; i++) {
    checkLabel(labels[i]!, l.classes, 'labels', i);
    let max = -Infinity;
    for (let c = 0; c < l.classes; c++) max = Math.max(max, l.values[i * l.classes + c]!);
    let s = 0;
    for (let c = 0; c < l.classes; c++) s += Math.exp(l.values[i * l.classes + c]! - max);
    sum += max + Math.log(s) - l.values[i * l.classes + labels[i]!]!;
  }
  return sum / l.n;
}

/**
 * Top-k accuracy: the fraction of images whose true label is among the `k` largest logits.
 * Ties straddling the k-th place count as inside, as in `tf.math.in_top_k`: an image counts
 * when fewer than `k` classes score strictly higher than its label. `k >= classes` gives 1.
 * 0 for no images.
 * @throws RangeError for k < 1 or a label outside [0, classes).
 */
export function topKAccuracy(l: Logits, labels: ArrayLike<number>, k: number): number {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`top-k: k must be a positive integer, got ${k}`);
  if (l.n === 0) return 0;
  let hits = 0;
  for (let i = 0; i < l.n; i++) {
    checkLabel(labels[i]!, l.classes, 'labels', i);
    const target = l.values[i * l.classes + labels[i]!]!;
    let higher = 0;
    for (let c = 0; c < l.classes; c++) if (l.values[i * l.classes + c]! > target) higher++;
    if (higher < k) hits++;
  }
  return hits / l.n;
}

/**
 * Confusion matrix `m[true][predicted]` (counts), rows = true class, columns = predicted class,
 * as `sklearn.metrics.confusion_matrix(y_true, y_pred)`.
 * @throws RangeError when the lengths differ or a value is not a class index in [0, classes).
 */
export function confusionMatrix(labels: ArrayLike<number>, predictions: ArrayLike<number>, classes: number): number[][] {
  if (labels.length !== predictions.length) throw new RangeError(`confusion matrix: ${labels.length} labels but ${predictions.length} predictions`);
  const m = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  for (let i = 0; i < labels.length; i++) {
    checkLabel(labels[i]!, classes, 'labels', i);
    checkLabel(predictions[i]!, classes, 'predictions', i);
    m[labels[i]!]![predictions[i]!]! += 1;
  }
  return m;
}

/**
 * Per-class precision, recall, F1, accuracy and support from a confusion matrix
 * (`m[true][predicted]`), with scikit-learn's `zero_division=0`: an undefined ratio is 0.
 */
export function perClassMetrics(m: readonly (readonly number[])[]): ClassMetrics[] {
  const k = m.length;
  return m.map((row, c) => {
    const tp = row[c] ?? 0;
    const support = row.reduce((a, b) => a + b, 0);
    let predicted = 0;
    for (let r = 0; r < k; r++) predicted += m[r]![c] ?? 0;
    const precision = predicted === 0 ? 0 : tp / predicted;
    const recall = support === 0 ? 0 : tp / support;
    const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
    return { precision, recall, f1, accuracy: recall, support };
  });
}

/** Macro and support-weighted averages of {@link perClassMetrics} (sklearn `average='macro'` / `'weighted'`). */
export function averageMetrics(perClass: readonly ClassMetrics[]): AveragedMetrics {
  const k = Math.max(1, perClass.length);
  const total = perClass.reduce((a, c) => a + c.support, 0);
  const mean = (f: (c: ClassMetrics) => number) => perClass.reduce((a, c) => a + f(c), 0) / k;
  const wmean = (f: (c: ClassMetrics) => number) => (total === 0 ? 0 : perClass.reduce((a, c) => a + f(c) * c.support, 0) / total);
  return {
    macro: { precision: mean((c) => c.precision), recall: mean((c) => c.recall), f1: mean((c) => c.f1) },
    weighted: { precision: wmean((c) => c.precision), recall: wmean((c) => c.recall), f1: wmean((c) => c.f1) },
  };
}
