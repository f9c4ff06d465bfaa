/** unfreeze-train: train the backbone (all of it, or from a named block) and the head. */
import { defineStage } from '../src/stage.js';
import { loadTrainingStage, runTrainingStage, type TrainParams, type TrainState } from '../src/train/stage.js';

export default defineStage<TrainParams, TrainState>({
  kind: 'unfreeze-train',
  version: 2,
  summary: 'fine-tune backbone and head, usually at a lower learning rate',
  load: (ctx, dir) => loadTrainingStage(ctx, dir, 'unfreeze'),
  run: (ctx) => runTrainingStage(ctx, 'unfreeze'),
});
