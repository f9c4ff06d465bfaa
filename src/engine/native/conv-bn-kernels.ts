/**
 * Fused convolution kernels of the native route, used by the fused forward pass of ResNet-style
 * nets (src/models/fused-forward.ts) so that a conv -> BatchNorm -> ReLU layer is one tfjs op
 * instead of three to five each way:
 *
 * - `PipeConv2DAdd` (inference): y = act(conv(x, w) + bias + residual), one oneDNN convolution
 *   with a sum post-op (native/conv.cc); with the BatchNorm folded into w and bias by the caller,
 *   this is a whole residual block's second layer (conv, BN, add, ReLU). act: linear or relu.
 * - `PipeConvBnTrain` (training): z = conv(x, w), y = act(bn(z) + residual) with z's batch mean
 *   and biased variance (returned too, for the running statistics); residual optional.
 *   Its gradient is `PipeConvBnTrainGrad` (ReLU mask, the closed-form BatchNorm backward of
 *   batch-norm-train.ts, the filter gradient; native/conv_bn.cc) plus, only when the input needs
 *   a gradient, the backward-data conv (`Conv2DBackpropInput`) of the BatchNorm's input gradient.
 *   Each step runs the same native code as the separate kernels, so the values are the separate
 *   ops' (checked in test/unit/kernels-native.test.ts against the composite form on `cpu`).
 *
 * Semantics are tfjs's: NHWC activations, HWIO filters, TF padding ('same', 'valid' or explicit
 * [[0, 0], [t, b], [l, r], [0, 0]]), no dilation. The kernels exist only on the native route;
 * callers check `tf.getKernel(name, backend)` and otherwise use the separate ops.
 */
import * as tf from '@tensorflow/tfjs';
import type { GradConfig, KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs';
import type { DnnlAddon } from './dnnl.js';
import { ACTIVATIONS, convParams, filterKey, type ConvAttrs } from './conv-kernels.js';
import { differentiateFirstOutputOnly } from './tape.js';
import { allFloat, nativeFirst, offsetOf, sizeOf, withOutput, type KernelArgs, type WasmBackend } from './wasm-heap.js';

/** Inputs x, filter, bias (optional), residual; attrs as FusedConv2D (activation linear or relu); output y. */
export const CONV_ADD_KERNEL = 'PipeConv2DAdd';
/** Inputs x, filter, gamma, beta, residual (optional); attrs ConvBnAttrs; outputs [y, z, mean, variance]. */
export const CONV_BN_TRAIN_KERNEL = 'PipeConvBnTrain';
/** Inputs x, filter, z, y, dy, mean, variance, gamma; attrs ConvBnAttrs; outputs [dz, dfilter, dgamma, dbeta, dresidual (when attrs.residual)]. */
export const CONV_BN_TRAIN_GRAD_KERNEL = 'PipeConvBnTrainGrad';

/** Attributes of the training kernels: the conv's, BatchNorm's epsilon, the ReLU, and whether a residual is added. */
export interface ConvBnAttrs extends ConvAttrs {
  epsilon: number;
  relu: boolean;
  residual: boolean;
}

/** Calls the kernel `name` registered for wasm (the fallback of `PipeConv2DAdd`). */
function runRegistered(name: string, backend: unknown, inputs: Record<string, TensorInfo | undefined>, attrs?: object): TensorInfo {
  const k = tf.getKernel(name, 'wasm');
  if (!k) throw new Error(`${CONV_ADD_KERNEL}: no wasm kernel ${name}`);
  return (k.kernelFunc as KernelFunc)({ inputs: inputs as tf.NamedTensorInfoMap, attrs: attrs as NamedAttrMap, backend: backend as tf.KernelBackend }) as TensorInfo;
}

function convAddKernel(addon: DnnlAddon): KernelConfig {
  const refused = new Set<string>();
  // The separate ops, for what the addon refuses: FusedConv2D (bias), Add, Relu.
  const fallback = ({ inputs, attrs, backend }: KernelArgs): TensorInfo => {
    const { x, filter, bias, residual } = inputs as Record<string, TensorInfo | undefined>;
    const b = backend as WasmBackend;
    const t = runRegistered('FusedConv2D', backend, { x, filter, bias }, { ...attrs, activation: 'linear' });
    const s = runRegistered('Add', backend, { a: t, b: residual });
    b.disposeData(t.dataId);
    if ((attrs as unknown as ConvAttrs).activation !== 'relu') return s;
    const y = runRegistered('Relu', backend, { x: s });
    b.disposeData(s.dataId);
    return y;
  };
  const native = nativeFirst(CONV_ADD_KERNEL, { kernelName: CONV_ADD_KERNEL, backendName: 'wasm', kernelFunc: fallback as KernelFunc }, (args: KernelArgs): TensorInfo | null => {
    const b = args.backend as WasmBackend;
    const a = args.attrs as unknown as ConvAttrs;
    const { x, filter, bias, residual } = args.inputs as Record<string, TensorInfo | undefined>;
    const act = ACTIVATIONS[a.activation ?? 'linear'];
    const conv = convParams(x!.shape, filter!.shape, a);
    if (!conv || act === undefined || act > 1 || !allFloat([x, filter, bias, residual])) return null;
    const h = conv.head;
    const outShape = [h[0]!, h[7]!, h[8]!, h[6]!];
    if ((bias && sizeOf(bias.shape) !== h[6]) || sizeOf(residual!.shape) !== sizeOf(outShape)) return null;
    const key = `${h.join(',')}:${conv.tail.join(',')}:${bias ? 1 : 0}:${act}`;
    return withOutput(b, outShape, refused, key, (heap, outOff) => {
      const p = [...h, offsetOf(b, x!), offsetOf(b, filter!), outOff, bias ? offsetOf(b, bias) : -1, act, 0, ...conv.tail, filterKey(b, filter!), offsetOf(b, residual!)];
      addon.conv(0, heap, new Float64Array(p));
    });
  });
  return native;
}

/** The three wasm kernel configs (native addon). The training kernels throw on what the addon cannot take. */
export function convBnKernelConfigs(addon: DnnlAddon): KernelConfig[] {
  const forward = ({ inputs, attrs, backend }: KernelArgs): TensorInfo[] => {
    const b = backend as WasmBackend;
    const a = attrs as unknown as ConvBnAttrs;
    const { x, filter, gamma, beta, residual } = inputs as Record<string, TensorInfo | undefined>;
    const conv = convParams(x!.shape, filter!.shape, a);
    if (!conv || !allFloat([x, filter, gamma, beta, residual])) throw new Error(`${CONV_BN_TRAIN_KERNEL}: float32 NHWC input, no dilation`);
    const h = conv.head;
    const C = h[6]!, outShape = [h[0]!, h[7]!, h[8]!, C];
    if (sizeOf(gamma!.shape) !== C || sizeOf(beta!.shape) !== C || (residual && sizeOf(residual.shape) !== sizeOf(outShape))) throw new Error(`${CONV_BN_TRAIN_KERNEL}: per-channel gamma, beta and a residual of the output's shape`);
    const outs = [b.makeOutput(outShape, 'float32'), b.makeOutput(outShape, 'float32'), b.makeOutput([C], 'float32'), b.makeOutput([C], 'float32')];
    const [y, z, mean, variance] = outs.map((t) => offsetOf(b, t));
    const off = (t: TensorInfo | undefined): number => (t ? offsetOf(b, t) : -1);
    const p = [...h, off(x), off(filter), z!, -1, 0, 0, ...conv.tail, -1, y!, mean!, variance!, off(gamma), off(beta), off(residual), a.relu ? 1 : 0, a.epsilon];
    try {
      addon.convBnTrain(b.wasm.HEAPU8.buffer as ArrayBuffer, new Float64Array(p));
    } catch (e) {
      outs.forEach((t) => b.disposeData(t.dataId));
      throw e;
    }
    return outs;
  };
  const backward = ({ inputs, attrs, backend }: KernelArgs): TensorInfo[] => {
    const b = backend as WasmBackend;
    const a = attrs as unknown as ConvBnAttrs;
    const { x, filter, z, y, dy, mean, variance, gamma } = inputs as Record<string, TensorInfo>;
    const conv = convParams(x!.shape, filter!.shape, a);
    if (!conv || !allFloat([x, filter, z, y, dy, mean, variance, gamma])) throw new Error(`${CONV_BN_TRAIN_GRAD_KERNEL}: float32 NHWC input, no dilation`);
    const C = conv.head[6]!;
    const outs = [b.makeOutput([...z!.shape], 'float32'), b.makeOutput([...filter!.shape], 'float32'), b.makeOutput([C], 'float32'), b.makeOutput([C], 'float32')];
    if (a.residual) outs.push(b.makeOutput([...z!.shape], 'float32'));
    const [dz, dw, dgamma, dbeta, dres] = outs.map((t) => offsetOf(b, t));
    const off = (t: TensorInfo): number => offsetOf(b, t);
    const p = [...conv.head, off(x!), off(filter!), dz!, -1, 0, 0, ...conv.tail, -1, off(z!), off(y!), off(dy!), off(mean!), off(variance!), off(gamma!), a.epsilon, a.relu ? 1 : 0, dres ?? -1, dw!, dgamma!, dbeta!];
    try {
      addon.convBnTrainGrad(b.wasm.HEAPU8.buffer as ArrayBuffer, new Float64Array(p));
    } catch (e) {
      outs.forEach((t) => b.disposeData(t.dataId));
      throw e;
    }
    return outs;
  };
  return [
    convAddKernel(addon),
    { kernelName: CONV_BN_TRAIN_KERNEL, backendName: 'wasm', kernelFunc: forward as KernelFunc },
    { kernelName: CONV_BN_TRAIN_GRAD_KERNEL, backendName: 'wasm', kernelFunc: backward as KernelFunc },
  ];
}

/**
 * `PipeConvBnTrain`'s gradient (registered for every backend; only wasm has the kernel). Only y
 * is differentiated: z is saved for the backward pass, mean and variance feed the running
 * statistics (`convBnTrain` tells the tape so: ./tape.ts). The input gradient is computed only when asked for (a net's first conv has none).
 */
export const convBnTrainGradConfig: GradConfig = {
  kernelName: CONV_BN_TRAIN_KERNEL,
  inputsToSave: ['x', 'filter', 'gamma'],
  outputsToSave: [true, true, true, true],
  gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: NamedAttrMap) => {
    const [x, filter, gamma, y, z, mean, variance] = saved as tf.Tensor[];
    const a = attrs as unknown as ConvBnAttrs;
    const dyY = Array.isArray(dy) ? dy[0]! : dy;
    const [dz, dw, dgamma, dbeta, dres] = tf.engine().runKernel(CONV_BN_TRAIN_GRAD_KERNEL, { x: x!, filter: filter!, z: z!, y: y!, dy: dyY, mean: mean!, variance: variance!, gamma: gamma! }, attrs) as tf.Tensor[];
    const grads: Record<string, () => tf.Tensor> = {
      x: () => tf.engine().runKernel('Conv2DBackpropInput', { dy: dz!, filter: filter! }, { strides: a.strides, pad: a.pad, dataFormat: 'NHWC', dimRoundingMode: a.dimRoundingMode, inputShape: x!.shape } as unknown as NamedAttrMap) as tf.Tensor,
      filter: () => dw!,
      gamma: () => dgamma!,
      beta: () => dbeta!,
    };
    if (a.residual) grads['residual'] = () => dres!;
    return grads;
  },
};

/** What `convBnTrain` returns: the layer's output, and the batch statistics for the running ones. */
export interface ConvBnTrainResult {
  y: tf.Tensor4D;
  mean: tf.Tensor1D;
  /** Biased batch variance. */
  variance: tf.Tensor1D;
}

/**
 * act(bn(conv(x, filter)) + residual) in training mode through `PipeConvBnTrain`, when the
 * current backend has it (the native route); undefined otherwise.
 * @param x NHWC float32. @param filter HWIO. @param pad TF padding ('same', 'valid' or explicit NHWC pairs).
 */
export function convBnTrain(
  x: tf.Tensor4D, filter: tf.Tensor4D, gamma: tf.Tensor, beta: tf.Tensor,
  o: { strides: [number, number]; pad: ConvAttrs['pad']; epsilon: number; relu: boolean; residual?: tf.Tensor4D },
): ConvBnTrainResult | undefined {
  if (x.dtype !== 'float32' || x.size === 0 || !tf.getKernel(CONV_BN_TRAIN_KERNEL, tf.getBackend())) return undefined;
  const attrs: ConvBnAttrs = { strides: o.strides, pad: o.pad, dataFormat: 'NHWC', dilations: 1, epsilon: o.epsilon, relu: o.relu, residual: !!o.residual };
  const inputs: Record<string, tf.Tensor> = { x, filter, gamma, beta };
  if (o.residual) inputs['residual'] = o.residual;
  const outs = tf.engine().runKernel(CONV_BN_TRAIN_KERNEL, inputs, attrs as unknown as NamedAttrMap) as tf.Tensor[];
  differentiateFirstOutputOnly(outs);
  const [y, , mean, variance] = outs;
  return { y: y as tf.Tensor4D, mean: mean as tf.Tensor1D, variance: variance as tf.Tensor1D };
}

/**
 * act(conv(x, filter) + bias + residual) for inference: one `PipeConv2DAdd` where the current
 * backend has it, else the separate ops (tf.fused.conv2d, add, relu). No gradient.
 */
export function convAdd(
  x: tf.Tensor4D, filter: tf.Tensor4D, bias: tf.Tensor | undefined, residual: tf.Tensor4D,
  o: { strides: [number, number]; pad: ConvAttrs['pad']; relu: boolean },
): tf.Tensor4D {
  if (x.dtype === 'float32' && tf.getKernel(CONV_ADD_KERNEL, tf.getBackend())) {
    const inputs: Record<string, tf.Tensor> = { x, filter, residual };
    if (bias) inputs['bias'] = bias;
    return tf.engine().runKernel(CONV_ADD_KERNEL, inputs, { strides: o.strides, pad: o.pad, dataFormat: 'NHWC', dilations: 1, activation: o.relu ? 'relu' : 'linear' } as unknown as NamedAttrMap) as tf.Tensor4D;
  }
  return tf.tidy(() => {
    const s = tf.add(tf.fused.conv2d({ x, filter, strides: o.strides, pad: o.pad as 'same', bias }), residual) as tf.Tensor4D;
    return o.relu ? tf.relu(s) : s;
  });
}
