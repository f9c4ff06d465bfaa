/**
 * The fused forward pass (src/models/fused-forward.ts) against tfjs-layers' own execution and
 * against torchvision:
 * - inference (BatchNorm folded into the conv, padding and ReLU / residual add as post-ops) gives
 *   `model.apply`'s outputs within float32 noise on every backend and route, with far fewer
 *   kernels (no BatchNorm, pad, ReLU or add kernels), and reproduces the torchvision goldens
 *   (test/fixtures/torchvision slim18/slim50, test/fixtures/zoo vgg16_slim) within their bounds;
 * - training on the native route (one PipeConvBnTrain per conv-BN-ReLU) gives `model.apply`'s
 *   outputs, gradients and running statistics; on the wasm-only route (no fused kernels) and on
 *   `cpu` the layers run one by one and give exactly `model.apply`'s values;
 * - frozen layers in training run folded, with `model.apply`'s outputs.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { fixture } from '../fixtures.js';
import { initEngine } from '../../src/engine/backend.js';
import { setKernelRoute } from '../../src/engine/kernels/register.js';
import { loadDnnl } from '../../src/engine/native/dnnl.js';
import { fusedApply } from '../../src/models/fused-forward.js';
import { buildClassifier, type Classifier } from '../../src/models/registry.js';
import { Safetensors } from '../../src/models/safetensors.js';
import { loadTorchWeights } from '../../src/models/torch-weights.js';
import { densenet, type DenseLayout } from '../../src/models/densenet.js';
import { mbNet, type MbStage } from '../../src/models/efficientnet.js';
import type { Backbone } from '../../src/models/torch-net.js';
import { vgg } from '../../src/models/vgg.js';
import { Rng } from '../../src/rng.js';
import { predictLogits } from '../../src/train/evaluate.js';
import { setTrainable } from '../../src/train/freeze.js';
import { assertNative, maxRelErr, nativeSkip, seeded } from './kernel-helpers.js';

const DNNL = loadDnnl();

before(async () => {
  await initEngine('wasm');
});

/** Random non-trivial BatchNorm parameters and statistics (seeded) for every BatchNorm2d of `model`. */
function randomiseBatchNorm(model: tf.LayersModel): void {
  let seed = 1;
  for (const w of model.weights) {
    const m = /(gamma|beta|moving_mean|moving_variance)$/.exec(w.originalName);
    if (!m) continue;
    const positive = m[1] === 'gamma' || m[1] === 'moving_variance';
    w.write(tf.tensor(seeded(w.shape.reduce((a, b) => a! * b!, 1)!, seed++, positive ? 0.5 : -0.5, positive ? 1.5 : 0.5), w.shape as number[]));
  }
}

/** The other zoo families at the slim layouts of test/fixtures/zoo, random weights. */
function zooBackbone(name: string, size: number): Backbone {
  const a = (JSON.parse(readFileSync(join(fixture('zoo'), `${name}.json`), 'utf8')) as { arch: { builder: string; act?: 'relu6' | 'silu'; stages?: MbStage[]; stem?: number; head?: number; cfg?: Array<number | 'M'>; hidden?: number } & Partial<DenseLayout> }).arch;
  const inp = { height: size, width: size, channels: 3 }, rng = new Rng(3);
  const b = a.builder === 'mbNet' ? mbNet(a.stages!, a.act!, inp, rng, 'slim', a.stem, a.head) : a.builder === 'densenet' ? densenet(a as DenseLayout, inp, rng, 'slim') : vgg(a.cfg!, inp, rng, 'slim', a.hidden);
  randomiseBatchNorm(b.model);
  return b;
}

/** A classifier with non-trivial BatchNorm: gamma, beta and running statistics drawn at random (seeded). */
function classifier(arch: string, size = 16): Classifier {
  const c = buildClassifier(arch, { height: size, width: size, channels: 3 }, 10, 'none', new Rng(1));
  randomiseBatchNorm(c.backbone.model);
  return c;
}

const images = (n: number, size: number, seed = 7): tf.Tensor4D => tf.tensor4d(seeded(n * size * size * 3, seed, -2, 2), [n, size, size, 3]);

/** Kernel names run by `fn` (tf.profile), without the op-level records of fused ops. */
async function kernels(fn: () => tf.Tensor | tf.Tensor[]): Promise<string[]> {
  const p = await tf.profile(() => tf.dispose(fn()));
  return p.kernels.map((k) => k.name).filter((n) => !n.endsWith('__op'));
}

/** The backbone output, d(sum(out * r))/d(every trainable variable), and the running statistics after. */
function trainStep(c: { backbone: Backbone }, x: tf.Tensor, fused: boolean): Float32Array[] {
  const vars = c.backbone.model.trainableWeights.map((w) => w.read() as tf.Variable);
  const run = (): tf.Tensor => (fused ? fusedApply(c.backbone.model, x, true) : (c.backbone.model.apply(x, { training: true }) as tf.Tensor));
  let out: Float32Array | undefined;
  const { value, grads } = tf.variableGrads(() => {
    const y = run();
    out = Float32Array.from(y.dataSync());
    return tf.sum(tf.mul(y, tf.tensor(seeded(y.size, 5), y.shape)));
  }, vars);
  const gs = vars.map((v) => Float32Array.from(grads[v.name]!.dataSync()));
  tf.dispose([value, ...Object.values(grads)]);
  const stats = c.backbone.model.weights.filter((w) => /moving_/.test(w.originalName)).map((w) => Float32Array.from(w.read().dataSync()));
  return [out!, ...gs, ...stats];
}

describe('inference: conv + BN (+ add) + ReLU folded', () => {
  for (const [backend, route] of [['wasm', 'native'], ['wasm', 'wasm'], ['cpu', '-']] as const) {
    const skip = route === 'native' ? nativeSkip(DNNL) : false;
    it(`${backend}${route === '-' ? '' : ` (${route} route)`}: model.apply's outputs within 1e-5, without BatchNorm, pad, ReLU or add kernels`, { skip }, async () => {
      if (route === 'native') assertNative(DNNL);
      if (backend === 'wasm') setKernelRoute(route as 'native' | 'wasm');
      assert.ok(await tf.setBackend(backend));
      for (const arch of ['mini_resnet', 'test_resnet18', 'test_resnet50']) {
        const c = classifier(arch);
        const x = images(3, 16);
        const want = c.backbone.model.apply(x, { training: false }) as tf.Tensor;
        const got = fusedApply(c.backbone.model, x, false);
        assert.deepEqual(got.shape, want.shape);
        const e = maxRelErr(got.dataSync(), want.dataSync());
        assert.ok(e <= 1e-5, `${arch}: relative error ${e.toExponential(2)}`);
        assert.ok(tf.tidy(() => tf.max(tf.abs(want)).dataSync()[0]!) > 0.1, 'non-trivial features');
        const plain = await kernels(() => c.backbone.model.apply(x, { training: false }) as tf.Tensor);
        const fused = await kernels(() => fusedApply(c.backbone.model, x, false));
        const count = (k: string): number => fused.filter((n) => n === k).length;
        // Left: the max-pool's padding (ResNet's stem), and on other routes than the native one
        // the residual add and its ReLU (no conv + add kernel there).
        assert.equal(count('FusedBatchNorm'), 0, `${arch}: ${fused.join(' ')}`);
        assert.equal(count('PadV2'), count('MaxPool'), `${arch}: ${fused.join(' ')}`);
        if (route === 'native') for (const k of ['Relu', 'Add']) assert.equal(count(k), 0, `${arch}: no ${k} kernel (${fused.join(' ')})`);
        assert.ok(fused.length * (route === 'native' ? 3 : 2) <= plain.length, `${arch}: ${fused.length} kernels fused vs ${plain.length}`);
        tf.dispose([x, want, got]);
        c.backbone.model.dispose();
        c.head.dispose();
      }
      setKernelRoute('auto');
    });
  }

  it('intermediate tensors are freed; the input and the weights are not', async () => {
    assert.ok(await tf.setBackend('wasm'));
    const c = classifier('test_resnet18');
    const x = images(2, 16);
    tf.dispose(fusedApply(c.backbone.model, x, false)); // the first call folds (kept tensors)
    const before = tf.memory().numTensors;
    const y = fusedApply(c.backbone.model, x, false);
    assert.equal(tf.memory().numTensors, before + 1, 'only the output is new');
    assert.ok(!x.isDisposed);
    tf.dispose([x, y]);
    c.backbone.model.dispose();
  });

  it('a changed weight is folded again (no stale fold)', async () => {
    assert.ok(await tf.setBackend('wasm'));
    const c = classifier('mini_resnet');
    const x = images(2, 16);
    tf.dispose(fusedApply(c.backbone.model, x, false));
    const bn = c.backbone.model.getLayer('stem_bn');
    bn.setWeights(bn.getWeights().map((w, i) => (i === 2 ? tf.add(w, 0.5) : w))); // moving_mean + 0.5
    const want = c.backbone.model.apply(x, { training: false }) as tf.Tensor;
    const got = fusedApply(c.backbone.model, x, false);
    assert.ok(maxRelErr(got.dataSync(), want.dataSync()) <= 1e-5);
    tf.dispose([x, want, got]);
    c.backbone.model.dispose();
  });
});

describe('inference: torchvision goldens through the fused path', () => {
  const GOLDENS = fixture('torchvision');
  const nhwc = (io: Safetensors, name: string): tf.Tensor4D =>
    tf.tidy(() => tf.transpose(tf.tensor4d(io.float32(name), io.info(name).shape as [number, number, number, number]), [0, 2, 3, 1]));
  for (const [model, arch] of [['slim18', 'test_resnet18'], ['slim50', 'test_resnet50']] as const) {
    for (const size of [32, 45]) {
      it(`${arch} (${model}) ${size}px: logits within 1e-4, pooled features within 1e-4 x max(1, max |golden|)`, async () => {
        assert.ok(await tf.setBackend('wasm'));
        const io = Safetensors.read(join(GOLDENS, `${model}.io.safetensors`));
        const c = buildClassifier(arch, { height: size, width: size, channels: 3 }, 10, join(GOLDENS, `${model}.safetensors`), new Rng(1));
        const x = nhwc(io, `x${size}`);
        const logits = predictLogits(c, x);
        const feat = fusedApply(c.backbone.model, x, false);
        const wantLogits = tf.tensor(io.float32(`logits${size}`), io.info(`logits${size}`).shape);
        const wantFeat = tf.tensor(io.float32(`feat${size}`), io.info(`feat${size}`).shape);
        const err = (a: tf.Tensor, b: tf.Tensor): number => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
        const scale = tf.tidy(() => tf.max(tf.abs(wantFeat)).dataSync()[0]!);
        assert.ok(err(logits, wantLogits) <= 1e-4, `logits: ${err(logits, wantLogits)}`);
        assert.ok(err(feat, wantFeat) <= 1e-4 * Math.max(1, scale), `features: ${err(feat, wantFeat)}`);
        tf.dispose([x, logits, feat, wantLogits, wantFeat]);
        c.backbone.model.dispose();
        c.head.dispose();
      });
    }
  }

  it('vgg16_slim (conv + bias + ReLU chains, no BatchNorm) 32px: pooled features within bounds', async () => {
    assert.ok(await tf.setBackend('wasm'));
    const dir = fixture('zoo');
    const meta = JSON.parse(readFileSync(join(dir, 'vgg16_slim.json'), 'utf8')) as { arch: { cfg: Array<number | 'M'>; hidden?: number } };
    const st = Safetensors.read(join(dir, 'vgg16_slim.safetensors'));
    const io = Safetensors.read(join(dir, 'vgg16_slim.io.safetensors'));
    const backbone = vgg(meta.arch.cfg, { height: 32, width: 32, channels: 3 }, 'zeros', 'slim', meta.arch.hidden);
    const featIn = tf.input({ shape: [backbone.features] });
    const head = tf.model({ inputs: featIn, outputs: tf.layers.dense({ units: 10, name: 'head_fc' }).apply(featIn) as tf.SymbolicTensor });
    loadTorchWeights(st, [backbone, { model: head, bindings: [{ layer: 'head_fc', torch: 'head.fc', kind: 'dense' }] }]);
    const x = nhwc(io, 'x32');
    const plain = await kernels(() => backbone.model.apply(x, { training: false }) as tf.Tensor);
    const fusedKernels = await kernels(() => fusedApply(backbone.model, x, false));
    assert.ok(!fusedKernels.includes('Relu') && plain.includes('Relu'), 'the ReLUs run as conv post-ops');
    const feat = fusedApply(backbone.model, x, false);
    const want = tf.tensor(io.float32('feat32'), io.info('feat32').shape);
    const scale = tf.tidy(() => tf.max(tf.abs(want)).dataSync()[0]!);
    const e = tf.tidy(() => tf.max(tf.abs(tf.sub(feat, want))).dataSync()[0]!);
    assert.ok(e <= 1e-4 * Math.max(1, scale), `features: ${e}`);
    tf.dispose([x, feat, want]);
    backbone.model.dispose();
    head.dispose();
  });
});

describe('training', () => {
  it('native route: one PipeConvBnTrain per conv-BN(-add)-ReLU; outputs, gradients and running statistics as model.apply', { skip: nativeSkip(DNNL) }, async () => {
    assertNative(DNNL);
    setKernelRoute('native');
    assert.ok(await tf.setBackend('wasm'));
    for (const arch of ['mini_resnet', 'test_resnet18', 'test_resnet50']) {
      const x = images(4, 16, 11);
      const a = classifier(arch), b = classifier(arch);
      setTrainable(a, 'all');
      setTrainable(b, 'all');
      const want = trainStep(a, x, false), got = trainStep(b, x, true);
      assert.equal(got.length, want.length);
      want.forEach((w, i) => {
        const e = maxRelErr(got[i]!, w);
        assert.ok(e <= 1e-6, `${arch}: output ${i} (0: features, then gradients, then running statistics): relative error ${e.toExponential(2)}`);
      });
      const vars = b.backbone.model.trainableWeights.map((w) => w.read() as tf.Variable);
      const ks = await kernels(() => {
        const g = tf.variableGrads(() => tf.sum(fusedApply(b.backbone.model, x, true)), vars);
        return [g.value, ...Object.values(g.grads)];
      });
      const convs = b.backbone.model.layers.filter((l) => l.getClassName() === 'Conv2D').length;
      const count = (k: string): number => ks.filter((n) => n === k).length;
      assert.equal(count('PipeConvBnTrain'), convs, `${arch}: every conv fused with its BN`);
      assert.equal(count('PipeConvBnTrainGrad'), convs);
      // Left: the max-pool's padding in ResNet's stem (and its gradient, a Slice).
      const pools = count('MaxPool');
      for (const k of ['PipeBatchNormTrain', 'Relu', 'FusedConv2D', 'Conv2DBackpropFilter']) assert.equal(count(k), 0, `${arch}: no ${k} (${ks.join(' ')})`);
      assert.equal(count('PadV2'), pools, `${arch}: ${ks.join(' ')}`);
      assert.equal(count('Slice'), pools, `${arch}: ${ks.join(' ')}`);
      // Every conv but the stem's (whose input needs no gradient) computes its input gradient.
      assert.equal(count('Conv2DBackpropInput'), convs - 1);
      tf.dispose(x);
      for (const c of [a, b]) {
        c.backbone.model.dispose();
        c.head.dispose();
      }
    }
  });

  it('the other zoo families (MobileNetV2, EfficientNet, DenseNet, VGG: depthwise convs, ReLU6, SiLU, pre-activation, biases): inference within 1e-5 on both routes, training as model.apply on the native route (VGG: inference only, its dropout is random)', { skip: nativeSkip(DNNL) }, async () => {
    assertNative(DNNL);
    assert.ok(await tf.setBackend('wasm'));
    for (const name of ['mobilenet_v2_slim', 'efficientnet_b0_slim', 'densenet121_slim', 'vgg16_slim']) {
      const x = images(3, 32, 14);
      for (const route of ['native', 'wasm'] as const) {
        setKernelRoute(route);
        const b = zooBackbone(name, 32);
        const want = b.model.apply(x, { training: false }) as tf.Tensor;
        const got = fusedApply(b.model, x, false);
        const e = maxRelErr(got.dataSync(), want.dataSync());
        assert.ok(e <= 1e-5, `${name} (${route} route) inference: relative error ${e.toExponential(2)}`);
        tf.dispose([want, got]);
        b.model.dispose();
      }
      setKernelRoute('native');
      if (name === 'vgg16_slim') {
        tf.dispose(x);
        continue; // its dropout makes two training passes differ
      }
      const a = zooBackbone(name, 32), b = zooBackbone(name, 32);
      const want = trainStep({ backbone: a }, x, false), got = trainStep({ backbone: b }, x, true);
      want.forEach((w, i) => {
        const e = maxRelErr(got[i]!, w);
        assert.ok(e <= 1e-5, `${name} training: output ${i} (0: features, then gradients, then running statistics): relative error ${e.toExponential(2)}`);
      });
      tf.dispose(x);
      a.model.dispose();
      b.model.dispose();
    }
    setKernelRoute('auto');
  });

  for (const [backend, route] of [['wasm', 'wasm'], ['cpu', '-']] as const) {
    it(`${backend}${route === '-' ? '' : ` (${route} route, no fused kernels)`}: the layers one by one, exactly model.apply's values`, async () => {
      if (backend === 'wasm') setKernelRoute('wasm');
      assert.ok(await tf.setBackend(backend));
      const x = images(2, 16, 12);
      const a = classifier('test_resnet18'), b = classifier('test_resnet18');
      setTrainable(a, 'all');
      setTrainable(b, 'all');
      const want = trainStep(a, x, false), got = trainStep(b, x, true);
      want.forEach((w, i) => assert.deepEqual(got[i], w, `output ${i}`));
      tf.dispose(x);
      setKernelRoute('auto');
    });
  }

  it('frozen layers (freeze-train) run folded: model.apply outputs within 1e-5, running statistics untouched', async () => {
    assert.ok(await tf.setBackend('wasm'));
    const c = classifier('test_resnet18');
    setTrainable(c, 'none');
    const x = images(2, 16, 13);
    const before = c.backbone.model.weights.map((w) => Float32Array.from(w.read().dataSync()));
    const want = c.backbone.model.apply(x, { training: true }) as tf.Tensor;
    const ks = await kernels(() => fusedApply(c.backbone.model, x, true));
    assert.ok(!ks.includes('FusedBatchNorm') && !ks.includes('PipeBatchNormTrain'), ks.join(' '));
    const got = fusedApply(c.backbone.model, x, true);
    assert.ok(maxRelErr(got.dataSync(), want.dataSync()) <= 1e-5);
    c.backbone.model.weights.forEach((w, i) => assert.deepEqual(Float32Array.from(w.read().dataSync()), before[i], w.originalName));
    tf.dispose([x, want, got]);
  });
});
