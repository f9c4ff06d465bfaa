/**
 * Training-mode batch normalisation as one kernel each way (native/batch_norm_train.cc): the
 * forward normalises with the batch's mean and biased variance and returns them (for the running
 * statistics), the backward is the closed form (Ioffe & Szegedy 2015, section 3):
 *   dx = gamma / sqrt(var + eps) * (dy - mean(dy) - xhat * mean(dy * xhat)),
 *   dgamma = sum(dy * xhat), dbeta = sum(dy), xhat = (x - mean) / sqrt(var + eps),
 * sums over every axis but the last (NHWC channels), accumulated in double precision, y and dx
 * computed in double per element and rounded once, the backward's statistics recovered in double
 * around the forward's float32 mean (test/unit/batch-norm-train.test.ts: within half an ulp of
 * the float64 definition). This replaces the composite form's ~8 forward and ~15 backward tfjs
 * ops per BatchNorm layer (src/models/layers.ts BatchNorm2d uses `batchNormTrain` where the
 * current backend has the kernel: wasm with the native addon; without it, the same algorithm in
 * JavaScript, src/engine/batch-norm-train.ts). Checked against the composite form's gradients
 * on the `cpu` backend in test/unit/kernels-native.test.ts.
 */
import * as tf from '@tensorflow/tfjs';
import type { GradConfig, KernelConfig, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs';
import type { DnnlAddon } from './dnnl.js';
import { differentiateFirstOutputOnly } from './tape.js';
import { allFloat, offsetOf, sizeOf, type KernelArgs, type WasmBackend } from './wasm-heap.js';

/** Inputs x, gamma, beta; attr epsilon; outputs [y, mean, variance (biased)]. */
export const BN_TRAIN_KERNEL = 'PipeBatchNormTrain';
/** Inputs x, dy, mean, variance, gamma; attr epsilon; outputs [dx, dgamma, dbeta]. */
export const BN_TRAIN_GRAD_KERNEL = 'PipeBatchNormTrainGrad';

/** The two wasm kernel configs (native addon). They throw on non-float32 or mis-shaped input. */
export function batchNormTrainKernelConfigs(addon: DnnlAddon): KernelConfig[] {
  const forward = ({ inputs, attrs, backend }: KernelArgs): TensorInfo[] => {
    const b = backend as WasmBackend;
    const { x, gamma, beta } = inputs as Record<string, TensorInfo>;
    const C = x!.shape[x!.shape.length - 1]!;
    if (!allFloat([x, gamma, beta]) || sizeOf(gamma!.shape) !== C || sizeOf(beta!.shape) !== C) throw new Error(`${BN_TRAIN_KERNEL}: float32 x and per-channel gamma, beta`);
    const outs = [b.makeOutput([...x!.shape], 'float32'), b.makeOutput([C], 'float32'), b.makeOutput([C], 'float32')];
    const p = [x, ...outs, gamma, beta].map((t) => offsetOf(b, t!));
    addon.batchNormTrain(b.wasm.HEAPU8.buffer as ArrayBuffer, new Float64Array([...p, sizeOf(x!.shape) / C, C, (attrs as { epsilon: number }).epsilon]));
    return outs;
  };
  const backward = ({ inputs, attrs, backend }: KernelArgs): TensorInfo[] => {
    const b = backend as WasmBackend;
    const { x, dy, mean, variance, gamma } = inputs as Record<string, TensorInfo>;
    const C = x!.shape[x!.shape.length - 1]!;
    if (!allFloat([x, dy, mean, variance, gamma])) throw new Error(`${BN_TRAIN_GRAD_KERNEL}: float32 tensors only`);
    const outs = [b.makeOutput([...x!.shape], 'float32'), b.makeOutput([C], 'float32'), b.makeOutput([C], 'float32')];
    const p = [x, dy, mean, variance, gamma, ...outs].map((t) => offsetOf(b, t!));
    addon.batchNormTrainGrad(b.wasm.HEAPU8.buffer as ArrayBuffer, new Float64Array([...p, sizeOf(x!.shape) / C, C, (attrs as { epsilon: number }).epsilon]));
    return outs;
  };
  return [
    { kernelName: BN_TRAIN_KERNEL, backendName: 'wasm', kernelFunc: forward as tf.KernelFunc },
    { kernelName: BN_TRAIN_GRAD_KERNEL, backendName: 'wasm', kernelFunc: backward as tf.KernelFunc },
  ];
}

/** The forward kernel's gradient (registered for every backend; only wasm has the kernel). */
export const batchNormTrainGradConfig: GradConfig = {
  kernelName: BN_TRAIN_KERNEL,
  inputsToSave: ['x', 'gamma'],
  outputsToSave: [false, true, true],
  gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: NamedAttrMap) => {
    const [x, gamma, mean, variance] = saved;
    // Only y is differentiated: mean and variance feed the running statistics, not the loss (./tape.ts).
    const dyY = Array.isArray(dy) ? dy[0]! : dy;
    const [dx, dgamma, dbeta] = tf.engine().runKernel(BN_TRAIN_GRAD_KERNEL, { x: x!, dy: dyY, mean: mean!, variance: variance!, gamma: gamma! }, attrs) as tf.Tensor[];
    return { x: () => dx!, gamma: () => dgamma!, beta: () => dbeta! };
  },
};

/**
 * Training-mode batch norm of x (NHWC, float32) with per-channel gamma and beta through the
 * fused kernel, when the current backend has it; undefined otherwise (the caller then uses the
 * composite form). `mean` and `variance` (biased) are the batch's, for the running statistics.
 */
export function batchNormTrain(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, epsilon: number): { y: tf.Tensor; mean: tf.Tensor1D; variance: tf.Tensor1D } | undefined {
  if (x.dtype !== 'float32' || x.rank < 2 || x.size === 0 || !tf.getKernel(BN_TRAIN_KERNEL, tf.getBackend())) return undefined;
  const outs = tf.engine().runKernel(BN_TRAIN_KERNEL, { x, gamma, beta }, { epsilon } as unknown as NamedAttrMap) as tf.Tensor[];
  differentiateFirstOutputOnly(outs);
  const [y, mean, variance] = outs;
  return { y: y!, mean: mean as tf.Tensor1D, variance: variance as tf.Tensor1D };
}
