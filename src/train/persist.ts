/**
 * Writing a training stage's state to its output folder and reading it back, so a finished
 * stage can be reused (stage cache, --resume) without training again: the best model's weights
 * (tfjs layers format, saved by the stage) plus state.json (history, best epoch, counters).
 */
import * as tf from '@tensorflow/tfjs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeDurable } from '../fs-durable.js';
import { toSingleModel } from '../models/model-files.js';
import type { Classifier } from '../models/registry.js';
import { BestModel } from './best.js';
import type { MonitorName } from './callbacks.js';
import type { EpochRecord } from './loop.js';

/**
 * Loads weights saved by saveClassifier (`<dir>/model.json` + `weights.bin`) into an existing
 * classifier of the same architecture, matching weights by name.
 * @throws Error naming the first weight that is missing or has another shape.
 */
export async function loadWeightsInto(c: Classifier, dir: string): Promise<void> {
  const json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8')) as { weightsManifest: { weights: tf.io.WeightsManifestEntry[] }[] };
  const bin = await readFile(join(dir, 'weights.bin'));
  const specs = json.weightsManifest.flatMap((g) => g.weights);
  const named = tf.io.decodeWeights(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength), specs);
  try {
    for (const w of toSingleModel(c).weights) {
      const t = named[w.originalName];
      if (!t) throw new Error(`${dir}: weight '${w.originalName}' is missing from the saved model`);
      if (t.shape.join('x') !== w.shape.join('x')) throw new Error(`${dir}: weight '${w.originalName}' has shape ${t.shape.join('x')}, the model wants ${w.shape.join('x')}`);
      w.write(t);
    }
  } finally {
    tf.dispose(Object.values(named));
  }
}

/** The JSON part of a training stage's state. */
export interface TrainStateJson {
  epochs: EpochRecord[];
  iterationLosses: number[];
  lastEpoch: number;
  lastStep: number;
  unfreezeEpoch?: number;
  best: { monitor: MonitorName; mode: 'min' | 'max'; value?: number; epoch?: number; phase?: 'freeze' | 'unfreeze' };
}

/** Writes `<dir>/state.json` atomically. */
export async function writeStateJson(dir: string, s: TrainStateJson): Promise<void> {
  await writeDurable(join(dir, 'state.json'), JSON.stringify(s));
}

/** Reads `<dir>/state.json`. */
export async function readStateJson(dir: string): Promise<TrainStateJson> {
  return JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')) as TrainStateJson;
}

/** A BestModel whose snapshot is the classifier's current weights (which hold the best epoch). */
export function bestFromJson(c: Classifier, b: TrainStateJson['best']): BestModel {
  const best = new BestModel(b.monitor, b.mode);
  if (b.epoch !== undefined && b.value !== undefined && b.phase !== undefined) {
    best.update(c, b.epoch, b.phase, { [b.monitor]: b.value });
  }
  return best;
}
