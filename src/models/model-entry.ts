/** The shape of a model-zoo entry (one per architecture; each family file exports a table of them). */
import type { Rng } from '../rng.js';
import type { Backbone, BackboneInput } from './torch-net.js';
import type { PretrainedConfig } from './pretrained.js';

/** A registry entry. Anchor: timm `register_model` + `default_cfgs`. */
export interface ModelEntry {
  /** Family file, e.g. 'resnet'. */
  family: string;
  /** One line for `pipe models`. */
  description: string;
  /**
   * Names of the backbone's blocks in order (what `unfreeze: { from: <block> }` takes), known
   * without building the network; equal to the built Backbone's `blocks` (test/unit/models.test.ts).
   */
  blocks: readonly string[];
  /** Smallest input side the architecture accepts, in pixels (torchvision's `min_size` where it has one). */
  minInputSize: number;
  /** Torch module of the classifier the head stands for (`fc`, `classifier`, `head.fc`). */
  classifier: string;
  /** Pretrained weights on offer by name: 'imagenet' when `imagenet` is set. */
  pretrained: string[];
  /** The ImageNet weights: file, checksum and preprocessing. */
  imagenet?: PretrainedConfig;
  /**
   * Learnable parameters with a 1000-class head, as published (torchvision's model docs / the
   * weights' state_dict); BatchNorm running statistics are buffers and not counted.
   */
  publishedParams?: number;
  /**
   * Builds the backbone (NHWC images in, pooled features out).
   * @param init an Rng for random init, or 'zeros' when weights will be loaded over it.
   */
  build: (inp: BackboneInput, init: Rng | 'zeros') => Backbone;
}
