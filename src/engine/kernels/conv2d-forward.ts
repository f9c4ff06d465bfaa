/**
 * `Conv2D` and `FusedConv2D` for the wasm route: wasm's own kernels (XNNPACK), called on the
 * window of live filter taps when some taps only ever meet padding (live-taps.ts; a 3x3 'same'
 * conv on a 1x1 map runs as a 1x1 conv, 9x less work). Everything else goes to wasm's kernel as
 * it is. Reference semantics: tfjs's Conv2D / FusedConv2D kernels (the output is the same).
 */
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs';
import { withTensor } from './conv2d-backprop-filter.js';
import { tapWindow } from './live-taps.js';

interface Attrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | [[number, number], [number, number], [number, number], [number, number]];
  dataFormat: 'NHWC' | 'NCHW';
  dilations?: [number, number] | number;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

type Args = { inputs: NamedTensorInfoMap; attrs?: NamedAttrMap; backend: unknown };

function windowed(name: string, original: KernelConfig): KernelConfig {
  const call = (args: Args): TensorInfo | TensorInfo[] => (original.kernelFunc as KernelFunc)(args as Parameters<KernelFunc>[0]);
  const kernelFunc = (args: Args): TensorInfo | TensorInfo[] => {
    const a = args.attrs as unknown as Attrs;
    const x = args.inputs['x']!, filter = args.inputs['filter']!;
    const d = a.dilations ?? 1;
    if (a.dataFormat === 'NCHW' || (typeof d === 'number' ? d : Math.max(...d)) !== 1) return call(args);
    const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filter.shape as [number, number, number, number], a.strides, 1, a.pad, a.dimRoundingMode, false, 'channelsLast');
    const win = tapWindow(info);
    if (!win.cropped) return call(args);
    return withTensor(filter, args.backend, (f) => {
      const part = tf.slice(f, [win.a0, win.b0, 0, 0], [win.kh, win.kw, -1, -1]);
      try {
        return call({ ...args, inputs: { ...args.inputs, filter: part }, attrs: { ...args.attrs, pad: win.pad } as unknown as NamedAttrMap });
      } finally {
        part.dispose();
      }
    });
  };
  return { kernelName: name, backendName: 'wasm', setupFunc: original.setupFunc, kernelFunc: kernelFunc as KernelFunc };
}

/** Wrappers of wasm's own Conv2D and FusedConv2D (given, with their setupFuncs). */
export function conv2dForwardConfigs(originals: Record<string, KernelConfig | undefined>): KernelConfig[] {
  return (['Conv2D', 'FusedConv2D'] as const).flatMap((n) => (originals[n] ? [windowed(n, originals[n]!)] : []));
}
