/**
 * `pipe predict RUN_OR_MODEL_DIR IMAGE... [--stage NAME] [--top-k N] [--json]`: the top-k classes of each image
 * with their probabilities, using the model's saved preprocessing (see src/eval/predict.ts).
 * Text output: one block per image; notes (conversions, missing metadata) go to stderr, and so does
 * a `pipe: cannot use image ...` line per image that could not be used.
 * `--json`: one JSON object on stdout, notes (and those images' errors) inside it.
 */
import { initEngine } from '../engine/backend.js';
import { PipelineError } from '../errors.js';
import { isPrediction, predictImages, type PredictResult } from '../eval/predict.js';

/** Output streams of {@link cmdPredict}. */
export interface PredictIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
}

/** The `--json` document. */
export interface PredictJson {
  /** Absolute path of the model folder used. */
  model: string;
  arch: string | null;
  best_epoch: number | null;
  /** [height, width, channels] the model takes. */
  input: [number, number, number];
  /** Where the test-time ops came from: model.json, resolved.yaml or none. */
  preprocess: string;
  notes: string[];
  /** One per image, in the order given: its top-k, or `error` (why it has none). */
  results: Array<{ image: string; top: Array<{ class: string; index: number; probability: number }>; notes: string[] } | { image: string; error: string }>;
}

/** The `--json` document of a result. */
export function predictJson(r: PredictResult): PredictJson {
  const arch = r.model.meta['arch'];
  const best = r.model.meta['best_epoch'];
  return {
    model: r.model.dir, arch: typeof arch === 'string' ? arch : null, best_epoch: typeof best === 'number' ? best : null,
    input: r.input, preprocess: r.model.preprocess.source, notes: r.notes, results: r.results,
  };
}

/**
 * The text output: a model line, then per predicted image its path and the ranked classes with
 * percentages (images without a prediction are left out: their errors go to stderr).
 */
export function predictText(r: PredictResult): string {
  const j = predictJson(r);
  const head = `model: ${j.model}${j.arch ? ` (${j.arch}${j.best_epoch !== null ? `, best epoch ${j.best_epoch}` : ''})` : ''}`;
  const blocks = r.results.filter(isPrediction).map((res) => {
    const width = Math.max(...res.top.map((t) => t.class.length));
    const lines = res.top.map((t, i) => `  ${String(i + 1).padStart(2)}. ${t.class.padEnd(width)}  ${(100 * t.probability).toFixed(2).padStart(6)}%`);
    return [res.image, ...lines].join('\n');
  });
  return `${[head, ...blocks].join('\n')}\n`;
}

/**
 * Runs `pipe predict`; resolves to the exit code: 0 when every image got its top-k; 1 when some
 * did and others could not be used (each of those gets its own `pipe: cannot use image ...` line
 * on stderr, and `error` in the `--json` document); 2, with nothing on stdout, when none could
 * be used, or for a missing or broken model (weights.bin of another size than model.json says,
 * weights holding NaN or infinities, a class list of another length than the head's outputs, an
 * input side above MAX_INPUT_SIDE) or bad options (message on stderr naming the file).
 * @param target a run folder, a run id under runs/, or a best-model folder. A run of several
 *   training chains needs the chain named (its best-model folder, or `opts.stage`): exit 2
 *   listing the candidates otherwise.
 * @param opts.stage the training stage whose best model to use, in the run `target`.
 * @param opts.topK classes per image. @defaultValue 5
 * @param io where output goes (tests pass their own). @defaultValue process
 */
export async function cmdPredict(target: string, images: string[], opts: { json?: boolean; topK?: number; stage?: string }, io: PredictIo = process): Promise<number> {
  const { stdout, stderr } = io;
  try {
    await initEngine('auto');
    const r = await predictImages(target, images, { topK: opts.topK, ...(opts.stage !== undefined ? { stage: opts.stage } : {}) });
    const predicted = r.results.filter(isPrediction);
    if (predicted.length > 0) {
      if (opts.json) {
        stdout.write(`${JSON.stringify(predictJson(r), null, 2)}\n`);
      } else {
        for (const n of r.notes) stderr.write(`pipe: note: ${n}\n`);
        for (const res of predicted) for (const n of res.notes) stderr.write(`pipe: note: ${res.image}: ${n}\n`);
        stdout.write(predictText(r));
      }
    }
    for (const res of r.results) if (!isPrediction(res)) stderr.write(`pipe: ${res.error}\n`);
    return predicted.length === r.results.length ? 0 : predicted.length > 0 ? 1 : 2;
  } catch (e) {
    if (e instanceof PipelineError) {
      stderr.write(`pipe: ${e.message}\n`);
      return e.exitCode;
    }
    stderr.write(`pipe: internal error (please report it): ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return 1;
  }
}
