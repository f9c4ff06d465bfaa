/**
 * Inception v3 (Szegedy et al. 2016, "Rethinking the Inception Architecture for Computer
 * Vision"; torchvision/models/inception.py, timm/models/inception_v3.py with the same names),
 * without the auxiliary classifier (timm's published `inception_v3.tv_in1k` has none).
 * Every conv is BasicConv2d: conv (no bias) -> BatchNorm eps 1e-3 -> ReLU. The branch pools
 * are `avg_pool2d(3, 1, padding=1)` with count_include_pad=True: zero padding + 'valid' pool.
 * Minimum input 75x75 (torchvision Inception_V3_Weights meta min_size).
 */
import type { Rng } from '../rng.js';
import { CATALOG } from './catalog.js';
import type { ModelEntry } from './model-entry.js';
import { Net, type Backbone, type BackboneInput, type T } from './torch-net.js';
import { IMAGENET_WEIGHTS } from './pins.js';

type K = number | [number, number];

/** BasicConv2d `p` (`p.conv`, `p.bn`), torch kernel/stride/padding. */
function bc(net: Net, x: T, p: string, filters: number, kernel: K, stride = 1, pad: K = 0): T {
  return net.convBn(x, `${p}.conv`, `${p}.bn`, { filters, kernel, stride, pad }, 'relu', 1e-3);
}

function poolBranch(net: Net, x: T, p: string, filters: number): T {
  return bc(net, net.avgPool(x, `${p}.avgpool`, 3, 1, 1), `${p}.branch_pool`, filters, 1);
}

function inceptionA(net: Net, x: T, p: string, poolFeatures: number): T {
  const b1 = bc(net, x, `${p}.branch1x1`, 64, 1);
  const b5 = bc(net, bc(net, x, `${p}.branch5x5_1`, 48, 1), `${p}.branch5x5_2`, 64, 5, 1, 2);
  let b3 = bc(net, x, `${p}.branch3x3dbl_1`, 64, 1);
  b3 = bc(net, bc(net, b3, `${p}.branch3x3dbl_2`, 96, 3, 1, 1), `${p}.branch3x3dbl_3`, 96, 3, 1, 1);
  return net.concat([b1, b5, b3, poolBranch(net, x, p, poolFeatures)], `${p}.cat`);
}

function inceptionB(net: Net, x: T, p: string): T {
  const b3 = bc(net, x, `${p}.branch3x3`, 384, 3, 2);
  let bd = bc(net, x, `${p}.branch3x3dbl_1`, 64, 1);
  bd = bc(net, bc(net, bd, `${p}.branch3x3dbl_2`, 96, 3, 1, 1), `${p}.branch3x3dbl_3`, 96, 3, 2);
  return net.concat([b3, bd, net.maxPool(x, `${p}.maxpool`, 3, 2)], `${p}.cat`);
}

function inceptionC(net: Net, x: T, p: string, c7: number): T {
  const b1 = bc(net, x, `${p}.branch1x1`, 192, 1);
  let b7 = bc(net, x, `${p}.branch7x7_1`, c7, 1);
  b7 = bc(net, bc(net, b7, `${p}.branch7x7_2`, c7, [1, 7], 1, [0, 3]), `${p}.branch7x7_3`, 192, [7, 1], 1, [3, 0]);
  let bd = bc(net, x, `${p}.branch7x7dbl_1`, c7, 1);
  bd = bc(net, bd, `${p}.branch7x7dbl_2`, c7, [7, 1], 1, [3, 0]);
  bd = bc(net, bd, `${p}.branch7x7dbl_3`, c7, [1, 7], 1, [0, 3]);
  bd = bc(net, bd, `${p}.branch7x7dbl_4`, c7, [7, 1], 1, [3, 0]);
  bd = bc(net, bd, `${p}.branch7x7dbl_5`, 192, [1, 7], 1, [0, 3]);
  return net.concat([b1, b7, bd, poolBranch(net, x, p, 192)], `${p}.cat`);
}

function inceptionD(net: Net, x: T, p: string): T {
  const b3 = bc(net, bc(net, x, `${p}.branch3x3_1`, 192, 1), `${p}.branch3x3_2`, 320, 3, 2);
  let b7 = bc(net, x, `${p}.branch7x7x3_1`, 192, 1);
  b7 = bc(net, b7, `${p}.branch7x7x3_2`, 192, [1, 7], 1, [0, 3]);
  b7 = bc(net, b7, `${p}.branch7x7x3_3`, 192, [7, 1], 1, [3, 0]);
  b7 = bc(net, b7, `${p}.branch7x7x3_4`, 192, 3, 2);
  return net.concat([b3, b7, net.maxPool(x, `${p}.maxpool`, 3, 2)], `${p}.cat`);
}

function inceptionE(net: Net, x: T, p: string): T {
  const b1 = bc(net, x, `${p}.branch1x1`, 320, 1);
  const b3i = bc(net, x, `${p}.branch3x3_1`, 384, 1);
  const b3 = net.concat([bc(net, b3i, `${p}.branch3x3_2a`, 384, [1, 3], 1, [0, 1]), bc(net, b3i, `${p}.branch3x3_2b`, 384, [3, 1], 1, [1, 0])], `${p}.cat3x3`);
  const bdi = bc(net, bc(net, x, `${p}.branch3x3dbl_1`, 448, 1), `${p}.branch3x3dbl_2`, 384, 3, 1, 1);
  const bd = net.concat([bc(net, bdi, `${p}.branch3x3dbl_3a`, 384, [1, 3], 1, [0, 1]), bc(net, bdi, `${p}.branch3x3dbl_3b`, 384, [3, 1], 1, [1, 0])], `${p}.cat3x3dbl`);
  return net.concat([b1, b3, bd, poolBranch(net, x, p, 192)], `${p}.cat`);
}

/** The Inception v3 backbone; blocks `stem`, `Mixed_5b`..`Mixed_7c`. Output: [n, 2048]. */
export function inceptionV3(inp: BackboneInput, init: Rng | 'zeros'): Backbone {
  const net = new Net(inp, init);
  net.enter('stem');
  let x = bc(net, net.rgb, 'Conv2d_1a_3x3', 32, 3, 2);
  x = bc(net, x, 'Conv2d_2a_3x3', 32, 3);
  x = bc(net, x, 'Conv2d_2b_3x3', 64, 3, 1, 1);
  x = net.maxPool(x, 'Pool1', 3, 2);
  x = bc(net, x, 'Conv2d_3b_1x1', 80, 1);
  x = bc(net, x, 'Conv2d_4a_3x3', 192, 3);
  x = net.maxPool(x, 'Pool2', 3, 2);
  const mixed: Array<[string, (x: T, p: string) => T]> = [
    ['Mixed_5b', (y, p) => inceptionA(net, y, p, 32)],
    ['Mixed_5c', (y, p) => inceptionA(net, y, p, 64)],
    ['Mixed_5d', (y, p) => inceptionA(net, y, p, 64)],
    ['Mixed_6a', (y, p) => inceptionB(net, y, p)],
    ['Mixed_6b', (y, p) => inceptionC(net, y, p, 128)],
    ['Mixed_6c', (y, p) => inceptionC(net, y, p, 160)],
    ['Mixed_6d', (y, p) => inceptionC(net, y, p, 160)],
    ['Mixed_6e', (y, p) => inceptionC(net, y, p, 192)],
    ['Mixed_7a', (y, p) => inceptionD(net, y, p)],
    ['Mixed_7b', (y, p) => inceptionE(net, y, p)],
    ['Mixed_7c', (y, p) => inceptionE(net, y, p)],
  ];
  for (const [p, f] of mixed) {
    net.enter(p);
    x = f(x, p);
  }
  return net.finish(x, 'inception_v3');
}

/** The Inception family's registry entries. */
export const INCEPTIONS: Record<string, ModelEntry> = {
  inception_v3: {
    ...CATALOG.inception_v3,
    pretrained: ['imagenet'],
    // torchvision documents 27,161,264 with AuxLogits (3,326,696 of them); the published file has none.
    publishedParams: 23_834_568,
    imagenet: IMAGENET_WEIGHTS.inception_v3,
    build: (inp, init) => inceptionV3(inp, init),
  },
};
