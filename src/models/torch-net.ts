/**
 * A small builder for torch-layout networks in tfjs layers. Every layer with weights records
 * which torch module it stands for (a `TorchBinding`), so a PyTorch state_dict loads by name;
 * every layer name starts with the current block's name, so partial unfreezing can select
 * blocks by prefix (src/train/freeze.ts).
 *
 * Padding follows PyTorch exactly: a conv with torch padding p is TF 'same' only when the
 * stride is 1 and p = (k - 1) / 2 on both axes (TF then pads symmetrically); otherwise it is
 * an explicit ZeroPadding2D(p) and a 'valid' conv, because TF 'same' with stride 2 pads
 * asymmetrically (more at the bottom/right) and shifts every activation.
 * Reference: PyTorch `nn.Conv2d`, TF `tf.nn.convolution` padding docs.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../rng.js';
import { BatchNorm2d, RepeatChannels } from './layers.js';

/** A symbolic NHWC tensor. */
export type T = tf.SymbolicTensor;

/** How a tfjs layer's weights map to a torch module's tensors (see torch-weights.ts). */
export type BindingKind = 'conv' | 'dwconv' | 'dense' | 'bn';

/** tfjs layer `layer` holds the weights of torch module `torch` (e.g. `layer1.0.conv1`). */
export interface TorchBinding {
  layer: string;
  torch: string;
  kind: BindingKind;
}

/** Input spec for a backbone; `channels` of the data (1 is repeated to 3). */
export interface BackboneInput {
  height: number;
  width: number;
  channels: number;
}

/** A backbone: NHWC images [n, h, w, c] in, pooled features [n, features] out. */
export interface Backbone {
  model: tf.LayersModel;
  features: number;
  /** Block names in order (layer-name prefixes) for partial unfreezing, e.g. ['stem', 'layer1', ...]. */
  blocks: string[];
  /** Torch module of each weight-holding layer; empty for nets with no torch counterpart. */
  bindings: TorchBinding[];
}

/** Conv options in PyTorch terms. */
export interface ConvSpec {
  filters: number;
  /** Kernel size, square or [kh, kw]. */
  kernel: number | [number, number];
  /** @defaultValue 1 */
  stride?: number;
  /** Torch zero padding, symmetric per axis. @defaultValue 0 */
  pad?: number | [number, number];
  /** @defaultValue false */
  bias?: boolean;
  /** Depthwise (groups = in_channels, one filter per channel; `filters` is ignored). */
  depthwise?: boolean;
}

/** Activations by torch name: ReLU, ReLU6, SiLU (= swish), Sigmoid. */
export type Act = 'relu' | 'relu6' | 'silu' | 'sigmoid';

const pair = (v: number | [number, number]): [number, number] => (typeof v === 'number' ? [v, v] : v);

/** Builds one network; `init` is an Rng for random init or 'zeros' when weights will be loaded. */
export class Net {
  readonly bindings: TorchBinding[] = [];
  readonly blocks: string[] = [];
  private block = '';
  readonly input: T;
  /** The input as 3 channels (1-channel data is repeated, as torchvision's Grayscale(3)). */
  readonly rgb: T;

  /**
   * @param strip torch-path prefix left out of layer names (e.g. 'features.' for DenseNet).
   */
  constructor(inp: BackboneInput, private readonly init: Rng | 'zeros', private readonly strip = '') {
    this.input = tf.input({ shape: [inp.height, inp.width, inp.channels], name: 'images' });
    this.rgb = inp.channels === 3 ? this.input : (new RepeatChannels({ channels: 3, name: 'stem_rgb' }).apply(this.input) as T);
  }

  /** Starts block `name`: the layers created next are named `<name>_...`. */
  enter(name: string): void {
    this.block = name;
    this.blocks.push(name);
  }

  /** The tfjs layer name for torch path `path`: dots become '_', prefixed by the block. */
  name(path: string): string {
    const n = (path.startsWith(this.strip) ? path.slice(this.strip.length) : path).replace(/\./g, '_');
    return n === this.block || n.startsWith(`${this.block}_`) ? n : `${this.block}_${n}`;
  }

  private kernelInit(): tf.serialization.Serializable {
    // He (Kaiming) normal, fan_out: torchvision's conv init for ResNet, MobileNet, EfficientNet.
    if (this.init === 'zeros') return tf.initializers.zeros();
    return tf.initializers.varianceScaling({ scale: 2, mode: 'fanOut', distribution: 'normal', seed: this.init.seed() });
  }

  /** Conv2d (or depthwise) with PyTorch padding; torch module `torch`. */
  conv(x: T, torch: string, s: ConvSpec): T {
    const k = pair(s.kernel);
    const p = pair(s.pad ?? 0);
    const stride = s.stride ?? 1;
    const name = this.name(torch);
    const same = stride === 1 && p[0] === (k[0] - 1) / 2 && p[1] === (k[1] - 1) / 2 && (p[0] > 0 || p[1] > 0);
    let y = x;
    if (!same && (p[0] > 0 || p[1] > 0)) y = tf.layers.zeroPadding2d({ padding: [[p[0], p[0]], [p[1], p[1]]], name: `${name}_pad` }).apply(y) as T;
    const common = { kernelSize: k, strides: stride, padding: same ? 'same' : 'valid', useBias: s.bias ?? false, name } as const;
    const layer = s.depthwise
      ? tf.layers.depthwiseConv2d({ ...common, depthMultiplier: 1, depthwiseInitializer: this.kernelInit() as never, biasInitializer: 'zeros' })
      : tf.layers.conv2d({ ...common, filters: s.filters, kernelInitializer: this.kernelInit() as never, biasInitializer: 'zeros' });
    this.bindings.push({ layer: name, torch, kind: s.depthwise ? 'dwconv' : 'conv' });
    return layer.apply(y) as T;
  }

  /** BatchNorm2d with PyTorch's semantics (layers.ts), momentum 0.1. @param eps @defaultValue 1e-5 */
  bn(x: T, torch: string, eps = 1e-5): T {
    const name = this.name(torch);
    this.bindings.push({ layer: name, torch, kind: 'bn' });
    return new BatchNorm2d({ epsilon: eps, momentum: 0.1, name }).apply(x) as T;
  }

  /** Linear on [n, in] (PyTorch init: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias). */
  dense(x: T, torch: string, units: number): T {
    const name = this.name(torch);
    this.bindings.push({ layer: name, torch, kind: 'dense' });
    const bound = 1 / Math.sqrt(x.shape[x.shape.length - 1] as number);
    const init = (): tf.serialization.Serializable => (this.init === 'zeros' ? tf.initializers.zeros() : tf.initializers.randomUniform({ minval: -bound, maxval: bound, seed: this.init.seed() }));
    return tf.layers.dense({ units, name, kernelInitializer: init() as never, biasInitializer: init() as never }).apply(x) as T;
  }

  /** An activation layer named after torch path `path`. */
  act(x: T, fn: Act, path: string): T {
    const name = this.name(path);
    if (fn === 'relu') return tf.layers.reLU({ name }).apply(x) as T;
    return tf.layers.activation({ activation: fn === 'silu' ? 'swish' : fn, name }).apply(x) as T;
  }

  /** conv -> bn -> optional activation (torchvision's Conv2dNormActivation / timm ConvBnAct). */
  convBn(x: T, conv: string, bn: string, s: ConvSpec, act?: Act, eps = 1e-5): T {
    const y = this.bn(this.conv(x, conv, s), bn, eps);
    return act ? this.act(y, act, `${bn}_${act}`) : y;
  }

  /** Max pool k, stride s, torch zero padding p (exact after ReLU, where inputs are >= 0). */
  maxPool(x: T, path: string, k: number, s: number, p = 0): T {
    const name = this.name(path);
    const y = p > 0 ? (tf.layers.zeroPadding2d({ padding: p, name: `${name}_pad` }).apply(x) as T) : x;
    return tf.layers.maxPooling2d({ poolSize: k, strides: s, padding: 'valid', name }).apply(y) as T;
  }

  /** Average pool k, stride s, torch padding p with count_include_pad=True (torch's default). */
  avgPool(x: T, path: string, k: number, s: number, p = 0): T {
    const name = this.name(path);
    const y = p > 0 ? (tf.layers.zeroPadding2d({ padding: p, name: `${name}_pad` }).apply(x) as T) : x;
    return tf.layers.averagePooling2d({ poolSize: k, strides: s, padding: 'valid', name }).apply(y) as T;
  }

  /** Dropout (training only), rate as torch's `p`. */
  dropout(x: T, rate: number, path: string): T {
    return tf.layers.dropout({ rate, name: this.name(path) }).apply(x) as T;
  }

  /** Element-wise sum (residual connection). */
  add(xs: T[], path: string): T {
    return tf.layers.add({ name: this.name(path) }).apply(xs) as T;
  }

  /** Channel concatenation (torch.cat(dim=1) in NCHW is the last axis in NHWC). */
  concat(xs: T[], path: string): T {
    return tf.layers.concatenate({ axis: -1, name: this.name(path) }).apply(xs) as T;
  }

  /** Global average pool to [n, c]: the backbone's output. */
  finish(x: T, modelName: string): Backbone {
    const pooled = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(x) as T;
    const model = tf.model({ inputs: this.input, outputs: pooled, name: modelName });
    return { model, features: pooled.shape[1] as number, blocks: [...this.blocks], bindings: this.bindings };
  }
}
