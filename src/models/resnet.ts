/**
 * ResNets. `resnet18/34/50`: torchvision's ImageNet layout (He et al. 2016, "Deep Residual
 * Learning for Image Recognition"; torchvision/models/resnet.py): 7x7/2 stem, 3x3/2 max-pool,
 * four stages of 64-128-256-512 widths, BasicBlock (18, 34) or Bottleneck v1.5 (50: the stride
 * sits on the 3x3 conv). Layers are bound to torchvision's state_dict names, so torchvision's
 * weights (timm `<arch>.tv_in1k`) load as they are. `test_resnet18/50`: the same topologies at
 * widths 8/16/32/64 with an 8-channel stem (the layouts of the test/fixtures/torchvision slim18/slim50 goldens).
 * `mini_resnet`: a small net of the same family for quick runs on 28x28 data: 3x3/2 stem of 16
 * channels and three BasicBlock stages of 16-32-64 (no torch counterpart).
 */
import { Rng } from '../rng.js';
import { basicBlock, convBn } from './blocks.js';
import { CATALOG } from './catalog.js';
import type { ModelEntry } from './model-entry.js';
import { RepeatChannels } from './layers.js';
import { Net, type Backbone, type BackboneInput, type T } from './torch-net.js';
import { IMAGENET_WEIGHTS } from './pins.js';
import * as tf from '@tensorflow/tfjs';

/** mini_resnet: ~78k parameters; 16x14x14 after the stem on 28x28 input. */
export function miniResnet(inp: BackboneInput, rng: Rng): Backbone {
  const input = tf.input({ shape: [inp.height, inp.width, inp.channels], name: 'images' });
  const x0 = inp.channels === 3 ? input : (new RepeatChannels({ channels: 3, name: 'stem_rgb' }).apply(input) as T);
  let x = convBn(x0, 16, 3, 2, 'stem', rng);
  x = basicBlock(x, 16, 1, 'layer1_0', rng);
  x = basicBlock(x, 32, 2, 'layer2_0', rng);
  x = basicBlock(x, 64, 2, 'layer3_0', rng);
  const pooled = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(x) as T;
  const model = tf.model({ inputs: input, outputs: pooled, name: 'mini_resnet' });
  return { model, features: pooled.shape[1] as number, blocks: ['stem', 'layer1', 'layer2', 'layer3'], bindings: [] };
}

/** A torchvision-style ResNet: block type, blocks per stage, stage widths, stem width. */
export interface ResnetLayout {
  block: 'basic' | 'bottleneck';
  /** Blocks per stage, e.g. [2, 2, 2, 2]. */
  counts: number[];
  /** Stage widths ("planes"); a Bottleneck stage outputs 4x its width. */
  widths: number[];
  /** Channels of the 7x7 stem conv. */
  stem: number;
}

const TV = [64, 128, 256, 512];
const SLIM = [8, 16, 32, 64];

/** The layouts by registry name. */
export const RESNET_LAYOUTS = {
  resnet18: { block: 'basic', counts: [2, 2, 2, 2], widths: TV, stem: 64 },
  resnet34: { block: 'basic', counts: [3, 4, 6, 3], widths: TV, stem: 64 },
  resnet50: { block: 'bottleneck', counts: [3, 4, 6, 3], widths: TV, stem: 64 },
  test_resnet18: { block: 'basic', counts: [2, 2, 2, 2], widths: SLIM, stem: 8 },
  test_resnet50: { block: 'bottleneck', counts: [3, 4, 6, 3], widths: SLIM, stem: 8 },
} as const satisfies Record<string, ResnetLayout>;

/** torchvision BasicBlock: conv3x3(stride)-bn-relu, conv3x3-bn, projection shortcut when the shape changes. */
function basic(net: Net, x: T, planes: number, stride: number, p: string): T {
  let y = net.convBn(x, `${p}.conv1`, `${p}.bn1`, { filters: planes, kernel: 3, stride, pad: 1 }, 'relu');
  y = net.convBn(y, `${p}.conv2`, `${p}.bn2`, { filters: planes, kernel: 3, pad: 1 });
  const inC = x.shape[3] as number;
  const sc = stride !== 1 || inC !== planes ? net.convBn(x, `${p}.downsample.0`, `${p}.downsample.1`, { filters: planes, kernel: 1, stride }) : x;
  return net.act(net.add([y, sc], `${p}.add`), 'relu', `${p}.relu`);
}

/** torchvision Bottleneck v1.5: 1x1 reduce, 3x3 with the stride, 1x1 expand (x4). */
function bottleneck(net: Net, x: T, planes: number, stride: number, p: string): T {
  let y = net.convBn(x, `${p}.conv1`, `${p}.bn1`, { filters: planes, kernel: 1 }, 'relu');
  y = net.convBn(y, `${p}.conv2`, `${p}.bn2`, { filters: planes, kernel: 3, stride, pad: 1 }, 'relu');
  y = net.convBn(y, `${p}.conv3`, `${p}.bn3`, { filters: planes * 4, kernel: 1 });
  const inC = x.shape[3] as number;
  const sc = stride !== 1 || inC !== planes * 4 ? net.convBn(x, `${p}.downsample.0`, `${p}.downsample.1`, { filters: planes * 4, kernel: 1, stride }) : x;
  return net.act(net.add([y, sc], `${p}.add`), 'relu', `${p}.relu`);
}

/**
 * A torchvision-layout ResNet backbone; blocks `stem`, `layer1`..`layer4`.
 * @param init an Rng for random init (He normal, fan_out, as torchvision) or 'zeros' when
 *   weights will be loaded.
 */
export function resnet(layout: ResnetLayout, inp: BackboneInput, init: Rng | 'zeros', name: string): Backbone {
  const net = new Net(inp, init);
  net.enter('stem');
  let x = net.convBn(net.rgb, 'conv1', 'bn1', { filters: layout.stem, kernel: 7, stride: 2, pad: 3 }, 'relu');
  x = net.maxPool(x, 'maxpool', 3, 2, 1);
  layout.counts.forEach((n, s) => {
    net.enter(`layer${s + 1}`);
    for (let i = 0; i < n; i++) {
      const stride = i === 0 && s > 0 ? 2 : 1;
      const block = layout.block === 'basic' ? basic : bottleneck;
      x = block(net, x, layout.widths[s]!, stride, `layer${s + 1}.${i}`);
    }
  });
  return net.finish(x, name);
}

const entry = (arch: keyof typeof RESNET_LAYOUTS, extra: Partial<ModelEntry> = {}): ModelEntry => ({
  ...CATALOG[arch],
  pretrained: extra.imagenet ? ['imagenet'] : [],
  build: (inp, init) => resnet(RESNET_LAYOUTS[arch], inp, init, arch),
  ...extra,
});

/** The ResNet family's registry entries. Weights: torchvision's originals as timm `<arch>.tv_in1k`. */
export const RESNETS: Record<string, ModelEntry> = {
  mini_resnet: { ...CATALOG.mini_resnet, pretrained: [], build: (inp, init) => miniResnet(inp, init === 'zeros' ? new Rng(0) : init) },
  resnet18: entry('resnet18', {
    publishedParams: 11_689_512,
    imagenet: IMAGENET_WEIGHTS.resnet18,
  }),
  resnet34: entry('resnet34', {
    publishedParams: 21_797_672,
    imagenet: IMAGENET_WEIGHTS.resnet34,
  }),
  resnet50: entry('resnet50', {
    publishedParams: 25_557_032,
    imagenet: IMAGENET_WEIGHTS.resnet50,
  }),
  test_resnet18: entry('test_resnet18'),
  test_resnet50: entry('test_resnet50'),
};
