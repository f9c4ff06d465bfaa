/** unfreeze-train: train the backbone (all of it, or from a named block) and the head. */
import { stageMeta } from './meta.js';
import { defineStage } from '../src/stage.js';
import { loadTrainingStage, runTrainingStage, type TrainParams, type TrainState } from '../src/train/stage.js';

export default defineStage<TrainParams, TrainState>({
  ...stageMeta['unfreeze-train'],
  load: (ctx, dir) => loadTrainingStage(ctx, dir, 'unfreeze'),
  run: (ctx) => runTrainingStage(ctx, 'unfreeze'),
});
