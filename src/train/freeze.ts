/**
 * Which layers train. A frozen layer's weights are not updated and, for BatchNorm2d
 * (src/models/layers.ts), it runs in inference mode (running statistics untouched), as in
 * Keras 3 where a BN layer with `trainable = false` normalises with its moving statistics, and
 * as the PyTorch recipe does by putting the frozen backbone in eval().
 */
import * as tf from '@tensorflow/tfjs';
import type { Classifier } from '../models/registry.js';

/** All layers of a model, nested models flattened. */
function allLayers(model: tf.LayersModel): tf.layers.Layer[] {
  return model.layers.flatMap((l) => (l instanceof tf.LayersModel ? allLayers(l) : [l]));
}

/**
 * Sets the trainable set: the head always; backbone blocks from `fromBlock` on (`all` = every
 * block, `none` = frozen backbone).
 * @throws Error naming the known blocks when `fromBlock` is not one of them.
 */
export function setTrainable(c: Classifier, fromBlock: 'all' | 'none' | string): void {
  const blocks = c.backbone.blocks;
  let first: number;
  if (fromBlock === 'all') first = 0;
  else if (fromBlock === 'none') first = blocks.length;
  else {
    first = blocks.indexOf(fromBlock);
    if (first < 0) throw new Error(`unfreeze.from '${fromBlock}' is not a block of ${c.arch}; blocks: ${blocks.join(', ')}`);
  }
  const unfrozen = new Set(blocks.slice(first));
  for (const layer of allLayers(c.backbone.model)) {
    const block = blocks.find((b) => layer.name === b || layer.name.startsWith(`${b}_`));
    layer.trainable = block === undefined ? first === 0 : unfrozen.has(block);
  }
  c.backbone.model.trainable = first < blocks.length;
  c.head.trainable = true;
}

/** The variables the optimizer updates. */
export function trainableVariables(c: Classifier): tf.Variable[] {
  return [...c.backbone.model.trainableWeights, ...c.head.trainableWeights].map((w) => w.read() as tf.Variable);
}

/** Number of trainable parameters. */
export function countTrainable(c: Classifier): number {
  return [...c.backbone.model.trainableWeights, ...c.head.trainableWeights].reduce((n, w) => n + (w.shape as number[]).reduce((a, b) => a * b, 1), 0);
}

/**
 * Every weight of the classifier (trainable or not: BN moving statistics too), in layer order.
 * NOTE: not `model.weights`, which lists trainable weights first, so its order changes when
 * layers are frozen or unfrozen; per layer, `weights` keeps one order either way.
 */
export function allWeights(c: Classifier): tf.LayerVariable[] {
  return [...allLayers(c.backbone.model), ...allLayers(c.head)].flatMap((l) => l.weights);
}
