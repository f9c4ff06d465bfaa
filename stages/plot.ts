/**
 * plot: the charts of a run (loss per iteration, metrics and learning rate per epoch with the
 * unfreeze marker, and, with an evaluate stage upstream, the confusion matrix and the
 * misclassified test images) as PNG + SVG, and report.html, all logged as artifacts.
 */
import { readFile, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { writeDurable } from '../src/fs-durable.js';
import { plotEpochMetrics, plotIterationLoss, type ChartFiles } from '../src/plot/charts.js';
import { plotConfusionMatrix } from '../src/plot/confusion.js';
import { plotLearningRate } from '../src/plot/lr.js';
import { plotMisclassified, type MisclassifiedTile } from '../src/plot/misclassified.js';
import { renderReportHtml, type ReportFigure } from '../src/report/html.js';
import { stageMeta } from './meta.js';
import { defineStage } from '../src/stage.js';
import type { TrainState } from '../src/train/stage.js';
import type { EvalReport } from '../src/eval/report.js';
import type { PlotStageParameters } from '../src/config/generated/plot.js';

/** The validated parameters (defaults filled): generated from schemas/stages/plot.schema.json. */
export type PlotParams = PlotStageParameters;

/** What the stage wrote. */
export interface PlotOutput {
  /** Every PNG and SVG written. */
  files: string[];
  /** The run's report.html. */
  report: string;
}

/** The tiles of the `n` most confident mistakes listed by evaluate, cut from the test split. */
function tiles(s: TrainState, ev: EvalReport, n: number): MisclassifiedTile[] {
  const split = s.data.test.split;
  const px = split.height * split.width * split.channels;
  return ev.splits.test.misclassified.slice(0, n).map((m) => ({
    pixels: split.images.subarray(m.index * px, (m.index + 1) * px),
    height: split.height, width: split.width, channels: split.channels,
    label: m.label_name, predicted: m.predicted_name, probability: m.probability,
  }));
}

/** An accuracy as a percentage, anything else (a loss) with 4 decimals. */
function formatMonitor(monitor: string, v: number): string {
  return /accuracy/.test(monitor) ? `${(100 * v).toFixed(2)}%` : v.toFixed(4);
}

/** `freeze: 1.0e-3; unfreeze: 1.0e-4 to 5.0e-5` (each phase's first and last rate), or none for one phase with one rate. */
export function lrCaption(epochs: readonly { phase: string; lr: number }[]): string | undefined {
  const phases = [...new Set(epochs.map((e) => e.phase))];
  const parts = phases.map((ph) => {
    const lrs = epochs.filter((e) => e.phase === ph).map((e) => e.lr);
    const [first, last] = [lrs[0]!, lrs[lrs.length - 1]!];
    return `${ph}: ${first.toExponential(1)}${last !== first ? ` to ${last.toExponential(1)}` : ''}`;
  });
  if (phases.length < 2 && !parts[0]?.includes(' to ')) return undefined;
  return `Learning rate by phase (each phase has its own optimizer; the segments are not joined): ${parts.join('; ')}.`;
}

export default defineStage<PlotParams, PlotOutput>({
  ...stageMeta.plot,
  /** Reuse: log the finished folder's charts and report.html again, so this run has them too. */
  async load(ctx, dir) {
    const files = (await readdir(dir)).filter((f) => /\.(png|svg)$/.test(f)).map((f) => join(dir, f));
    for (const f of files) ctx.report.artifact(f, 'plots');
    const report = join(dir, 'report.html');
    ctx.report.artifact(report);
    return { files, report };
  },
  async run(ctx) {
    const s = ctx.upstream<TrainState>('unfreeze-train', 'freeze-train');
    const ev = ctx.maybeUpstream<EvalReport>('evaluate');
    const p = ctx.params;
    const { width, height } = p;
    const charts: Array<[string, ChartFiles, string?]> = [];
    // The first fine-tuning iteration: the frozen phase's iteration count (its stage's lastStep).
    const unfreezeStep = s.unfreezeEpoch !== undefined ? ctx.maybeUpstream<TrainState>('freeze-train')?.lastStep : undefined;
    const n = s.iterationLosses.length;
    charts.push(['Training loss per iteration', await plotIterationLoss(s.iterationLosses.map((loss, step) => ({ step, loss })), ctx.outDir, { width, height, ...(unfreezeStep !== undefined ? { unfreezeStep } : {}) }),
      unfreezeStep !== undefined ? `${n} iterations: ${unfreezeStep} with the backbone frozen, then ${n - unfreezeStep} fine-tuning it (dashed line)` : undefined]);
    const b = s.best;
    charts.push(['Metrics per epoch', await plotEpochMetrics(
      s.epochs.map((e) => ({ epoch: e.epoch, phase: e.phase, trainLoss: e.train_loss, testLoss: e.test_loss, trainAccuracy: e.train_accuracy, testAccuracy: e.test_accuracy })),
      ctx.outDir,
      { width: Math.round(width * 0.66), height },
    ), b.epoch !== undefined && b.value !== undefined ? `The saved model is epoch ${b.epoch} (${b.phase} phase), the best ${b.monitor.replace(/_/g, ' ')}: ${formatMonitor(b.monitor, b.value)}.` : undefined]);
    charts.push(['Learning rate per epoch', await plotLearningRate(s.epochs.map((e) => ({ epoch: e.epoch, phase: e.phase, lr: e.lr })), ctx.outDir, { width: Math.round(width * 0.66), height: Math.round(height * 0.7) }),
      lrCaption(s.epochs)]);
    if (ev) {
      const test = ev.splits.test;
      const right = test.confusion_matrix.reduce((sum, row, i) => sum + (row[i] ?? 0), 0);
      charts.push(['Confusion matrix (test)', await plotConfusionMatrix(test.confusion_matrix, ev.classes, ctx.outDir, { title: `Confusion matrix (test split, ${test.images} images)` }),
        `${right} of ${test.images} test images on the diagonal (right); rows are the true classes, columns the predicted ones.`]);
      const shown = tiles(s, ev, p.misclassified);
      const channels = s.data.test.split.channels;
      if (shown.length > 0 && (channels === 1 || channels === 3)) {
        const title = `Misclassified test images: ${shown.length} of ${test.misclassified_count}, most confident first`;
        charts.push(['Misclassified test images', await plotMisclassified(shown, ctx.outDir, { columns: p.columns, title })]);
      } else if (shown.length > 0) {
        ctx.report.progress(`no misclassified-image grid: images have ${channels} channels (1 or 3 can be drawn)`);
      }
    } else {
      ctx.report.progress('no evaluate stage upstream: no confusion matrix or misclassified images');
    }
    const files = charts.flatMap(([, f]) => [f.png, f.svg]);
    for (const f of files) ctx.report.artifact(f, 'plots');

    const figures: ReportFigure[] = await Promise.all(charts.map(async ([title, f, caption]) => ({ title, svg: await readFile(f.svg, 'utf8'), ...(caption ? { caption } : {}) })));
    const html = renderReportHtml({
      title: ctx.pipeline.name, description: ctx.pipeline.description, generated: new Date(),
      facts: [['run folder', dirname(ctx.outDir)], ['backend', ctx.engine.backend], ['model', s.classifier.arch]],
      figures, evaluation: ev, history: s.epochs, config: ctx.pipeline,
    });
    const report = join(ctx.outDir, 'report.html');
    await writeDurable(report, html);
    ctx.report.artifact(report);
    ctx.report.progress(`wrote ${files.length} chart files and report.html`);
    return { files, report };
  },
});
