/** augment: the train and test op chains, applied per batch on the fly, seeded. */
import { BatchSource } from '../src/data/batches.js';
import type { Dataset } from '../src/data/dataset.js';
import type { OpSpec } from '../src/data/transforms.js';
import { PipelineError } from '../src/errors.js';
import { defineStage } from '../src/runner/stage.js';

/** schemas/stages/augment.schema.json */
export interface AugmentParams {
  batch_size: number;
  train: OpSpec[];
  test: OpSpec[];
}

/** What training and evaluation read. */
export interface AugmentedData {
  dataset: Dataset;
  train: BatchSource;
  test: BatchSource;
}

export default defineStage<AugmentParams, AugmentedData>({
  kind: 'augment',
  version: 1,
  summary: 'per-batch augmentation (train) and preprocessing (test), seeded',
  async run(ctx) {
    const dataset = ctx.upstream<Dataset>('download');
    const { batch_size: bs } = ctx.params;
    const train = new BatchSource(dataset.train, ctx.params.train, bs, { shuffle: true, seed: ctx.seed });
    const test = new BatchSource(dataset.test, ctx.params.test, bs, { shuffle: false, seed: ctx.seed });
    if (train.height !== test.height || train.width !== test.width) {
      throw new PipelineError('PIPE_DATA', `stages.${ctx.name}: train ops give ${train.height}x${train.width} images but test ops give ${test.height}x${test.width}; they must match`, 1);
    }
    for (const [what, src] of [['train', train], ['test', test]] as const) {
      try {
        src.epoch(0, 1).next(); // runs every op once: bad mean/std lengths, crops larger than the image
      } catch (e) {
        throw new PipelineError('PIPE_DATA', `stages.${ctx.name}.with.${what}: ${(e as Error).message}`, 1);
      }
    }
    ctx.report.progress(`${train.batchesPerEpoch} train batches of ${bs}, images ${train.height}x${train.width}x${dataset.train.channels}`);
    return { dataset, train, test };
  },
});
