/**
 * Where a run's params, metrics, tags and artifacts go. The runner talks to a Tracker; the
 * FileStore tracker writes MLflow's local file store. Metric points are buffered and written in
 * batches (at most every `flushEvery` points, and at stage ends), so logging never slows
 * training down.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PipelineError } from '../errors.js';
import { FileStore, type MetricPoint, type RunStatus } from './filestore.js';

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
  /** Writes buffered metric points. */
  flush(): Promise<void>;
  /** Flushes and sets the final status and end time. */
  end(status: RunStatus): Promise<void>;
}

/**
 * Resolves MLFLOW_TRACKING_URI as MLflow's clients do: unset -> `<runsDir>/mlruns`; `file:` URI or
 * a plain path -> a local file store there.
 * @throws PipelineError PIPE_TRACKING for database URIs (they need an MLflow server) and for
 *   http(s) servers, which this version does not talk to yet.
 */
export function resolveStore(uri: string | undefined, runsDir: string): string {
  if (!uri) return resolve(runsDir, 'mlruns');
  if (uri.startsWith('file:')) return fileURLToPath(uri.startsWith('file://') ? uri : `file://${resolve(uri.slice(5))}`);
  if (/^(sqlite|postgresql|mysql|mssql)(\+\w+)?:/.test(uri)) {
    throw new PipelineError('PIPE_TRACKING', `MLFLOW_TRACKING_URI '${uri.split(':')[0]}:...' is a database: run \`mlflow server --backend-store-uri <that URI>\` and point MLFLOW_TRACKING_URI at the server's http:// address`);
  }
  if (/^https?:/.test(uri)) {
    throw new PipelineError('PIPE_TRACKING', 'MLFLOW_TRACKING_URI is an http(s) server: the REST client is not in this version yet; unset it to log to the local store under runs/mlruns');
  }
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
}

/**
 * Starts a tracked run where MLFLOW_TRACKING_URI (`uri`) points: the local file store by default.
 * @throws PipelineError PIPE_TRACKING for URIs that cannot be used (see resolveStore).
 */
export async function startTracker(uri: string | undefined, runsDir: string, opts: StartOptions): Promise<Tracker> {
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
