/**
 * The Tracker over an MLflow local file store (see store.ts). Metric points are buffered and
 * written in batches (at most every `flushEvery` points, and at stage ends), so logging never
 * slows training down.
 */
import type { RunStatus, StartOptions, Tracker } from '../tracker.js';
import { FileStore, type MetricPoint } from './store.js';

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
