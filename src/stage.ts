/**
 * The contract between the runner and a stage kind, at library level: the adapters in stages/
 * implement it (one file and one row of the StageTable per kind), the runner runs what the CLI
 * hands it. A stage never prints and never talks to MLflow: it reports events through
 * `ctx.report`, and reporters do the rest.
 * Anchor: Vitest `defineConfig` (identity helper for inference), listr2 shared AbortController.
 */
import type { PipelineConfig } from './config/types.js';
import type { StageKindName } from './stage-kinds.js';
import type { EngineInfo } from './engine/backend.js';

/** A finished training epoch (global epoch numbering across the freeze and unfreeze phases). */
export interface EpochSummary {
  /** 1-based global epoch. */
  epoch: number;
  /** The global epoch the stage ends at (when it does not stop early). */
  epochs: number;
  train_loss: number;
  /** In [0, 1]. */
  train_accuracy: number;
  test_loss: number;
  /** In [0, 1]. */
  test_accuracy: number;
  /** Learning rate the epoch trained with, when known. */
  lr?: number;
  /** Training throughput, images/s. */
  images_per_second: number;
}

/** Live progress of a training stage within an epoch. */
export interface BatchProgress {
  /** 1-based global epoch. */
  epoch: number;
  /** The global epoch the stage ends at. */
  epochs: number;
  /** 1-based batch within the epoch. */
  batch: number;
  batches: number;
  /** Training loss of this batch (mean over its images, nats). */
  loss: number;
  images_per_second: number;
}

/**
 * What a stage can report while it runs; each call becomes a typed event of the run
 * (src/runner/events.ts) that reporters (terminal, JSON stream, tracker) turn into output.
 */
export interface StageReport {
  /** One line of live progress (throttled by the reporter). */
  progress(text: string): void;
  /** A training batch done (the live line; throttled by the reporter). */
  batch(b: BatchProgress): void;
  /** A training epoch done (kept on screen, one line each). */
  epoch(e: EpochSummary): void;
  /**
   * A metric point; `step` is the global iteration or epoch, as the metric's name says.
   * `opts.resumed`: the point was computed by an earlier, interrupted attempt of this run and is
   * handed over again from its checkpoint (`--resume`); the tracker keeps each step once.
   */
  metric(key: string, value: number, step: number, opts?: { resumed?: boolean }): void;
  /** Run tags (strings). */
  tags(tags: Record<string, string>): void;
  /** A file to keep with the run, under `artifactPath` in the run's artifacts. */
  artifact(localPath: string, artifactPath?: string): void;
  /** A dataset used by the run (MLflow run input). */
  dataset(d: { name: string; digest: string; source: string; context: 'train' | 'test'; count: number }): void;
}

/** Everything a stage's `run` receives. */
export interface StageContext<P> {
  /** The stage's name in the pipeline file. */
  name: string;
  /** The stage's cache key (kind, version, params, seed, upstream keys): identifies its inputs. */
  key: string;
  /** Its `with:` block, validated, defaults filled. */
  params: P;
  pipeline: PipelineConfig;
  /** Folder for the stage's outputs: runs/<run-id>/<stage>/. */
  outDir: string;
  seed: number;
  signal: AbortSignal;
  engine: EngineInfo;
  report: StageReport;
  /**
   * The output of the nearest upstream stage (transitively, nearest first) whose kind is one of
   * `kinds`. @throws Error naming the kinds when there is none.
   */
  upstream<T>(...kinds: StageKindName[]): T;
  /** Like `upstream`, but undefined when there is none. */
  maybeUpstream<T>(...kinds: StageKindName[]): T | undefined;
  /**
   * The output of the stage named `stage`, upstream of this one (transitively) and of a kind this
   * kind reads (a plot stage comparing training chains). @throws Error when it is not.
   */
  upstreamNamed<T>(stage: string): T;
  /** The stages upstream of `stage` (default: this one), transitively, nearest first (breadth-first over `needs`). */
  ancestors(stage?: string): string[];
}

/**
 * What is known of a stage kind without loading its implementation (which pulls in TensorFlow.js
 * and the data stack): enough to plan a run (`pipe plan`, the stage cache keys). One row per
 * kind in stages/meta.ts; the definition in stages/<kind>.ts spreads its row.
 */
export interface StageMeta<P = Record<string, unknown>> {
  kind: StageKindName;
  /** Bumped when the implementation changes what it produces (part of the cache key). */
  version: number;
  /** One line for `pipe plan` and the docs. */
  summary: string;
  /**
   * Whether a finished run of the stage is reused (the stage cache and --resume); the definition
   * then has `load`. A stage that is not cacheable always runs.
   */
  cacheable: boolean;
  /** Extra cache-key parts computed before running (e.g. a fingerprint of local input files). */
  cacheKey?(params: P): Promise<unknown>;
  /**
   * What a run of the stage would download because it is not on this machine yet (data,
   * pretrained weights), found without reading it; empty when everything is at hand. For
   * `pipe plan`.
   */
  missingInputs?(params: P): Promise<MissingInput[]>;
}

/** An input a stage would download (or cannot find): `pipe plan` marks it. */
export interface MissingInput {
  what: 'data' | 'weights';
  /** One line: what is downloaded from where into which file or folder, and the offline remedy. */
  note: string;
}

/**
 * A stage kind: its StageMeta (stages/meta.ts) and the implementation, one file in stages/ and
 * one row in stages/index.ts (the StageTable). A cacheable kind has `load`, others have none.
 */
export type StageDefinition<P = Record<string, unknown>, O = unknown> = StageMeta<P> & {
  run(ctx: StageContext<P>): Promise<O>;
} & (
    | {
        cacheable: true;
        /**
         * Rebuilds the output of a finished run of this stage from its folder `dir` (the stage
         * cache and --resume), without redoing the work; upstream outputs are available through `ctx`.
         */
        load(ctx: StageContext<P>, dir: string): Promise<O>;
      }
    | { cacheable: false; load?: undefined }
  );

/**
 * The stage kinds the runner can run, one definition per kind. The runner never imports the
 * adapters in stages/: the CLI hands it this table (stages/index.ts), as DVC's reproduce takes
 * the stage runner.
 */
export type StageTable = { readonly [K in StageKindName]: StageDefinition<never, unknown> };

/** What planning needs of every kind (stages/meta.ts); a StageTable is one too. */
export type StageMetaTable = { readonly [K in StageKindName]: StageMeta<never> };

/** The definition of `kind` in `table`, loosely typed for the runner (its params were validated by the kind's schema). */
export function stageOf(table: StageTable, kind: StageKindName): StageDefinition<unknown, unknown> {
  return table[kind] as unknown as StageDefinition<unknown, unknown>;
}

/** The StageMeta of `kind` in `table`, loosely typed for the planner. */
export function stageMetaOf(table: StageMetaTable, kind: StageKindName): StageMeta<unknown> {
  return table[kind] as unknown as StageMeta<unknown>;
}

/** Identity helper that types a stage definition. */
export function defineStage<P, O>(def: StageDefinition<P, O>): StageDefinition<P, O> {
  return def;
}
