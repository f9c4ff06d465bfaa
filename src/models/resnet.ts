/**
 * ResNets. `resnet18/34/50`: torchvision's ImageNet layout (He et al. 2016, "Deep Residual
 * Learning for Image Recognition"; torchvision/models/resnet.py): 7x7/2 stem, 3x3/2 max-pool,
 * four stages of 64-128-256-512 widths. `mini_resnet`: a small net of the same family for quick
 * runs on 28x28 data: 3x3/2 stem of 16 channels and three BasicBlock stages of 16-32-64.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../rng.js';
import { basicBlock, bottleneck, convBn } from './blocks.js';
import { RepeatChannels } from './layers.js';

type T = tf.SymbolicTensor;

/** Input spec for a backbone; `channels` of the data (1 is repeated to 3). */
export interface BackboneInput {
  height: number;
  width: number;
  channels: number;
}

/** A backbone: NHWC images in, pooled features [n, features] out. */
export interface Backbone {
  model: tf.LayersModel;
  features: number;
  /** Block names in order (layer-name prefixes) for partial unfreezing, e.g. ['stem', 'layer1', ...]. */
  blocks: string[];
}

function inputs(inp: BackboneInput): { input: T; x: T } {
  const input = tf.input({ shape: [inp.height, inp.width, inp.channels], name: 'images' });
  const x = inp.channels === 3 ? input : (new RepeatChannels({ channels: 3, name: 'stem_rgb' }).apply(input) as T);
  return { input, x };
}

function finish(input: T, x: T, blocks: string[], name: string): Backbone {
  const pooled = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(x) as T;
  const model = tf.model({ inputs: input, outputs: pooled, name });
  return { model, features: pooled.shape[1] as number, blocks };
}

/** mini_resnet: ~78k parameters; 16x14x14 after the stem on 28x28 input. */
export function miniResnet(inp: BackboneInput, rng: Rng): Backbone {
  const { input, x: x0 } = inputs(inp);
  let x = convBn(x0, 16, 3, 2, 'stem', rng);
  x = basicBlock(x, 16, 1, 'layer1_0', rng);
  x = basicBlock(x, 32, 2, 'layer2_0', rng);
  x = basicBlock(x, 64, 2, 'layer3_0', rng);
  return finish(input, x, ['stem', 'layer1', 'layer2', 'layer3'], 'mini_resnet');
}

const LAYOUTS = {
  resnet18: { block: 'basic', counts: [2, 2, 2, 2] },
  resnet34: { block: 'basic', counts: [3, 4, 6, 3] },
  resnet50: { block: 'bottleneck', counts: [3, 4, 6, 3] },
} as const;

/** torchvision-layout ResNet backbone (random init; pretrained weights are loaded separately). */
export function torchvisionResnet(arch: keyof typeof LAYOUTS, inp: BackboneInput, rng: Rng): Backbone {
  const { block, counts } = LAYOUTS[arch];
  const { input, x: x0 } = inputs(inp);
  let x = convBn(x0, 64, 7, 2, 'stem', rng);
  x = tf.layers.zeroPadding2d({ padding: 1, name: 'stem_pool_pad' }).apply(x) as T;
  x = tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'valid', name: 'stem_pool' }).apply(x) as T;
  counts.forEach((n, s) => {
    const width = 64 * 2 ** s;
    for (let i = 0; i < n; i++) {
      const stride = i === 0 && s > 0 ? 2 : 1;
      const name = `layer${s + 1}_${i}`;
      x = block === 'basic' ? basicBlock(x, width, stride, name, rng) : bottleneck(x, width, stride, name, rng);
    }
  });
  return finish(input, x, ['stem', 'layer1', 'layer2', 'layer3', 'layer4'], arch);
}
