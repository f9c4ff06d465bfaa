/** plot: per-iteration loss and per-epoch accuracy/loss (unfreeze marker), PNG and SVG. */
import { plotEpochMetrics, plotIterationLoss } from '../src/plot/charts.js';
import { defineStage } from '../src/runner/stage.js';
import type { TrainState } from '../src/train/stage.js';

/** schemas/stages/plot.schema.json */
export interface PlotParams {
  width: number;
  height: number;
}

export default defineStage<PlotParams, { files: string[] }>({
  kind: 'plot',
  version: 1,
  summary: 'charts of the training history',
  async run(ctx) {
    const s = ctx.upstream<TrainState>('unfreeze-train', 'freeze-train');
    const { width, height } = ctx.params;
    const a = await plotIterationLoss(s.iterationLosses.map((loss, step) => ({ step, loss })), ctx.outDir, { width, height });
    const b = await plotEpochMetrics(
      s.epochs.map((e) => ({ epoch: e.epoch, phase: e.phase, trainLoss: e.train_loss, testLoss: e.test_loss, trainAccuracy: e.train_accuracy, testAccuracy: e.test_accuracy })),
      ctx.outDir,
      { width: Math.round(width * 0.66), height },
    );
    const files = [a.png, a.svg, b.png, b.svg];
    for (const f of files) ctx.report.artifact(f, 'plots');
    ctx.report.progress(`wrote ${files.length} files`);
    return { files };
  },
});
