/**
 * wasm-backend kernels that hand convolutions and matrix products to the native addon (oneDNN):
 * `Conv2D`, `FusedConv2D` (bias; linear/relu/relu6/leakyrelu/sigmoid/elu), `Conv2DBackpropInput`,
 * `Conv2DBackpropFilter`, `BatchMatMul`, `_FusedMatMul` (bias + the same activations).
 * Anything else (NCHW, dilations, prelu, batch shapes that broadcast other than from 1,
 * non-float32, empty tensors, shapes oneDNN rejects) goes to the kernel each replaces.
 * Semantics are tfjs's: filters HWIO [kh, kw, in, out], activations NHWC.
 *
 * Filter taps that only ever meet padding (a 3x3 'same' conv on a 1x1 map, as in ResNet's last
 * stage at 32x32 input) are left out: the conv runs on the window of live taps with the padding
 * shifted, and their filter gradient is zero.
 */
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs';
import type { DnnlAddon } from './dnnl.js';
import { tapWindow } from '../kernels/live-taps.js';
import { allFloat, nativeFirst, offsetOf, sizeOf, withOutput, type KernelArgs, type WasmBackend } from './wasm-heap.js';

/** tfjs activation names -> pipe_dnnl's activation codes (native/conv.cc post_ops_attr). */
export const ACTIVATIONS: Record<string, number> = { linear: 0, relu: 1, relu6: 2, leakyrelu: 3, sigmoid: 4, elu: 5 };

/** A number per wasm backend instance (each numbers its tensors from 1). */
const backendEpochs = new WeakMap<object, number>();
let nextEpoch = 0;

/**
 * A key for a filter's data, for the addon's cache of reordered filters: the backend's id of the
 * tensor (never reused by that backend; tfjs tensor data never changes) and the backend instance.
 * The `id` field of BackendWasm's data is a tfjs internal (see TFJS_VERSION in wasm-heap.ts).
 */
export function filterKey(b: WasmBackend, t: TensorInfo): number {
  let epoch = backendEpochs.get(b);
  if (epoch === undefined) backendEpochs.set(b, (epoch = nextEpoch++));
  return epoch * 2 ** 32 + (b.dataIdMap.get(t.dataId) as unknown as { id: number }).id;
}

/** The attributes of tfjs's Conv2D / FusedConv2D / Conv2DBackprop* kernels that the addon reads. */
export interface ConvAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | [[number, number], [number, number], [number, number], [number, number]];
  dataFormat: 'NHWC' | 'NCHW';
  dilations?: number | [number, number];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  activation?: string;
  leakyreluAlpha?: number;
  inputShape?: number[];
  filterShape?: number[];
}

/**
 * pipe_dnnl's conv parameters (native/native.h) but the offsets, activation and filter key: `head` the
 * first 15, `tail` the filter's full size and window start; null when oneDNN cannot take them.
 */
export function convParams(xShape: number[], fShape: number[], a: ConvAttrs): { head: number[]; tail: number[] } | null {
  if (a.dataFormat === 'NCHW') return null;
  const d = a.dilations ?? 1;
  if ((typeof d === 'number' ? d : Math.max(...d)) !== 1) return null;
  const info = tf.backend_util.computeConv2DInfo(xShape as [number, number, number, number], fShape as [number, number, number, number], a.strides, 1, a.pad, a.dimRoundingMode, false, 'channelsLast');
  const { top, left, bottom, right } = info.padInfo;
  if (Math.min(top, left, bottom, right) < 0) return null;
  const { a0, b0, kh, kw, pad } = tapWindow(info);
  return {
    head: [info.batchSize, info.inHeight, info.inWidth, info.inChannels, kh, kw, info.outChannels, info.outHeight, info.outWidth, info.strideHeight, info.strideWidth, pad[1][0], pad[2][0], pad[1][1], pad[2][1]],
    tail: [info.filterHeight, info.filterWidth, a0, b0],
  };
}

function convKernel(name: string, kind: 0 | 1 | 2, addon: DnnlAddon, fallback: KernelConfig | undefined): KernelConfig {
  const refused = new Set<string>();
  return nativeFirst(name, fallback, (args: KernelArgs): TensorInfo | null => {
    const b = args.backend as WasmBackend;
    const a = args.attrs as unknown as ConvAttrs;
    const i = args.inputs;
    let x: TensorInfo | undefined, w: TensorInfo | undefined, y: TensorInfo | undefined, bias: TensorInfo | undefined;
    let xShape: number[], fShape: number[];
    if (kind === 0) {
      [x, w, bias] = [i['x'], i['filter'], i['bias']];
      if (i['preluActivationWeights'] || ACTIVATIONS[a.activation ?? 'linear'] === undefined) return null;
      [xShape, fShape] = [x!.shape, w!.shape];
      if (bias && sizeOf(bias.shape) !== fShape[3]) return null;
    } else if (kind === 1) {
      [y, w] = [i['dy'], i['filter']];
      [xShape, fShape] = [a.inputShape!, w!.shape];
    } else {
      [x, y] = [i['x'], i['dy']];
      [xShape, fShape] = [x!.shape, a.filterShape!];
    }
    const conv = convParams(xShape, fShape, a);
    if (!conv || !allFloat([x, w, y, bias])) return null;
    const h = conv.head;
    const outShape = kind === 0 ? [h[0]!, h[7]!, h[8]!, h[6]!] : kind === 1 ? xShape : fShape;
    const act = ACTIVATIONS[a.activation ?? 'linear']!;
    const key = `${kind}:${h.join(',')}:${conv.tail.join(',')}:${bias ? 1 : 0}:${act}`;
    return withOutput(b, outShape, refused, key, (heap, outOff) => {
      const off = (t: TensorInfo | undefined): number => (t ? offsetOf(b, t) : outOff);
      const filterId = kind === 0 ? filterKey(b, w!) : -1;
      const p = [...h, off(x), off(w), off(y), bias ? offsetOf(b, bias) : -1, act, a.leakyreluAlpha ?? 0.2, ...conv.tail, filterId];
      addon.conv(kind, heap, new Float64Array(p));
    });
  });
}

interface MatMulAttrs {
  transposeA: boolean;
  transposeB: boolean;
  activation?: string;
  leakyreluAlpha?: number;
}

function matMulKernel(name: string, addon: DnnlAddon, fallback: KernelConfig | undefined): KernelConfig {
  const refused = new Set<string>();
  return nativeFirst(name, fallback, (args: KernelArgs): TensorInfo | null => {
    const b = args.backend as WasmBackend;
    const at = args.attrs as unknown as MatMulAttrs;
    const { a, b: bm, bias } = args.inputs as { a: TensorInfo; b: TensorInfo; bias?: TensorInfo };
    const act = ACTIVATIONS[at.activation ?? 'linear'];
    const [ra, rb] = [a.shape.length, bm.shape.length];
    const [M, K] = at.transposeA ? [a.shape[ra - 1]!, a.shape[ra - 2]!] : [a.shape[ra - 2]!, a.shape[ra - 1]!];
    const N = at.transposeB ? bm.shape[rb - 2]! : bm.shape[rb - 1]!;
    const [ba, bb] = [sizeOf(a.shape.slice(0, -2)), sizeOf(bm.shape.slice(0, -2))];
    const ok = act !== undefined && !args.inputs['preluActivationWeights'] && allFloat([a, bm, bias]) && (ba === bb || ba === 1 || bb === 1) && (!bias || sizeOf(bias.shape) === N);
    if (!ok) return null;
    const batchShape = ba >= bb ? a.shape.slice(0, -2) : bm.shape.slice(0, -2);
    const key = `mm:${ba},${bb},${M},${K},${N},${+at.transposeA},${+at.transposeB},${bias ? 1 : 0},${act}`;
    return withOutput(b, [...batchShape, M, N], refused, key, (heap, outOff) => {
      addon.matmul(heap, new Float64Array([ba, bb, M, K, N, +at.transposeA, +at.transposeB, offsetOf(b, a), offsetOf(b, bm), outOff, bias ? offsetOf(b, bias) : -1, act, at.leakyreluAlpha ?? 0.2]));
    });
  });
}

/** Kernel names this file provides. */
export const CONV_KERNEL_NAMES = ['Conv2D', 'FusedConv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'BatchMatMul', '_FusedMatMul'];

/** The configs; `fallbacks` maps each name to the config it replaces. */
export function convKernelConfigs(addon: DnnlAddon, fallbacks: Record<string, KernelConfig | undefined>): KernelConfig[] {
  return [
    convKernel('Conv2D', 0, addon, fallbacks['Conv2D']),
    convKernel('FusedConv2D', 0, addon, fallbacks['FusedConv2D']),
    convKernel('Conv2DBackpropInput', 1, addon, fallbacks['Conv2DBackpropInput']),
    convKernel('Conv2DBackpropFilter', 2, addon, fallbacks['Conv2DBackpropFilter']),
    matMulKernel('BatchMatMul', addon, fallbacks['BatchMatMul']),
    matMulKernel('_FusedMatMul', addon, fallbacks['_FusedMatMul']),
  ];
}
