/**
 * The model of a training stage that did not finish (a killed or failed run): the weights its
 * last epoch checkpoint holds (src/train/checkpoint.ts), put into a classifier of the
 * architecture its chain's build-model stage saved, as one LayersModel (images in, logits out).
 */
import * as tf from '@tensorflow/tfjs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PipelineError } from '../errors.js';
import { loadModel, toSingleModel } from '../models/model-files.js';
import { buildClassifier } from '../models/registry.js';
import { Rng } from '../rng.js';
import { readCheckpoint } from '../train/checkpoint.js';
import { allWeights } from '../train/freeze.js';

/**
 * Loads the best weights of the checkpoint in `checkpointDir`: its `best` tensors (the chain's
 * best epoch so far on the stage's monitor, every weight of the full classifier, BN statistics
 * included), or, when no epoch had a finite monitor value yet, its last epoch's weights: what the
 * stage would have saved as its best model had it finished (src/train/stage.ts).
 * @param template the build-model stage's saved model folder (`<run>/<build>/model`): the
 *   architecture (`userDefinedMetadata.arch`), input [height, width, channels] and class count.
 * @throws PipelineError PIPE_MODEL (exit 2) naming the folder when a file cannot be read, or the
 *   checkpoint's weights do not fit that architecture (count or shapes).
 */
export async function loadCheckpointModel(checkpointDir: string, template: string): Promise<tf.LayersModel> {
  let arch: unknown, inp: { height: number; width: number; channels: number }, classes: number;
  try {
    arch = (JSON.parse(await readFile(join(template, 'model.json'), 'utf8')) as { userDefinedMetadata?: Record<string, unknown> }).userDefinedMetadata?.['arch'];
    const t = await loadModel(template);
    const [, height, width, channels] = t.inputs[0]!.shape as number[];
    inp = { height: height!, width: width!, channels: channels! };
    classes = t.outputs[0]!.shape[1] as number;
    t.dispose();
  } catch (e) {
    if (e instanceof PipelineError) throw e;
    throw new PipelineError('PIPE_MODEL', `cannot read the model the checkpoint '${checkpointDir}' belongs to ('${template}'): ${(e as Error).message}`);
  }
  if (typeof arch !== 'string') throw new PipelineError('PIPE_MODEL', `'${join(template, 'model.json')}' names no architecture (userDefinedMetadata.arch): cannot rebuild the model of checkpoint '${checkpointDir}'`);
  let saved: Awaited<ReturnType<typeof readCheckpoint>>;
  try {
    saved = await readCheckpoint(checkpointDir);
  } catch (e) {
    throw new PipelineError('PIPE_MODEL', `cannot read the checkpoint in '${checkpointDir}': ${(e as Error).message}`);
  }
  if (!saved) throw new PipelineError('PIPE_MODEL', `no checkpoint in '${checkpointDir}' (latest.json is missing)`);
  const { model: last, best, optimizer } = saved.tensors;
  tf.dispose(optimizer.map((o) => o.tensor));
  const weights = best.length > 0 ? best : last;
  tf.dispose(best.length > 0 ? last : best);
  try {
    const c = buildClassifier(arch, inp, classes, 'none', new Rng(0));
    const vars = allWeights(c);
    const misfit = vars.length !== weights.length ? `${weights.length} tensors for the ${vars.length} weights of ${arch}` :
      vars.map((v, i) => (v.shape.join('x') !== weights[i]!.shape.join('x') ? `${v.originalName} is ${v.shape.join('x')} in ${arch}, ${weights[i]!.shape.join('x')} in the checkpoint` : '')).find((m) => m);
    if (misfit) throw new PipelineError('PIPE_MODEL', `the checkpoint in '${checkpointDir}' does not fit ${arch} as '${template}' builds it: ${misfit}`);
    vars.forEach((v, i) => v.write(weights[i]!));
    return toSingleModel(c);
  } finally {
    tf.dispose(weights);
  }
}
