/**
 * The resolved pipeline config: what schemas/pipeline.schema.json accepts, with its defaults
 * filled in. Derived from the types generated from the schema (src/config/generated/pipeline.ts,
 * `npm run gen:types`); only what the generator cannot express is written here:
 * - a stage's `kind` is src/stage-kinds.ts's StageKindName (the schema's kind enum is checked
 *   against it, and tsc checks here that the two unions are equal);
 * - `sweep`'s two forms, which the schema tells apart with if/then/else (ignored by the generator).
 */
import type { StageKindName } from '../stage-kinds.js';
import type { PipePipelineFile, Stage } from './generated/pipeline.js';

/** Backends the engine can run on (the schema's engine.backend enum). */
export type BackendName = PipePipelineFile['engine']['backend'];

/** One stage entry of the pipeline file. `with` is validated by schemas/stages/<kind>.schema.json. */
export type StageConfig = Omit<Stage, 'kind' | 'with'> & {
  kind: StageKindName;
  /** Kind-specific parameters, validated by schemas/stages/<kind>.schema.json. @defaultValue {} */
  with: Record<string, unknown>;
};

/** A validated pipeline file. */
export type PipelineConfig = Omit<PipePipelineFile, 'stages' | 'sweep'> & {
  stages: Record<string, StageConfig>;
  /**
   * Grid form `{ <dotted.path>: [values] }`, or `{ mode, trials?, seed?, params }` (src/sweep/spec.ts).
   * Hand-written: the schema tells the forms apart with if/then/else, which the generator ignores.
   */
  sweep?: Record<string, unknown[]> | { mode: 'grid' | 'random'; trials?: number; seed?: number; params: Record<string, unknown[]> };
};

/** `true` when A and B are the same type, else `false`. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
/**
 * Compile-time check (tsc fails here when they disagree): the schema's stage kind enum is exactly
 * src/stage-kinds.ts's kinds. Not for use.
 */
export type KindsAgree<T extends true = Same<Stage['kind'], StageKindName>> = T;
