/**
 * The model zoo: a name fully determines the architecture (and, later, its pretrained weights and
 * preprocessing). Anchor: timm's registry / `create_model(name, pretrained, num_classes)`.
 */
import * as tf from '@tensorflow/tfjs';
import { PipelineError } from '../errors.js';
import type { Rng } from '../rng.js';
import { miniResnet, torchvisionResnet, type Backbone, type BackboneInput } from './resnet.js';

/** A registry entry. */
export interface ModelEntry {
  /** Smallest input side the architecture accepts, in pixels. */
  minInputSize: number;
  /** Pretrained weights on offer (none yet for any entry: see `weights`). */
  pretrained: string[];
  build: (inp: BackboneInput, rng: Rng) => Backbone;
}

/** Every architecture by name. */
export const MODELS: Record<string, ModelEntry> = {
  mini_resnet: { minInputSize: 8, pretrained: [], build: miniResnet },
  resnet18: { minInputSize: 32, pretrained: ['imagenet'], build: (i, r) => torchvisionResnet('resnet18', i, r) },
  resnet34: { minInputSize: 32, pretrained: ['imagenet'], build: (i, r) => torchvisionResnet('resnet34', i, r) },
  resnet50: { minInputSize: 32, pretrained: ['imagenet'], build: (i, r) => torchvisionResnet('resnet50', i, r) },
};

/** A classifier: backbone (features) + head (logits), trained as one or with the backbone frozen. */
export interface Classifier {
  arch: string;
  backbone: Backbone;
  /** Dense layer on the pooled features: [n, features] -> logits [n, numClasses]. */
  head: tf.LayersModel;
  numClasses: number;
  /** Layer names re-initialised for this task (the head). */
  reinitialized: string[];
}

/**
 * Builds `arch` with a new head of `numClasses` logits.
 * @throws PipelineError PIPE_MODEL for an unknown name, a too-small input or unavailable weights.
 */
export function buildClassifier(arch: string, inp: BackboneInput, numClasses: number, weights: string, rng: Rng): Classifier {
  const entry = MODELS[arch];
  if (!entry) throw new PipelineError('PIPE_MODEL', `unknown model '${arch}'; known: ${Object.keys(MODELS).join(', ')}`);
  if (Math.min(inp.height, inp.width) < entry.minInputSize) {
    throw new PipelineError('PIPE_MODEL', `${arch} needs inputs of at least ${entry.minInputSize}x${entry.minInputSize} px; the data is ${inp.height}x${inp.width} (add a resize op to the augment stage)`);
  }
  if (weights !== 'none') {
    throw new PipelineError(
      'PIPE_MODEL',
      `weights '${weights}' for ${arch}: loading pretrained weights is not implemented yet (the model zoo issue brings the safetensors loader); use weights: none`,
    );
  }
  const backbone = entry.build(inp, rng);
  const featIn = tf.input({ shape: [backbone.features], name: 'features' });
  const bound = 1 / Math.sqrt(backbone.features); // PyTorch nn.Linear default init range
  const logits = tf.layers
    .dense({ units: numClasses, name: 'head_fc', kernelInitializer: tf.initializers.randomUniform({ minval: -bound, maxval: bound, seed: rng.seed() }), biasInitializer: tf.initializers.randomUniform({ minval: -bound, maxval: bound, seed: rng.seed() }) })
    .apply(featIn) as tf.SymbolicTensor;
  const head = tf.model({ inputs: featIn, outputs: logits, name: 'head' });
  return { arch, backbone, head, numClasses, reinitialized: ['head_fc'] };
}

/** Parameter counts: total, and of the head alone. */
export function paramCounts(c: Classifier): { total: number; head: number } {
  return { total: c.backbone.model.countParams() + c.head.countParams(), head: c.head.countParams() };
}
