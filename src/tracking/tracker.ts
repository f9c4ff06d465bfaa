/**
 * Where a run's params, metrics, tags and artifacts go: the Tracker interface the runner talks
 * to. Two implementations: file/ (MLflow's local file store) and rest/ (an MLflow tracking
 * server); open.ts picks one from MLFLOW_TRACKING_URI.
 */

/** Lifecycle status of a run, as named by MLflow. */
export type RunStatus = 'RUNNING' | 'SCHEDULED' | 'FINISHED' | 'FAILED' | 'KILLED';

/** A dataset a run used, logged as an MLflow run input. */
export interface TrackedDataset {
  name: string;
  /** Content hash (hex). */
  digest: string;
  /** Where it came from: a local path or a URL. */
  source: string;
  /** MLflow's `mlflow.data.context` input tag. */
  context: 'train' | 'test';
  /** Number of examples (images). */
  count?: number;
}

/** A run being tracked. */
export interface Tracker {
  /** Human-readable location: the store folder or server URL. */
  readonly location: string;
  readonly runId: string;
  readonly experimentId: string;
  logParams(params: Record<string, string>): Promise<void>;
  setTags(tags: Record<string, string>): Promise<void>;
  /** Removes tags (a key the run does not have is no error), e.g. a failure's tags once a resumed run finishes. */
  deleteTags(keys: string[]): Promise<void>;
  /**
   * Buffers a point; `step` is the global iteration or epoch. A run holds one point per (key,
   * step): a point whose key and step the run already has (logged earlier in this process, or,
   * for a resumed run, by the attempt that was interrupted) is dropped, so re-delivering what a
   * checkpoint holds after a kill never doubles a step.
   */
  metric(key: string, value: number, step: number): void;
  logArtifact(localPath: string, artifactPath?: string): Promise<void>;
  /** Logs datasets as run inputs (optional: a tracker without it leaves datasets to tags). */
  logInputs?(datasets: TrackedDataset[]): Promise<void>;
  /** Writes buffered metric points. */
  flush(): Promise<void>;
  /** Flushes and sets the final status and end time. */
  end(status: RunStatus): Promise<void>;
}

/** Options for starting a tracked run. */
export interface StartOptions {
  experiment: string;
  runName: string;
  user?: string;
  tags?: Record<string, string>;
  flushEvery?: number;
  /** Continue this existing run (set back to RUNNING) instead of creating one. */
  resumeRunId?: string;
  /** The run's own folder (runs/<run-id>): an MLflow server's tracking spool goes there. @defaultValue runsDir/mlflow-spool/<random> */
  runDir?: string;
}
