/**
 * evaluate: the best model on the test split (and optionally others, with the test-time op chain):
 * loss, top-1/top-k accuracy, per-class precision/recall/F1/accuracy, the confusion matrix and
 * inference images/s, logged as `eval_*` metrics and written as report.json.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeDurable } from '../src/fs-durable.js';
import { BatchSource } from '../src/data/batches.js';
import { collectLogits } from '../src/eval/logits.js';
import { confusionCsv, splitMetrics, splitReport, type SplitReport } from '../src/eval/split-report.js';
import { PipelineError } from '../src/errors.js';
import { stageMeta } from './meta.js';
import { defineStage } from '../src/stage.js';
import type { TrainState } from '../src/train/stage.js';
import type { EvalReport, EvalSplit } from '../src/eval/report.js';
import type { EvaluateStageParameters } from '../src/config/generated/evaluate.js';

/** The validated parameters (defaults filled): generated from schemas/stages/evaluate.schema.json. */
export type EvaluateParams = EvaluateStageParameters;

export default defineStage<EvaluateParams, EvalReport>({
  ...stageMeta.evaluate,
  /** Reuse: read report.json and log its metrics and files again, so this run has them too. */
  async load(ctx, dir) {
    const report = JSON.parse(await readFile(join(dir, 'report.json'), 'utf8')) as EvalReport;
    const step = ctx.maybeUpstream<TrainState>('unfreeze-train', 'freeze-train')?.lastEpoch ?? 0;
    for (const rep of Object.values(report.splits)) for (const [k, v] of Object.entries(splitMetrics(rep!))) ctx.report.metric(k, v, step);
    for (const f of (await readdir(dir)).filter((x) => /^(report\.json|confusion-matrix-.*\.csv)$/.test(x))) ctx.report.artifact(join(dir, f), 'evaluation');
    return report;
  },
  async run(ctx) {
    const state = ctx.upstream<TrainState>('unfreeze-train', 'freeze-train');
    const p = ctx.params;
    const classes = state.data.dataset.classes;
    const testSpecs = state.data.test.specs;
    const order: EvalSplit[] = ['test', ...(p.splits ?? []).filter((s) => s !== 'test')];
    const step = state.lastEpoch;
    const reports: Partial<Record<EvalSplit, SplitReport>> = {};
    for (const split of order) {
      ctx.signal.throwIfAborted();
      const images = split === 'test' ? state.data.test.split : split === 'train' ? state.data.train.split : state.data.dataset.val;
      if (!images) throw new PipelineError('PIPE_DATA', `stages.${ctx.name}.with.splits: the data has no val split; set val_fraction in the download stage or drop val`, 1);
      const source = new BatchSource(images, testSpecs, p.batch_size, { shuffle: false, seed: ctx.seed });
      ctx.report.progress(`${split}: scoring ${images.count} images`);
      const r = await collectLogits(state.classifier, source);
      const rep = splitReport(split, r.logits, r.labels, classes, { topK: p.top_k, maxMisclassified: p.max_misclassified, ms: r.ms });
      reports[split] = rep;
      for (const [k, v] of Object.entries(splitMetrics(rep))) ctx.report.metric(k, v, step);
      const csv = join(ctx.outDir, `confusion-matrix-${split}.csv`);
      await writeDurable(csv, confusionCsv(rep));
      ctx.report.artifact(csv, 'evaluation');
      ctx.report.progress(`${split} accuracy ${(100 * rep.accuracy).toFixed(2)}% (top-${rep.top_k} ${(100 * rep.top_k_accuracy).toFixed(2)}%), loss ${rep.loss.toFixed(4)}, macro F1 ${rep.averages.macro.f1.toFixed(4)} on ${rep.images} images`);
    }
    const test = reports.test!;
    const report: EvalReport = {
      test_loss: test.loss, test_accuracy: test.accuracy, top_k: test.top_k, test_top_k_accuracy: test.top_k_accuracy,
      images: test.images, images_per_second: test.images_per_second,
      best_epoch: state.best.epoch, best_phase: state.best.phase, unfreeze_epoch: state.unfreezeEpoch,
      classes, splits: { ...reports, test },
    };
    const path = join(ctx.outDir, 'report.json');
    await writeDurable(path, JSON.stringify(report, null, 2));
    ctx.report.artifact(path, 'evaluation');
    return report;
  },
});
