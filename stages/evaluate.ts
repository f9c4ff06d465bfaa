/** evaluate: test loss and accuracy of the best model, written as report.json. */
import { writeFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { BatchSource } from '../src/data/batches.js';
import { defineStage } from '../src/runner/stage.js';
import { evaluateSplit } from '../src/train/evaluate.js';
import type { TrainState } from '../src/train/stage.js';

/** schemas/stages/evaluate.schema.json */
export interface EvaluateParams {
  batch_size: number;
}

/** report.json */
export interface EvalReport {
  test_loss: number;
  test_accuracy: number;
  images: number;
  /** Inference throughput, images/s. */
  images_per_second: number;
  best_epoch: number | null;
  best_phase: string | null;
  classes: string[];
}

export default defineStage<EvaluateParams, EvalReport>({
  kind: 'evaluate',
  version: 1,
  summary: 'test loss and accuracy of the best model',
  async run(ctx) {
    const state = ctx.upstream<TrainState>('unfreeze-train', 'freeze-train');
    const t = state.data.test;
    const source = new BatchSource(t.split, t.specs, ctx.params.batch_size, { shuffle: false, seed: ctx.seed });
    const r = await evaluateSplit(state.classifier, source);
    const report: EvalReport = {
      test_loss: r.loss, test_accuracy: r.accuracy, images: r.count, images_per_second: r.count / (r.ms / 1000),
      best_epoch: state.best.epoch ?? null, best_phase: state.best.phase ?? null, classes: state.data.dataset.classes,
    };
    const step = state.lastEpoch;
    ctx.report.metric('eval_test_loss', r.loss, step);
    ctx.report.metric('eval_test_accuracy', r.accuracy, step);
    ctx.report.metric('eval_images_per_second', report.images_per_second, step);
    const path = join(ctx.outDir, 'report.json');
    await writeFile(`${path}.tmp`, JSON.stringify(report, null, 2));
    await rename(`${path}.tmp`, path);
    ctx.report.artifact(path, 'evaluation');
    ctx.report.progress(`test accuracy ${(100 * r.accuracy).toFixed(2)}%, loss ${r.loss.toFixed(4)} on ${r.count} images`);
    return report;
  },
});
