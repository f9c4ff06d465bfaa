/**
 * The evaluation metrics on a hand-worked case: 10 images, 3 classes, fixed predictions whose
 * confusion matrix, precision/recall/F1, top-k accuracy and cross-entropy are worked out below
 * as fractions (the values scikit-learn's `confusion_matrix` / `precision_recall_fscore_support`
 * give for the same labels).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { argmaxRows, averageMetrics, confusionMatrix, crossEntropy, perClassMetrics, softmaxRow, topKAccuracy, type Logits } from '../../src/eval/metrics.js';
import { confusionCsv, metricSafeNames, splitMetrics, splitReport } from '../../src/eval/split-report.js';
import { validateKey } from '../../src/tracking/names.js';

const Y_TRUE = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2];
const Y_PRED = [0, 0, 1, 2, 1, 1, 0, 2, 2, 1];
// Softmax probabilities per image (logits = ln p, so softmax gives p back): the predicted class
// gets 0.5; for the four mistakes the label gets 0.3 (2nd place) or 0.2 (3rd place).
const PROBS = [
  [0.5, 0.3, 0.2], [0.5, 0.2, 0.3], [0.3, 0.5, 0.2], [0.2, 0.3, 0.5], // true 0: right, right, label 2nd, label 3rd
  [0.3, 0.5, 0.2], [0.2, 0.5, 0.3], [0.5, 0.2, 0.3], // true 1: right, right, label 3rd
  [0.3, 0.2, 0.5], [0.2, 0.3, 0.5], [0.2, 0.5, 0.3], // true 2: right, right, label 2nd
];
const LOGITS: Logits = { values: Float32Array.from(PROBS.flat().map(Math.log)), n: 10, classes: 3 };
const close = (a: number, b: number, tol = 1e-6) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

test('argmax and softmax recover the fixed predictions and probabilities', () => {
  assert.deepEqual([...argmaxRows(LOGITS)], Y_PRED);
  PROBS.forEach((p, i) => softmaxRow(LOGITS, i).forEach((v, c) => close(v, p[c]!)));
});

test('confusion matrix: rows true, columns predicted', () => {
  // true 0 -> predicted 0,0,1,2; true 1 -> 1,1,0; true 2 -> 2,2,1
  assert.deepEqual(confusionMatrix(Y_TRUE, Y_PRED, 3), [[2, 1, 1], [1, 2, 0], [0, 1, 2]]);
  assert.throws(() => confusionMatrix([0, 3], [0, 0], 3), /labels\[1\] = 3/);
  assert.throws(() => confusionMatrix([0], [0, 1], 3), /1 labels but 2 predictions/);
});

test('per-class precision, recall, F1, accuracy and the averages', () => {
  const m = perClassMetrics(confusionMatrix(Y_TRUE, Y_PRED, 3));
  // precision = TP / column sum: 2/3, 2/4, 2/3; recall = TP / row sum: 2/4, 2/3, 2/3
  const expected = [
    { precision: 2 / 3, recall: 1 / 2, f1: 4 / 7, support: 4 },
    { precision: 1 / 2, recall: 2 / 3, f1: 4 / 7, support: 3 },
    { precision: 2 / 3, recall: 2 / 3, f1: 2 / 3, support: 3 },
  ];
  expected.forEach((e, c) => {
    close(m[c]!.precision, e.precision);
    close(m[c]!.recall, e.recall);
    close(m[c]!.f1, e.f1); // 2PR/(P+R): (2/3)/(7/6) = 4/7 for classes 0 and 1
    close(m[c]!.accuracy, e.recall);
    assert.equal(m[c]!.support, e.support);
  });
  const avg = averageMetrics(m);
  close(avg.macro.f1, 38 / 63); // (4/7 + 4/7 + 2/3) / 3
  close(avg.macro.precision, 11 / 18); // (2/3 + 1/2 + 2/3) / 3
  close(avg.weighted.f1, 0.6); // (4 * 4/7 + 3 * 4/7 + 3 * 2/3) / 10
  // zero_division = 0: a class never predicted and never present
  const z = perClassMetrics([[1, 0], [0, 0]]);
  assert.deepEqual(z[1], { precision: 0, recall: 0, f1: 0, accuracy: 0, support: 0 });
});

test('top-k accuracy counts ties at the boundary as inside (tf.math.in_top_k)', () => {
  close(topKAccuracy(LOGITS, Y_TRUE, 1), 0.6);
  close(topKAccuracy(LOGITS, Y_TRUE, 2), 0.8); // images 3 and 6 have their label in 3rd place
  close(topKAccuracy(LOGITS, Y_TRUE, 3), 1);
  close(topKAccuracy(LOGITS, Y_TRUE, 5), 1);
  const tie: Logits = { values: Float32Array.from([1, 1, 0]), n: 1, classes: 3 };
  assert.equal(topKAccuracy(tie, [1], 1), 1);
  assert.equal(topKAccuracy(tie, [2], 2), 0);
  assert.throws(() => topKAccuracy(LOGITS, Y_TRUE, 0), RangeError);
});

test('cross-entropy is the mean of -ln p(label)', () => {
  // 6 right at p = 0.5, 2 mistakes with the label at 0.3, 2 with it at 0.2
  close(crossEntropy(LOGITS, Y_TRUE), (-6 * Math.log(0.5) - 2 * Math.log(0.3) - 2 * Math.log(0.2)) / 10);
  assert.equal(crossEntropy({ values: new Float32Array(0), n: 0, classes: 3 }, []), 0);
});

test('splitReport: the whole split, mistakes most confident first, MLflow keys', () => {
  const names = ['T-shirt/top', 'Ankle boot', '猫'];
  const r = splitReport('test', LOGITS, Int32Array.from(Y_TRUE), names, { topK: 2, maxMisclassified: 3, ms: 500 });
  assert.equal(r.images, 10);
  close(r.accuracy, 0.6);
  close(r.top_k_accuracy, 0.8);
  assert.equal(r.images_per_second, 20);
  assert.equal(r.misclassified_count, 4);
  // all four mistakes have p(predicted) = 0.5: ties keep the split order
  assert.deepEqual(r.misclassified.map((m) => [m.index, m.label, m.predicted]), [[2, 0, 1], [3, 0, 2], [6, 1, 0]]);
  close(r.misclassified[0]!.probability, 0.5);
  assert.equal(r.misclassified[2]!.label_name, 'Ankle boot');

  const metrics = splitMetrics(r);
  close(metrics['eval_test_precision.T-shirt_top']!, 2 / 3);
  close(metrics['eval_test_f1.Ankle boot']!, 4 / 7);
  close(metrics['eval_test_recall.猫']!, 2 / 3);
  assert.equal(metrics['eval_test_support.T-shirt_top'], 4);
  close(metrics['eval_test_top2_accuracy']!, 0.8);
  close(metrics['eval_test_macro_f1']!, 38 / 63);
  for (const k of Object.keys(metrics)) validateKey(k, 'metric'); // the tracking store's own check
  assert.equal(Object.keys(metrics).length, 9 + 5 * 3);

  assert.equal(confusionCsv({ ...r, per_class: r.per_class.map((c, i) => (i === 1 ? { ...c, class: 'a, "b"' } : c)) }),
    'true\\predicted,T-shirt/top,"a, ""b""",猫\nT-shirt/top,2,1,1\n"a, ""b""",1,2,0\n猫,0,1,2\n');
  assert.throws(() => splitReport('test', LOGITS, Int32Array.from(Y_TRUE), ['a', 'b'], { ms: 1 }), /2 class names but the model has 3 logits/);
});

test('metricSafeNames keeps letters of any script and makes collisions unique', () => {
  assert.deepEqual(metricSafeNames(['T-shirt/top', 'Ankle boot', 'chat (猫)', 'a/b', 'a_b', '', 'x:y.z']),
    ['T-shirt_top', 'Ankle boot', 'chat _猫_', 'a_b_3', 'a_b_4', 'class_5', 'x:y.z']);
});
