/**
 * One test per registry entry (timm `test_models.py` style): the net builds on a small input with
 * the expected feature size; its learnable parameters with a 1000-class head equal the published
 * count (torchvision's model docs); its blocks are layer-name prefixes covering every weight; and,
 * for entries with ImageNet weights, every tensor of the published file
 * (test/fixtures/weights/keys/<hub name>.json, listed from the Hub) maps to exactly one tfjs weight of
 * the same torch shape, and the entry matches test/fixtures/weights/weights.json (URL, sha256, size,
 * preprocessing). Then the registry's errors and a safetensors round trip for inception_v3.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { fixture } from '../fixtures.js';
import { initEngine } from '../../src/engine/backend.js';
import { PipelineError } from '../../src/errors.js';
import { buildClassifier, type Classifier, listModels, MODELS, paramCounts, preprocessingFor, weightsPath } from '../../src/models/registry.js';
import { MODEL_CATALOG } from '../../src/models/catalog.js';
import { encodeSafetensors } from '../../src/models/safetensors.js';
import { exportTorchWeights, weightSlots } from '../../src/models/torch-weights.js';
import { Rng } from '../../src/rng.js';

/** test/fixtures/weights/weights.json: what is known of each published file (independent of src/). */
interface Known { arch: string; hub_id: string | null; url: string | null; sha256: string | null; size_bytes: number | null; mean: number[]; std: number[]; input_size: number[]; interpolation: string; classifier: string; first_conv: string }
let known: Known[] = [];
let tmp = '';

before(async () => {
  known = JSON.parse(readFileSync(fixture('weights', 'weights.json'), 'utf8')) as Known[];
  tmp = await mkdtemp(join(tmpdir(), 'models-test-'));
  await initEngine('wasm');
});

after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const side = (name: string): number => Math.max(MODELS[name]!.minInputSize, name === 'mini_resnet' ? 28 : 32);

describe('every registry entry', () => {
  for (const name of listModels()) {
    it(name, () => {
      const e = MODELS[name]!;
      const s = side(name);
      // zeros init: these checks need shapes, not values (random init of vgg16 alone takes ~10 s)
      const backbone = e.build({ height: s, width: s, channels: 3 }, 'zeros');
      const featIn = tf.input({ shape: [backbone.features] });
      const head = tf.model({ inputs: featIn, outputs: tf.layers.dense({ units: 1000, name: 'head_fc', kernelInitializer: 'zeros' }).apply(featIn) as tf.SymbolicTensor });
      const c: Classifier = { arch: name, backbone, head, numClasses: 1000, reinitialized: ['head_fc'] };
      const features = c.backbone.features;
      assert.deepEqual(c.backbone.model.outputs[0]!.shape, [null, features]);
      if (name !== 'vgg16') {
        // a real forward pass (vgg16's 400 MB of FC weights make it slow; its shapes are symbolic-checked)
        const y = tf.tidy(() => c.head.predict(c.backbone.model.predict(tf.zeros([1, s, s, 3])) as tf.Tensor) as tf.Tensor);
        assert.deepEqual(y.shape, [1, 1000]);
        y.dispose();
      }
      const { learnable } = paramCounts(c);
      if (e.publishedParams !== undefined) assert.equal(learnable, e.publishedParams, `${name}: learnable parameters`);
      // the registry knows the block names without building (validate checks unfreeze.from against them)
      assert.deepEqual(c.backbone.blocks, [...e.blocks], `${name}: MODELS.${name}.blocks`);
      // and whether the net has a torch layout (validate checks `weights:` files and upstream against it)
      assert.equal(c.backbone.bindings.length > 0, MODEL_CATALOG[name]!.torch, `${name}: CATALOG.${name}.torch`);
      // blocks are layer-name prefixes, and every weight-holding layer is in one
      const blockOf = (l: string): string | undefined => c.backbone.blocks.find((b) => l === b || l.startsWith(`${b}_`));
      for (const l of c.backbone.model.layers) if (l.weights.length > 0) assert.ok(blockOf(l.name), `${name}: layer ${l.name} is in no block of ${c.backbone.blocks.join(',')}`);
      if (e.imagenet) checkPublished(name, c);
      c.backbone.model.dispose();
      c.head.dispose();
    });
  }
});

/** Published keys (weights-keys/<hub name>.json) <-> tfjs weights, one to one, same torch shapes; registry cfg = weights.json. */
function checkPublished(name: string, c: Classifier): void {
  const cfg = MODELS[name]!.imagenet!;
  const keys = JSON.parse(readFileSync(fixture('weights', 'keys', `${cfg.hubId.split('/')[1]}.json`), 'utf8')) as Array<{ name: string; shape: number[]; dtype: string }>;
  const published = new Map(keys.filter((k) => !k.name.endsWith('num_batches_tracked')).map((k) => [k.name, k.shape]));
  const slots = weightSlots([c.backbone, { model: c.head, bindings: [{ layer: 'head_fc', torch: MODELS[name]!.classifier, kind: 'dense' }] }]);
  assert.equal(new Set(slots.map((s) => s.key)).size, slots.length, `${name}: two tfjs weights claim one torch key`);
  assert.equal(new Set(slots.map((s) => s.variable)).size, slots.length, `${name}: one tfjs weight claims two torch keys`);
  const ours = new Map(slots.map((s) => [s.key, s.torchShape]));
  assert.deepEqual([...published.keys()].filter((k) => !ours.has(k)), [], `${name}: published tensors with no tfjs weight`);
  assert.deepEqual([...ours.keys()].filter((k) => !published.has(k)), [], `${name}: tfjs weights with no published tensor`);
  for (const [k, shape] of published) assert.deepEqual(ours.get(k), shape, `${name}: ${k}`);

  const rec = known.find((k) => k.hub_id === cfg.hubId);
  assert.ok(rec, `${cfg.hubId} is in weights.json`);
  assert.equal(cfg.url, rec.url);
  assert.equal(cfg.sha256, rec.sha256);
  assert.equal(cfg.sizeBytes, rec.size_bytes);
  assert.deepEqual([cfg.mean, cfg.std, cfg.inputSize, cfg.interpolation, cfg.classifier, cfg.firstConv], [rec.mean, rec.std, rec.input_size, rec.interpolation, rec.classifier, rec.first_conv]);
}

describe('registry errors and defaults', () => {
  it('refuses an input smaller than the minimum, naming it (inception_v3: 75 px)', () => {
    assert.throws(() => buildClassifier('inception_v3', { height: 74, width: 80, channels: 3 }, 10, 'none', new Rng(1)), (e: unknown) => e instanceof PipelineError && /inception_v3 needs inputs of at least 75x75 px; the data is 74x80/.test(e.message));
  });

  it('unknown names suggest near ones', () => {
    assert.throws(() => buildClassifier('resnet5', { height: 32, width: 32, channels: 3 }, 10, 'none', new Rng(1)), /unknown model 'resnet5'; did you mean 'resnet18' or 'resnet34' or 'resnet50'/);
  });

  it('imagenet: unavailable for mini_resnet; not yet downloaded is a clear error', () => {
    assert.throws(() => weightsPath('mini_resnet', 'imagenet'), /mini_resnet has no ImageNet weights/);
    const old = process.env['PIPE_CACHE'];
    process.env['PIPE_CACHE'] = join(tmp, 'empty-cache');
    try {
      assert.throws(() => weightsPath('resnet18', 'imagenet'), /the ImageNet weights of resnet18 are not downloaded yet .*empty-cache.*; the build-model stage downloads them/);
    } finally {
      if (old === undefined) delete process.env['PIPE_CACHE'];
      else process.env['PIPE_CACHE'] = old;
    }
  });

  it('preprocessing travels with the weights', () => {
    assert.deepEqual(preprocessingFor('inception_v3', 'imagenet'), { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], inputSize: [3, 299, 299], interpolation: 'bicubic', cropPct: 0.875, minInputSize: 75 });
    assert.deepEqual(preprocessingFor('resnet50', 'imagenet')?.mean, [0.485, 0.456, 0.406]);
    assert.equal(preprocessingFor('resnet50', 'none'), undefined);
  });

  it('grayscale data is repeated to 3 channels', () => {
    const c = buildClassifier('mobilenet_v2', { height: 28, width: 28, channels: 1 }, 10, 'none', new Rng(1));
    const y = tf.tidy(() => (c.head.predict(c.backbone.model.predict(tf.ones([2, 28, 28, 1])) as tf.Tensor) as tf.Tensor).shape);
    assert.deepEqual(y, [2, 10]);
  });
});

describe('inception_v3 safetensors round trip', () => {
  it('export -> file -> load gives the same logits at 75 px', async () => {
    const inp = { height: 75, width: 75, channels: 3 };
    const a = buildClassifier('inception_v3', inp, 5, 'none', new Rng(11));
    const path = join(tmp, 'inception.safetensors');
    await writeFile(path, encodeSafetensors(exportTorchWeights([a.backbone, { model: a.head, bindings: [{ layer: 'head_fc', torch: 'fc', kind: 'dense' }] }])));
    const b = buildClassifier('inception_v3', inp, 5, path, new Rng(12));
    assert.equal(b.weights?.loaded, 472); // 94 convs + 94 BN x 4 + fc weight and bias (weights.json: 566 tensors incl. 94 counters)
    const run = (c: typeof a): number[] => [...tf.tidy(() => (c.head.predict(c.backbone.model.predict(tf.randomNormal([1, 75, 75, 3], 0, 1, 'float32', 4)) as tf.Tensor) as tf.Tensor).dataSync())];
    assert.deepEqual(run(b), run(a));
  });
});
