/**
 * One run folder (runs/<run-id>) summarised for comparison, from what the run left on disk, so
 * it works for any run, whatever the tracking store and whether its stages ran or were reused
 * from the stage cache: lock.json names each stage's output folder; the last training stage's
 * state.json holds the epoch history of both phases; the build-model stage's model.json the
 * weights; trial.json (sweep trials) or the local MLflow store the backend, name and status.
 */
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { readLock, type Lock } from '../runner/cache.js';
import { resumeCommand } from '../runner/interrupt-hint.js';
import type { EpochRecord } from '../train/loop.js';
import { readStateJson, type TrainStateJson } from '../train/persist.js';
import type { FileStore } from '../tracking/file/store.js';
import { readTrialResult } from './state.js';

/** Status shown for a run: MLflow's, or from lock.json (`UNFINISHED`) when the store is not local. */
export type RunState = 'FINISHED' | 'FAILED' | 'KILLED' | 'RUNNING' | 'SCHEDULED' | 'UNFINISHED';

/** The numbers compared across runs; fields are undefined when the run did not get that far. */
export interface RunSummary {
  runId: string;
  runDir: string;
  pipeline: string;
  /** Trial name, else the MLflow run name, else `<pipeline>-<runId>`. */
  name: string;
  status: RunState;
  mlflowRunId?: string;
  /** Highest per-epoch test accuracy in [0, 1] over both phases. */
  bestTestAccuracy?: number;
  /** Global epoch (1-based) of that accuracy (the first one when tied). */
  bestEpoch?: number;
  /** Sum of `epoch_seconds` over every epoch of the history (both phases, reused ones too), s. */
  trainSeconds?: number;
  /** Training throughput over the whole history: sum(images_per_second * epoch_seconds) / trainSeconds, images/s. */
  imagesPerSecond?: number;
  /** Largest `rss_bytes` seen at an epoch end, bytes. */
  peakRssBytes?: number;
  /** Learnable parameters of the model (torchvision's count: BatchNorm running statistics left out), from the saved model.json. */
  params?: number;
  /** Engine backend (tag pipe.backend). */
  backend?: string;
  /** Per-epoch test accuracy, for the overlay chart. */
  curve: { epoch: number; testAccuracy: number }[];
  /** Why a FAILED or KILLED run ended (lock.json's `failure.reason`, the run's `pipe.error` tag). */
  failure?: string;
  /** For a KILLED run: the command that continues it (interrupt-hint.ts). */
  resume?: string;
  /** ms since the Unix epoch. */
  startedAt: number;
  endedAt?: number;
}

const TRAIN_KINDS = new Set(['freeze-train', 'unfreeze-train']);

/**
 * The epochs of an unfinished training stage's last checkpoint (this phase's only), or []:
 * `<outDir>/checkpoint/latest.json` names the folder whose state.json holds them
 * (src/train/checkpoint.ts; read here as JSON, without loading TensorFlow.js).
 */
async function checkpointedEpochs(outDir: string): Promise<EpochRecord[]> {
  try {
    const dir = join(outDir, 'checkpoint');
    const { dir: sub } = JSON.parse(await readFile(join(dir, 'latest.json'), 'utf8')) as { dir: string };
    return (JSON.parse(await readFile(join(dir, sub, 'state.json'), 'utf8')) as { epochs?: EpochRecord[] }).epochs ?? [];
  } catch {
    return [];
  }
}

/**
 * The epoch history of the run: the longest of its finished training stages' histories and of
 * its unfinished ones' checkpointed epochs (a KILLED or FAILED run), each of the latter after
 * the finished history it continues (the one ending at the epoch before its first). So a run
 * stopped in its fine-tune stage shows what the checkpointed fine-tune epochs reached, as a
 * FINISHED run shows all its epochs.
 */
async function history(lock: Lock): Promise<EpochRecord[]> {
  const finished: TrainStateJson[] = [];
  const partial: EpochRecord[][] = [];
  for (const s of Object.values(lock.stages)) {
    if (!TRAIN_KINDS.has(s.kind)) continue;
    if (s.status === 'done') {
      const st = await readStateJson(s.outDir).catch(() => undefined);
      if (st) finished.push(st);
    } else {
      const eps = await checkpointedEpochs(s.outDir);
      if (eps.length) partial.push(eps);
    }
  }
  const candidates = [
    ...finished.map((st) => st.epochs),
    ...partial.map((eps) => [...(finished.filter((st) => st.lastEpoch === eps[0]!.epoch - 1).sort((a, b) => b.epochs.length - a.epochs.length)[0]?.epochs ?? []), ...eps]),
  ];
  return candidates.reduce<EpochRecord[]>((best, h) => (h.length > best.length ? h : best), []);
}

/**
 * Learnable parameters of a model.json saved by saveClassifier: the sum of the manifest's shape
 * products, BatchNorm running statistics (`.../moving_mean`, `.../moving_variance`) left out,
 * as torchvision counts (`sum(p.numel() for p in model.parameters())`; registry.ts paramCounts).
 */
export async function countWeights(modelJson: string): Promise<number | undefined> {
  try {
    const json = JSON.parse(await readFile(modelJson, 'utf8')) as { weightsManifest: { weights: { name: string; shape: number[] }[] }[] };
    return json.weightsManifest.flatMap((g) => g.weights).filter((w) => !/moving_(mean|variance)$/.test(w.name)).reduce((n, w) => n + w.shape.reduce((a, b) => a * b, 1), 0);
  } catch {
    return undefined;
  }
}

/** The figures of an epoch history (see RunSummary for each). */
export function historyFigures(epochs: readonly EpochRecord[]): Pick<RunSummary, 'bestTestAccuracy' | 'bestEpoch' | 'trainSeconds' | 'imagesPerSecond' | 'peakRssBytes' | 'curve'> {
  if (epochs.length === 0) return { curve: [] };
  let best: EpochRecord | undefined;
  for (const e of epochs) if (Number.isFinite(e.test_accuracy) && (!best || e.test_accuracy > best.test_accuracy)) best = e;
  const seconds = epochs.reduce((s, e) => s + e.epoch_seconds, 0);
  const images = epochs.reduce((s, e) => s + e.images_per_second * e.epoch_seconds, 0);
  return {
    bestTestAccuracy: best?.test_accuracy,
    bestEpoch: best?.epoch,
    trainSeconds: seconds,
    imagesPerSecond: seconds > 0 ? images / seconds : undefined,
    peakRssBytes: epochs.some((e) => Number.isFinite(e.rss_bytes)) ? Math.max(...epochs.filter((e) => Number.isFinite(e.rss_bytes)).map((e) => e.rss_bytes)) : undefined,
    curve: epochs.map((e) => ({ epoch: e.epoch, testAccuracy: e.test_accuracy })),
  };
}

/**
 * Summarises runs/<run-id>. `headers` reads the local MLflow store when there is one.
 * @returns undefined when the folder has no lock.json (not a run).
 */
export async function summarizeRun(runDir: string, headers?: FileStore): Promise<RunSummary | undefined> {
  const lock = await readLock(runDir);
  if (!lock) return undefined;
  const trial = await readTrialResult(runDir);
  const header = lock.mlflowRunId ? await headers?.readRunHeader(lock.mlflowRunId, ['pipe.backend']) : undefined;
  const stages = Object.values(lock.stages);
  const model = stages.find((s) => s.kind === 'build-model' && s.status === 'done');
  const trained = stages.filter((s) => TRAIN_KINDS.has(s.kind) && s.status === 'done').at(-1);
  const params = (model && (await countWeights(join(model.outDir, 'model', 'model.json')))) ?? (trained && (await countWeights(join(trained.outDir, 'best-model', 'model.json'))));
  const lockState: RunState = lock.failure?.status ?? (stages.every((s) => s.status === 'done') ? 'FINISHED' : stages.some((s) => s.status === 'failed') ? 'FAILED' : 'UNFINISHED');
  const trialState: RunState | undefined = trial && ({ finished: 'FINISHED', failed: 'FAILED', killed: 'KILLED' } as const)[trial.status];
  const status = header?.status ?? trialState ?? lockState;
  return {
    runId: lock.runId || basename(runDir),
    runDir,
    pipeline: lock.pipeline,
    name: trial?.name ?? (header?.runName || `${lock.pipeline}-${lock.runId}`),
    status,
    ...(lock.mlflowRunId ? { mlflowRunId: lock.mlflowRunId } : {}),
    ...historyFigures(await history(lock)),
    ...(params !== undefined ? { params } : {}),
    ...((trial?.backend ?? header?.tags['pipe.backend']) ? { backend: trial?.backend ?? header?.tags['pipe.backend'] } : {}),
    ...(lock.failure ? { failure: lock.failure.reason } : {}),
    // Every KILLED run can be resumed, also one killed after its last stage (--resume then ends it FINISHED).
    ...(status === 'KILLED' ? { resume: resumeCommand(lock.file, lock.sets ?? [], lock.runId || basename(runDir)) } : {}),
    startedAt: header?.startTime ?? lock.createdAt,
    ...(header?.endTime !== undefined ? { endedAt: header.endTime } : trial ? { endedAt: lock.createdAt + trial.seconds * 1000 } : {}),
  };
}
