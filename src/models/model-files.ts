/**
 * Saves and loads classifiers in the tfjs layers format (model.json + weights.bin, the layout
 * of tfjs's `file://` handler) with our own file-system handler, so no tfjs-node is needed.
 * Files are written to temporary names and renamed, so a crash never leaves a half model.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PipelineError } from '../errors.js';
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

/**
 * Bytes per value of each weight dtype in a weights file (tfjs-core `io/types.ts`
 * `DTYPE_VALUE_SIZE_MAP`; a quantized weight is stored in its `quantization.dtype`).
 */
const DTYPE_BYTES: Record<string, number> = { float32: 4, int32: 4, float16: 2, uint16: 2, uint8: 1, bool: 1, complex64: 8 };

/**
 * The size, in bytes, of the weights file a manifest describes: each weight's shape product
 * times its stored dtype's size, summed (tfjs writes them back to back, no padding).
 * @throws Error for a dtype of unknown size (e.g. string).
 */
export function manifestBytes(specs: readonly tf.io.WeightsManifestEntry[]): number {
  let n = 0;
  for (const s of specs) {
    const dtype = s.quantization?.dtype ?? s.dtype;
    const size = DTYPE_BYTES[dtype];
    if (size === undefined) throw new Error(`weight ${s.name} has dtype ${dtype}, which a weights file of this format does not hold`);
    n += s.shape.reduce((a, b) => a * b, 1) * size;
  }
  return n;
}

/**
 * Loads a model saved by saveClassifier (one LayersModel: images in, logits out).
 * @throws PipelineError PIPE_MODEL (exit 2) naming weights.bin and both sizes when it holds
 *   another number of bytes than model.json's weightsManifest describes (a truncated copy, or
 *   the weights of another model); Error when a file is missing or model.json is not a model.
 */
export async function loadModel(dir: string): Promise<tf.LayersModel> {
  const json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8'));
  const specs = json.weightsManifest[0].weights as tf.io.WeightsManifestEntry[];
  const file = join(dir, 'weights.bin');
  const weights = await readFile(file);
  const want = manifestBytes(specs);
  if (weights.byteLength !== want) {
    throw new PipelineError('PIPE_MODEL', `model '${file}' holds ${weights.byteLength} bytes but ${join(dir, 'model.json')} describes ${want} bytes of weights (${specs.length} tensors): ` +
      `the file is ${weights.byteLength < want ? 'truncated' : 'longer than its manifest'} or belongs to another model`);
  }
  return tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: specs,
      weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
    }),
  );
}
