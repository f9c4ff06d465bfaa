/**
 * DenseNet-121 (Huang et al. 2017, "Densely Connected Convolutional Networks";
 * torchvision/models/densenet.py, timm/models/densenet.py with the same state_dict names):
 * 7x7/2 stem of 64 + 3x3/2 max-pool, dense blocks of (6, 12, 24, 16) layers (BN-ReLU-1x1 conv to
 * 4x32, BN-ReLU-3x3 conv to 32, concatenated), transitions (BN-ReLU-1x1 conv halving the
 * channels, 2x2/2 average pool), final BN + ReLU. BatchNorm eps 1e-5.
 */
import type { Rng } from '../rng.js';
import { CATALOG } from './catalog.js';
import type { ModelEntry } from './model-entry.js';
import { Net, type Backbone, type BackboneInput, type T } from './torch-net.js';
import { IMAGENET_WEIGHTS } from './pins.js';

/** DenseNet hyper-parameters (torchvision names). */
export interface DenseLayout {
  growth: number;
  blocks: number[];
  initFeatures: number;
  bnSize: number;
}

/** torchvision `densenet121`. */
export const DENSENET121: DenseLayout = { growth: 32, blocks: [6, 12, 24, 16], initFeatures: 64, bnSize: 4 };

function denseLayer(net: Net, x: T, l: DenseLayout, p: string): T {
  let y = net.act(net.bn(x, `${p}.norm1`), 'relu', `${p}.relu1`);
  y = net.conv(y, `${p}.conv1`, { filters: l.bnSize * l.growth, kernel: 1 });
  y = net.act(net.bn(y, `${p}.norm2`), 'relu', `${p}.relu2`);
  y = net.conv(y, `${p}.conv2`, { filters: l.growth, kernel: 3, pad: 1 });
  return net.concat([x, y], `${p}.cat`);
}

/** A DenseNet backbone; blocks `stem`, `denseblock1`, `transition1`, ..., `denseblock4`, `norm5`. */
export function densenet(l: DenseLayout, inp: BackboneInput, init: Rng | 'zeros', name: string): Backbone {
  const net = new Net(inp, init, 'features.');
  net.enter('stem');
  let x = net.convBn(net.rgb, 'features.conv0', 'features.norm0', { filters: l.initFeatures, kernel: 7, stride: 2, pad: 3 }, 'relu');
  x = net.maxPool(x, 'features.pool0', 3, 2, 1);
  l.blocks.forEach((n, b) => {
    net.enter(`denseblock${b + 1}`);
    for (let i = 1; i <= n; i++) x = denseLayer(net, x, l, `features.denseblock${b + 1}.denselayer${i}`);
    if (b === l.blocks.length - 1) return;
    net.enter(`transition${b + 1}`);
    const p = `features.transition${b + 1}`;
    x = net.act(net.bn(x, `${p}.norm`), 'relu', `${p}.relu`);
    x = net.conv(x, `${p}.conv`, { filters: Math.floor((x.shape[3] as number) / 2), kernel: 1 });
    x = net.avgPool(x, `${p}.pool`, 2, 2);
  });
  net.enter('norm5');
  x = net.act(net.bn(x, 'features.norm5'), 'relu', 'features.norm5.relu');
  return net.finish(x, name);
}

/** The DenseNet family's registry entries. */
export const DENSENETS: Record<string, ModelEntry> = {
  densenet121: {
    ...CATALOG.densenet121,
    pretrained: ['imagenet'],
    publishedParams: 7_978_856,
    imagenet: IMAGENET_WEIGHTS.densenet121,
    build: (inp, init) => densenet(DENSENET121, inp, init, 'densenet121'),
  },
};
