/**
 * The Tracker over an MLflow local file store (see store.ts). Metric points are buffered and
 * written in batches (at most every `flushEvery` points, and at stage ends), so logging never
 * slows training down.
 */
import type { RunStatus, StartOptions, TrackedDataset, Tracker } from '../tracker.js';
import { datasetInput, EXPERIMENT_TAGS } from '../layout.js';
import { FileStore, type MetricPoint } from './store.js';

/** Tracker over an MLflow local file store. */
export class FileStoreTracker implements Tracker {
  private buffer: MetricPoint[] = [];
  /** Writes run one after another, so metric lines keep their order. */
  private writes: Promise<void> = Promise.resolve();
  /** The first failed metric write: every later flush reports it (a lost point must not pass silently). */
  private writeError: unknown;
  /** `key\nstep` of every point the run has. */
  private readonly seen = new Set<string>();

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
    const exp = await store.getOrCreateExperiment(opts.experiment, EXPERIMENT_TAGS);
    if (opts.resumeRunId) {
      await store.reopenRun(opts.resumeRunId);
      const t = new FileStoreTracker(store, exp, opts.resumeRunId, opts.flushEvery ?? 500);
      for (const points of Object.values((await store.readRun(opts.resumeRunId)).metrics)) for (const p of points) t.seen.add(`${p.key}\n${p.step}`);
      return t;
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

  deleteTags(keys: string[]): Promise<void> {
    return this.store.deleteTags(this.runId, keys);
  }

  metric(key: string, value: number, step: number): void {
    const id = `${key}\n${step}`;
    if (this.seen.has(id)) return;
    this.seen.add(id);
    this.buffer.push({ key, value, step, timestamp: Date.now() });
    if (this.buffer.length >= this.flushEvery) void this.flush().catch(() => undefined); // the next flush() reports it
  }

  /** Writes buffered points. @throws the first write error of this run (e.g. ENOSPC), at this and every later flush. */
  async flush(): Promise<void> {
    const points = this.buffer;
    this.buffer = [];
    if (points.length) {
      this.writes = this.writes.then(() => (this.writeError === undefined ? this.store.logMetrics(this.runId, points) : undefined)).catch((e: unknown) => {
        this.writeError ??= e;
      });
    }
    await this.writes;
    if (this.writeError !== undefined) throw this.writeError;
  }

  logArtifact(localPath: string, artifactPath?: string): Promise<void> {
    return this.store.logArtifact(this.runId, localPath, artifactPath);
  }

  /** Logs datasets as run inputs, as MLflow's file store keeps them (see FileStore.logInputs). */
  logInputs(datasets: TrackedDataset[]): Promise<void> {
    return this.store.logInputs(this.runId, datasets.map(datasetInput));
  }

  /** Flushes and sets the status and end time; the status is set even when the flush fails (then the flush error is thrown). */
  async end(status: RunStatus): Promise<void> {
    const flushed = await this.flush().then(() => undefined, (e: unknown) => ({ e }));
    await this.store.endRun(this.runId, status);
    if (flushed) throw flushed.e;
  }
}
