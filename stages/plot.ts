/**
 * plot: the charts of a run (loss per iteration, metrics and learning rate per epoch with the
 * unfreeze marker, and, with an evaluate stage upstream, the confusion matrix and the
 * misclassified test images) as PNG + SVG, and report.html, all logged as artifacts.
 * With `compare:`, the test accuracy and loss per epoch of several training chains in one chart,
 * a table of the chains, and each chain's own charts (file names prefixed `<stage>-`).
 */
import { readFile, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { writeDurable } from '../src/fs-durable.js';
import { DEFAULT_EPOCH_BASENAME, DEFAULT_ITERATION_BASENAME, plotEpochMetrics, plotIterationLoss, type ChartFiles } from '../src/plot/charts.js';
import { DEFAULT_CONFUSION_BASENAME, plotConfusionMatrix } from '../src/plot/confusion.js';
import { DEFAULT_LR_BASENAME, plotLearningRate } from '../src/plot/lr.js';
import { DEFAULT_MISCLASSIFIED_BASENAME, plotMisclassified, type MisclassifiedTile } from '../src/plot/misclassified.js';
import { plotChainComparison } from '../src/plot/compare.js';
import { renderReportHtml, type ReportChain, type ReportFigure } from '../src/report/html.js';
import { stageMeta } from './meta.js';
import { defineStage, type StageContext } from '../src/stage.js';
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

/** A chart made: its title (alt text), its files, its caption when it has one. */
type Chart = [string, ChartFiles, string?];

/** A chain named by `compare:`: its training stage and its label (default: the stage name). */
export function compareEntries(compare: NonNullable<PlotParams['compare']>): Array<{ stage: string; label: string }> {
  return compare.map((c) => (typeof c === 'string' ? { stage: c, label: c } : { stage: c.stage, label: c.label ?? c.stage }));
}

/**
 * The charts of one training chain, `s` (its last training stage's state), in `ctx.outDir`, each
 * file name prefixed with `prefix`: iteration loss (the unfreeze at `unfreezeStep`, the frozen
 * phase's iteration count), metrics and learning rate per epoch, and with `ev` the confusion
 * matrix and the misclassified test images.
 */
async function chainCharts(ctx: StageContext<PlotParams>, s: TrainState, ev: EvalReport | undefined, unfreezeStep: number | undefined, prefix: string): Promise<Chart[]> {
  const p = ctx.params;
  const { width, height } = p;
  const charts: Chart[] = [];
  const n = s.iterationLosses.length;
  charts.push(['Training loss per iteration', await plotIterationLoss(s.iterationLosses.map((loss, step) => ({ step, loss })), ctx.outDir, { basename: `${prefix}${DEFAULT_ITERATION_BASENAME}`, width, height, ...(unfreezeStep !== undefined ? { unfreezeStep } : {}) }),
    unfreezeStep !== undefined ? `${n} iterations: ${unfreezeStep} with the backbone frozen, then ${n - unfreezeStep} fine-tuning it (dashed line)` : undefined]);
  const b = s.best;
  charts.push(['Metrics per epoch', await plotEpochMetrics(
    s.epochs.map((e) => ({ epoch: e.epoch, phase: e.phase, trainLoss: e.train_loss, testLoss: e.test_loss, trainAccuracy: e.train_accuracy, testAccuracy: e.test_accuracy })),
    ctx.outDir,
    { basename: `${prefix}${DEFAULT_EPOCH_BASENAME}`, width: Math.round(width * 0.66), height },
  ), b.epoch !== undefined && b.value !== undefined ? `The saved model is epoch ${b.epoch} (${b.phase} phase), the best ${b.monitor.replace(/_/g, ' ')}: ${formatMonitor(b.monitor, b.value)}.` : undefined]);
  charts.push(['Learning rate per epoch', await plotLearningRate(s.epochs.map((e) => ({ epoch: e.epoch, phase: e.phase, lr: e.lr })), ctx.outDir, { basename: `${prefix}${DEFAULT_LR_BASENAME}`, width: Math.round(width * 0.66), height: Math.round(height * 0.7) }),
    lrCaption(s.epochs)]);
  if (ev) {
    const test = ev.splits.test;
    const right = test.confusion_matrix.reduce((sum, row, i) => sum + (row[i] ?? 0), 0);
    charts.push(['Confusion matrix (test)', await plotConfusionMatrix(test.confusion_matrix, ev.classes, ctx.outDir, { basename: `${prefix}${DEFAULT_CONFUSION_BASENAME}`, title: `Confusion matrix (test split, ${test.images} images)` }),
      `${right} of ${test.images} test images on the diagonal (right); rows are the true classes, columns the predicted ones.`]);
    const shown = tiles(s, ev, p.misclassified);
    const channels = s.data.test.split.channels;
    if (shown.length > 0 && (channels === 1 || channels === 3)) {
      const title = `Misclassified test images: ${shown.length} of ${test.misclassified_count}, most confident first`;
      charts.push(['Misclassified test images', await plotMisclassified(shown, ctx.outDir, { basename: `${prefix}${DEFAULT_MISCLASSIFIED_BASENAME}`, columns: p.columns, title })]);
    } else if (shown.length > 0) {
      ctx.report.progress(`no misclassified-image grid: images have ${channels} channels (1 or 3 can be drawn)`);
    }
  } else {
    ctx.report.progress(`no evaluate stage upstream${prefix ? ` of ${prefix.slice(0, -1)}` : ''}: no confusion matrix or misclassified images`);
  }
  return charts;
}

/** PNG + SVG paths of `charts`, logged under `plots`; and the figures for report.html. */
async function publish(ctx: StageContext<PlotParams>, charts: Chart[]): Promise<{ files: string[]; figures: ReportFigure[] }> {
  const files = charts.flatMap(([, f]) => [f.png, f.svg]);
  for (const f of files) ctx.report.artifact(f, 'plots');
  const figures = await Promise.all(charts.map(async ([title, f, caption]) => ({ title, svg: await readFile(f.svg, 'utf8'), ...(caption ? { caption } : {}) })));
  return { files, figures };
}

/**
 * The stages of the chain ending at training stage `stage`, as the plot stage sees them: its
 * frozen phase's iteration count (the nearest freeze-train stage upstream of it, when that
 * stage ended just before the chain unfroze) and its evaluation (an evaluate stage upstream of the plot stage whose needs name `stage`).
 */
function chainParts(ctx: StageContext<PlotParams>, stage: string, s: TrainState): { unfreezeStep?: number; ev?: EvalReport } {
  const kinds = ctx.pipeline.stages;
  const freeze = s.unfreezeEpoch !== undefined ? ctx.ancestors(stage).find((n) => kinds[n]?.kind === 'freeze-train') : undefined;
  const frozen = freeze !== undefined ? ctx.upstreamNamed<TrainState>(freeze) : undefined;
  // Only a freeze stage of this chain: it ended just before the chain unfroze.
  const unfreezeStep = frozen !== undefined && frozen.lastEpoch + 1 === s.unfreezeEpoch ? frozen.lastStep : undefined;
  const evName = ctx.ancestors().find((n) => kinds[n]?.kind === 'evaluate' && (kinds[n]?.needs ?? []).includes(stage));
  return { ...(unfreezeStep !== undefined ? { unfreezeStep } : {}), ...(evName !== undefined ? { ev: ctx.upstreamNamed<EvalReport>(evName) } : {}) };
}

/** report.html in the stage folder, logged at the artifacts' root. */
async function writeReport(ctx: StageContext<PlotParams>, input: Omit<Parameters<typeof renderReportHtml>[0], 'title' | 'description' | 'generated' | 'config'>): Promise<string> {
  const html = renderReportHtml({ title: ctx.pipeline.name, description: ctx.pipeline.description, generated: new Date(), config: ctx.pipeline, ...input });
  const report = join(ctx.outDir, 'report.html');
  await writeDurable(report, html);
  ctx.report.artifact(report);
  return report;
}

/** The `compare:` form: the comparison chart first, then each chain's charts, and the report. */
async function runCompare(ctx: StageContext<PlotParams>, compare: NonNullable<PlotParams['compare']>): Promise<PlotOutput> {
  const p = ctx.params;
  const entries = compareEntries(compare);
  const chains = entries.map((c) => ({ ...c, state: ctx.upstreamNamed<TrainState>(c.stage) }));
  const comparison = await plotChainComparison(
    chains.map((c) => ({ label: c.label, epochs: c.state.epochs.map((e) => ({ epoch: e.epoch, phase: e.phase, testAccuracy: e.test_accuracy, testLoss: e.test_loss })) })),
    ctx.outDir, { width: Math.round(p.width * 0.66), height: p.height },
  );
  const best = chains.map((c) => {
    const top = c.state.epochs.reduce<TrainState['epochs'][number] | undefined>((b, e) => (Number.isFinite(e.test_accuracy) && (b === undefined || e.test_accuracy > b.test_accuracy) ? e : b), undefined);
    return top ? `${c.label} ${(100 * top.test_accuracy).toFixed(2)}% (epoch ${top.epoch})` : `${c.label}: no epoch`;
  });
  const head = await publish(ctx, [['Test accuracy and loss per epoch, by training chain', comparison, `Best test accuracy: ${best.join('; ')}.`]]);
  const files = [...head.files];
  const reportChains: ReportChain[] = [];
  for (const c of chains) {
    const { unfreezeStep, ev } = chainParts(ctx, c.stage, c.state);
    const own = await publish(ctx, await chainCharts(ctx, c.state, ev, unfreezeStep, `${c.stage}-`));
    files.push(...own.files);
    reportChains.push({ label: c.label, stage: c.stage, figures: own.figures, history: c.state.epochs, ...(ev ? { evaluation: ev } : {}) });
  }
  const archs = [...new Set(chains.map((c) => c.state.classifier.arch))].join(', ');
  const report = await writeReport(ctx, {
    facts: [['run folder', dirname(ctx.outDir)], ['backend', ctx.engine.name], ['model', archs]],
    figures: head.figures, chains: reportChains,
  });
  ctx.report.progress(`wrote ${files.length} chart files and report.html (${chains.length} chains compared)`);
  return { files, report };
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
    if (ctx.params.compare) return runCompare(ctx, ctx.params.compare);
    const s = ctx.upstream<TrainState>('unfreeze-train', 'freeze-train');
    const ev = ctx.maybeUpstream<EvalReport>('evaluate');
    // The first fine-tuning iteration: the frozen phase's iteration count (its stage's lastStep).
    const unfreezeStep = s.unfreezeEpoch !== undefined ? ctx.maybeUpstream<TrainState>('freeze-train')?.lastStep : undefined;
    const { files, figures } = await publish(ctx, await chainCharts(ctx, s, ev, unfreezeStep, ''));
    const report = await writeReport(ctx, {
      facts: [['run folder', dirname(ctx.outDir)], ['backend', ctx.engine.name], ['model', s.classifier.arch]],
      figures, evaluation: ev, history: s.epochs,
    });
    ctx.report.progress(`wrote ${files.length} chart files and report.html`);
    return { files, report };
  },
});
