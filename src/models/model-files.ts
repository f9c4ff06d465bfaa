/**
 * Saves and loads classifiers in the tfjs layers format (model.json + weights.bin, the layout
 * of tfjs's `file://` handler) with our own file-system handler, so no tfjs-node is needed.
 * Files are written to temporary names and renamed, so a crash never leaves a half model.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeDurable } from '../fs-durable.js';
import type { Classifier } from './registry.js';
import './layers.js';

/** backbone + head as one LayersModel: NHWC images in, logits out. */
export function toSingleModel(c: Classifier): tf.LayersModel {
  const input = c.backbone.model.inputs[0]!;
  const logits = c.head.apply(c.backbone.model.outputs[0]!) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: logits, name: c.arch });
}

/**
 * Writes `<dir>/model.json` and `<dir>/weights.bin`.
 * @param meta extra JSON stored in model.json's userDefinedMetadata (classes, preprocessing).
 * @returns the paths written.
 */
export async function saveClassifier(c: Classifier, dir: string, meta: Record<string, unknown> = {}): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const model = toSingleModel(c);
  const paths = [join(dir, 'model.json'), join(dir, 'weights.bin')];
  await model.save(
    tf.io.withSaveHandler(async (art) => {
      const json = {
        modelTopology: art.modelTopology,
        format: 'layers-model',
        generatedBy: `TensorFlow.js tfjs-layers v${tf.version_layers}`,
        convertedBy: null,
        weightsManifest: [{ paths: ['weights.bin'], weights: art.weightSpecs }],
        userDefinedMetadata: meta,
      };
      const data = art.weightData instanceof ArrayBuffer ? new Uint8Array(art.weightData) : Buffer.concat((art.weightData as ArrayBuffer[]).map((b) => new Uint8Array(b)));
      // weights first: a model.json is never there without its weights
      await writeDurable(paths[1]!, data);
      await writeDurable(paths[0]!, JSON.stringify(json));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return paths;
}

/** Loads a model saved by saveClassifier (one LayersModel: images in, logits out). */
export async function loadModel(dir: string): Promise<tf.LayersModel> {
  const json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8'));
  const weights = await readFile(join(dir, 'weights.bin'));
  return tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: json.weightsManifest[0].weights,
      weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
    }),
  );
}
