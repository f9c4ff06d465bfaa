/**
 * wasm-backend kernels that hand large element-wise ops, reductions over all but the last axis
 * (BatchNorm's batch statistics, bias gradients) and the max-pool gradient to the native addon,
 * which runs them on every core: `Add`, `Sub`, `Multiply`, `RealDiv`, `Sqrt`, `Square`, `Sum`,
 * `Mean`, `MaxPoolGrad`, `FusedBatchNorm` (per-channel statistics). Tensors under MIN_SIZE elements, other dtypes and broadcasts other than
 * same-shape, scalar or a trailing-axes vector stay on the kernel each replaces (wasm's own):
 * there the call overhead would cost more than the second core gains.
 */
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs';
import type { DnnlAddon } from './dnnl.js';
import { allFloat, nativeFirst, offsetOf, sizeOf, withOutput, type KernelArgs, type WasmBackend } from './wasm-heap.js';

/** Smallest output (elements) sent to the addon. */
export const MIN_SIZE = 16384;

const BINARY: Record<string, number> = { Add: 0, Sub: 1, Multiply: 2, RealDiv: 3 };
const UNARY: Record<string, number> = { Sqrt: 0, Square: 1 };

/** True when `small`, without its leading 1s, is the trailing part of `big`. */
function isTrailing(small: readonly number[], big: readonly number[]): boolean {
  const s = small.slice(small.findIndex((d) => d !== 1));
  if (small.every((d) => d === 1) || s.length > big.length) return false;
  return s.every((d, i) => d === big[big.length - s.length + i]);
}

/** [mode, inner] of pipe_dnnl's binary op (native/native.h), or null for other broadcasts. */
export function broadcastMode(aShape: readonly number[], bShape: readonly number[], outShape: readonly number[]): [number, number] | null {
  const [na, nb, n] = [sizeOf(aShape), sizeOf(bShape), sizeOf(outShape)];
  if (na === n && nb === n) return [0, n];
  if (na === 1 && nb === n) return [1, 1];
  if (nb === 1 && na === n) return [2, 1];
  if (na === n && isTrailing(bShape, outShape)) return [3, nb];
  if (nb === n && isTrailing(aShape, outShape)) return [4, na];
  return null;
}

function binaryKernel(name: string, addon: DnnlAddon, fallback: KernelConfig | undefined): KernelConfig {
  const op = BINARY[name]!;
  const refused = new Set<string>();
  return nativeFirst(name, fallback, ({ inputs, backend }: KernelArgs): TensorInfo | null => {
    const b = backend as WasmBackend;
    const { a, b: bb } = inputs as { a: TensorInfo; b: TensorInfo };
    if (!allFloat([a, bb])) return null;
    const outShape = tf.backend_util.assertAndGetBroadcastShape(a.shape, bb.shape);
    const n = sizeOf(outShape);
    const mode = n >= MIN_SIZE ? broadcastMode(a.shape, bb.shape, outShape) : null;
    if (!mode) return null;
    return withOutput(b, outShape, refused, `${name}:${mode.join(',')}`, (heap, out) => {
      addon.binary(heap, new Float64Array([op, mode[0], offsetOf(b, a), offsetOf(b, bb), out, n, mode[1]]));
    });
  });
}

function unaryKernel(name: string, addon: DnnlAddon, fallback: KernelConfig | undefined): KernelConfig {
  const op = UNARY[name]!;
  const refused = new Set<string>();
  return nativeFirst(name, fallback, ({ inputs, backend }: KernelArgs): TensorInfo | null => {
    const b = backend as WasmBackend;
    const x = inputs['x']!;
    const n = sizeOf(x.shape);
    if (!allFloat([x]) || n < MIN_SIZE) return null;
    return withOutput(b, [...x.shape], refused, `${n}`, (heap, out) => addon.unary(heap, new Float64Array([op, offsetOf(b, x), out, n])));
  });
}

/** Sum or Mean over every axis but the last (any other reduction stays on wasm). */
function reduceKernel(name: 'Sum' | 'Mean', addon: DnnlAddon, fallback: KernelConfig | undefined): KernelConfig {
  const refused = new Set<string>();
  return nativeFirst(name, fallback, ({ inputs, attrs, backend }: KernelArgs): TensorInfo | null => {
    const b = backend as WasmBackend;
    const x = inputs['x']!;
    const { axis, keepDims } = attrs as unknown as { axis: number | number[]; keepDims: boolean };
    const axes = tf.util.parseAxisParam(axis, x.shape).sort((p, q) => p - q);
    const r = x.shape.length;
    if (!allFloat([x]) || r < 2 || sizeOf(x.shape) < MIN_SIZE || axes.length !== r - 1 || axes.some((v, i) => v !== i)) return null;
    const cols = x.shape[r - 1]!, rows = sizeOf(x.shape) / cols;
    const outShape = keepDims ? [...Array<number>(r - 1).fill(1), cols] : [cols];
    return withOutput(b, outShape, refused, `${rows},${cols}`, (heap, out) => addon.reduceRows(heap, new Float64Array([name === 'Mean' ? 1 : 0, offsetOf(b, x), out, rows, cols])));
  });
}

function maxPoolGradKernel(addon: DnnlAddon, fallback: KernelConfig | undefined): KernelConfig {
  const refused = new Set<string>();
  return nativeFirst('MaxPoolGrad', fallback, ({ inputs, attrs, backend }: KernelArgs): TensorInfo | null => {
    const b = backend as WasmBackend;
    const { dy, input } = inputs as { dy: TensorInfo; input: TensorInfo };
    const a = attrs as unknown as { filterSize: number | [number, number]; strides: number | [number, number]; pad: 'valid' | 'same' | number; dimRoundingMode?: 'floor' | 'round' | 'ceil' };
    if (!allFloat([dy, input])) return null;
    const c = tf.backend_util.computePool2DInfo(input.shape as [number, number, number, number], a.filterSize, a.strides, 1, a.pad, a.dimRoundingMode);
    const p = [c.batchSize, c.inHeight, c.inWidth, c.inChannels, c.outHeight, c.outWidth, c.filterHeight, c.filterWidth, c.strideHeight, c.strideWidth, c.padInfo.top, c.padInfo.left];
    return withOutput(b, [...input.shape], refused, `mpg:${p.join(',')}`, (heap, out) => addon.maxPoolGrad(heap, new Float64Array([...p, offsetOf(b, input), offsetOf(b, dy), out])));
  });
}

/** Batch norm with per-channel (or scalar) statistics and parameters over the last axis. */
function batchNormKernel(addon: DnnlAddon, fallback: KernelConfig | undefined): KernelConfig {
  const refused = new Set<string>();
  return nativeFirst('FusedBatchNorm', fallback, ({ inputs, attrs, backend }: KernelArgs): TensorInfo | null => {
    const b = backend as WasmBackend;
    const { x, mean, variance, offset, scale } = inputs as Record<string, TensorInfo | undefined>;
    const eps = (attrs as unknown as { varianceEpsilon?: number }).varianceEpsilon ?? 0.001;
    const n = sizeOf(x!.shape), C = x!.shape[x!.shape.length - 1]!;
    const params = [mean, variance, offset, scale];
    const perChannel = (t: TensorInfo | undefined): boolean => !t || (t.shape.length <= 1 && (sizeOf(t.shape) === 1 || sizeOf(t.shape) === C));
    if (!allFloat([x, ...params]) || n < MIN_SIZE || !params.every(perChannel)) return null;
    return withOutput(b, [...x!.shape], refused, `${n},${C}`, (heap, out) => {
      const offs = params.map((t) => (t ? offsetOf(b, t) : -1));
      const sizes = params.map((t) => (t ? sizeOf(t.shape) : 1));
      addon.batchNorm(heap, new Float64Array([offsetOf(b, x!), out, n, C, ...offs, eps, ...sizes]));
    });
  });
}

/** Kernel names this file provides. */
export const POINTWISE_KERNEL_NAMES = [...Object.keys(BINARY), ...Object.keys(UNARY), 'Sum', 'Mean', 'MaxPoolGrad', 'FusedBatchNorm'];

/** The configs; `fallbacks` maps each name to the config it replaces. */
export function pointwiseKernelConfigs(addon: DnnlAddon, fallbacks: Record<string, KernelConfig | undefined>): KernelConfig[] {
  return [
    ...Object.keys(BINARY).map((n) => binaryKernel(n, addon, fallbacks[n])),
    ...Object.keys(UNARY).map((n) => unaryKernel(n, addon, fallbacks[n])),
    reduceKernel('Sum', addon, fallbacks['Sum']),
    reduceKernel('Mean', addon, fallbacks['Mean']),
    maxPoolGradKernel(addon, fallbacks['MaxPoolGrad']),
    batchNormKernel(addon, fallbacks['FusedBatchNorm']),
  ];
}
