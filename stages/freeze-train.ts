/** freeze-train: train the head with the backbone frozen (inference-mode BatchNorm). */
import { defineStage } from '../src/stage.js';
import { loadTrainingStage, runTrainingStage, type TrainParams, type TrainState } from '../src/train/stage.js';

export default defineStage<TrainParams, TrainState>({
  kind: 'freeze-train',
  version: 2,
  summary: 'train the new head, backbone frozen',
  load: (ctx, dir) => loadTrainingStage(ctx, dir, 'freeze'),
  run: (ctx) => runTrainingStage(ctx, 'freeze'),
});
