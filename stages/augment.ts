/**
 * augment: the train and test op chains (torchvision semantics, src/data/transforms.ts), applied
 * per batch on the fly, seeded. The sources prefetch batches on worker threads through
 * `epochAsync`; `epoch` computes them on the calling thread (same batches either way).
 */
import { BatchSource, type AugmentedData } from '../src/data/batches.js';
import type { Dataset } from '../src/data/dataset.js';
import { PipelineError } from '../src/errors.js';
import { defineStage, type StageContext } from '../src/stage.js';
import type { AugmentStageParameters, Op } from '../src/config/generated/augment.js';
import { stageMeta } from './meta.js';

/**
 * One op of a chain as validated: the schema's `op` object holds exactly one of its keys
 * (minProperties = maxProperties = 1), which the generated type cannot say; this maps it to the
 * union of one-key objects. Passing it where src/data/transforms.ts wants an OpSpec makes tsc
 * check that every op the schema accepts is one the transforms implement.
 */
type OneOp = { [K in keyof Op]-?: { [P in K]-?: NonNullable<Op[K]> } }[keyof Op];

/** The validated parameters (defaults filled): generated from schemas/stages/augment.schema.json. */
export type AugmentParams = Omit<AugmentStageParameters, 'train' | 'test'> & {
  /** Op chain of the training images, in order. @defaultValue [] */
  train: OneOp[];
  /** Op chain of the test (and validation) images, in order. @defaultValue [] */
  test: OneOp[];
};

const augment = defineStage<AugmentParams, AugmentedData>({
  ...stageMeta.augment,
  // Pure and cheap: rebuilding from the upstream dataset is the same as loading.
  load: (ctx) => runAugment(ctx),
  run: (ctx) => runAugment(ctx),
});

async function runAugment(ctx: StageContext<AugmentParams>): Promise<AugmentedData> {
  const dataset = ctx.upstream<Dataset>('download');
  const { batch_size: bs, workers = 1, prefetch = 4 } = ctx.params;
  const make = (what: 'train' | 'test', split: Dataset['train'], shuffle: boolean): BatchSource => {
    try {
      return new BatchSource(split, ctx.params[what], bs, { shuffle, seed: ctx.seed, workers, prefetch });
    } catch (e) {
      throw new PipelineError('PIPE_DATA', `stages.${ctx.name}.with.${what}${(e as Error).message}`, 1);
    }
  };
  const train = make('train', dataset.train, true);
  const test = make('test', dataset.test, false);
  const val = dataset.val ? make('test', dataset.val, false) : undefined;
  const dims = (s: BatchSource): string => `${s.height}x${s.width}x${s.channels}`;
  if (dims(train) !== dims(test)) {
    throw new PipelineError('PIPE_DATA', `stages.${ctx.name}: train ops give ${dims(train)} images but test ops give ${dims(test)}; they must match`, 1);
  }
  ctx.report.progress(`${train.batchesPerEpoch} train batches of ${bs}, images ${dims(train)}, ${workers} prefetch worker(s)`);
  return { dataset, train, test, ...(val ? { val } : {}) };
}

export default augment;
