/**
 * Shapes of the MLflow REST API 2.0 messages we send and read (MLflow's protos
 * `mlflow/protos/service.proto`; JSON as the server writes it: int64 fields as numbers, empty
 * repeated fields omitted). Only the fields pipe uses are typed.
 */

/** A metric value on the wire: a number, or one of the strings MLflow's JSON parser reads as non-finite. */
export type WireValue = number | 'NaN' | 'Infinity' | '-Infinity';

/** One metric point as sent in runs/log-batch. */
export interface WireMetric {
  key: string;
  value: WireValue;
  /** ms since the Unix epoch (required by the server). */
  timestamp: number;
  step: number;
}

/** A param or tag. */
export interface KeyValue {
  key: string;
  value: string;
}

/** experiments/get-by-name `experiment`. */
export interface Experiment {
  experiment_id: string;
  name: string;
  artifact_location?: string;
  lifecycle_stage: 'active' | 'deleted';
  tags?: KeyValue[];
}

/** A run's `info`. */
export interface RunInfo {
  run_id: string;
  experiment_id: string;
  run_name?: string;
  user_id?: string;
  status: string;
  start_time?: number;
  end_time?: number;
  artifact_uri: string;
  lifecycle_stage: 'active' | 'deleted';
}

/** A dataset logged as a run input (runs/log-inputs). */
export interface DatasetInput {
  tags?: KeyValue[];
  dataset: { name: string; digest: string; source_type: string; source: string; schema?: string; profile?: string };
}

/** runs/get `run`. */
export interface Run {
  info: RunInfo;
  data: { metrics?: WireMetric[]; params?: KeyValue[]; tags?: KeyValue[] };
  inputs?: { dataset_inputs?: DatasetInput[] };
}

/** A run's final (or other) status; the server ignores unknown ones silently, so we type them. */
export type RunStatusName = 'RUNNING' | 'SCHEDULED' | 'FINISHED' | 'FAILED' | 'KILLED';

/** An entry of the mlflow-artifacts listing. */
export interface ArtifactFile {
  path: string;
  is_dir: boolean;
  file_size?: number;
}

/** Encodes a number for the wire: NaN/±Infinity as "NaN"/"Infinity"/"-Infinity" (JSON has no literal for them; `null` is a 400). */
export function encodeValue(v: number): WireValue {
  if (Number.isFinite(v)) return v;
  return Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity';
}

/**
 * Decodes a value read back: the strings above, or a number. SQL stores return ±Infinity as
 * ±1.7976931348623157e308 (Number.MAX_VALUE), which stays as it is.
 */
export function decodeValue(v: WireValue | string): number {
  if (typeof v === 'number') return v;
  if (v === 'NaN') return NaN;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  return Number(v);
}
