/**
 * Training-mode batch normalisation of NHWC float32 `x` for the route without the native addon:
 * the same algorithm as the addon's kernels (native/batch_norm_train.cc; Ioffe & Szegedy 2015,
 * Algorithm 1 and the closed-form backward), in JavaScript with double-precision arithmetic:
 *   mean, biased var: per-channel sums in double (two passes);
 *   y = x * k + (beta - mean * k),  k = gamma / sqrt(var + eps), per element in double;
 *   dx = k * (dy - mean(dy) - xhat * mean(dy * xhat)), xhat = (x - mean) / sqrt(var + eps),
 *   dgamma = sum(dy * xhat), dbeta = sum(dy).
 * PyTorch's CPU kernels (ATen batch_norm_cpu_*) accumulate these sums in double as well. The
 * tfjs-op form (float32 Mean and BatchNorm kernels) leaves channel-wide errors (a float32 sum
 * in the mean, per-channel constants rounded to float32) that no later average removes: they
 * showed in the running statistics and weights of test/unit/parity.test.ts, past torch
 * float32's own distance from float64.
 */
import * as tf from '@tensorflow/tfjs';

/** Per-channel mean and biased variance of `v` (rows of C), in double. */
function moments(v: Float32Array, C: number): { mean: Float64Array; variance: Float64Array } {
  const rows = v.length / C;
  const mean = new Float64Array(C), variance = new Float64Array(C);
  for (let i = 0; i < v.length; i++) mean[i % C]! += v[i]!;
  for (let c = 0; c < C; c++) mean[c]! /= rows;
  for (let i = 0; i < v.length; i++) {
    const d = v[i]! - mean[i % C]!;
    variance[i % C]! += d * d;
  }
  for (let c = 0; c < C; c++) variance[c]! /= rows;
  return { mean, variance };
}

/**
 * y, and the batch's mean and biased variance (double, for the running statistics), with the
 * gradient of y with respect to x, gamma and beta. Reads and writes tensor data on the CPU side
 * (one copy each way, x read again by the backward rather than kept), so meant for the wasm
 * backend.
 */
export function batchNormTrainJs(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, epsilon: number): { y: tf.Tensor; mean: Float64Array; variance: Float64Array } {
  const C = x.shape[x.rank - 1]!;
  let mean: Float64Array = new Float64Array(0), variance: Float64Array = new Float64Array(0);
  const f = tf.customGrad((...args: unknown[]) => {
    const [xt, gt, bt] = args as tf.Tensor[];
    (args[3] as tf.GradSaveFunc)([xt!]);
    const xs = xt!.dataSync() as Float32Array;
    ({ mean, variance } = moments(xs, C));
    const mu = mean, invstd = variance.map((v) => 1 / Math.sqrt(v + epsilon));
    const g = gt!.dataSync(), b = bt!.dataSync();
    const k = invstd.map((s, c) => g[c]! * s);
    const shift = k.map((kc, c) => b[c]! - mu[c]! * kc);
    const y = new Float32Array(xs.length);
    for (let i = 0; i < xs.length; i++) y[i] = xs[i]! * k[i % C]! + shift[i % C]!;
    return {
      value: tf.tensor(y, xt!.shape, 'float32'),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const d = dy.dataSync() as Float32Array, rows = d.length / C, xv = saved[0]!.dataSync() as Float32Array;
        const sdy = new Float64Array(C), sdyx = new Float64Array(C);
        for (let i = 0; i < d.length; i++) {
          sdy[i % C]! += d[i]!;
          sdyx[i % C]! += d[i]! * (xv[i]! - mu[i % C]!);
        }
        const kk = k.map((kc, c) => (kc * invstd[c]! * invstd[c]! * sdyx[c]!) / rows), bb = k.map((kc, c) => (kc * sdy[c]!) / rows);
        const dx = new Float32Array(d.length);
        for (let i = 0; i < d.length; i++) {
          const c = i % C;
          dx[i] = k[c]! * d[i]! - kk[c]! * (xv[i]! - mu[c]!) - bb[c]!;
        }
        return [tf.tensor(dx, xt!.shape, 'float32'), tf.tensor1d(Float32Array.from(sdyx, (s, c) => s * invstd[c]!)).reshape(gt!.shape), tf.tensor1d(Float32Array.from(sdy)).reshape(bt!.shape)];
      },
    };
  });
  const y = f(x, gamma, beta);
  return { y, mean, variance };
}
