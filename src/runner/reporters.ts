/**
 * The reporters of a run's events (events.ts): the tracker (MLflow), the terminal (listr2's
 * live renderer, or line per event where there is no usable terminal) and the JSON event stream
 * (`--log-format json`). Which terminal output a run gets is chosen by capability: a TTY with
 * columns gets the live view, anything else (a pipe, a file, a 0-column terminal) plain lines.
 */
import type { Tracker } from '../tracking/tracker.js';
import type { ChainEvaluation, ChainProducts, PlannedStage, Reporter, RunEvent } from './events.js';

/** Notes worth showing even when plain output is throttled: stage summaries (not byte counts of downloads). */
export function isImportant(text: string): boolean {
  return /^(freeze|unfreeze):|test accuracy|wrote|parameters|images from|train batches/.test(text);
}

/** The note naming the engine (`engine <name>`, engineName in src/engine/backend.ts) that every run emits at its start. */
export function engineNote(description: string): string {
  return `engine ${description}`;
}

/** True for that note as the terminal prints it (`pipe: engine ...`), e.g. in a sweep trial's output. */
export function isEngineLine(line: string): boolean {
  return line.startsWith('pipe: engine ');
}

/** What the run's output looks like. */
export type OutputMode = 'live' | 'plain' | 'json' | 'quiet';

/**
 * The output mode for `out`: `json` and `quiet` when asked for; otherwise `live` on a terminal
 * that has columns, `plain` on anything else or with `--plain`.
 */
export function outputMode(out: { isTTY?: boolean; columns?: number }, opts: { plain?: boolean; logFormat?: 'text' | 'json'; quiet?: boolean }): OutputMode {
  if (opts.logFormat === 'json') return 'json';
  if (opts.quiet) return 'quiet';
  return !opts.plain && out.isTTY === true && (out.columns ?? 0) > 0 ? 'live' : 'plain';
}

/** Sends a run's metrics, tags, artifacts and datasets to the tracker. */
export class TrackingReporter {
  private readonly pending = new Map<string, Promise<void>[]>();

  constructor(private readonly tracker: Tracker) {}

  readonly on: Reporter = (e) => {
    switch (e.type) {
      case 'stage-metric':
        this.tracker.metric(e.key, e.value, e.step);
        break;
      case 'stage-tags':
        this.add(e.stage, this.tracker.setTags(e.tags));
        break;
      case 'stage-artifact':
        this.add(e.stage, this.tracker.logArtifact(e.path, e.artifactPath));
        break;
      case 'stage-dataset': {
        const d = e.dataset;
        this.add(e.stage, this.tracker.setTags({ [e.tag]: `${d.name}, ${d.count} images, ${d.digest}` }));
        if (this.tracker.logInputs) this.add(e.stage, this.tracker.logInputs([d]));
        break;
      }
      default:
    }
  };

  /**
   * Waits until the stage's records are delivered (or spooled), then flushes buffered metrics.
   * @throws the first delivery failure, unless `quiet`.
   */
  async settle(stage: string, quiet = false): Promise<void> {
    const p = this.pending.get(stage) ?? [];
    this.pending.delete(stage);
    if (quiet) {
      await Promise.allSettled(p);
      await this.tracker.flush().catch(() => undefined);
    } else {
      await Promise.all(p);
      await this.tracker.flush();
    }
  }

  private add(stage: string, p: Promise<void>): void {
    p.catch(() => undefined); // observed by settle; never an unhandled rejection meanwhile
    const list = this.pending.get(stage) ?? [];
    list.push(p);
    this.pending.set(stage, list);
  }
}

/** `91.50% (loss 0.2345, 5000 images, best epoch 7)`; with `stage`, it is named first in the parentheses. */
function evaluationText(e: ChainEvaluation, stage?: string): string {
  return `${(100 * e.test_accuracy).toFixed(2)}% (${stage !== undefined ? `${stage}: ` : ''}loss ${e.test_loss.toFixed(4)}, ${e.images} images${e.best_epoch !== undefined ? `, best epoch ${e.best_epoch}` : ''})`;
}

/**
 * The end-of-run lines on what the training chains produced. One chain: `test accuracy: ...`
 * (one line per evaluate stage, each naming it, when the chain has several), and `best model`
 * is printed with the run's other paths. Several chains: one line per chain, named by its last
 * stage, with its evaluations (each naming its evaluate stage) and its best model:
 * `finetune_pre: test accuracy 91.50% (eval_pre: loss 0.2345, 5000 images, best epoch 7), best model runs/<id>/finetune_pre/best-model`.
 */
export function chainLines(chains: readonly ChainProducts[]): string[] {
  if (chains.length <= 1) {
    const evals = chains[0]?.evaluations ?? [];
    return evals.length === 1 ? [`test accuracy: ${evaluationText(evals[0]!)}`] : evals.map((e) => `test accuracy (${e.stage}): ${evaluationText(e)}`);
  }
  return chains.flatMap((c) => {
    const parts = [...c.evaluations.map((e) => `test accuracy ${evaluationText(e, e.stage)}`), ...(c.bestModel !== undefined ? [`best model ${c.bestModel}`] : [])];
    return parts.length ? [`${c.chain}: ${parts.join(', ')}`] : [];
  });
}

/** The part of a listr2 task the terminal reporter writes to. */
export interface TaskView {
  output: string;
  title: string;
}

/** `1h02m`, `3m05s`, `42s`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;

/** One finished epoch as a line: `epoch 3/10: train loss 0.4321 acc 84.10% | test loss ... | lr 1.0e-3 | 912 images/s`. */
export function epochLine(e: Extract<RunEvent, { type: 'stage-epoch' }>): string {
  const lr = e.lr === undefined ? '' : ` | lr ${e.lr.toExponential(1)}`;
  return `epoch ${e.epoch}/${e.epochs}: train loss ${e.train_loss.toFixed(4)} acc ${pct(e.train_accuracy)} | test loss ${e.test_loss.toFixed(4)} acc ${pct(e.test_accuracy)}${lr} | ${e.images_per_second.toFixed(0)} images/s`;
}

interface StageView {
  task?: TaskView;
  epochs: string[];
  current?: string;
  lastShown: number;
  /** Time and global batch count of the first batch event seen (the ETA's origin). */
  first?: { time: number; done: number };
}

/**
 * The terminal: in `live` mode each stage's listr2 task shows its finished epochs (one line
 * each, kept) and one live line (the current batch with the stage's and the run's ETA, or the
 * stage's latest note), redrawn at most ~8 times a second; in `plain` mode every epoch and note
 * is one printed line and batch lines come at most every `plainIntervalMs`. Errors are not
 * shown here: the CLI prints each one once when the run ends.
 */
export class TerminalReporter {
  private readonly stages = new Map<string, StageView>();
  private plan: PlannedStage[] = [];

  /** @param out where run notes (`pipe: engine ...`) go; the stages' lines go through their listr2 tasks. */
  constructor(
    private readonly mode: 'live' | 'plain',
    private readonly out: NodeJS.WritableStream,
    private readonly plainIntervalMs = 15_000,
  ) {}

  /** Connects a stage to its listr2 task (called when the task starts). */
  attach(stage: string, task: TaskView): void {
    this.view(stage).task = task;
  }

  readonly on: Reporter = (e) => {
    switch (e.type) {
      case 'run-start':
        this.plan = e.stages;
        break;
      case 'note':
        this.out.write(`pipe: ${e.text}\n`);
        break;
      case 'stage-progress':
        this.show(e.stage, e.text, isImportant(e.text), e.time);
        break;
      case 'stage-batch':
        this.show(e.stage, this.batchLine(e), false, e.time);
        break;
      case 'stage-epoch': {
        const v = this.view(e.stage);
        const line = epochLine(e);
        if (this.mode === 'live') {
          v.epochs.push(line);
          v.current = undefined;
          this.render(v);
        } else if (v.task) v.task.output = line;
        v.lastShown = e.time;
        break;
      }
      case 'stage-reused': {
        const v = this.view(e.stage);
        if (v.task) v.task.title = `${v.task.title} [cached]`;
        this.show(e.stage, `unchanged: reused ${e.from}`, true, e.time);
        break;
      }
      default:
    }
  };

  private view(stage: string): StageView {
    let v = this.stages.get(stage);
    if (!v) this.stages.set(stage, (v = { epochs: [], lastShown: -Infinity }));
    return v;
  }

  private show(stage: string, text: string, important: boolean, now: number): void {
    const v = this.view(stage);
    const gap = this.mode === 'live' ? 120 : this.plainIntervalMs;
    if (!important && now - v.lastShown < gap) {
      if (this.mode === 'live') v.current = text; // shown at the next redraw that passes the throttle
      return;
    }
    v.lastShown = now;
    if (this.mode === 'live') {
      v.current = text;
      this.render(v);
    } else if (v.task) v.task.output = text;
  }

  private render(v: StageView): void {
    if (v.task) v.task.output = [...v.epochs, ...(v.current !== undefined ? [v.current] : [])].join('\n');
  }

  /**
   * `epoch 3/10 batch 120/938 loss 0.4213 | 905 images/s | stage eta 4m10s, run eta ~9m30s`. The
   * stage ETA extrapolates this stage's mean batch time over its remaining batches; the run ETA
   * adds the epochs of the training stages still to run, at the same speed (an estimate:
   * unfreezing makes batches slower).
   */
  private batchLine(e: Extract<RunEvent, { type: 'stage-batch' }>): string {
    const v = this.view(e.stage);
    const done = (e.epoch - 1) * e.batches + e.batch;
    v.first ??= { time: e.time, done };
    const head = `epoch ${e.epoch}/${e.epochs} batch ${e.batch}/${e.batches} loss ${e.loss.toFixed(4)} | ${e.images_per_second.toFixed(0)} images/s`;
    const batchesSince = done - v.first.done;
    if (batchesSince < 1) return head;
    const perBatch = (e.time - v.first.time) / 1000 / batchesSince;
    const stageLeft = ((e.epochs - e.epoch) * e.batches + (e.batches - e.batch)) * perBatch;
    const idx = this.plan.findIndex((s) => s.name === e.stage);
    const laterEpochs = this.plan.slice(idx + 1).filter((s) => s.decision === 'run' && s.epochs !== undefined).reduce((n, s) => n + s.epochs!, 0);
    const runLeft = stageLeft + laterEpochs * e.batches * perBatch;
    return `${head} | stage eta ${formatDuration(stageLeft)}${laterEpochs ? `, run eta ~${formatDuration(runLeft)}` : ''}`;
  }
}

/**
 * The JSON event stream: one JSON object per line for every event, except batch events, which
 * come at most once a second per stage.
 */
export function jsonReporter(out: NodeJS.WritableStream): Reporter {
  const lastBatch = new Map<string, number>();
  return (e) => {
    if (e.type === 'stage-batch') {
      if (e.time - (lastBatch.get(e.stage) ?? 0) < 1000 && e.batch !== e.batches) return;
      lastBatch.set(e.stage, e.time);
    }
    out.write(`${JSON.stringify(e)}\n`);
  };
}
