/**
 * Training-mode BatchNorm2d against float64 arithmetic worked out here (the definition: per-channel
 * batch mean and biased variance; y = (x - mean) / sqrt(var + eps) * gamma + beta; the closed-form
 * gradient), on each kernel route: `native` (native/batch_norm_train.cc) and `wasm`
 * (src/engine/batch-norm-train.ts). Both accumulate in double and do the per-element arithmetic in
 * double, so every output comes out as the float32 rounding of its float64 value: within half a
 * unit in the last place (ulp); the running statistics on the native route within one ulp (the
 * addon hands the batch's moments over as float32, so they are rounded twice). Float32 statistics (a float32 sum in the mean), per-channel
 * constants rounded to float32, or a backward pass reading the float32 mean instead, put every
 * element of a channel off by the same few ulps (dgamma: 96 ulps here), an error that no later
 * average removes (test/unit/parity.test.ts saw it in the running statistics and weights).
 * The input has channel means far from zero (up to 40, and 0.25 with spread 0.01) and unequal
 * scales, so that centring matters. And for inference, BatchNorm folded into the conv before it
 * (src/models/fused-forward.ts): each folded weight is w * s rounded once (s rounded to float32
 * first scaled every weight of an output channel by the same error; the parity test saw it).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initEngine } from '../../src/engine/backend.js';
import { kernelRoute, setKernelRoute, type KernelRoute } from '../../src/engine/kernels/register.js';
import { fusedApply } from '../../src/models/fused-forward.js';
import { BatchNorm2d } from '../../src/models/layers.js';
import { seeded } from './kernel-helpers.js';

const [N, H, W, C] = [8, 16, 16, 5];
const EPS = 1e-5;
const MOMENTUM = 0.1;
const rows = N * H * W;
/** x[r, c] = centre_c + spread_c * u, u uniform in [-1, 1). */
const x32 = ((): Float32Array => {
  const u = seeded(rows * C, 7), centre = [3, -7.5, 40, 0.25, 12], spread = [1, 0.3, 4, 0.01, 2];
  return Float32Array.from(u, (v, i) => centre[i % C]! + spread[i % C]! * v);
})();
const gamma = Float32Array.from(seeded(C, 8, 0.5, 1.5));
const beta = Float32Array.from(seeded(C, 9, -0.5, 0.5));
/** The loss is sum(y * w), so dy = w. */
const w32 = seeded(rows * C, 10);
const run0 = Float32Array.from(seeded(C, 11, -0.5, 0.5));
const runVar0 = Float32Array.from(seeded(C, 12, 0.8, 1.2));

/** The float64 definition. */
function reference(): Record<'y' | 'dx' | 'dgamma' | 'dbeta' | 'movingMean' | 'movingVar', Float64Array> {
  const mean = new Float64Array(C), variance = new Float64Array(C);
  for (let i = 0; i < x32.length; i++) mean[i % C]! += x32[i]! / rows;
  for (let i = 0; i < x32.length; i++) variance[i % C]! += (x32[i]! - mean[i % C]!) ** 2 / rows;
  const invstd = variance.map((v) => 1 / Math.sqrt(v + EPS));
  const xhat = Float64Array.from(x32, (v, i) => (v - mean[i % C]!) * invstd[i % C]!);
  const dbeta = new Float64Array(C), dgamma = new Float64Array(C);
  for (let i = 0; i < x32.length; i++) {
    dbeta[i % C]! += w32[i]!;
    dgamma[i % C]! += w32[i]! * xhat[i]!;
  }
  return {
    y: xhat.map((v, i) => v * gamma[i % C]! + beta[i % C]!),
    dx: xhat.map((v, i) => { const c = i % C; return gamma[c]! * invstd[c]! * (w32[i]! - dbeta[c]! / rows - v * dgamma[c]! / rows); }),
    dgamma,
    dbeta,
    movingMean: mean.map((m, c) => MOMENTUM * m + (1 - MOMENTUM) * run0[c]!),
    movingVar: variance.map((v, c) => MOMENTUM * v * (rows / (rows - 1)) + (1 - MOMENTUM) * runVar0[c]!),
  };
}

/** max over elements of |got - want| in ulps of float32 at want. */
function ulpErr(got: ArrayLike<number>, want: Float64Array): number {
  assert.equal(got.length, want.length);
  let e = 0;
  for (let i = 0; i < want.length; i++) {
    const ulp = 2 ** (Math.floor(Math.log2(Math.abs(want[i]!))) - 23);
    e = Math.max(e, Math.abs(got[i]! - want[i]!) / ulp);
  }
  return e;
}

/** One training-mode call of BatchNorm2d on the current route: y, dx, dgamma, dbeta and the running statistics after it. */
function ours(): Record<'y' | 'dx' | 'dgamma' | 'dbeta' | 'movingMean' | 'movingVar', Float32Array> {
  const layer = new BatchNorm2d({ momentum: MOMENTUM, epsilon: EPS });
  layer.build([N, H, W, C]);
  layer.setWeights([tf.tensor1d(gamma), tf.tensor1d(beta), tf.tensor1d(run0), tf.tensor1d(runVar0)]);
  const x = tf.variable(tf.tensor4d(x32, [N, H, W, C]));
  const w = tf.tensor4d(w32, [N, H, W, C]);
  const [g, b] = layer.trainableWeights.map((v) => v.read() as tf.Variable);
  let y!: Float32Array;
  const { grads } = tf.variableGrads(() => {
    const out = layer.apply(x, { training: true }) as tf.Tensor;
    y = out.dataSync() as Float32Array;
    return tf.sum(tf.mul(out, w));
  }, [x, g!, b!]);
  const [, , mm, mv] = layer.getWeights().map((t) => t.dataSync() as Float32Array);
  const out = { y, dx: grads[x.name]!.dataSync() as Float32Array, dgamma: grads[g!.name]!.dataSync() as Float32Array, dbeta: grads[b!.name]!.dataSync() as Float32Array, movingMean: mm!, movingVar: mv! };
  tf.dispose([x, w, ...Object.values(grads)]);
  return out;
}

describe('training-mode BatchNorm2d: float32 roundings of the float64 definition', async () => {
  await initEngine('wasm');
  const routes: KernelRoute[] = kernelRoute()!.route === 'native' ? ['native', 'wasm'] : ['wasm'];
  const want = reference();
  for (const route of routes) {
    it(`${route} route: y, dx, dgamma, dbeta within 0.5 ulp, the running statistics within ${route === 'native' ? 1 : 0.5}`, () => {
      setKernelRoute(route);
      try {
        const got = ours();
        // 0.5 ulp, plus what double arithmetic in another order can move a value lying on a tie.
        for (const k of ['y', 'dx', 'dgamma', 'dbeta', 'movingMean', 'movingVar'] as const) {
          const e = ulpErr(got[k], want[k]), bound = route === 'native' && k.startsWith('moving') ? 1 : 0.5 + 1e-6;
          assert.ok(e <= bound, `${k}: ${e.toFixed(3)} ulp from the float64 value`);
        }
      } finally {
        setKernelRoute('auto');
      }
    });
  }
});

describe('BatchNorm folded into a conv for inference (fused-forward)', () => {
  it('the folded filter is w * gamma / sqrt(var + eps) rounded once, on each route', async () => {
    await initEngine('wasm');
    const routes: KernelRoute[] = kernelRoute()!.route === 'native' ? ['native', 'wasm'] : ['wasm'];
    // A 1x1 conv of one input channel into O channels, then BatchNorm with mean 0 and beta 0, so
    // that on an input of 1 the output is exactly the folded filter (one product, no bias).
    const O = 64;
    const w = seeded(O, 13), g = seeded(O, 14, 0.5, 1.5), v = seeded(O, 15, 0.2, 3);
    const input = tf.input({ shape: [1, 1, 1] });
    const conv = tf.layers.conv2d({ filters: O, kernelSize: 1, useBias: false, name: 'conv' });
    const bn = new BatchNorm2d({ epsilon: EPS, name: 'bn' });
    const model = tf.model({ inputs: input, outputs: bn.apply(conv.apply(input)) as tf.SymbolicTensor });
    conv.setWeights([tf.tensor4d(w, [1, 1, 1, O])]);
    bn.setWeights([tf.tensor1d(g), tf.tensor1d(new Float32Array(O)), tf.tensor1d(new Float32Array(O)), tf.tensor1d(v)]);
    const want = Float32Array.from(w, (wo, o) => wo * (g[o]! / Math.sqrt(v[o]! + EPS)));
    for (const route of routes) {
      setKernelRoute(route);
      try {
        const y = fusedApply(model, tf.ones([1, 1, 1, 1]), false);
        const got = y.dataSync();
        y.dispose();
        const off = [...got].map((gv, o) => (gv === want[o] ? -1 : o)).filter((o) => o >= 0);
        assert.deepEqual(off, [], `${route} route: channels whose folded weight is not the once-rounded product: ${off.join(', ')}`);
      } finally {
        setKernelRoute('auto');
      }
    }
  });
});
