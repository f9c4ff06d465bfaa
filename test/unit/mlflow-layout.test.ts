/**
 * How a run is laid out for MLflow's UI (src/tracking/layout.ts), and the per-split dataset
 * digests (stages/download.ts), worked by hand.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { splitDigest } from '../../stages/download.js';
import { browseCommand, EXPERIMENT_TAGS, failureTags, mlflowMetricKey } from '../../src/tracking/layout.js';

test('metric keys: learning curves first (section curves), evaluation and per-class in sections, resources under system/', () => {
  const table: Record<string, string> = {
    batch_loss: 'curves/batch_loss', train_loss: 'curves/train_loss', test_loss: 'curves/test_loss', train_accuracy: 'curves/train_accuracy', test_accuracy: 'curves/test_accuracy', lr: 'curves/lr',
    best_test_accuracy: 'best_test_accuracy',
    eval_test_accuracy: 'eval/test_accuracy', eval_test_top5_accuracy: 'eval/test_top5_accuracy', eval_val_macro_f1: 'eval/val_macro_f1', eval_test_images: 'eval/test_images',
    'eval_test_f1.Ankle boot': 'eval/per_class/test_f1.Ankle boot', 'eval_train_support.猫': 'eval/per_class/train_support.猫',
    eval_test_images_per_second: 'system/eval_test_images_per_second',
    epoch_seconds: 'system/epoch_seconds', images_per_second: 'system/images_per_second', rss_bytes: 'system/rss_bytes', tensor_bytes: 'system/tensor_bytes',
    'stage_seconds.head': 'system/stage_seconds.head',
    total_params: 'model/total_params', learnable_params: 'model/learnable_params', trainable_params: 'model/trainable_params',
    'already/sectioned': 'already/sectioned',
  };
  for (const [name, key] of Object.entries(table)) assert.equal(mlflowMetricKey(name), key, name);
  assert.deepEqual(EXPERIMENT_TAGS, { 'mlflow.experimentKind': 'custom_model_development' });
});

test('split digest: sha256 of the documented byte layout, different for train and test', () => {
  const split = { images: Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]), labels: Uint8Array.from([0, 1]), count: 2, height: 2, width: 2, channels: 1 };
  const byHand = createHash('sha256')
    .update('pipe-split-v1\n{"classes":["a","b"],"count":2,"height":2,"width":2,"channels":1,"labelBytes":1}')
    .update(Buffer.from([0, 1])).update(Buffer.from([1, 2, 3, 4, 5, 6, 7, 8])).digest('hex').slice(0, 16);
  assert.equal(splitDigest(split, ['a', 'b']), byHand);
  // A view into a larger (shared) buffer hashes only its own bytes.
  const shared = new Uint8Array(new SharedArrayBuffer(12));
  shared.set([9, 9, 1, 2, 3, 4, 5, 6, 7, 8], 0);
  assert.equal(splitDigest({ ...split, images: shared.subarray(2, 10) }, ['a', 'b']), byHand);
  const test2 = { ...split, labels: Uint8Array.from([1, 0]) };
  assert.notEqual(splitDigest(test2, ['a', 'b']), byHand);
  const wide = { ...split, labels: Uint16Array.from([0, 1]) };
  assert.notEqual(splitDigest(wide, ['a', 'b']), byHand, 'uint16 labels hash differently');
});

test('the browse command opens the store by file URI, allowed on MLflow >= 3.13', () => {
  assert.equal(browseCommand('/home/me/a b/runs/mlruns'), 'MLFLOW_ALLOW_FILE_STORE=true mlflow server --backend-store-uri file:///home/me/a%20b/runs/mlruns');
});

test('failure tags: pipe.error cut to 500 characters, the full reason in the note after the description', () => {
  assert.deepEqual(failureTags('FAILED', 'eval: no val split'), { 'pipe.error': 'eval: no val split', 'mlflow.note.content': '**FAILED**: eval: no val split' });
  const long = `head: ${'x'.repeat(600)}`;
  const t = failureTags('KILLED', long, 'my run');
  assert.equal(t['pipe.error'], `${long.slice(0, 497)}...`);
  assert.equal(t['mlflow.note.content'], `my run\n\n**KILLED**: ${long}`);
});
