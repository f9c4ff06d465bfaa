/**
 * The stage kinds, one literal table, handed by the CLI to the runner (src/stage.ts
 * StageTable). Registration is explicit: nothing registers itself by being imported.
 * Anchor: Vitest `ReportersMap`, listr2 `RENDERERS`.
 */
import type { StageTable } from '../src/stage.js';
import augment from './augment.js';
import buildModel from './build-model.js';
import download from './download.js';
import evaluate from './evaluate.js';
import freezeTrain from './freeze-train.js';
import plot from './plot.js';
import unfreezeTrain from './unfreeze-train.js';

export const stageKinds: StageTable = {
  download,
  augment,
  'build-model': buildModel,
  'freeze-train': freezeTrain,
  'unfreeze-train': unfreezeTrain,
  evaluate,
  plot,
};
