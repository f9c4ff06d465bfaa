/**
 * The resolved pipeline config: what the schemas in schemas/ accept, with their defaults
 * filled in. NOTE: hand-written mirror of the schemas; keep in step with schemas/*.json. The
 * stage kinds come from src/stage-kinds.ts (the schema's kind enum is checked against it).
 */
import type { StageKindName } from '../stage-kinds.js';

/** Backends the engine can run on. */
export type BackendName = 'auto' | 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';

/** One stage entry of the pipeline file. */
export interface StageConfig {
  kind: StageKindName;
  /** Names of the stages this one reads from. @defaultValue [] */
  needs: string[];
  /** Kind-specific parameters, validated by schemas/stages/<kind>.schema.json. */
  with: Record<string, unknown>;
}

/** A validated pipeline file. */
export interface PipelineConfig {
  name: string;
  description?: string;
  /** MLflow experiment name. @defaultValue the pipeline name */
  experiment?: string;
  /** @defaultValue 0 */
  seed: number;
  engine: { backend: BackendName };
  stages: Record<string, StageConfig>;
  /** Grid form `{ <dotted.path>: [values] }`, or `{ mode, trials?, seed?, params }` (src/sweep/spec.ts). */
  sweep?: Record<string, unknown[]> | { mode: 'grid' | 'random'; trials?: number; seed?: number; params: Record<string, unknown[]> };
}
