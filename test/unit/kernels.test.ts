/**
 * Tests for the training kernels registered for tfjs's wasm backend (src/engine/kernels/*.ts, and
 * the native addon's src/engine/native/*.ts and native/*.cc where it is built) and the FusedBatchNorm gradient
 * (src/engine/batch-norm-grad.ts). Convolution, depthwise, batch-norm and training tests run once
 * per kernel route: `wasm` (always) and `native` (the addon: skipped, with the reason, when it is
 * not built; failing then under CI=true). The native-only kernels are tested in kernels-native.test.ts.
 *
 * References are computed independently: the pure-JS `cpu` backend's own kernels for the same op
 * on the same seeded inputs, tfjs-core's original FusedBatchNorm gradient, and batch norm written
 * out as elementary ops (differentiated by tfjs's autodiff).
 *
 * Order matters: the wasm module registers its kernels when imported; ours must replace them
 * before `tf.setBackend('wasm')` initialises the backend (that is when setupFuncs run), and
 * tfjs-core's FusedBatchNorm gradient is captured before ours replaces it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

import { fusedBatchNormGradConfig } from '../../src/engine/batch-norm-grad.js';
import { registerBatchNormGrad, registerWasmKernels, setKernelRoute, type KernelRoute } from '../../src/engine/kernels/register.js';
import { loadDnnl } from '../../src/engine/native/dnnl.js';
import { assertNative, compareBackends, data, gradsOn, nativeSkip, maxAbs, maxRelErr, seeded, TOL, valueOn, weightedSum, type Data } from './kernel-helpers.js';

tf.env().set('PROD', true); // as src/engine/backend.ts does: no "install tfjs-node" banner

const CORE_BN_GRAD = tf.getGradient('FusedBatchNorm');
const WASM_OWN_INPUT_KERNEL = tf.getKernel('Conv2DBackpropInput', 'wasm');
const WASM_OWN_CONV_KERNEL = tf.getKernel('Conv2D', 'wasm');
const ADD_KERNEL = tf.getKernel('Add', 'wasm');
const REGISTERED = registerWasmKernels();
registerBatchNormGrad();

const DNNL = loadDnnl();
/** Each route's tests; the native ones are skipped, with the reason, when the addon is absent (failing under CI=true). */
const ROUTES: Array<{ route: KernelRoute; skip: string | false }> = [
  { route: 'wasm', skip: false },
  { route: 'native', skip: nativeSkip(DNNL) },
];

/** describe() once per route, the route registered before its tests run. */
function perRoute(title: string, body: (route: KernelRoute) => void): void {
  for (const { route, skip } of ROUTES) {
    describe(`${title} [${route} route]`, { skip }, () => {
      before(() => {
        if (route === 'native') assertNative(DNNL);
        setKernelRoute(route);
      });
      body(route);
    });
  }
}

before(async () => {
  assert.ok(await tf.setBackend('wasm'), 'wasm backend did not initialise');
  assert.ok(await tf.setBackend('cpu'), 'cpu backend did not initialise');
});

after(async () => {
  await tf.setBackend('cpu');
});

// ---------------------------------------------------------------------------------------------

describe('registration', () => {
  const WASM_ROUTE = ['Cast', 'Conv2D', 'Conv2DBackpropFilter', 'Conv2DBackpropInput', 'DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput', 'FusedConv2D', 'Identity'];

  it('registers the auto route once, before the backend starts (idempotent)', () => {
    assert.ok(REGISTERED.length >= WASM_ROUTE.length);
    for (const name of REGISTERED) assert.ok(tf.getKernel(name, 'wasm'), `${name} registered for wasm`);
    const now = tf.getKernel('Conv2DBackpropInput', 'wasm');
    assert.deepEqual(registerWasmKernels(), REGISTERED);
    assert.equal(tf.getKernel('Conv2DBackpropInput', 'wasm'), now, 'a second call registers nothing new');
  });

  it('wasm route: the gradient kernels and forward wrappers, keeping wasm\'s setupFuncs', () => {
    const { route, names, detail } = setKernelRoute('wasm');
    assert.equal(route, 'wasm');
    assert.equal(detail, 'wasm route: WebAssembly SIMD, 1 thread');
    assert.deepEqual([...names].sort(), WASM_ROUTE);
    const now = tf.getKernel('Conv2DBackpropInput', 'wasm')!;
    assert.ok(WASM_OWN_INPUT_KERNEL, 'tfjs-backend-wasm ships a Conv2DBackpropInput');
    assert.notEqual(now.kernelFunc, WASM_OWN_INPUT_KERNEL.kernelFunc, 'ours replaced it');
    assert.equal(now.setupFunc, WASM_OWN_INPUT_KERNEL.setupFunc, 'the original setupFunc is kept');
    assert.equal(tf.getKernel('Conv2D', 'wasm')!.setupFunc, WASM_OWN_CONV_KERNEL!.setupFunc);
    assert.notEqual(tf.getKernel('Conv2D', 'wasm')!.kernelFunc, WASM_OWN_CONV_KERNEL!.kernelFunc);
  });

  it('native route: the addon\'s kernels on top, setupFuncs kept', { skip: ROUTES[1]!.skip }, () => {
    assertNative(DNNL);
    const ownConv = WASM_OWN_CONV_KERNEL;
    const { route, names, detail } = setKernelRoute('native');
    assert.equal(route, 'native');
    assert.match(detail, /^native route: oneDNN addon on \d+ threads? for convolutions/);
    for (const n of [...WASM_ROUTE, 'Conv2D', 'FusedConv2D', 'BatchMatMul', 'Add', 'Mean', 'MaxPoolGrad', 'PipeAdamUpdate']) assert.ok(names.includes(n), `${n} registered`);
    assert.equal(tf.getKernel('Conv2D', 'wasm')!.setupFunc, ownConv!.setupFunc, 'wasm\'s Conv2D setupFunc is kept for its fallback');
    assert.equal(tf.getKernel('Conv2DBackpropInput', 'wasm')!.setupFunc, WASM_OWN_INPUT_KERNEL!.setupFunc);
    setKernelRoute('wasm');
    assert.equal(tf.getKernel('PipeAdamUpdate', 'wasm'), undefined, 'switching back removes the fused Adam');
    assert.equal(tf.getKernel('Add', 'wasm'), ADD_KERNEL, 'and restores wasm\'s own kernels');
  });

  it('replaces the FusedBatchNorm gradient', () => {
    assert.ok(CORE_BN_GRAD, 'tfjs-core has a FusedBatchNorm gradient');
    assert.notEqual(CORE_BN_GRAD, fusedBatchNormGradConfig);
    assert.equal(tf.getGradient('FusedBatchNorm'), fusedBatchNormGradConfig);
  });
});

// ---------------------------------------------------------------------------------------------

interface ConvCase {
  name: string;
  x: number[]; // [n, h, w, ci]
  w: number[]; // [kh, kw, ci, co]
  strides: number | [number, number];
  pad: 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
}

const CONV_CASES: ConvCase[] = [
  { name: '3x3 stride 1 same', x: [2, 7, 7, 3], w: [3, 3, 3, 4], strides: 1, pad: 'same' },
  { name: '3x3 stride 2 same, odd input', x: [2, 9, 9, 3], w: [3, 3, 3, 4], strides: 2, pad: 'same' },
  { name: '3x3 stride 2 same, even input', x: [2, 8, 8, 3], w: [3, 3, 3, 4], strides: 2, pad: 'same' },
  { name: '3x3 stride 1 valid', x: [1, 6, 5, 2], w: [3, 3, 2, 3], strides: 1, pad: 'valid' },
  { name: '1x1 stride 2 valid, odd input', x: [2, 7, 7, 4], w: [1, 1, 4, 5], strides: 2, pad: 'valid' },
  { name: '1x1 stride 2 valid, even input', x: [2, 8, 8, 4], w: [1, 1, 4, 5], strides: 2, pad: 'valid' },
  { name: '7x7 stride 2 same, odd input', x: [2, 13, 13, 3], w: [7, 7, 3, 4], strides: 2, pad: 'same' },
  { name: '7x7 stride 2 same, even input', x: [1, 12, 12, 3], w: [7, 7, 3, 4], strides: 2, pad: 'same' },
  { name: '3x3 stride 2 valid, even input (last row unread)', x: [2, 8, 8, 2], w: [3, 3, 2, 3], strides: 2, pad: 'valid' },
  { name: 'non-square stride [1, 2] same', x: [2, 7, 8, 3], w: [3, 3, 3, 4], strides: [1, 2], pad: 'same' },
  { name: 'non-square stride [2, 1] valid', x: [2, 9, 6, 3], w: [3, 3, 3, 2], strides: [2, 1], pad: 'valid' },
  { name: 'non-square kernel 3x1, non-square input', x: [2, 8, 5, 3], w: [3, 1, 3, 4], strides: [2, 1], pad: 'same' },
  { name: 'non-square kernel 1x5 stride 3 same', x: [1, 7, 11, 2], w: [1, 5, 2, 3], strides: 3, pad: 'same' },
  { name: 'explicit asymmetric padding in conv2d', x: [2, 7, 6, 3], w: [3, 3, 3, 4], strides: 2, pad: [[0, 0], [1, 2], [2, 0], [0, 0]] },
  // More than 4 input channels: the native route's oneDNN backward-data kernel (4 or fewer: its col2im).
  { name: '3x3 stride 1 same, 8 channels', x: [2, 6, 6, 8], w: [3, 3, 8, 6], strides: 1, pad: 'same' },
  { name: '3x3 stride 2 same, odd input, 8 channels', x: [2, 9, 9, 8], w: [3, 3, 8, 6], strides: 2, pad: 'same' },
  { name: '1x1 stride 2 valid, even input, 6 channels', x: [2, 8, 8, 6], w: [1, 1, 6, 5], strides: 2, pad: 'valid' },
  // Strided 1x1 filter gradients with fewer input channels than oneDNN's channel block (8 on AVX2,
  // 16 on AVX-512) and more: oneDNN 2.x's own kernel for them is wrong (native/conv.cc says why).
  { name: '1x1 stride 2 valid, even input, 7 channels, batch 4', x: [4, 10, 10, 7], w: [1, 1, 7, 8], strides: 2, pad: 'valid' },
  { name: '1x1 stride 2 valid, even input, 12 channels', x: [3, 8, 8, 12], w: [1, 1, 12, 16], strides: 2, pad: 'valid' },
  { name: '1x1 stride 2 valid, 20 channels, non-square', x: [2, 6, 10, 20], w: [1, 1, 20, 8], strides: 2, pad: 'valid' },
  { name: '1x1 stride [2, 3] explicit asymmetric padding', x: [2, 7, 8, 5], w: [1, 1, 5, 4], strides: [2, 3], pad: [[0, 0], [1, 0], [0, 2], [0, 0]] },
  { name: '7x7 stride 2 explicit pad 3, 5 channels', x: [2, 12, 12, 5], w: [7, 7, 5, 4], strides: 2, pad: [[0, 0], [3, 3], [3, 3], [0, 0]] },
  // Maps so small that some taps only meet padding (both routes leave them out).
  { name: '3x3 same on a 1x1 map (only the centre tap is live)', x: [3, 1, 1, 5], w: [3, 3, 5, 4], strides: 1, pad: 'same' },
  { name: '3x3 same on a 1x2 map', x: [2, 1, 2, 3], w: [3, 3, 3, 4], strides: 1, pad: 'same' },
  { name: '3x3 stride 2 same on a 1x1 map', x: [2, 1, 1, 3], w: [3, 3, 3, 4], strides: 2, pad: 'same' },
  { name: '5x5 same on a 2x2 map', x: [2, 2, 2, 3], w: [5, 5, 3, 2], strides: 1, pad: 'same' },
  { name: '7x7 explicit pad 3 on a 1x3 map', x: [2, 1, 3, 2], w: [7, 7, 2, 3], strides: 1, pad: [[0, 0], [3, 3], [3, 3], [0, 0]] },
];

perRoute('Conv2D gradients on wasm match cpu', () => {
  let seed = 1;
  for (const c of CONV_CASES) {
    it(c.name, async () => {
      const s = seed++;
      const inputs = [data(c.x, 100 + s), data(c.w, 200 + s)];
      await compareBackends(
        (x, w) => weightedSum(tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.strides, c.pad)),
        inputs,
        ['dx', 'dW'],
      );
    });
  }

  it('explicit padding with tf.pad then valid (3x3 stride 2)', async () => {
    const inputs = [data([2, 7, 8, 3], 301), data([3, 3, 3, 4], 302)];
    await compareBackends(
      (x, w) => weightedSum(tf.conv2d(tf.pad(x as tf.Tensor4D, [[0, 0], [1, 1], [1, 1], [0, 0]]), w as tf.Tensor4D, 2, 'valid')),
      inputs,
      ['dx', 'dW'],
    );
  });

  it('explicit asymmetric tf.pad then valid (7x7 stride 2, ResNet stem style)', async () => {
    const inputs = [data([1, 12, 12, 3], 311), data([7, 7, 3, 4], 312)];
    await compareBackends(
      (x, w) => weightedSum(tf.conv2d(tf.pad(x as tf.Tensor4D, [[0, 0], [3, 2], [2, 3], [0, 0]]), w as tf.Tensor4D, 2, 'valid')),
      inputs,
      ['dx', 'dW'],
    );
  });

  it('two stacked convs (dy of the second is the input of the first gradient)', async () => {
    const inputs = [data([2, 9, 9, 2], 321), data([3, 3, 2, 3], 322), data([3, 3, 3, 4], 323)];
    await compareBackends(
      (x, w1, w2) => weightedSum(tf.conv2d(tf.relu(tf.conv2d(x as tf.Tensor4D, w1 as tf.Tensor4D, 1, 'same')), w2 as tf.Tensor4D, 2, 'same')),
      inputs,
      ['dx', 'dW1', 'dW2'],
    );
  });

  it('fused conv2d with a bias (the tfjs-layers path under gradients): dx, dW, dbias', async () => {
    const inputs = [data([2, 6, 6, 3], 331), data([3, 3, 3, 4], 332), data([4], 333)];
    await compareBackends(
      (x, w, b) => weightedSum(tf.fused.conv2d({ x: x as tf.Tensor4D, filter: w as tf.Tensor4D, bias: b, strides: 2, pad: 'same' })),
      inputs,
      ['dx', 'dW', 'dbias'],
    );
  });

  for (const activation of ['relu', 'relu6', 'leakyrelu', 'sigmoid', 'elu'] as const) {
    it(`fused conv2d forward with a bias and ${activation} (inference)`, async () => {
      const inputs = [data([2, 5, 5, 3], 341, -4, 4), data([3, 3, 3, 6], 342, -2, 2), data([6], 343)];
      const f = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor): tf.Tensor => tf.fused.conv2d({ x: x as tf.Tensor4D, filter: w as tf.Tensor4D, bias: b, strides: 1, pad: 'same', activation, leakyreluAlpha: 0.1 });
      const ref = await valueOn('cpu', (x, w, b) => f(x!, w!, b!), inputs);
      const got = await valueOn('wasm', (x, w, b) => f(x!, w!, b!), inputs);
      assert.ok(maxAbs(ref) > 0);
      const e = maxRelErr(got, ref);
      assert.ok(e <= TOL, `max relative error ${e.toExponential(2)}`);
    });
  }
});

// ---------------------------------------------------------------------------------------------

interface DwCase {
  name: string;
  x: number[]; // [n, h, w, c]
  w: number[]; // [kh, kw, c, m]
  strides: number | [number, number];
  pad: 'same' | 'valid';
}

const DW_CASES: DwCase[] = [
  { name: 'm=1 3x3 stride 1 same', x: [2, 7, 7, 3], w: [3, 3, 3, 1], strides: 1, pad: 'same' },
  { name: 'm=1 3x3 stride 2 same, odd input', x: [2, 9, 9, 3], w: [3, 3, 3, 1], strides: 2, pad: 'same' },
  { name: 'm=1 3x3 stride 2 same, even input', x: [2, 8, 8, 3], w: [3, 3, 3, 1], strides: 2, pad: 'same' },
  { name: 'm=1 3x3 stride 1 valid', x: [2, 6, 7, 4], w: [3, 3, 4, 1], strides: 1, pad: 'valid' },
  { name: 'm=1 3x3 stride 2 valid, even input', x: [2, 8, 8, 3], w: [3, 3, 3, 1], strides: 2, pad: 'valid' },
  { name: 'm=2 3x3 stride 1 same', x: [2, 7, 7, 3], w: [3, 3, 3, 2], strides: 1, pad: 'same' },
  { name: 'm=2 3x3 stride 2 same, odd input', x: [2, 9, 9, 3], w: [3, 3, 3, 2], strides: 2, pad: 'same' },
  { name: 'm=2 3x3 stride 1 valid', x: [1, 6, 5, 3], w: [3, 3, 3, 2], strides: 1, pad: 'valid' },
  { name: 'm=2 3x3 stride 2 valid, odd input', x: [2, 9, 9, 2], w: [3, 3, 2, 2], strides: 2, pad: 'valid' },
  { name: 'm=2 5x5 stride 2 same, even input', x: [1, 10, 10, 3], w: [5, 5, 3, 2], strides: 2, pad: 'same' },
  { name: 'm=1 non-square stride [1, 2] same', x: [2, 7, 8, 3], w: [3, 3, 3, 1], strides: [1, 2], pad: 'same' },
  { name: 'm=2 non-square kernel 3x1 stride 2 valid', x: [2, 9, 6, 2], w: [3, 1, 2, 2], strides: 2, pad: 'valid' },
];

perRoute('DepthwiseConv2dNative gradients on wasm match cpu', () => {
  let seed = 1;
  for (const c of DW_CASES) {
    it(c.name, async () => {
      const s = seed++;
      const inputs = [data(c.x, 400 + s), data(c.w, 500 + s)];
      await compareBackends(
        (x, w) => weightedSum(tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.strides, c.pad)),
        inputs,
        ['dx', 'dW'],
      );
    });
  }
});

// ---------------------------------------------------------------------------------------------

/** Runs `fn` with `config` as the FusedBatchNorm gradient, then restores ours. */
function withBnGradient<T>(config: tf.GradConfig, fn: () => Promise<T>): Promise<T> {
  const quietly = (c: tf.GradConfig): void => {
    const warn = console.warn;
    console.warn = () => {}; // tfjs warns "Overriding the gradient for 'FusedBatchNorm'"
    try {
      tf.registerGradient(c);
    } finally {
      console.warn = warn;
    }
  };
  quietly(config);
  return fn().finally(() => quietly(fusedBatchNormGradConfig));
}

const EPS = 1e-3;

/** Batch norm written out in elementary ops: an autodiff reference for both gradients. */
function bnElementary(x: tf.Tensor, mean: tf.Tensor, variance: tf.Tensor, offset?: tf.Tensor, scale?: tf.Tensor): tf.Tensor {
  let y = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, EPS)));
  if (scale) y = tf.mul(y, scale);
  if (offset) y = tf.add(y, offset);
  return y;
}

interface BnCase {
  name: string;
  inputs: Data[];
  names: string[];
  /** loss with tf.batchNorm (FusedBatchNorm) */
  fused: (...ts: tf.Tensor[]) => tf.Scalar;
  /** the same loss in elementary ops */
  plain: (...ts: tf.Tensor[]) => tf.Scalar;
}

/**
 * batchNorm(x, mean, variance, offset, scale) with parameters of shape `pShape`. Offset and scale
 * are always given: without them tfjs-core cannot differentiate the op at all, whichever gradient
 * is registered (a missing scale fails in Engine.saveTensorsForBackwardMode, a missing offset in
 * the tape's getFilteredNodesXToY).
 */
function bnCase(name: string, xShape: number[], pShape: number[], seed: number, varRange: [number, number] = [0.2, 1.5]): BnCase {
  const inputs = [
    data(xShape, seed, -2, 3), data(pShape, seed + 1, -0.5, 0.5), data(pShape, seed + 2, varRange[0], varRange[1]),
    data(pShape, seed + 3, -1, 1), data(pShape, seed + 4, 0.5, 2),
  ];
  return {
    name, inputs, names: ['dx', 'dmean', 'dvariance', 'doffset', 'dscale'],
    fused: (x, m, v, o, s) => weightedSum(tf.batchNorm(x!, m!, v!, o, s, EPS), seed + 9),
    plain: (x, m, v, o, s) => weightedSum(bnElementary(x!, m!, v!, o, s), seed + 9),
  };
}

/** Training mode, as tfjs-layers does it: mean and variance from tf.moments over all but the channel axis. */
function bnMomentsCase(name: string, xShape: number[], seed: number): BnCase {
  const c = xShape[xShape.length - 1]!;
  const axes = xShape.slice(0, -1).map((_, i) => i);
  return {
    name,
    inputs: [data(xShape, seed, -2, 3), data([c], seed + 1, -1, 1), data([c], seed + 2, 0.5, 2)],
    names: ['dx', 'doffset', 'dscale'],
    fused: (x, o, s) => {
      const { mean, variance } = tf.moments(x!, axes);
      return weightedSum(tf.batchNorm(x!, mean, variance, o, s, EPS), seed + 9);
    },
    plain: (x, o, s) => {
      const { mean, variance } = tf.moments(x!, axes);
      return weightedSum(bnElementary(x!, mean, variance, o, s), seed + 9);
    },
  };
}

// NOTE: parameters shaped [1, 1, 1, C] or [1, C, 1, 1] (broadcast, rank 4) are left out: tfjs-core's
// own gradient fails on them too (it sums over the broadcast axes only when mean.rank === 1), and
// tfjs-layers passes rank-1 parameters for the channels-last batch norm the models use.
const BN_CASES: BnCase[] = [
  bnCase('4-D NHWC, per-channel parameters', [2, 3, 4, 5], [5], 600),
  bnCase('4-D NHWC, variance near zero (epsilon matters)', [2, 3, 4, 5], [5], 610, [0, 0.002]),
  bnCase('2-D [N, C] (after a dense layer)', [6, 4], [4], 620),
  bnCase('3-D [N, L, C]', [3, 5, 4], [4], 630),
  bnCase('4-D, parameters with the full shape of x', [2, 3, 2, 2], [2, 3, 2, 2], 650),
  bnMomentsCase('training mode: mean and variance from tf.moments (4-D)', [4, 5, 5, 3], 660),
  bnMomentsCase('training mode: mean and variance from tf.moments (2-D)', [8, 6], 670),
];

describe('FusedBatchNorm gradient (cpu): ours vs tfjs-core vs elementary ops', () => {
  for (const c of BN_CASES) {
    it(c.name, async () => {
      const core = await withBnGradient(CORE_BN_GRAD, () => gradsOn('cpu', c.fused, c.inputs));
      assert.equal(tf.getGradient('FusedBatchNorm'), fusedBatchNormGradConfig, 'ours is restored');
      const ours = await gradsOn('cpu', c.fused, c.inputs);
      const plain = await gradsOn('cpu', c.plain, c.inputs);
      c.names.forEach((name, i) => {
        assert.ok(maxAbs(core[i]!) > 0, `${name}: the core gradient is all zeros (test is vacuous)`);
        const eCore = maxRelErr(ours[i]!, core[i]!);
        assert.ok(eCore <= TOL, `${name}: vs tfjs-core, max relative error ${eCore.toExponential(2)} > ${TOL}`);
        const ePlain = maxRelErr(ours[i]!, plain[i]!);
        assert.ok(ePlain <= TOL, `${name}: vs elementary ops, max relative error ${ePlain.toExponential(2)} > ${TOL}`);
      });
    });
  }

});

perRoute('FusedBatchNorm gradient on wasm matches cpu', () => {
  it('per-channel and training mode', async () => {
    for (const c of [BN_CASES[0]!, BN_CASES[5]!]) await compareBackends(c.fused, c.inputs, c.names);
  });

  it('training mode on a tensor large enough for the native channel sums and element-wise ops', async () => {
    await compareBackends(bnMomentsCase('large', [4, 16, 16, 64], 680).fused, bnMomentsCase('large', [4, 16, 16, 64], 680).inputs, ['dx', 'doffset', 'dscale']);
  });
});

// ---------------------------------------------------------------------------------------------

perRoute('Identity and same-dtype Cast share data', () => {
  it('values and gradients match cpu; each tensor outlives the others; nothing leaks', async () => {
    const d = data([3, 5, 7], 720, -4, 4);
    await compareBackends((x) => weightedSum(tf.mul(tf.cast(tf.clone(x!), 'float32'), tf.clone(x!))), [d], ['dx']);
    assert.ok(await tf.setBackend('wasm'));
    const ids = tf.backend().numDataIds();
    const x = tf.tensor(d.values, d.shape);
    const [y, z, i] = [tf.clone(x), tf.cast(x, 'float32'), tf.cast(x, 'int32')];
    x.dispose();
    assert.deepEqual(Array.from(y.dataSync()), Array.from(d.values), 'the clone outlives its source');
    z.dispose();
    assert.deepEqual(Array.from(y.dataSync()), Array.from(d.values), 'and the cast of it');
    assert.deepEqual(Array.from(i.dataSync()), Array.from(d.values, (v) => Math.trunc(v) + 0), 'a real cast still converts');
    tf.dispose([y, i]);
    assert.equal(tf.backend().numDataIds(), ids, 'wasm backend data ids');
  });
});

perRoute('memory', () => {
  it('gradient calls on wasm leave no tensors or backend buffers behind', async () => {
    assert.ok(await tf.setBackend('wasm'));
    const x = tf.tensor(seeded(2 * 9 * 9 * 4, 700), [2, 9, 9, 4]) as tf.Tensor4D;
    const w = tf.tensor(seeded(3 * 3 * 4 * 5, 701), [3, 3, 4, 5]) as tf.Tensor4D;
    const dw = tf.tensor(seeded(3 * 3 * 4 * 2, 702), [3, 3, 4, 2]) as tf.Tensor4D;
    const off = tf.tensor(seeded(4, 703), [4]);
    const sc = tf.tensor(seeded(4, 704, 0.5, 2), [4]);
    const kept = [x, w, dw, off, sc];
    const step = (): void => {
      const g1 = tf.grads((a, b) => weightedSum(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same')))([x, w]);
      const g2 = tf.grads((a, b) => weightedSum(tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'valid')))([x, dw]);
      const g3 = tf.grads((a, o, s) => {
        const { mean, variance } = tf.moments(a!, [0, 1, 2]);
        return weightedSum(tf.batchNorm(a!, mean, variance, o, s, EPS));
      })([x, off, sc]);
      for (const g of [...g1, ...g2, ...g3]) g.dataSync();
      tf.dispose([...g1, ...g2, ...g3]);
    };
    try {
      step(); // first use may allocate once
      const tensorsBefore = tf.memory().numTensors;
      const buffersBefore = tf.memory().numDataBuffers;
      const idsBefore = tf.backend().numDataIds();
      for (let i = 0; i < 3; i++) step();
      assert.equal(tf.memory().numTensors, tensorsBefore, 'numTensors');
      assert.equal(tf.memory().numDataBuffers, buffersBefore, 'numDataBuffers');
      assert.equal(tf.backend().numDataIds(), idsBefore, 'wasm backend data ids');
    } finally {
      tf.dispose(kept);
    }
  });

  it('a kernel called with bare TensorInfo inputs keeps the caller\'s data and leaks nothing', async () => {
    // Backends call kernels with TensorInfos (not Tensors); withTensor wraps them.
    const xd = data([2, 6, 6, 3], 710), dyd = data([2, 3, 3, 4], 711);
    const attrs = { strides: [2, 2], pad: 'same', dataFormat: 'NHWC', dimRoundingMode: undefined, filterShape: [3, 3, 3, 4] };
    assert.ok(await tf.setBackend('cpu'));
    const ref = tf.tidy(() => {
      const out = tf.engine().runKernel('Conv2DBackpropFilter', { x: tf.tensor(xd.values, xd.shape), dy: tf.tensor(dyd.values, dyd.shape) }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
      return Float32Array.from(out.dataSync());
    });
    assert.ok(await tf.setBackend('wasm'));
    const tensorsBefore = tf.memory().numTensors;
    const idsBefore = tf.backend().numDataIds();
    const x = tf.tensor(xd.values, xd.shape);
    const dy = tf.tensor(dyd.values, dyd.shape);
    const kernel = tf.getKernel('Conv2DBackpropFilter', 'wasm')!;
    const info = (t: tf.Tensor): tf.TensorInfo => ({ dataId: t.dataId, shape: t.shape, dtype: t.dtype });
    const res = kernel.kernelFunc({
      inputs: { x: info(x), dy: info(dy) },
      attrs: attrs as unknown as tf.NamedAttrMap,
      backend: tf.backend(),
    }) as tf.TensorInfo;
    // The wasm route's kernel returns a Tensor, the native one a bare TensorInfo.
    const out = res instanceof tf.Tensor ? res : tf.engine().makeTensorFromTensorInfo(res);
    const got = Float32Array.from(out.dataSync());
    tf.dispose(out);
    const e = maxRelErr(got, ref);
    assert.ok(e <= TOL, `dW: max relative error ${e.toExponential(2)}`);
    // The inputs are intact after the wrappers were disposed.
    assert.deepEqual(Array.from(x.dataSync()), Array.from(xd.values));
    assert.deepEqual(Array.from(dy.dataSync()), Array.from(dyd.values));
    tf.dispose([x, dy]);
    assert.equal(tf.memory().numTensors, tensorsBefore, 'numTensors');
    assert.equal(tf.backend().numDataIds(), idsBefore, 'wasm backend data ids');
  });
});

// ---------------------------------------------------------------------------------------------

perRoute('a tiny conv net trains the same on cpu and wasm', () => {
  const STEPS = 4;
  const N = 8, H = 8, W = 8, C = 2, K = 3;
  const xd = data([N, H, W, C], 800);
  const labels = Array.from(seeded(N, 801, 0, K), (v) => Math.floor(v));

  function build(): tf.LayersModel {
    const init = (seed: number) => tf.initializers.glorotUniform({ seed });
    const m = tf.sequential();
    m.add(tf.layers.conv2d({ inputShape: [H, W, C], filters: 4, kernelSize: 3, padding: 'same', useBias: false, kernelInitializer: init(1) }));
    m.add(tf.layers.batchNormalization());
    m.add(tf.layers.reLU());
    m.add(tf.layers.conv2d({ filters: 6, kernelSize: 3, strides: 2, padding: 'same', kernelInitializer: init(2) }));
    m.add(tf.layers.batchNormalization());
    m.add(tf.layers.reLU());
    m.add(tf.layers.flatten());
    m.add(tf.layers.dense({ units: K, activation: 'softmax', kernelInitializer: init(3) }));
    return m;
  }

  async function train(backend: 'cpu' | 'wasm', initial: Data[] | undefined): Promise<{ losses: number[]; initial: Data[] }> {
    assert.ok(await tf.setBackend(backend));
    const model = build();
    if (initial) model.setWeights(initial.map((d) => tf.tensor(d.values, d.shape)));
    const start = model.getWeights().map((w) => ({ shape: w.shape, values: Float32Array.from(w.dataSync()) }));
    const optimizer = tf.train.adam(0.01);
    model.compile({ optimizer, loss: 'categoricalCrossentropy' });
    const x = tf.tensor(xd.values, xd.shape);
    const y = tf.oneHot(tf.tensor1d(labels, 'int32'), K);
    const losses: number[] = [];
    try {
      for (let i = 0; i < STEPS; i++) {
        const l = await model.trainOnBatch(x, y);
        losses.push(Array.isArray(l) ? l[0]! : l);
      }
    } finally {
      tf.dispose([x, y]);
      model.dispose();
      optimizer.dispose();
    }
    return { losses, initial: start };
  }

  it(`${STEPS} Adam steps give the same losses (within 1e-4)`, async () => {
    const cpu = await train('cpu', undefined);
    const wasm = await train('wasm', cpu.initial);
    // The seeded initialisers give the same weights on both backends; setWeights makes sure.
    assert.equal(wasm.initial.length, cpu.initial.length);
    wasm.initial.forEach((w, i) => assert.deepEqual(Array.from(w.values), Array.from(cpu.initial[i]!.values)));
    assert.equal(wasm.losses.length, STEPS);
    assert.ok(cpu.losses.every(Number.isFinite));
    assert.ok(new Set(cpu.losses).size > 1, `the loss should change while training: ${cpu.losses}`);
    cpu.losses.forEach((ref, i) => {
      const got = wasm.losses[i]!;
      assert.ok(Math.abs(got - ref) <= 1e-4, `step ${i}: wasm loss ${got} vs cpu ${ref}`);
    });
  });
});
