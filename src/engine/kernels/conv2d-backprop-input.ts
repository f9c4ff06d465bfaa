/**
 * `Conv2DBackpropInput` for the wasm backend, re-expressed as an XNNPACK convolution.
 *
 * wasm's own kernel is scalar C++ (2-4 GFLOP/s, measured in issue "Training speed on CPU")
 * while its forward Conv2D runs on XNNPACK. The input gradient of
 * y[i] = sum_a xPad[i*s + a] W[a] is the 'full' correlation of dy, dilated by s (s-1 zeros
 * between samples), with the spatially flipped filter whose in/out channels are swapped:
 *
 *   dx[h] = sum_a' dyDil[h + pt - (k-1) + a'] * Wflip[a'],   Wflip[a'] = W[k-1-a'] (HWOI -> HWIO)
 *
 * so dy is dilated, padded by k-1-pt before (and whatever makes the output H long after), and
 * convolved 'valid' with stride 1. Taps that only meet padding are left out first (live-taps.ts).
 * Reference semantics: TensorFlow's Conv2DBackpropInput
 * (tensorflow/core/kernels/conv_grad_input_ops.cc); the identity is the standard transposed
 * convolution one (Dumoulin & Visin, "A guide to convolution arithmetic", 2016, section 4).
 */
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, NamedAttrMap, NamedTensorInfoMap } from '@tensorflow/tfjs';
import { withTensor } from './conv2d-backprop-filter.js';
import { tapWindow } from './live-taps.js';

interface Attrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | [[number, number], [number, number], [number, number], [number, number]];
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  inputShape: [number, number, number, number];
}

/** Inserts s-1 zeros between neighbouring rows/columns of an NHWC tensor. */
export function dilate(dy: tf.Tensor4D, sh: number, sw: number): tf.Tensor4D {
  if (sh === 1 && sw === 1) return dy;
  const [n, h, w, c] = dy.shape;
  const six = tf.reshape(dy, [n, h, 1, w, 1, c]);
  const padded = tf.pad(six, [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]]);
  const flat = tf.reshape(padded, [n, h * sh, w * sw, c]) as tf.Tensor4D;
  // Drop the trailing zeros after the last sample: length (h-1)*s + 1.
  return tf.slice(flat, [0, 0, 0, 0], [n, (h - 1) * sh + 1, (w - 1) * sw + 1, c]);
}

/** Pads (positive) or crops (negative) one spatial side pair. */
export function padOrCrop(x: tf.Tensor4D, top: number, bottom: number, left: number, right: number): tf.Tensor4D {
  const p = tf.pad(x, [[0, 0], [Math.max(0, top), Math.max(0, bottom)], [Math.max(0, left), Math.max(0, right)], [0, 0]]);
  const [n, h, w, c] = p.shape;
  const t = Math.max(0, -top), l = Math.max(0, -left);
  return tf.slice(p, [0, t, l, 0], [n, h - t - Math.max(0, -bottom), w - l - Math.max(0, -right), c]);
}

/** The parts of tfjs-backend-wasm's BackendWasm that flipSwap uses. */
interface HeapBackend {
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array;
}

/**
 * The filter of the transposed convolution: HWIO [kh, kw, ci, co] flipped in both spatial axes,
 * in/out swapped, -> [kh, kw, co, ci]. On wasm one pass over the heap (wasm's Reverse and
 * Transpose are generic scalar loops: 10x slower on a 3x3x512x512 filter); elsewhere tf ops.
 */
export function flipSwap(filter: tf.Tensor4D): tf.Tensor4D {
  const [kh, kw, ci, co] = filter.shape;
  if (tf.getBackend() !== 'wasm' || filter.dtype !== 'float32') return tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]);
  const b = tf.backend() as unknown as HeapBackend;
  const out = b.makeOutput([kh, kw, co, ci], 'float32');
  const src = b.typedArrayFromHeap(filter), dst = b.typedArrayFromHeap(out); // views made after the allocation
  const taps = kh * kw, plane = ci * co;
  for (let p = 0; p < taps; p++) {
    const s = (taps - 1 - p) * plane, d = p * plane;
    for (let i = 0; i < ci; i++) {
      const si = s + i * co;
      for (let j = 0, dj = d + i; j < co; j++, dj += ci) dst[dj] = src[si + j]!;
    }
  }
  return tf.engine().makeTensorFromTensorInfo(out) as tf.Tensor4D;
}

/**
 * Input gradient of a 2-D convolution: dy [n, Ho, Wo, co], W HWIO [kh, kw, ci, co] -> dx
 * [n, H, W, ci] (NHWC). Returns null for layouts it does not handle (the caller falls back).
 */
export function conv2dBackpropInputImpl(dy: tf.Tensor4D, filter: tf.Tensor4D, attrs: Attrs): tf.Tensor4D | null {
  if (attrs.dataFormat === 'NCHW') return null;
  const [kh, kw] = filter.shape;
  const info = tf.backend_util.computeConv2DInfo(
    attrs.inputShape, filter.shape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast',
  );
  const [, H, W] = attrs.inputShape;
  const win = tapWindow(info);
  if (win.cropped) {
    // Only the live taps contribute: the same gradient from the filter's window.
    return tf.tidy(() => conv2dBackpropInputImpl(dy, tf.slice(filter, [win.a0, win.b0, 0, 0], [win.kh, win.kw, -1, -1]), { ...attrs, pad: win.pad })!);
  }
  return tf.tidy(() => {
    const dyD = dilate(dy, info.strideHeight, info.strideWidth);
    const top = kh - 1 - info.padInfo.top;
    const left = kw - 1 - info.padInfo.left;
    const bottom = H + kh - 1 - dyD.shape[1] - top;
    const right = W + kw - 1 - dyD.shape[2] - left;
    const dyP = padOrCrop(dyD, top, bottom, left, right);
    return tf.conv2d(dyP, flipSwap(filter), 1, 'valid');
  });
}

/**
 * Builds the kernel config. `original` is wasm's own kernel, kept (with its setupFunc) for
 * the layouts this one does not handle.
 */
export function conv2dBackpropInputConfig(original: KernelConfig | undefined): KernelConfig {
  return {
    kernelName: 'Conv2DBackpropInput',
    backendName: 'wasm',
    setupFunc: original?.setupFunc,
    kernelFunc: ((args: { inputs: NamedTensorInfoMap; attrs?: NamedAttrMap; backend: unknown }) => {
      const out = withTensor(args.inputs['dy']!, args.backend, (dy) =>
        withTensor(args.inputs['filter']!, args.backend, (filter) =>
          conv2dBackpropInputImpl(dy as tf.Tensor4D, filter as tf.Tensor4D, args.attrs as unknown as Attrs),
        ),
      );
      if (out !== null) return out;
      if (!original) throw new Error('Conv2DBackpropInput: NCHW is not supported on wasm');
      return (original.kernelFunc as KernelFunc)(args as Parameters<KernelFunc>[0]);
    }) as KernelFunc,
  };
}
