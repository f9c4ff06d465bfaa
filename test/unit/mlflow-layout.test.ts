/**
 * How a run is laid out for MLflow's UI (src/tracking/layout.ts), and the per-split dataset
 * digests (stages/download.ts), worked by hand.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { splitDigest } from '../../stages/download.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { browseCommand, EXPERIMENT_TAGS, failureTags, mlflowMetricKey, RunLayout, type LayoutStage } from '../../src/tracking/layout.js';
import { REPO } from '../utils.js';

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

/** The layout of `stages` (name -> kind and needs), with ancestors nearest first as src/dag/compile.ts gives them. */
function layoutOf(stages: Record<string, LayoutStage & { needs?: string[] }>): RunLayout {
  const ancestorsOf = (name: string): string[] => {
    const out: string[] = [];
    const queue = [...(stages[name]!.needs ?? [])];
    while (queue.length) {
      const n = queue.shift()!;
      if (out.includes(n)) continue;
      out.push(n);
      queue.push(...(stages[n]!.needs ?? []));
    }
    return out;
  };
  return new RunLayout(stages, ancestorsOf);
}

test('one training chain (head -> finetune): the keys and artifact paths of the table, one curve across both stages', () => {
  const l = layoutOf({
    data: { kind: 'download' }, aug: { kind: 'augment', needs: ['data'] }, model: { kind: 'build-model', needs: ['data'] },
    head: { kind: 'freeze-train', needs: ['aug', 'model'] }, finetune: { kind: 'unfreeze-train', needs: ['head'] },
    eval: { kind: 'evaluate', needs: ['finetune'] }, plots: { kind: 'plot', needs: ['finetune', 'eval'] },
  });
  assert.deepEqual(l.chains, [{ name: 'finetune', stages: ['head', 'finetune'] }]);
  assert.equal(l.scoped, false);
  for (const stage of ['head', 'finetune']) assert.deepEqual(l.metricKeys(stage, 'test_accuracy'), ['curves/test_accuracy']);
  assert.deepEqual(l.metricKeys('eval', 'eval_test_f1.cat'), ['eval/per_class/test_f1.cat']);
  assert.deepEqual(l.metricKeys('model', 'total_params'), ['model/total_params']);
  assert.deepEqual(l.artifactPaths('finetune', 'best-model'), ['best-model']);
  assert.deepEqual(l.artifactPaths('eval', 'evaluation'), ['evaluation']);
  assert.deepEqual(l.artifactPaths('plots', undefined), [undefined]);
});

test('the transfer pipeline: three chains, each stage keyed by its own chain, the comparing plot stage at the root', () => {
  const config = parse(readFileSync(join(REPO, 'pipelines', 'fashion-mnist-transfer.yaml'), 'utf8')) as { stages: Record<string, LayoutStage & { needs?: string[] }> };
  const l = layoutOf(config.stages);
  // model_pre (weights: upstream) is a build-model stage between pretrain and head_pre: a new chain starts there.
  assert.deepEqual(l.chains, [
    { name: 'pretrain', stages: ['pretrain'] },
    { name: 'finetune_pre', stages: ['head_pre', 'finetune_pre'] },
    { name: 'finetune_scratch', stages: ['head_scratch', 'finetune_scratch'] },
  ]);
  const keys = (stage: string, name: string): string[] => l.metricKeys(stage, name);
  assert.deepEqual(keys('pretrain', 'test_accuracy'), ['curves/pretrain/test_accuracy']);
  // One chain's stages share its keys: one curve from head_pre's first epoch to finetune_pre's last.
  assert.deepEqual(keys('head_pre', 'test_accuracy'), ['curves/finetune_pre/test_accuracy']);
  assert.deepEqual(keys('finetune_pre', 'batch_loss'), ['curves/finetune_pre/batch_loss']);
  assert.deepEqual(keys('head_scratch', 'lr'), ['curves/finetune_scratch/lr']);
  assert.deepEqual(keys('finetune_scratch', 'epoch_seconds'), ['system/finetune_scratch/epoch_seconds']);
  assert.deepEqual(keys('finetune_scratch', 'stage_seconds.finetune_scratch'), ['system/stage_seconds.finetune_scratch']);
  assert.deepEqual(keys('eval_pre', 'eval_test_accuracy'), ['eval/finetune_pre/test_accuracy']);
  assert.deepEqual(keys('eval_scratch', 'eval_test_f1.Sandal'), ['eval/finetune_scratch/per_class/test_f1.Sandal']);
  assert.deepEqual(keys('eval_scratch', 'eval_test_images_per_second'), ['system/finetune_scratch/eval_test_images_per_second']);
  assert.deepEqual(keys('model_a', 'total_params'), ['model/pretrain/total_params']);
  assert.deepEqual(keys('model_pre', 'learnable_params'), ['model/finetune_pre/learnable_params']);
  assert.deepEqual(keys('model_scratch', 'total_params'), ['model/finetune_scratch/total_params']);
  assert.deepEqual(keys('data_a', 'something'), ['something'], 'a stage of no chain keeps its key');
  assert.deepEqual(l.artifactPaths('pretrain', 'best-model'), ['best-model/pretrain']);
  assert.deepEqual(l.artifactPaths('head_pre', 'best-model'), ['best-model/finetune_pre']);
  assert.deepEqual(l.artifactPaths('eval_scratch', 'evaluation'), ['evaluation/finetune_scratch']);
  assert.deepEqual(l.artifactPaths('plots', 'plots'), ['plots'], 'the comparing plot stage draws several chains');
  assert.deepEqual(l.artifactPaths('plots', undefined), [undefined]);
});

test('several chains: a head two fine-tunings continue logs under both; a one-chain plot stage logs into its chain', () => {
  const l = layoutOf({
    data: { kind: 'download' }, aug: { kind: 'augment', needs: ['data'] }, model: { kind: 'build-model', needs: ['data'] },
    head: { kind: 'freeze-train', needs: ['aug', 'model'] },
    ft_a: { kind: 'unfreeze-train', needs: ['head'] }, ft_b: { kind: 'unfreeze-train', needs: ['head'] },
    eval_head: { kind: 'evaluate', needs: ['head'] }, eval_b: { kind: 'evaluate', needs: ['ft_b'] },
    plot_b: { kind: 'plot', needs: ['eval_b'] },
  });
  assert.deepEqual(l.chains, [{ name: 'ft_a', stages: ['head', 'ft_a'] }, { name: 'ft_b', stages: ['head', 'ft_b'] }]);
  assert.deepEqual(l.metricKeys('head', 'batch_loss'), ['curves/ft_a/batch_loss', 'curves/ft_b/batch_loss']);
  assert.deepEqual(l.metricKeys('ft_b', 'batch_loss'), ['curves/ft_b/batch_loss']);
  assert.deepEqual(l.metricKeys('model', 'total_params'), ['model/ft_a/total_params', 'model/ft_b/total_params']);
  assert.deepEqual(l.metricKeys('eval_head', 'eval_test_loss'), ['eval/ft_a/test_loss', 'eval/ft_b/test_loss']);
  assert.deepEqual(l.artifactPaths('plot_b', 'plots'), ['plots/ft_b']);
  assert.deepEqual(l.artifactPaths('plot_b', undefined), ['ft_b']);
  assert.deepEqual(l.artifactPaths('plot_b', 'plots/extra'), ['plots/ft_b/extra']);
});

test('tags: one chain keeps pipe.best_epoch and the rest; several chains put the chain after pipe., per chain of the stage', () => {
  const trainTags = { 'pipe.best_epoch': '3', 'pipe.best_phase': 'unfreeze', 'pipe.best_test_loss': '0.25', 'pipe.unfreeze_epoch': '2', 'pipe.freeze.trainable_params': '650' };
  const one = layoutOf({
    data: { kind: 'download' }, aug: { kind: 'augment', needs: ['data'] }, model: { kind: 'build-model', needs: ['data'] },
    head: { kind: 'freeze-train', needs: ['aug', 'model'] }, finetune: { kind: 'unfreeze-train', needs: ['head'] },
  });
  assert.deepEqual(one.tags('finetune', trainTags), trainTags);
  const l = layoutOf({
    data: { kind: 'download' }, aug: { kind: 'augment', needs: ['data'] }, model: { kind: 'build-model', needs: ['data'] },
    head: { kind: 'freeze-train', needs: ['aug', 'model'] },
    ft_a: { kind: 'unfreeze-train', needs: ['head'] }, ft_b: { kind: 'unfreeze-train', needs: ['head'] },
  });
  assert.deepEqual(l.tags('ft_b', trainTags), {
    'pipe.ft_b.best_epoch': '3', 'pipe.ft_b.best_phase': 'unfreeze', 'pipe.ft_b.best_test_loss': '0.25', 'pipe.ft_b.unfreeze_epoch': '2', 'pipe.ft_b.freeze.trainable_params': '650',
  });
  assert.deepEqual(l.tags('head', { 'pipe.freeze.trainable_params': '650' }), { 'pipe.ft_a.freeze.trainable_params': '650', 'pipe.ft_b.freeze.trainable_params': '650' });
  assert.deepEqual(l.tags('ft_a', { 'pipe.reused.ft_a': '/runs/x/ft_a' }), { 'pipe.reused.ft_a': '/runs/x/ft_a' }, 'names its stage already');
  assert.deepEqual(l.tags('data', { 'pipe.x': '1' }), { 'pipe.x': '1' }, 'a stage of no chain');
});

test('datasets: one download stage keeps pipe.data.<split> and the name; several name the stage in the tag and the input', () => {
  const d = { name: 'fashion-mnist', digest: '0123456789abcdef', source: '/data', context: 'test' as const, count: 5000 };
  const one = layoutOf({ data: { kind: 'download' }, aug: { kind: 'augment', needs: ['data'] } });
  assert.deepEqual(one.dataset('data', d), { tag: 'pipe.data.test', dataset: d });
  const config = parse(readFileSync(join(REPO, 'pipelines', 'fashion-mnist-transfer.yaml'), 'utf8')) as { stages: Record<string, LayoutStage & { needs?: string[] }> };
  const l = layoutOf(config.stages);
  assert.deepEqual(l.dataset('data_a', d), { tag: 'pipe.data.data_a.test', dataset: { ...d, name: 'fashion-mnist (data_a)' } });
  assert.deepEqual(l.dataset('data_b', { ...d, context: 'train' }), { tag: 'pipe.data.data_b.train', dataset: { ...d, context: 'train', name: 'fashion-mnist (data_b)' } });
});
