/**
 * `DepthwiseConv2dNativeBackpropFilter` and `-Input` for the wasm backend (it ships neither in
 * tfjs 4.22; MobileNet and EfficientNet need both). Reference semantics: TensorFlow's
 * DepthwiseConv2dNative gradients (tensorflow/core/kernels/depthwise_conv_grad_op.cc); filter
 * layout [kh, kw, C, m], dy channel c*m + k.
 *
 * - Filter: per tap (a, b), dW[a, b, c, k] = sum_{n,i,j} xPad[n, i*s + a, j*s + b, c] * dy[n, i, j, c*m + k],
 *   a strided slice of the padded input times dy, summed over n, i, j.
 * - Input: the 'full' depthwise correlation of the dilated dy with the flipped filter (the
 *   transposed-convolution identity of conv2d-backprop-input.ts), one XNNPACK depthwise conv per
 *   channel-multiplier index k.
 */
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, NamedAttrMap, NamedTensorInfoMap } from '@tensorflow/tfjs';
import { withTensor } from './conv2d-backprop-filter.js';
import { dilate, padOrCrop } from './conv2d-backprop-input.js';

interface Attrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | [[number, number], [number, number], [number, number], [number, number]];
  dilations: [number, number] | number;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  filterShape?: [number, number, number, number];
  inputShape?: [number, number, number, number];
}

function convInfo(xShape: [number, number, number, number], fShape: [number, number, number, number], a: Attrs) {
  const d = typeof a.dilations === 'number' ? [a.dilations, a.dilations] : a.dilations ?? [1, 1];
  if (d[0] !== 1 || d[1] !== 1) throw new Error('depthwise backprop on wasm: dilations other than 1 are not supported');
  return tf.backend_util.computeConv2DInfo(xShape, fShape, a.strides, 1, a.pad, a.dimRoundingMode, true, 'channelsLast');
}

/** dW [kh, kw, C, m] of a depthwise conv of x [n, H, W, C] (NHWC) with output gradient dy. */
export function depthwiseBackpropFilterImpl(x: tf.Tensor4D, dy: tf.Tensor4D, attrs: Attrs): tf.Tensor4D {
  const fShape = attrs.filterShape!;
  const [kh, kw, C, m] = fShape;
  const info = convInfo(x.shape, fShape, attrs);
  const { top, bottom, left, right } = info.padInfo;
  const [n, Ho, Wo] = dy.shape;
  const sh = info.strideHeight, sw = info.strideWidth;
  return tf.tidy(() => {
    const xPad = tf.pad(x, [[0, 0], [top, Math.max(0, bottom) + sh], [left, Math.max(0, right) + sw], [0, 0]]);
    const dy5 = tf.reshape(dy, [n, Ho, Wo, C, m]);
    const taps: tf.Tensor[] = [];
    for (let a = 0; a < kh; a++) {
      for (let b = 0; b < kw; b++) {
        const xs = tf.stridedSlice(xPad, [0, a, b, 0], [n, a + Ho * sh, b + Wo * sw, C], [1, sh, sw, 1]);
        const prod = tf.mul(tf.reshape(xs, [n, Ho, Wo, C, 1]), dy5);
        taps.push(tf.sum(tf.reshape(prod, [n * Ho * Wo, C * m]), 0));
      }
    }
    return tf.reshape(tf.stack(taps), [kh, kw, C, m]);
  });
}

/** dx [n, H, W, C] of a depthwise conv with filter [kh, kw, C, m] and output gradient dy. */
export function depthwiseBackpropInputImpl(dy: tf.Tensor4D, filter: tf.Tensor4D, attrs: Attrs): tf.Tensor4D {
  const xShape = attrs.inputShape!;
  const [kh, kw, C, m] = filter.shape;
  const info = convInfo(xShape, filter.shape, attrs);
  const [, H, W] = xShape;
  return tf.tidy(() => {
    const dyD = dilate(dy, info.strideHeight, info.strideWidth);
    const top = kh - 1 - info.padInfo.top;
    const left = kw - 1 - info.padInfo.left;
    const dyP = padOrCrop(dyD, top, H + kh - 1 - dyD.shape[1] - top, left, W + kw - 1 - dyD.shape[2] - left);
    const wFlip = tf.reverse(filter, [0, 1]);
    if (m === 1) return tf.depthwiseConv2d(dyP, wFlip as tf.Tensor4D, 1, 'valid');
    const [n, hp, wp] = dyP.shape;
    const dy5 = tf.reshape(dyP, [n, hp, wp, C, m]);
    let acc: tf.Tensor4D | undefined;
    for (let k = 0; k < m; k++) {
      const dk = tf.reshape(tf.slice(dy5, [0, 0, 0, 0, k], [n, hp, wp, C, 1]), [n, hp, wp, C]) as tf.Tensor4D;
      const wk = tf.slice(wFlip, [0, 0, 0, k], [kh, kw, C, 1]) as tf.Tensor4D;
      const part = tf.depthwiseConv2d(dk, wk, 1, 'valid');
      acc = acc ? tf.add(acc, part) : part;
    }
    return acc!;
  });
}

type Args = { inputs: NamedTensorInfoMap; attrs?: NamedAttrMap; backend: unknown };

/** Kernel configs registered for the wasm backend. */
export const depthwiseBackpropConfigs: KernelConfig[] = [
  {
    kernelName: 'DepthwiseConv2dNativeBackpropFilter',
    backendName: 'wasm',
    kernelFunc: ({ inputs, attrs, backend }: Args) =>
      withTensor(inputs['x']!, backend, (x) =>
        withTensor(inputs['dy']!, backend, (dy) => depthwiseBackpropFilterImpl(x as tf.Tensor4D, dy as tf.Tensor4D, attrs as unknown as Attrs)),
      ),
  },
  {
    kernelName: 'DepthwiseConv2dNativeBackpropInput',
    backendName: 'wasm',
    kernelFunc: ({ inputs, attrs, backend }: Args) =>
      withTensor(inputs['dy']!, backend, (dy) =>
        withTensor(inputs['filter']!, backend, (f) => depthwiseBackpropInputImpl(dy as tf.Tensor4D, f as tf.Tensor4D, attrs as unknown as Attrs)),
      ),
  },
];
