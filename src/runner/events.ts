/**
 * What happens during a run, as typed events: the runner and the stages (through `ctx.report`)
 * emit them, reporters subscribe (the terminal, the JSON event stream, the tracker). Nothing
 * that prints or logs needs to know who produced an event. Anchor: listr2's renderer table and
 * Vitest's reporters.
 */
import type { BatchProgress, EpochSummary } from '../stage.js';
import type { TrackedDataset } from '../tracking/tracker.js';

/** One stage as planned, in the run-start event. */
export interface PlannedStage {
  name: string;
  kind: string;
  decision: 'run' | 'skip';
  reason: string;
  /** Training stages: epochs they train (`with.epochs`). */
  epochs?: number;
}

/**
 * The test figures of one evaluate stage, as the run-end event and the end-of-run lines give
 * them: the evaluate stage's own field names (as in its report.json); its stage-metric events
 * carry them under MLflow keys `eval/[<chain>/]<field>` (src/tracking/layout.ts).
 */
export interface ChainEvaluation {
  stage: string;
  /** In [0, 1]. */
  test_accuracy: number;
  test_loss: number;
  /** Test images scored. */
  images: number;
  /** The (global) epoch of the model it scored. */
  best_epoch?: number;
}

/** What one training chain (src/tracking/layout.ts) produced. */
export interface ChainProducts {
  /** The chain's name: its last training stage. */
  chain: string;
  /** Its training stages, in training order. */
  stages: string[];
  /** The best model folder of its last stage, in this run's folder (when that stage finished). */
  bestModel?: string;
  /** The evaluate stages of its models that finished, in pipeline order. */
  evaluations: ChainEvaluation[];
}

/** Every event of a run. `time` is ms since the Unix epoch. */
export type RunEvent = { time: number } & (
  /** `engine`: the short name of the route the heavy work takes (src/engine/backend.ts engineName), as on the engine line and the `pipe.backend` tag; `engineDetail`: the long form (device, kernel route, the backends skipped and why), only here. */
  | { type: 'run-start'; runId: string; runDir: string; pipeline: string; engine: string; engineDetail: string; store: string; stages: PlannedStage[] }
  | { type: 'note'; text: string }
  | { type: 'stage-start'; stage: string; kind: string }
  | { type: 'stage-reused'; stage: string; from: string }
  | { type: 'stage-progress'; stage: string; text: string }
  | ({ type: 'stage-batch'; stage: string } & BatchProgress)
  /**
   * One finished epoch, for progress (epoch k/N). Its figures carry the stage's own field names
   * (`train_loss`, `test_accuracy`, `lr`, ...: EpochSummary, as in the training history,
   * state.json); the same values are logged (stage-metric events, step = `epoch`) under the
   * MLflow keys that `keys` gives for each field (`test_accuracy` -> [`curves/test_accuracy`];
   * with several training chains one key per chain).
   */
  | ({ type: 'stage-epoch'; stage: string; keys: Record<string, string[]> } & EpochSummary)
  /**
   * `key` is the MLflow metric key (`curves/test_accuracy`, `eval/test_accuracy`; with several
   * training chains `curves/<chain>/test_accuracy`; src/tracking/layout.ts), as the run logs it;
   * a stage in several chains emits one event per key. `resumed: true` (absent otherwise): a
   * point of an epoch that an earlier, interrupted attempt of this run trained (`--resume`
   * continuing a training stage from its checkpoint): the stream of the resumed run re-emits
   * them first, all the epochs the checkpoint holds, so that it is complete by itself; the
   * interrupted attempt's stream may already hold some or all of them (same stage, key, step and
   * value), and a consumer joining both streams drops those. `stage-epoch` events are never
   * re-emitted: a resumed stage's first one is the first epoch it trains.
   */
  | { type: 'stage-metric'; stage: string; key: string; value: number; step: number; resumed?: true }
  /** Keys as the run sets them (with several training chains `pipe.<chain>.best_epoch`; src/tracking/layout.ts `RunLayout.tags`). */
  | { type: 'stage-tags'; stage: string; tags: Record<string, string> }
  /** `artifactPath`: the run's artifact folder it goes into (src/tracking/layout.ts; absent: the root). */
  | { type: 'stage-artifact'; stage: string; path: string; artifactPath?: string }
  /** One split of a download stage: the MLflow dataset input, and `tag`, the run tag naming it (`pipe.data.train`; with several download stages `pipe.data.<stage>.train`; src/tracking/layout.ts `RunLayout.dataset`). */
  | { type: 'stage-dataset'; stage: string; dataset: TrackedDataset; tag: string }
  | { type: 'stage-finish'; stage: string; seconds: number; reused: boolean }
  | { type: 'stage-skip'; stage: string; reason: string }
  | { type: 'stage-fail'; stage: string; message: string }
  /** `chains`: each training chain's best model and evaluations (src/tracking/layout.ts names the chains). */
  | { type: 'run-end'; status: 'FINISHED' | 'FAILED' | 'KILLED'; runId: string; runDir: string; store: string; reportHtml?: string; bestModel?: string; chains: ChainProducts[]; error?: string }
);

/** An event without its time (what emitters pass). */
export type RunEventInput = RunEvent extends infer E ? (E extends { time: number } ? Omit<E, 'time'> : never) : never;

/** A subscriber; it must not throw (a reporter's failure is not the run's). */
export type Reporter = (e: RunEvent) => void;

/** The run's event bus: synchronous, in emission order. */
export class RunEvents {
  private readonly reporters: Reporter[] = [];

  /** Adds a reporter; returns a function that removes it. */
  subscribe(r: Reporter): () => void {
    this.reporters.push(r);
    return () => {
      const i = this.reporters.indexOf(r);
      if (i >= 0) this.reporters.splice(i, 1);
    };
  }

  emit(e: RunEventInput): void {
    const ev = { time: Date.now(), ...e } as RunEvent;
    for (const r of this.reporters) r(ev);
  }
}
