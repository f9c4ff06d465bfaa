/**
 * `Conv2DBackpropFilter` for the wasm backend, which ships none (tfjs 4.22).
 *
 * The filter gradient of an NHWC convolution is itself a convolution:
 *
 *   dW[a, b, ci, co] = sum_{n, i, j} xPad[n, i*s + a, j*s + b, ci] * dy[n, i, j, co]
 *
 * Read `ci` as the batch axis and `n` as the channel axis: the input becomes
 * xPad transposed to [ci, Hp, Wp, n], the filter dy transposed to [Ho, Wo, n, co],
 * and the sum is a stride-1 'valid' convolution with dilation `s`, whose output
 * [ci, Hp - (Ho-1)s, Wp - (Wo-1)s, co] is cropped to [ci, kh, kw, co] and transposed
 * to HWIO [kh, kw, ci, co]. Taps that only meet padding get a zero gradient without being
 * computed (live-taps.ts). Every step is a kernel wasm has (PadV2, Transpose,
 * Conv2D through XNNPACK, Slice). This is the construction described in
 * issue "The main job end to end"; the reference semantics are TensorFlow's
 * `Conv2DBackpropFilter` (tensorflow/core/kernels/conv_grad_filter_ops.cc).
 */
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs';
import { tapWindow } from './live-taps.js';

interface Attrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | [[number, number], [number, number], [number, number], [number, number]];
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  filterShape: [number, number, number, number];
}

/**
 * Views a kernel input as a Tensor. Inputs that come from ops already are Tensors and are
 * returned as they are; a bare TensorInfo gets a wrapper that holds its own reference on the
 * backend, so disposing the wrapper never frees the caller's data.
 * NOTE: `engine.makeTensorFromTensorInfo` alone does not add a backend reference; disposing such
 * a wrapper frees the original tensor's memory (found the hard way: a stack overflow in
 * Engine.moveData on the next read).
 */
export function withTensor<T>(info: TensorInfo, backend: unknown, fn: (t: tf.Tensor) => T): T {
  if (info instanceof tf.Tensor) return fn(info);
  const t = tf.engine().makeTensorFromTensorInfo(info, backend as tf.KernelBackend);
  (backend as tf.KernelBackend).incRef(info.dataId);
  try {
    return fn(t);
  } finally {
    t.dispose();
  }
}

/**
 * Filter gradient of a 2-D convolution (NHWC input x, NHWC dy) -> HWIO dW.
 * @throws Error for NCHW data (tfjs-layers never emits it).
 */
export function conv2dBackpropFilterImpl(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  attrs: Attrs,
): tf.Tensor4D {
  if (attrs.dataFormat === 'NCHW') throw new Error('Conv2DBackpropFilter: NCHW is not supported on wasm');
  const info = tf.backend_util.computeConv2DInfo(
    x.shape, attrs.filterShape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast',
  );
  const [kh, kw, ci, co] = attrs.filterShape;
  const win = tapWindow(info);
  if (win.cropped) {
    // Taps that only meet padding have a zero gradient: compute the window's, pad with zeros.
    return tf.tidy(() => {
      const part = conv2dBackpropFilterImpl(x, dy, { ...attrs, pad: win.pad, filterShape: [win.kh, win.kw, ci, co] });
      return tf.pad(part, [[win.a0, kh - win.a0 - win.kh], [win.b0, kw - win.b0 - win.kw], [0, 0], [0, 0]]);
    });
  }
  const { top, bottom, left, right } = info.padInfo;
  return tf.tidy(() => {
    // Bottom/right padding may exceed what the last output position reads; crop after the conv.
    const xPad = tf.pad(x, [[0, 0], [top, Math.max(0, bottom)], [left, Math.max(0, right)], [0, 0]]);
    const xT = tf.transpose(xPad, [3, 1, 2, 0]) as tf.Tensor4D; // [ci, Hp, Wp, n]
    const dyT = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D; // [Ho, Wo, n, co]
    const full = tf.conv2d(xT, dyT, 1, 'valid', 'NHWC', [info.strideHeight, info.strideWidth]);
    const cropped = tf.slice(full, [0, 0, 0, 0], [ci, kh, kw, co]);
    return tf.transpose(cropped, [1, 2, 0, 3]) as tf.Tensor4D; // [kh, kw, ci, co]
  });
}

/** Kernel config registered for the wasm backend. */
export const conv2dBackpropFilterConfig: KernelConfig = {
  kernelName: 'Conv2DBackpropFilter',
  backendName: 'wasm',
  kernelFunc: ({ inputs, attrs, backend }: { inputs: NamedTensorInfoMap; attrs?: NamedAttrMap; backend: unknown }) =>
    withTensor(inputs['x']!, backend, (x) =>
      withTensor(inputs['dy']!, backend, (dy) =>
        conv2dBackpropFilterImpl(x as tf.Tensor4D, dy as tf.Tensor4D, attrs as unknown as Attrs),
      ),
    ),
};
