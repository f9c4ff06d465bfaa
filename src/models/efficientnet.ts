/**
 * MobileNetV2 and EfficientNet-B0 as built by timm's `EfficientNet` class (timm/models/
 * efficientnet.py `_gen_mobilenet_v2`, `_gen_efficientnet`; _efficientnet_blocks.py), whose
 * state_dict names the published weights use:
 * - MobileNetV2 (Sandler et al. 2018): inverted residuals with linear bottlenecks, ReLU6.
 * - EfficientNet-B0 (Tan & Le 2019): MBConv with squeeze-excitation (reduce = block input
 *   channels / 4, SiLU inside, sigmoid gate) and SiLU; symmetric PyTorch padding (timm
 *   `efficientnet_b0`, not the TF-ported `tf_efficientnet_b0` with 'same' padding).
 * Both: BatchNorm eps 1e-5, stem conv 3x3/2 of 32, head 1x1 conv to 1280, average pool.
 * The architectures equal torchvision's `mobilenet_v2` / `efficientnet_b0` (same parameter
 * counts: 3,504,872 and 5,288,548), with timm's module names.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../rng.js';
import { CATALOG } from './catalog.js';
import type { ModelEntry } from './model-entry.js';
import { Net, type Act, type Backbone, type BackboneInput, type T } from './torch-net.js';
import { IMAGENET_WEIGHTS } from './pins.js';

/** One stage of timm's arch_def: depthwise-separable ('ds') or inverted residual ('ir'). */
export interface MbStage {
  type: 'ds' | 'ir';
  repeats: number;
  kernel: number;
  stride: number;
  expand: number;
  out: number;
  /** Squeeze-excitation ratio of the block's input channels; 0 = none. */
  se: number;
}

const st = (type: 'ds' | 'ir', repeats: number, kernel: number, stride: number, expand: number, out: number, se = 0): MbStage => ({ type, repeats, kernel, stride, expand, out, se });

/** timm `_gen_mobilenet_v2` arch_def at channel multiplier 1.0. */
export const MOBILENET_V2: MbStage[] = [st('ds', 1, 3, 1, 1, 16), st('ir', 2, 3, 2, 6, 24), st('ir', 3, 3, 2, 6, 32), st('ir', 4, 3, 2, 6, 64), st('ir', 3, 3, 1, 6, 96), st('ir', 3, 3, 2, 6, 160), st('ir', 1, 3, 1, 6, 320)];

/** timm `_gen_efficientnet` arch_def for B0 (width 1.0, depth 1.0). */
export const EFFICIENTNET_B0: MbStage[] = [st('ds', 1, 3, 1, 1, 16, 0.25), st('ir', 2, 3, 2, 6, 24, 0.25), st('ir', 2, 5, 2, 6, 40, 0.25), st('ir', 3, 3, 2, 6, 80, 0.25), st('ir', 3, 5, 1, 6, 112, 0.25), st('ir', 4, 5, 2, 6, 192, 0.25), st('ir', 1, 3, 1, 6, 320, 0.25)];

/** Squeeze-excitation: x * sigmoid(conv_expand(act(conv_reduce(mean_hw(x))))). */
function squeezeExcite(net: Net, x: T, reduce: number, act: Act, p: string): T {
  const c = x.shape[3] as number;
  let s = tf.layers.globalAveragePooling2d({ name: net.name(`${p}.pool`) }).apply(x) as T;
  s = tf.layers.reshape({ targetShape: [1, 1, c], name: net.name(`${p}.keepdim`) }).apply(s) as T;
  s = net.act(net.conv(s, `${p}.conv_reduce`, { filters: reduce, kernel: 1, bias: true }), act, `${p}.act`);
  s = net.act(net.conv(s, `${p}.conv_expand`, { filters: c, kernel: 1, bias: true }), 'sigmoid', `${p}.gate`);
  return tf.layers.multiply({ name: net.name(`${p}.scale`) }).apply([x, s]) as T;
}

function block(net: Net, x: T, s: MbStage, stride: number, act: Act, p: string): T {
  const inC = x.shape[3] as number;
  const dw = { filters: 0, kernel: s.kernel, stride, pad: Math.floor(s.kernel / 2), depthwise: true };
  let y = x;
  if (s.type === 'ds') {
    y = net.convBn(y, `${p}.conv_dw`, `${p}.bn1`, dw, act);
    if (s.se) y = squeezeExcite(net, y, Math.round(inC * s.se), act, `${p}.se`);
    y = net.convBn(y, `${p}.conv_pw`, `${p}.bn2`, { filters: s.out, kernel: 1 });
  } else {
    y = net.convBn(y, `${p}.conv_pw`, `${p}.bn1`, { filters: inC * s.expand, kernel: 1 }, act);
    y = net.convBn(y, `${p}.conv_dw`, `${p}.bn2`, dw, act);
    if (s.se) y = squeezeExcite(net, y, Math.round(inC * s.se), act, `${p}.se`);
    y = net.convBn(y, `${p}.conv_pwl`, `${p}.bn3`, { filters: s.out, kernel: 1 });
  }
  return stride === 1 && inC === s.out ? net.add([y, x], `${p}.add`) : y;
}

/**
 * A timm EfficientNet-class backbone; blocks `stem`, `blocks_0`..`blocks_6`, `conv_head`.
 * Output: [n, headWidth].
 */
export function mbNet(stages: MbStage[], act: Act, inp: BackboneInput, init: Rng | 'zeros', name: string, stem = 32, headWidth = 1280): Backbone {
  const net = new Net(inp, init);
  net.enter('stem');
  let x = net.convBn(net.rgb, 'conv_stem', 'bn1', { filters: stem, kernel: 3, stride: 2, pad: 1 }, act);
  stages.forEach((s, i) => {
    net.enter(`blocks_${i}`);
    for (let j = 0; j < s.repeats; j++) x = block(net, x, s, j === 0 ? s.stride : 1, act, `blocks.${i}.${j}`);
  });
  net.enter('conv_head');
  x = net.convBn(x, 'conv_head', 'bn2', { filters: headWidth, kernel: 1 }, act);
  return net.finish(x, name);
}

/** The family's registry entries (timm-trained weights: timm's RandAugment recipe, not torchvision's). */
export const EFFICIENTNETS: Record<string, ModelEntry> = {
  mobilenet_v2: {
    ...CATALOG.mobilenet_v2,
    pretrained: ['imagenet'],
    publishedParams: 3_504_872,
    imagenet: IMAGENET_WEIGHTS.mobilenet_v2,
    build: (inp, init) => mbNet(MOBILENET_V2, 'relu6', inp, init, 'mobilenet_v2'),
  },
  efficientnet_b0: {
    ...CATALOG.efficientnet_b0,
    pretrained: ['imagenet'],
    publishedParams: 5_288_548,
    imagenet: IMAGENET_WEIGHTS.efficientnet_b0,
    build: (inp, init) => mbNet(EFFICIENTNET_B0, 'silu', inp, init, 'efficientnet_b0'),
  },
};
