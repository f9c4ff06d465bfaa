/** freeze-train: train the head with the backbone frozen (inference-mode BatchNorm). */
import { stageMeta } from './meta.js';
import { defineStage } from '../src/stage.js';
import { loadTrainingStage, runTrainingStage, type TrainParams, type TrainState } from '../src/train/stage.js';

export default defineStage<TrainParams, TrainState>({
  ...stageMeta['freeze-train'],
  load: (ctx, dir) => loadTrainingStage(ctx, dir, 'freeze'),
  run: (ctx) => runTrainingStage(ctx, 'freeze'),
});
