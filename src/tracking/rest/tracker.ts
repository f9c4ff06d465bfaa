/**
 * RestTracker: the Tracker for an MLflow tracking server. Every call becomes a record (see
 * spool.ts) applied by one serial queue, so records reach the server in the order they were
 * made. Metric points are buffered and sent in background log-batch requests of at most 1000;
 * params and tags in batches of at most 100. When the server stays unreachable or failing after
 * the client's retries, records go to the run directory's spool instead, and the spool is
 * replayed in order (probing every `probeIntervalMs` and at every flush) once it answers again;
 * what is still spooled at the end waits for `pipe sync RUN_DIR`. Server outages are warnings,
 * never errors of the run.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import type { RunStatus, StartOptions, TrackedDataset, Tracker } from '../tracker.js';
import { applyRecord, CLIENT_RUN_ID_TAG } from './apply.js';
import { stripCredentials } from './auth.js';
import { DEFAULT_TIMEOUT_MS, MlflowClient, type ClientOptions } from './client.js';
import { MlflowError } from './errors.js';
import { DEFAULT_RETRY } from './retry.js';
import { KeyMapper, listTag, MAX_PARAM_VALUE_LENGTH, MAX_TAG_VALUE_LENGTH, truncateValue } from './keys.js';
import { replaySpool } from './replay.js';
import { Spool, type RunRef, type SpoolRecord } from './spool.js';
import { encodeValue, type KeyValue, type WireMetric } from './types.js';
import { datasetInput } from '../layout.js';

/** Server limits per runs/log-batch request (CONTRACT.md, measured). */
const MAX_METRICS = 1000, MAX_PARAMS = 100, MAX_TAGS = 100;

/** Options of RestTracker.start. */
export interface RestTrackerOptions extends StartOptions {
  /** Folder of the tracking spool (the run directory). */
  spoolDir: string;
  /** Client settings: timeouts, retry policy, env for auth/TLS. */
  client?: ClientOptions;
  /** Metric points per log-batch, at most 1000. @defaultValue min(1000, flushEvery ?? 1000) */
  batchSize?: number;
  /** Buffered points are sent at least this often, ms. @defaultValue 5000 */
  flushIntervalMs?: number;
  /** While spooling, how often to try the server again, ms. @defaultValue 10000 */
  probeIntervalMs?: number;
  /** Where warnings go. @defaultValue a `pipe: warning: ...` line on stderr */
  onWarning?: (msg: string) => void;
}

/** Tracker over the MLflow REST API with a disk spool for outages. */
export class RestTracker implements Tracker {
  readonly location: string;
  private ref: RunRef | undefined;
  private readonly keys = new KeyMapper();
  private readonly params = new Map<string, string>();
  private readonly truncated: string[] = [];
  private renamedSent = 0;
  private buffer: WireMetric[] = [];
  /** `key\nstep` of every point logged by this process (one point per step). */
  private readonly seen = new Set<string>();
  /** A resumed run: points the interrupted attempt delivered are dropped against the server's history. */
  private resumed = false;
  /** Server-side steps by key, for the `dedupe` batches of a resumed run (see applyRecord). */
  private readonly history = new Map<string, Set<number>>();
  private chain: Promise<void> = Promise.resolve();
  private spooling = false;
  private replayQueued = false;
  private ended = false;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly batchSize: number;
  private readonly warn: (msg: string) => void;
  private readonly probeClient: MlflowClient;

  private constructor(private readonly client: MlflowClient, private readonly spool: Spool, uri: string, opts: RestTrackerOptions) {
    this.location = stripCredentials(uri);
    this.batchSize = Math.max(1, Math.min(MAX_METRICS, opts.batchSize ?? opts.flushEvery ?? MAX_METRICS));
    this.warn = opts.onWarning ?? ((m) => void process.stderr.write(`pipe: warning: ${m}\n`));
    // Replays probe once with a short timeout, so a still-dead server costs one quick attempt, not a full backoff.
    const retry = { ...(opts.client?.retry ?? DEFAULT_RETRY), maxRetries: 0 };
    this.probeClient = new MlflowClient(uri, { ...opts.client, retry, timeoutMs: Math.min(opts.client?.timeoutMs ?? DEFAULT_TIMEOUT_MS, 10_000) });
  }

  /** The server's run id ('' while the server has not been reachable since the start). */
  get runId(): string {
    return this.ref?.runId ?? '';
  }

  get experimentId(): string {
    return this.ref?.experimentId ?? '';
  }

  /**
   * Gets or creates the experiment and creates a RUNNING run (start_time now, system tags,
   * `pipe.client_run_id`), or with `resumeRunId` sets that run back to RUNNING. When the server
   * is unreachable, this happens later from the spool.
   * @throws MlflowError (a PipelineError, exit 2) when the server refuses for good (401, 403, 400).
   */
  static async start(uri: string, opts: RestTrackerOptions): Promise<RestTracker> {
    const client = new MlflowClient(uri, opts.client);
    const t = new RestTracker(client, new Spool(opts.spoolDir), uri, opts);
    const tags = { 'mlflow.runName': opts.runName, ...(opts.user !== undefined ? { 'mlflow.user': opts.user } : {}), ...opts.tags, [CLIENT_RUN_ID_TAG]: randomUUID().replace(/-/g, '') };
    t.resumed = opts.resumeRunId !== undefined;
    const start: SpoolRecord = { op: 'start', experiment: opts.experiment, runName: opts.runName, tags: t.tagList(tags), startTime: Date.now(), clientRunId: tags[CLIENT_RUN_ID_TAG], ...(opts.user !== undefined ? { userId: opts.user } : {}) };
    try {
      await t.enqueue(opts.resumeRunId ? { op: 'resume', runId: opts.resumeRunId } : start);
    } catch (e) {
      await Promise.all([client.close(), t.probeClient.close()]);
      throw e;
    }
    if (t.ref && t.ref.artifactRoot === undefined) t.warn('this MLflow server does not proxy artifacts (artifact_uri is not mlflow-artifacts:/): artifacts will not be uploaded');
    t.every(opts.flushIntervalMs ?? 5000, () => t.sendBuffer());
    t.every(opts.probeIntervalMs ?? 10_000, () => t.queueReplay());
    return t;
  }

  /**
   * Logs params (batches of 100). Keys are sanitised to MLflow's rules (renames listed in the
   * `pipe.renamed_keys` tag), values over 6000 characters truncated (listed in `pipe.truncated_params`).
   * @throws Error when a key was already logged with a different value (MLflow params are immutable).
   */
  async logParams(params: Record<string, string>): Promise<void> {
    const fresh: (KeyValue & { cut: boolean; length: number })[] = [];
    for (const [k, v] of Object.entries(params)) {
      const key = this.keys.map(k);
      const cut = truncateValue(this.client.conn.redact(v), MAX_PARAM_VALUE_LENGTH);
      const prev = this.params.get(key) ?? fresh.find((p) => p.key === key)?.value;
      if (prev === cut.value) continue;
      if (prev !== undefined) throw new Error(`Changing param values is not allowed: param '${k}' was logged as '${prev}', now '${cut.value}'`);
      fresh.push({ key, value: cut.value, cut: cut.truncated, length: v.length });
    }
    for (const p of fresh) {
      this.params.set(p.key, p.value);
      if (p.cut) this.truncated.push(`${p.key} (${p.length} characters)`);
    }
    const cutNow = fresh.some((p) => p.cut);
    const jobs = chunks(fresh.map(({ key, value }) => ({ key, value })), MAX_PARAMS).map((p) => this.enqueue({ op: 'batch', params: p }));
    if (cutNow) jobs.push(this.setTags({ 'pipe.truncated_params': `${listTag(this.truncated)}: cut to ${MAX_PARAM_VALUE_LENGTH} characters (MLflow's limit); the full values are in the resolved config artifact` }));
    await Promise.all([...jobs, this.tagRenames()]);
  }

  /** Sets (overwrites) tags, batches of 100; values over 8000 characters are truncated. */
  async setTags(tags: Record<string, string>): Promise<void> {
    await Promise.all([...chunks(this.tagList(tags), MAX_TAGS).map((t) => this.enqueue({ op: 'batch', tags: t })), this.tagRenames()]);
  }

  async deleteTags(keys: string[]): Promise<void> {
    await this.enqueue({ op: 'delete-tags', keys });
  }

  /**
   * Buffers a point (timestamp now; NaN/±Infinity sent as "NaN"/"Infinity"/"-Infinity"); never
   * blocks on the network.
   * @throws Error when `step` is not an integer (MLflow steps are int64).
   */
  metric(key: string, value: number, step: number): void {
    if (this.ended) return void this.warn(`metric '${key}' logged after the run ended: dropped`);
    if (!Number.isSafeInteger(step)) throw new Error(`Metric '${key}': step must be an integer, got ${step}`);
    const mapped = this.keys.map(key);
    if (this.seen.has(`${mapped}\n${step}`)) return;
    this.seen.add(`${mapped}\n${step}`);
    this.buffer.push({ key: mapped, value: encodeValue(value), timestamp: Date.now(), step });
    if (this.buffer.length >= this.batchSize) this.sendBuffer();
  }

  /**
   * Uploads the file `localPath` to `[artifactPath/]<basename>` through the server's artifact proxy.
   * @throws Error when the file cannot be read or `artifactPath` leaves the artifact root.
   */
  async logArtifact(localPath: string, artifactPath?: string): Promise<void> {
    if (!(await stat(localPath)).isFile()) throw new Error(`logArtifact: '${localPath}' is not a file`);
    const dir = artifactPath?.replace(/^\/+|\/+$/g, '') ?? '';
    if (dir.split('/').some((s) => s === '..' || s === '.')) throw new Error(`Invalid artifact path '${artifactPath}'`);
    await this.enqueue({ op: 'artifact', file: resolve(localPath), artifactPath: dir ? `${dir}/${basename(localPath)}` : basename(localPath) });
  }

  /** Logs datasets as run inputs (name, digest, source, `mlflow.data.context` tag, row count as profile). */
  async logInputs(datasets: TrackedDataset[]): Promise<void> {
    await this.enqueue({
      op: 'inputs',
      datasets: datasets.map(datasetInput),
    });
  }

  /** Sends buffered points (and, while spooling, tries to replay the spool); resolves when done. */
  async flush(): Promise<void> {
    this.sendBuffer();
    this.queueReplay();
    await this.chain;
  }

  /** Flushes, sets the final status and end time; what the server did not take stays in the spool (with a warning). */
  async end(status: RunStatus): Promise<void> {
    await this.flush();
    await this.enqueue({ op: 'end', status, endTime: Date.now() }).catch((e: unknown) => this.warn(String(e)));
    this.queueReplay();
    await this.chain;
    for (const t of this.timers) clearInterval(t);
    this.ended = true;
    if (this.spooling) {
      const st = await this.spool.state();
      const left = (await this.spool.records()).filter((r) => r.seq >= st.applied).length;
      this.warn(`the MLflow server at ${this.location} did not take ${left} tracking records: they are kept in ${this.spool.paths.log}; send them with \`pipe sync ${this.spool.dir}\``);
    }
    await this.spool.unlock();
    await Promise.all([this.client.close(), this.probeClient.close()]);
  }

  /** Queues the buffered points as log-batch records of at most `batchSize`. */
  private sendBuffer(): void {
    while (this.buffer.length) void this.enqueue({ op: 'batch', metrics: this.buffer.splice(0, this.batchSize), ...(this.resumed ? { dedupe: true } : {}) }).catch(() => undefined);
  }

  private tagList(tags: Record<string, string>): KeyValue[] {
    return Object.entries(tags).map(([k, v]) => {
      const cut = truncateValue(this.client.conn.redact(v), MAX_TAG_VALUE_LENGTH);
      if (cut.truncated) this.warn(`tag '${k}' (${v.length} characters) truncated to ${MAX_TAG_VALUE_LENGTH}, MLflow's limit`);
      return { key: this.keys.map(k), value: cut.value };
    });
  }

  /** Records keys that had to be renamed in the `pipe.renamed_keys` tag (once per new rename). */
  private async tagRenames(): Promise<void> {
    if (this.keys.renamed.size === this.renamedSent) return;
    this.renamedSent = this.keys.renamed.size;
    await this.enqueue({ op: 'batch', tags: [{ key: 'pipe.renamed_keys', value: listTag([...this.keys.renamed].map(([a, b]) => `${a} -> ${b}`)) }] });
  }

  /** Adds `rec` to the serial queue; the promise settles when it was sent, spooled or dropped. */
  private enqueue(rec: SpoolRecord): Promise<void> {
    const done = this.chain.then(() => this.process(rec));
    this.chain = done.catch(() => undefined);
    return done;
  }

  /** Sends `rec`, or spools it when the server is (or just became) unreachable. */
  private async process(rec: SpoolRecord): Promise<void> {
    if (!this.spooling) {
      try {
        this.ref = await applyRecord(this.client, this.ref, rec, { baseDir: this.spool.dir, onSkip: this.warn, history: this.history });
        return;
      } catch (e) {
        if (!(e instanceof MlflowError)) throw e;
        if (!e.retryable) {
          if (rec.op === 'start' || rec.op === 'resume') throw e;
          return this.warn(`MLflow rejected a ${rec.op} record: ${e.message}`);
        }
        await this.beginSpool(e);
        if (e.unverified && (rec.op === 'batch' || rec.op === 'start')) rec = { ...rec, unverified: true };
      }
    }
    if (rec.op === 'artifact') rec = { ...rec, file: await this.spool.keepFile(rec.file, randomBytes(4).toString('hex')) };
    await this.spool.append(rec);
  }

  private async beginSpool(e: MlflowError): Promise<void> {
    this.spooling = true;
    await this.spool.lock();
    if (!(await this.spool.exists())) await this.spool.append({ op: 'open', uri: this.location, ...(this.ref ? { ref: this.ref } : {}) });
    this.warn(`MLflow server unreachable (${e.message}); tracking records go to ${this.spool.paths.log} until it answers again`);
  }

  /** While spooling, queues one replay attempt (at most one waiting at a time). */
  private queueReplay(): void {
    if (!this.spooling || this.replayQueued) return;
    this.replayQueued = true;
    void this.enqueueTask(async () => {
      this.replayQueued = false;
      if (!this.spooling) return;
      const r = await replaySpool(this.spool, this.probeClient, this.warn, this.history);
      if (r.remaining > 0) return;
      this.spooling = false;
      this.ref = (await this.spool.state()).ref ?? this.ref;
      this.warn(`MLflow server answers again: ${r.replayed} spooled tracking records sent`);
    });
  }

  private enqueueTask(fn: () => Promise<void>): Promise<void> {
    const done = this.chain.then(fn).catch((e: unknown) => this.warn(`replaying the MLflow spool failed: ${e instanceof Error ? e.message : String(e)}`));
    this.chain = done;
    return done;
  }

  private every(ms: number, fn: () => void): void {
    const t = setInterval(fn, ms);
    t.unref();
    this.timers.push(t);
  }
}

function chunks<T>(items: T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += n) out.push(items.slice(i, i + n));
  return out;
}
