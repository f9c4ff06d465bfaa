/**
 * The stage kinds, one literal table. Registration is explicit: nothing registers itself by
 * being imported. Anchor: Vitest `ReportersMap`, listr2 `RENDERERS`.
 */
import type { StageDefinition } from '../src/runner/stage.js';
import augment from './augment.js';
import buildModel from './build-model.js';
import download from './download.js';
import evaluate from './evaluate.js';
import freezeTrain from './freeze-train.js';
import plot from './plot.js';
import unfreezeTrain from './unfreeze-train.js';

export const stageKinds = {
  download,
  augment,
  'build-model': buildModel,
  'freeze-train': freezeTrain,
  'unfreeze-train': unfreezeTrain,
  evaluate,
  plot,
} as const;

/** A kind name of the table. */
export type StageKind = keyof typeof stageKinds;

/** The definition of `kind`, loosely typed for the runner. */
export function stageDefinition(kind: StageKind): StageDefinition<unknown, unknown> {
  return stageKinds[kind] as unknown as StageDefinition<unknown, unknown>;
}
