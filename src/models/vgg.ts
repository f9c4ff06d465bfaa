/**
 * VGG-16 (Simonyan & Zisserman 2015, "Very Deep Convolutional Networks for Large-Scale Image
 * Recognition"; torchvision/models/vgg.py cfg "D"): 13 3x3 convs with bias in 5 blocks separated
 * by 2x2 max-pools, adaptive average pool to 7x7, then two 4096-wide fully connected layers.
 * The weights are timm's `vgg16.tv_in1k` (torchvision's originals) where the first FC is stored
 * as a 7x7 conv (`pre_logits.fc1`, [4096, 512, 7, 7]) and the second as a 1x1 conv
 * (`pre_logits.fc2`); here they are convs too, so no flatten-order conversion is needed
 * (a 7x7 'valid' conv on the 7x7 map is exactly torchvision's Linear on the NCHW flatten).
 */
import type { Rng } from '../rng.js';
import { CATALOG } from './catalog.js';
import type { ModelEntry } from './model-entry.js';
import { AdaptiveAvgPool2d } from './layers.js';
import { Net, type Backbone, type BackboneInput, type T } from './torch-net.js';
import { IMAGENET_WEIGHTS } from './pins.js';

/** torchvision's cfg "D" (VGG-16): conv widths, 'M' = 2x2 max-pool. */
export const VGG16_CFG: Array<number | 'M'> = [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M'];

/**
 * A VGG backbone; blocks `block1`..`block5` (conv groups) and `pre_logits` (the two FC layers,
 * ReLU, dropout 0.5 as torchvision). Output: [n, 4096].
 * @param hidden width of the FC layers. @defaultValue 4096
 */
export function vgg(cfg: Array<number | 'M'>, inp: BackboneInput, init: Rng | 'zeros', name: string, hidden = 4096): Backbone {
  const net = new Net(inp, init);
  let x = net.rgb;
  let block = 1;
  net.enter('block1');
  cfg.forEach((v, i) => {
    if (v === 'M') {
      x = net.maxPool(x, `features.${indexOf(cfg, i)}`, 2, 2);
      if (i < cfg.length - 1) net.enter(`block${++block}`);
      return;
    }
    x = net.conv(x, `features.${indexOf(cfg, i)}`, { filters: v, kernel: 3, pad: 1, bias: true });
    x = net.act(x, 'relu', `features.${indexOf(cfg, i) + 1}`);
  });
  net.enter('pre_logits');
  x = new AdaptiveAvgPool2d({ size: 7, name: 'pre_logits_pool' }).apply(x) as T;
  x = net.conv(x, 'pre_logits.fc1', { filters: hidden, kernel: 7, bias: true });
  x = net.dropout(net.act(x, 'relu', 'pre_logits.act1'), 0.5, 'pre_logits.drop1');
  x = net.conv(x, 'pre_logits.fc2', { filters: hidden, kernel: 1, bias: true });
  x = net.dropout(net.act(x, 'relu', 'pre_logits.act2'), 0.5, 'pre_logits.drop2');
  return net.finish(x, name); // the map is 1x1 here: the global pool is a flatten
}

/** Index of cfg[i] in torchvision's `features` Sequential (a conv entry adds conv + ReLU, 'M' adds one). */
function indexOf(cfg: Array<number | 'M'>, i: number): number {
  return cfg.slice(0, i).reduce<number>((n, v) => n + (v === 'M' ? 1 : 2), 0);
}

/** The VGG family's registry entries. */
export const VGGS: Record<string, ModelEntry> = {
  vgg16: {
    ...CATALOG.vgg16,
    pretrained: ['imagenet'],
    publishedParams: 138_357_544,
    imagenet: IMAGENET_WEIGHTS.vgg16,
    build: (inp, init) => vgg(VGG16_CFG, inp, init, 'vgg16'),
  },
};
