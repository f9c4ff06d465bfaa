/**
 * Building blocks of mini_resnet (kept as they were so its layer names and init stay the same;
 * the torch-bound zoo nets use torch-net.ts), in torchvision's layout: conv (no bias) ->
 * BatchNorm2d (layers.ts: PyTorch semantics, eps 1e-5, momentum 0.1) -> ReLU. Strided convs pad
 * explicitly and symmetrically (k // 2 on each side) as PyTorch does; TF's 'same' would pad
 * asymmetrically and shift every activation by a pixel.
 * Reference: torchvision/models/resnet.py (BasicBlock).
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../rng.js';
import { BatchNorm2d } from './layers.js';

type T = tf.SymbolicTensor;

/** He (Kaiming) normal init, fan_out, for ReLU nets (He et al. 2015; torchvision ResNet init). */
function heInit(rng: Rng): tf.serialization.Serializable {
  return tf.initializers.varianceScaling({ scale: 2, mode: 'fanOut', distribution: 'normal', seed: rng.seed() });
}

/** Conv k x k with stride and PyTorch-style symmetric padding, then BatchNorm, optional ReLU. */
export function convBn(x: T, filters: number, k: number, stride: number, name: string, rng: Rng, relu = true): T {
  const pad = Math.floor(k / 2);
  let y = x;
  if (pad > 0 && stride > 1) y = tf.layers.zeroPadding2d({ padding: pad, name: `${name}_pad` }).apply(y) as T;
  y = tf.layers
    .conv2d({ filters, kernelSize: k, strides: stride, padding: stride > 1 || pad === 0 ? 'valid' : 'same', useBias: false, kernelInitializer: heInit(rng) as never, name: `${name}_conv` })
    .apply(y) as T;
  y = new BatchNorm2d({ epsilon: 1e-5, momentum: 0.1, name: `${name}_bn` }).apply(y) as T;
  return relu ? (tf.layers.reLU({ name: `${name}_relu` }).apply(y) as T) : y;
}

/** torchvision BasicBlock: two 3x3 convs, projection shortcut when the shape changes. */
export function basicBlock(x: T, filters: number, stride: number, name: string, rng: Rng): T {
  let y = convBn(x, filters, 3, stride, `${name}_1`, rng);
  y = convBn(y, filters, 3, 1, `${name}_2`, rng, false);
  const inC = x.shape[x.shape.length - 1];
  const sc = stride !== 1 || inC !== filters ? convBn(x, filters, 1, stride, `${name}_down`, rng, false) : x;
  return tf.layers.reLU({ name: `${name}_out` }).apply(tf.layers.add({ name: `${name}_add` }).apply([y, sc]) as T) as T;
}
