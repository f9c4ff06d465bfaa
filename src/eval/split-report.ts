/**
 * The evaluation of one split as a plain JSON object (what report.json holds per split) and its
 * MLflow metric keys, e.g. `eval_test_precision.T-shirt_top`.
 */
import {
  argmaxRows, averageMetrics, confusionMatrix, crossEntropy, perClassMetrics, softmaxRow, topKAccuracy,
  type AveragedMetrics, type ClassMetrics, type Logits,
} from './metrics.js';

/** {@link ClassMetrics} with the class name. */
export interface ClassReport extends ClassMetrics {
  class: string;
}

/** One wrongly classified image. */
export interface Misclassified {
  /** Index of the image in the split (0-based). */
  index: number;
  /** True class index and name. */
  label: number;
  label_name: string;
  /** Predicted (top-1) class index and name. */
  predicted: number;
  predicted_name: string;
  /** Softmax probability of the predicted class, in [0, 1]. */
  probability: number;
}

/** The evaluation of one split. */
export interface SplitReport {
  split: string;
  images: number;
  /** Mean softmax cross-entropy, nats. */
  loss: number;
  /** Top-1 accuracy in [0, 1]. */
  accuracy: number;
  /** The k of `top_k_accuracy`. */
  top_k: number;
  /** Fraction of images whose label is among the k highest logits (ties inside, as `tf.math.in_top_k`). */
  top_k_accuracy: number;
  /** Inference throughput over the whole pass (batching, preprocessing, forward), images/s. */
  images_per_second: number;
  per_class: ClassReport[];
  averages: AveragedMetrics;
  /** `confusion_matrix[true][predicted]`, counts; rows and columns in class-index order. */
  confusion_matrix: number[][];
  /** Number of wrongly classified images. */
  misclassified_count: number;
  /** The most confident mistakes first (ties: lower index first), at most `maxMisclassified`. */
  misclassified: Misclassified[];
}

/** Options of {@link splitReport}. */
export interface SplitReportOptions {
  /** k of the top-k accuracy. @defaultValue 5 */
  topK?: number;
  /** How many misclassified images to list. @defaultValue 64 */
  maxMisclassified?: number;
  /** Wall time of the inference pass, ms (for images/s). */
  ms: number;
}

/**
 * Scores `logits` [n, classes] against `labels` (length n).
 * @throws RangeError when `classes` names a different number of classes than the logits have, or a label is out of range.
 */
export function splitReport(split: string, logits: Logits, labels: Int32Array, classes: readonly string[], o: SplitReportOptions): SplitReport {
  if (classes.length !== logits.classes) throw new RangeError(`evaluate: ${classes.length} class names but the model has ${logits.classes} logits`);
  const topK = o.topK ?? 5;
  const predicted = argmaxRows(logits);
  const cm = confusionMatrix(labels, predicted, logits.classes);
  const perClass = perClassMetrics(cm);
  const wrong: Misclassified[] = [];
  for (let i = 0; i < logits.n; i++) {
    const p = predicted[i]!, y = labels[i]!;
    if (p === y) continue;
    wrong.push({ index: i, label: y, label_name: classes[y]!, predicted: p, predicted_name: classes[p]!, probability: softmaxRow(logits, i)[p]! });
  }
  wrong.sort((a, b) => b.probability - a.probability || a.index - b.index);
  let correct = 0;
  for (let i = 0; i < logits.n; i++) if (predicted[i] === labels[i]) correct++;
  return {
    split,
    images: logits.n,
    loss: crossEntropy(logits, labels),
    accuracy: logits.n === 0 ? 0 : correct / logits.n,
    top_k: topK,
    top_k_accuracy: topKAccuracy(logits, labels, topK),
    images_per_second: o.ms > 0 ? logits.n / (o.ms / 1000) : 0,
    per_class: perClass.map((m, c) => ({ class: classes[c]!, ...m })),
    averages: averageMetrics(perClass),
    confusion_matrix: cm,
    misclassified_count: wrong.length,
    misclassified: wrong.slice(0, o.maxMisclassified ?? 64),
  };
}

const NOT_KEY_CHAR = /[^\p{L}\p{N}\p{M}_.\- :]/gu;

/**
 * Class names as parts of MLflow keys: every character outside MLflow's key rule
 * `^[/\w.\- :]*$` (mlflow/utils/validation.py; Python's `\w` is Unicode, so letters of any
 * script stay) and `/` (a folder separator in the file store) becomes `_`, so `T-shirt/top`
 * gives `T-shirt_top`. An empty result becomes `class_<i>`; names that collide after this get
 * `_<i>` appended (i the class index). At most 200 characters each.
 */
export function metricSafeNames(classes: readonly string[]): string[] {
  const base = classes.map((c, i) => c.replace(NOT_KEY_CHAR, '_').slice(0, 200) || `class_${i}`);
  const count = new Map<string, number>();
  for (const b of base) count.set(b, (count.get(b) ?? 0) + 1);
  return base.map((b, i) => ((count.get(b) ?? 0) > 1 ? `${b}_${i}` : b));
}

/**
 * The MLflow metrics of one split: `eval_<split>_{loss,accuracy,top<k>_accuracy,images,
 * images_per_second,macro_precision,macro_recall,macro_f1,weighted_f1}` and, per class,
 * `eval_<split>_{precision,recall,f1,accuracy,support}.<class>` with {@link metricSafeNames}.
 */
export function splitMetrics(r: SplitReport): Record<string, number> {
  const p = `eval_${r.split}`;
  const out: Record<string, number> = {
    [`${p}_loss`]: r.loss,
    [`${p}_accuracy`]: r.accuracy,
    [`${p}_top${r.top_k}_accuracy`]: r.top_k_accuracy,
    [`${p}_images`]: r.images,
    [`${p}_images_per_second`]: r.images_per_second,
    [`${p}_macro_precision`]: r.averages.macro.precision,
    [`${p}_macro_recall`]: r.averages.macro.recall,
    [`${p}_macro_f1`]: r.averages.macro.f1,
    [`${p}_weighted_f1`]: r.averages.weighted.f1,
  };
  const names = metricSafeNames(r.per_class.map((c) => c.class));
  r.per_class.forEach((c, i) => {
    for (const m of ['precision', 'recall', 'f1', 'accuracy', 'support'] as const) out[`${p}_${m}.${names[i]}`] = c[m];
  });
  return out;
}

/** The confusion matrix as CSV: a header `true\predicted,<class>...`, then one row per true class (RFC 4180 quoting). */
export function confusionCsv(r: SplitReport): string {
  const q = (s: string) => (/[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  const names = r.per_class.map((c) => q(c.class));
  const lines = [['true\\predicted', ...names].join(','), ...r.confusion_matrix.map((row, i) => [names[i], ...row].join(','))];
  return `${lines.join('\n')}\n`;
}
