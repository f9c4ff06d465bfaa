/**
 * Helpers of the kernel tests (kernels.test.ts, kernels-native.test.ts): seeded inputs, the
 * relative-error measure, and gradients of a loss computed on the `cpu` backend (the reference:
 * tfjs's pure-JS kernels) and on `wasm` (pipe's kernels, whichever route is registered).
 */
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import type { DnnlStatus } from '../../src/engine/native/dnnl.js';

/**
 * The `skip` option of a test or suite that needs the native addon. Off CI, when the addon is not
 * there, one line saying why (the skip report prints it); under `CI=true` never a skip: CI builds
 * the addon and must test it, so such a suite runs and fails in `assertNative`, its first hook.
 */
export function nativeSkip(status: DnnlStatus): string | false {
  if (status.addon || process.env['CI'] === 'true') return false;
  return `native addon unavailable (${status.reason})`;
}

/** Fails, with the reason, when the addon did not load (the first hook of every native suite). */
export function assertNative(status: DnnlStatus): void {
  assert.ok(status.addon, `the native addon is required here (CI=true) but did not load: ${status.addon ? '' : status.reason}`);
}

/** Deterministic uniform numbers in [lo, hi) from a 32-bit LCG (Numerical Recipes constants). */
export function seeded(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = (seed * 2654435761) >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = lo + (hi - lo) * (s / 4294967296);
  }
  return out;
}

export const sizeOf = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

/** An input as plain data, so that it can be rebuilt on either backend. */
export interface Data { shape: number[]; values: Float32Array }
export const data = (shape: number[], seed: number, lo = -1, hi = 1): Data => ({ shape, values: seeded(sizeOf(shape), seed, lo, hi) });

/**
 * max |a - b| / max(max |b|, 1e-6): the error relative to the reference's largest magnitude.
 * Infinity when a has a non-finite value or the lengths differ.
 */
export function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let maxB = 0, maxD = 0;
  for (let i = 0; i < a.length; i++) {
    const ai = a[i]!, bi = b[i]!;
    if (!Number.isFinite(ai) || !Number.isFinite(bi)) return Infinity;
    maxB = Math.max(maxB, Math.abs(bi));
    maxD = Math.max(maxD, Math.abs(ai - bi));
  }
  return maxD / Math.max(maxB, 1e-6);
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/**
 * Gradients of `loss(...inputs)` w.r.t. every input on `backend`, read back as Float32Arrays.
 * Every tensor made here is disposed.
 */
export async function gradsOn(backend: 'cpu' | 'wasm', loss: (...ts: tf.Tensor[]) => tf.Scalar, inputs: Data[]): Promise<Float32Array[]> {
  assert.ok(await tf.setBackend(backend), `${backend} backend did not initialise`);
  const ts = inputs.map((d) => tf.tensor(d.values, d.shape));
  try {
    const gs = tf.grads(loss)(ts);
    const out = gs.map((g, i) => {
      assert.deepEqual(g.shape, inputs[i]!.shape, `gradient ${i} has the input's shape`);
      return Float32Array.from(g.dataSync());
    });
    tf.dispose(gs);
    return out;
  } finally {
    tf.dispose(ts);
  }
}

/** `fn(...inputs)` on `backend`, read back. */
export async function valueOn(backend: 'cpu' | 'wasm', fn: (...ts: tf.Tensor[]) => tf.Tensor, inputs: Data[]): Promise<Float32Array> {
  assert.ok(await tf.setBackend(backend), `${backend} backend did not initialise`);
  const ts = inputs.map((d) => tf.tensor(d.values, d.shape));
  try {
    const y = fn(...ts);
    const out = Float32Array.from(y.dataSync());
    y.dispose();
    return out;
  } finally {
    tf.dispose(ts);
  }
}

/** sum(y * r), r a fixed pseudo-random tensor of y's shape, so that dy is not all ones. */
export function weightedSum(y: tf.Tensor, seed = 99): tf.Scalar {
  return tf.sum(tf.mul(y, tf.tensor(seeded(y.size, seed), y.shape)));
}

/** The error bound every registered kernel meets against the cpu backend. */
export const TOL = 1e-5;

/** Compares wasm's gradients with cpu's for the same loss and inputs. */
export async function compareBackends(loss: (...ts: tf.Tensor[]) => tf.Scalar, inputs: Data[], names: string[], tol = TOL): Promise<void> {
  const ref = await gradsOn('cpu', loss, inputs);
  const got = await gradsOn('wasm', loss, inputs);
  names.forEach((name, i) => {
    assert.ok(maxAbs(ref[i]!) > 0, `${name}: the reference gradient is all zeros (test is vacuous)`);
    const e = maxRelErr(got[i]!, ref[i]!);
    assert.ok(e <= tol, `${name}: max relative error ${e.toExponential(2)} > ${tol}`);
  });
}
