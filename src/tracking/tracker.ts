/**
 * Where a run's params, metrics, tags and artifacts go. The runner talks to a Tracker; the
 * FileStore tracker writes MLflow's local file store. Metric points are buffered and written in
 * batches (at most every `flushEvery` points, and at stage ends), so logging never slows
 * training down.
 */
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PipelineError } from '../errors.js';
import { FileStore, type MetricPoint, type RunStatus } from './filestore.js';
import { stripCredentials } from './rest/auth.js';
import { RestTracker } from './rest/tracker.js';

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
  /** Buffers a point; `step` is the global iteration or epoch. */
  metric(key: string, value: number, step: number): void;
  logArtifact(localPath: string, artifactPath?: string): Promise<void>;
  /** Logs datasets as run inputs (optional: a tracker without it leaves datasets to tags). */
  logInputs?(datasets: TrackedDataset[]): Promise<void>;
  /** Writes buffered metric points. */
  flush(): Promise<void>;
  /** Flushes and sets the final status and end time. */
  end(status: RunStatus): Promise<void>;
}

/**
 * Resolves MLFLOW_TRACKING_URI as MLflow's clients do: unset -> `<runsDir>/mlruns`; `file:` URI or
 * a plain path -> a local file store there; http(s) -> the server (returned without credentials).
 * @throws PipelineError PIPE_TRACKING for database URIs (they need an MLflow server).
 */
export function resolveStore(uri: string | undefined, runsDir: string): string {
  if (!uri) return resolve(runsDir, 'mlruns');
  if (uri.startsWith('file:')) return fileURLToPath(uri.startsWith('file://') ? uri : `file://${resolve(uri.slice(5))}`);
  if (/^(sqlite|postgresql|mysql|mssql)(\+\w+)?:/.test(uri)) {
    throw new PipelineError('PIPE_TRACKING', `MLFLOW_TRACKING_URI '${uri.split(':')[0]}:...' is a database: run \`mlflow server --backend-store-uri <that URI>\` and point MLFLOW_TRACKING_URI at the server's http:// address`);
  }
  if (/^https?:\/\//i.test(uri)) return stripCredentials(uri);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(uri)) throw new PipelineError('PIPE_TRACKING', `MLFLOW_TRACKING_URI scheme '${uri.split(':')[0]}' is not supported`);
  return resolve(uri);
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

/**
 * Starts a tracked run where MLFLOW_TRACKING_URI (`uri`) points: the local file store by default,
 * an MLflow tracking server over REST for http(s) URIs.
 * @throws PipelineError PIPE_TRACKING for URIs that cannot be used (see resolveStore) and for a
 *   server that refuses the run for good (auth, host check); an unreachable server is not an
 *   error (records go to the run's spool).
 */
export async function startTracker(uri: string | undefined, runsDir: string, opts: StartOptions): Promise<Tracker> {
  if (uri && /^https?:\/\//i.test(uri)) {
    return RestTracker.start(uri, { ...opts, spoolDir: opts.runDir ?? join(runsDir, 'mlflow-spool', randomBytes(6).toString('hex')) });
  }
  return FileStoreTracker.start(resolveStore(uri, runsDir), opts);
}

/** Tracker over an MLflow local file store. */
export class FileStoreTracker implements Tracker {
  private buffer: MetricPoint[] = [];
  /** Writes run one after another, so metric lines keep their order. */
  private writes: Promise<void> = Promise.resolve();

  private constructor(
    private readonly store: FileStore,
    readonly experimentId: string,
    readonly runId: string,
    private readonly flushEvery: number,
  ) {}

  get location(): string {
    return this.store.root;
  }

  /** Creates (or reuses) the experiment and starts a RUNNING run. */
  static async start(root: string, opts: StartOptions): Promise<FileStoreTracker> {
    const store = new FileStore(root);
    const exp = await store.getOrCreateExperiment(opts.experiment);
    if (opts.resumeRunId) {
      await store.reopenRun(opts.resumeRunId);
      return new FileStoreTracker(store, exp, opts.resumeRunId, opts.flushEvery ?? 500);
    }
    const { runId } = await store.createRun(exp, { runName: opts.runName, user: opts.user, tags: opts.tags });
    return new FileStoreTracker(store, exp, runId, opts.flushEvery ?? 500);
  }

  logParams(params: Record<string, string>): Promise<void> {
    return this.store.logParams(this.runId, params);
  }

  setTags(tags: Record<string, string>): Promise<void> {
    return this.store.setTags(this.runId, tags);
  }

  metric(key: string, value: number, step: number): void {
    this.buffer.push({ key, value, step, timestamp: Date.now() });
    if (this.buffer.length >= this.flushEvery) void this.flush();
  }

  flush(): Promise<void> {
    const points = this.buffer;
    this.buffer = [];
    if (points.length) this.writes = this.writes.then(() => this.store.logMetrics(this.runId, points));
    return this.writes;
  }

  logArtifact(localPath: string, artifactPath?: string): Promise<void> {
    return this.store.logArtifact(this.runId, localPath, artifactPath);
  }

  async end(status: RunStatus): Promise<void> {
    await this.flush();
    await this.store.endRun(this.runId, status);
  }
}
