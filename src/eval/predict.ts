/**
 * Top-k predictions of a saved model on image files: locate the model and its preprocessing
 * (`./model-dir.ts`), prepare each image (`./image.ts`), run the model, softmax the logits.
 */
import * as tf from '@tensorflow/tfjs';
import { join } from 'node:path';
import { Chain } from '../data/chain.js';
import type { OpSpec } from '../data/transforms.js';
import { PipelineError } from '../errors.js';
import { loadModel } from '../models/model-files.js';
import { loadCheckpointModel } from './checkpoint-model.js';
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

/** An image that could not be predicted (unreadable, channels that cannot be converted, ...). */
export interface ImageFailure {
  /** The image path as given. */
  image: string;
  /** Why, naming the file (the text `pipe predict` prints after `pipe: `). */
  error: string;
}

/** What {@link predictImages} returns. */
export interface PredictResult {
  model: ModelLocation;
  /** Model input [height, width, channels] (NHWC without the batch). */
  input: [number, number, number];
  classes: string[];
  /** One per image, in the order given: its prediction, or why there is none. */
  results: Array<ImagePrediction | ImageFailure>;
  /** Notes about the model (e.g. where the preprocessing came from), for the user. */
  notes: string[];
}

/** True for a result that holds a prediction. */
export const isPrediction = (r: ImagePrediction | ImageFailure): r is ImagePrediction => !('error' in r);

/**
 * The largest image side, px, `pipe predict` feeds a model (the model's input, and model.json's
 * `preprocess.input_size`). One 4096 x 4096 RGB image is 192 MiB as float32 before the first
 * layer, and a ResNet's first convolution (64 channels at half that side) makes 1 GiB of it; the
 * zoo's largest native input is 299 px (inception_v3, src/models/pins.ts). A bigger side is an
 * edited or foreign model.json, refused before anything is allocated.
 */
export const MAX_INPUT_SIDE = 4096;

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
 * The class names stored in model.json (`userDefinedMetadata.classes`), one per output of the
 * head; `class_<i>` names (and a note) when it stores none.
 * @throws PipelineError PIPE_MODEL (exit 2) naming model.json when the list is not `units`
 *   strings: names cannot be matched to outputs then.
 */
export function classNames(meta: Record<string, unknown>, units: number, file: string, notes: string[]): string[] {
  const stored = meta['classes'];
  if (stored === undefined || stored === null) {
    notes.push(`model.json stores no names for its ${units} classes; showing class_<i>`);
    return Array.from({ length: units }, (_, i) => `class_${i}`);
  }
  if (!Array.isArray(stored) || !stored.every((c) => typeof c === 'string')) {
    throw new PipelineError('PIPE_MODEL', `model '${file}': userDefinedMetadata.classes must be a list of class names, one per output of the head (${units})`);
  }
  if (stored.length !== units) {
    throw new PipelineError('PIPE_MODEL', `model '${file}' lists ${stored.length} class${stored.length === 1 ? '' : 'es'} (userDefinedMetadata.classes) but its head has ${units} outputs: ` +
      'the names cannot be matched to the outputs (the file was edited, or its weights belong to another model)');
  }
  return stored as string[];
}

/**
 * Refuses an image side above {@link MAX_INPUT_SIDE}.
 * @param what where the size comes from, for the message.
 * @throws PipelineError PIPE_MODEL (exit 2).
 */
function checkSide(file: string, what: string, h: number, w: number): void {
  if (h > MAX_INPUT_SIDE || w > MAX_INPUT_SIDE) {
    throw new PipelineError('PIPE_MODEL', `model '${file}': ${what} is ${h}x${w} px; pipe predict takes at most ${MAX_INPUT_SIDE} px a side ` +
      `(one ${MAX_INPUT_SIDE}x${MAX_INPUT_SIDE} RGB image is 192 MiB as float32 before the first layer; the zoo's largest input is 299 px)`);
  }
}

/**
 * Predicts the top `topK` classes (default 5, at most the number of classes) of each image with
 * the model found at `target` (a run folder, a run id or a best-model folder; `opts.stage`: that
 * training stage's best model in the run; a run of several training chains needs one, see
 * `findModelDir`). An image that cannot be used (missing, unreadable, channels that cannot be
 * converted, a size the test-time ops do not bring to the model's, outputs that are not finite)
 * gets an {@link ImageFailure}; the others are still predicted.
 * Needs an initialised tfjs backend (see `initEngine`).
 * @throws PipelineError (exit 2) naming the model file: bad `topK` or no images (PIPE_USAGE),
 *   missing model, weights.bin of another size than model.json describes, weights holding NaN or
 *   infinities (a diverged training), a class list of another length than the head's outputs,
 *   an input side above {@link MAX_INPUT_SIDE}.
 */
export async function predictImages(target: string, images: readonly string[], opts: { topK?: number; stage?: string } = {}): Promise<PredictResult> {
  const k = opts.topK ?? 5;
  if (!Number.isInteger(k) || k < 1) throw new PipelineError('PIPE_USAGE', `--top-k must be a whole number >= 1, got ${k}`);
  if (images.length === 0) throw new PipelineError('PIPE_USAGE', 'give at least one image file');
  const loc = await locateModel(target, opts.stage !== undefined ? { stage: opts.stage } : {});
  // the model.json the metadata came from (a checkpoint's: its build-model stage's)
  const file = join(loc.checkpoint?.template ?? loc.dir, 'model.json');
  const inputSize = loc.preprocess.input_size;
  if (inputSize !== undefined) {
    if (!Array.isArray(inputSize) || inputSize.length !== 2 || !inputSize.every((v) => Number.isInteger(v) && v >= 1)) {
      throw new PipelineError('PIPE_MODEL', `model '${file}': userDefinedMetadata.preprocess.input_size must be [height, width] in px, got ${JSON.stringify(inputSize)}`);
    }
    checkSide(file, 'userDefinedMetadata.preprocess.input_size', inputSize[0], inputSize[1]);
  }
  let model: tf.LayersModel;
  try {
    model = loc.checkpoint ? await loadCheckpointModel(loc.checkpoint.dir, loc.checkpoint.template) : await loadModel(loc.dir);
  } catch (e) {
    if (e instanceof PipelineError) throw e;
    throw new PipelineError('PIPE_MODEL', `cannot load model '${file}': ${(e as Error).message}`);
  }
  try {
    const shape = model.inputs[0]!.shape;
    const [h, w, c] = [shape[1], shape[2], shape[3]];
    if (shape.length !== 4 || !h || !w || !c) throw new PipelineError('PIPE_MODEL', `model '${loc.dir}' takes inputs of shape [${shape.join(', ')}], not [n, height, width, channels] images`);
    checkSide(file, 'its input (modelTopology)', h, w);
    const bad = nonFiniteWeight(model);
    if (bad) {
      throw new PipelineError('PIPE_MODEL', `model '${loc.dir}' cannot predict: weight ${bad.name} (in weights.bin) holds ${bad.count} non-finite value${bad.count === 1 ? '' : 's'} (${bad.first} at index ${bad.index}); ` +
        'the training that saved it diverged (retrain it, e.g. with a lower learning rate)');
    }
    const units = model.outputs[0]!.shape[1] ?? 0;
    const notes: string[] = [];
    if (loc.note !== undefined) notes.push(loc.checkpoint ? `${loc.note} (epoch ${loc.checkpoint.epoch}, best epoch ${String(loc.meta['best_epoch'])}): ${loc.dir}` : `${loc.note}: ${loc.dir}`);
    const classes = classNames(loc.meta, units, file, notes);
    if (loc.preprocess.source === 'none') notes.push(`no preprocessing found (neither model.json userDefinedMetadata.preprocess nor the run's resolved.yaml): pixels scaled to [0, 1], nothing else`);
    const size = inputSize ?? chainInputSize(loc.preprocess.test, [h, w, c]);
    const results: Array<ImagePrediction | ImageFailure> = [];
    const ready: Array<{ at: number; p: PreparedImage }> = [];
    for (const image of images) {
      try {
        const p: PreparedImage = await prepareImage(image, { size, channels: c, ops: loc.preprocess.test }).catch((e: unknown) => {
          if (e instanceof PipelineError) throw e;
          throw new PipelineError('PIPE_DATA', `cannot preprocess '${image}' with the model's test-time ops (from ${loc.preprocess.source}): ${(e as Error).message}`);
        });
        if (p.height !== h || p.width !== w || p.channels !== c) {
          throw new PipelineError('PIPE_DATA', `'${image}' is ${p.height}x${p.width}x${p.channels} after the test-time ops (from ${loc.preprocess.source}) but model '${loc.dir}' takes ${h}x${w}x${c}; ` +
            (inputSize ? `model.json's preprocess.input_size (${inputSize.join('x')}) and test-time ops do not give the model's input size` : 'resize the image to the training images\' size first (model.json stores no preprocess.input_size)'));
        }
        ready.push({ at: results.length, p });
        results.push({ image, top: [], notes: p.notes });
      } catch (e) {
        if (!(e instanceof PipelineError)) throw e;
        results.push({ image, error: e.message });
      }
    }
    if (ready.length === 0) return { model: loc, input: [h, w, c], classes, results, notes };
    const x = new Float32Array(ready.length * h * w * c);
    ready.forEach(({ p }, i) => x.set(p.data, i * h * w * c));
    const probs = tf.tidy(() => tf.softmax(model.predict(tf.tensor4d(x, [ready.length, h, w, c])) as tf.Tensor2D));
    const values = (await probs.data()) as Float32Array;
    probs.dispose();
    ready.forEach(({ at }, i) => {
      const v = values.subarray(i * units, (i + 1) * units);
      const nan = v.findIndex((p) => !Number.isFinite(p));
      if (nan >= 0) {
        results[at] = { image: images[at]!, error: `model '${loc.dir}' gives non-finite outputs (${v[nan]}) for '${images[at]}': its weights are finite, so an activation overflowed; no prediction shown` };
      } else {
        (results[at] as ImagePrediction).top = topK(v, classes, Math.min(k, units));
      }
    });
    return { model: loc, input: [h, w, c], classes, results, notes };
  } finally {
    model.dispose();
  }
}
