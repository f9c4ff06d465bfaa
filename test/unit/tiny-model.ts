/** A tiny seeded classifier for tests: conv 3x3 (4 filters, relu) -> global average pool -> dense. */
import * as tf from '@tensorflow/tfjs';
import type { Classifier } from '../../src/models/registry.js';

/** Builds it for `side` x `side` x `channels` NHWC images and `classes` logits; weights uniform in [-2, 2] from `seed`. */
export function tinyClassifier(channels: number, seed: number, classes = 3, side = 8): Classifier {
  const init = (s: number) => tf.initializers.randomUniform({ minval: -2, maxval: 2, seed: s });
  const input = tf.input({ shape: [side, side, channels], name: 'images' });
  const conv = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(seed), name: 'conv' }).apply(input) as tf.SymbolicTensor;
  const pooled = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(conv) as tf.SymbolicTensor;
  const featIn = tf.input({ shape: [4], name: 'features' });
  const logits = tf.layers.dense({ units: classes, kernelInitializer: init(seed + 1), biasInitializer: init(seed + 2), name: 'head_fc' }).apply(featIn) as tf.SymbolicTensor;
  return {
    arch: 'tiny', backbone: { model: tf.model({ inputs: input, outputs: pooled }), features: 4, blocks: [], bindings: [] },
    head: tf.model({ inputs: featIn, outputs: logits }), numClasses: classes, reinitialized: ['head_fc'],
  };
}
