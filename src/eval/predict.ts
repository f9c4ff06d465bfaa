/**
 * Top-k predictions of a saved model on image files: locate the model and its preprocessing
 * (`./model-dir.ts`), prepare each image (`./image.ts`), run the model, softmax the logits.
 */
import * as tf from '@tensorflow/tfjs';
import { Chain } from '../data/chain.js';
import type { OpSpec } from '../data/transforms.js';
import { PipelineError } from '../errors.js';
import { loadModel } from '../models/model-files.js';
import { prepareImage, type PreparedImage } from './image.js';
import { locateModel, type ModelLocation } from './model-dir.js';

/** One class of a top-k list. */
export interface ClassProbability {
  /** Class name (`class_<i>` when the model stores no names). */
  class: string;
  /** Class index, 0-based. */
  index: number;
  /** Softmax probability in [0, 1]. */
  probability: number;
}

/** The top-k classes of one image. */
export interface ImagePrediction {
  /** The image path as given. */
  image: string;
  /** Highest probability first; ties by lower class index. */
  top: ClassProbability[];
  /** Conversions applied before the op chain (see `prepareImage`). */
  notes: string[];
}

/** What {@link predictImages} returns. */
export interface PredictResult {
  model: ModelLocation;
  /** Model input [height, width, channels] (NHWC without the batch). */
  input: [number, number, number];
  classes: string[];
  results: ImagePrediction[];
  /** Notes about the model (e.g. where the preprocessing came from), for the user. */
  notes: string[];
}

/**
 * The image size to resize to before the op chain when model.json does not store it: the
 * model's own [height, width] when the chain keeps that size (no resize or crop ops, or ones
 * that leave it unchanged), else undefined (the image goes in at its own size).
 */
export function chainInputSize(ops: readonly OpSpec[], model: [number, number, number]): [number, number] | undefined {
  try {
    const out = new Chain(ops, model).outShape;
    return out[0] === model[0] && out[1] === model[1] && out[2] === model[2] ? [model[0], model[1]] : undefined;
  } catch {
    return undefined;
  }
}

/** The `k` largest entries of `probs` as class/probability pairs, highest first (ties: lower index first). */
export function topK(probs: ArrayLike<number>, classes: readonly string[], k: number): ClassProbability[] {
  const idx = Array.from({ length: probs.length }, (_, i) => i);
  idx.sort((a, b) => probs[b]! - probs[a]! || a - b);
  return idx.slice(0, Math.max(0, k)).map((i) => ({ class: classes[i] ?? `class_${i}`, index: i, probability: probs[i]! }));
}

/**
 * The first weight of `model` holding NaN or an infinity: its name, how many such values, the
 * first one and its flat index; undefined when every weight is finite.
 */
export function nonFiniteWeight(model: tf.LayersModel): { name: string; count: number; first: number; index: number } | undefined {
  for (const w of model.weights) {
    const v = w.read().dataSync();
    let count = 0, index = -1;
    for (let i = 0; i < v.length; i++) {
      if (!Number.isFinite(v[i]!)) {
        count++;
        if (index < 0) index = i;
      }
    }
    if (count) return { name: w.originalName, count, first: v[index]!, index };
  }
  return undefined;
}

/**
 * Predicts the top `topK` classes (default 5, at most the number of classes) of each image with
 * the model found at `target` (a run folder, a run id or a best-model folder; `opts.stage`: that
 * training stage's best model in the run; a run of several training chains needs one, see
 * `findModelDir`). Every image is
 * prepared before the model runs, so a bad file fails the call before any output.
 * Needs an initialised tfjs backend (see `initEngine`).
 * @throws PipelineError (exit 2) naming the model or image file: missing model, unreadable
 *   image, channels that cannot be converted, a preprocessing chain that does not fit the model,
 *   weights holding NaN or infinities (a diverged training), or outputs that are not finite
 *   (never shown as `NaN%`).
 */
export async function predictImages(target: string, images: readonly string[], opts: { topK?: number; stage?: string } = {}): Promise<PredictResult> {
  const k = opts.topK ?? 5;
  if (!Number.isInteger(k) || k < 1) throw new PipelineError('PIPE_USAGE', `--top-k must be a positive integer, got ${k}`);
  if (images.length === 0) throw new PipelineError('PIPE_USAGE', 'give at least one image file');
  const loc = await locateModel(target, opts.stage !== undefined ? { stage: opts.stage } : {});
  let model: tf.LayersModel;
  try {
    model = await loadModel(loc.dir);
  } catch (e) {
    throw new PipelineError('PIPE_MODEL', `cannot load model '${loc.dir}/model.json': ${(e as Error).message}`);
  }
  try {
    const bad = nonFiniteWeight(model);
    if (bad) {
      throw new PipelineError('PIPE_MODEL', `model '${loc.dir}' cannot predict: weight ${bad.name} (in weights.bin) holds ${bad.count} non-finite value${bad.count === 1 ? '' : 's'} (${bad.first} at index ${bad.index}); ` +
        'the training that saved it diverged (retrain it, e.g. with a lower learning rate)');
    }
    const shape = model.inputs[0]!.shape;
    const [h, w, c] = [shape[1], shape[2], shape[3]];
    if (shape.length !== 4 || !h || !w || !c) throw new PipelineError('PIPE_MODEL', `model '${loc.dir}' takes inputs of shape [${shape.join(', ')}], not [n, height, width, channels] images`);
    const units = model.outputs[0]!.shape[1] ?? 0;
    const stored = loc.meta['classes'];
    const notes: string[] = [];
    const named = Array.isArray(stored) && stored.length === units;
    const classes = named ? stored.map(String) : Array.from({ length: units }, (_, i) => `class_${i}`);
    if (!named) notes.push(`model.json stores no names for its ${units} classes; showing class_<i>`);
    if (loc.preprocess.source === 'none') notes.push(`no preprocessing found (neither model.json userDefinedMetadata.preprocess nor the run's resolved.yaml): pixels scaled to [0, 1], nothing else`);
    const size = loc.preprocess.input_size ?? chainInputSize(loc.preprocess.test, [h, w, c]);
    const prepared: PreparedImage[] = [];
    for (const file of images) {
      let p: PreparedImage;
      try {
        p = await prepareImage(file, { size, channels: c, ops: loc.preprocess.test });
      } catch (e) {
        if (e instanceof PipelineError) throw e;
        throw new PipelineError('PIPE_MODEL', `cannot preprocess '${file}' with the model's test-time ops (from ${loc.preprocess.source}): ${(e as Error).message}`);
      }
      if (p.height !== h || p.width !== w || p.channels !== c) {
        throw new PipelineError('PIPE_MODEL', `'${file}' is ${p.height}x${p.width}x${p.channels} after the test-time ops (from ${loc.preprocess.source}) but model '${loc.dir}' takes ${h}x${w}x${c}; ` +
          'resize the image to the training images\' size first (model.json stores no preprocess.input_size)');
      }
      prepared.push(p);
    }
    const x = new Float32Array(prepared.length * h * w * c);
    prepared.forEach((p, i) => x.set(p.data, i * h * w * c));
    const probs = tf.tidy(() => tf.softmax(model.predict(tf.tensor4d(x, [prepared.length, h, w, c])) as tf.Tensor2D));
    const values = (await probs.data()) as Float32Array;
    probs.dispose();
    const nan = values.findIndex((v) => !Number.isFinite(v));
    if (nan >= 0) {
      throw new PipelineError('PIPE_MODEL', `model '${loc.dir}' gives non-finite outputs (${values[nan]}) for '${images[Math.floor(nan / units)]}': its weights are finite, so an activation overflowed; no prediction shown`);
    }
    const results = prepared.map((p, i) => ({
      image: images[i]!,
      top: topK(values.subarray(i * units, (i + 1) * units), classes, Math.min(k, units)),
      notes: p.notes,
    }));
    return { model: loc, input: [h, w, c], classes, results, notes };
  } finally {
    model.dispose();
  }
}
