/**
 * A small MLflow REST client on undici 7: one method per endpoint pipe uses, a keep-alive
 * agent, timeouts, and retries (see retry.ts). API reference: MLflow REST API 2.0
 * (https://mlflow.org/docs/latest/api_reference/rest-api.html) and the measured behaviour in
 * ../shared/mlflow/CONTRACT.md. Paths are `<base>/api/2.0/mlflow/<endpoint>`, artifacts go
 * through the `mlflow-artifacts` proxy at `<base>/api/2.0/mlflow-artifacts/artifacts/<path>`.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { Agent, request } from 'undici';
import { PipelineError } from '../../errors.js';
import { connectionFromEnv, type Connection } from './auth.js';
import { MlflowError, parseErrorBody, transportError } from './errors.js';
import { DEFAULT_RETRY, parseRetryAfter, withRetry, type RetryHooks, type RetryPolicy } from './retry.js';
import type { ArtifactFile, DatasetInput, Experiment, KeyValue, Run, RunInfo, RunStatusName, WireMetric } from './types.js';

/** Default per-request timeout, ms. */
export const DEFAULT_TIMEOUT_MS = 30_000;

/** Client settings. */
export interface ClientOptions {
  /**
   * Per-request timeout for connecting, for the response headers and between body chunks, ms
   * (undici checks it about every 0.5 s). MLflow's Python client waits 120 s
   * (MLFLOW_HTTP_REQUEST_TIMEOUT); our requests are small and records spool when the server
   * hangs, so we wait less. @defaultValue DEFAULT_TIMEOUT_MS (30000)
   */
  timeoutMs?: number;
  /** @defaultValue DEFAULT_RETRY */
  retry?: RetryPolicy;
  /** Test hooks for the backoff (randomness, sleep, observation). */
  hooks?: Pick<RetryHooks<unknown>, 'random' | 'sleep' | 'onRetry'>;
  /** Where auth/TLS variables are read. @defaultValue process.env */
  env?: NodeJS.ProcessEnv;
  /** Page size of metrics/get-history; the server returns nothing without one. @defaultValue 25000 (the Python client's) */
  historyPageSize?: number;
}

type Query = Record<string, string | number | undefined>;
interface Call { method: 'GET' | 'POST' | 'PUT'; url: string; endpoint: string; body?: string | (() => Readable); length?: number; type?: string }

/** MLflow tracking server client. Call `close()` when done (it holds keep-alive sockets). */
export class MlflowClient {
  readonly conn: Connection;
  private readonly agent: Agent;
  private readonly retry: RetryPolicy;
  private readonly hooks: ClientOptions['hooks'];
  private readonly pageSize: number;

  /** @throws PipelineError PIPE_TRACKING for a bad URI or contradictory TLS settings (see auth.ts). */
  constructor(uri: string, opts: ClientOptions = {}) {
    this.conn = connectionFromEnv(uri, opts.env);
    const timeout = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.agent = new Agent({
      keepAliveTimeout: 30_000,
      headersTimeout: timeout,
      bodyTimeout: timeout,
      connect: { timeout: Math.min(timeout, 30_000), ...this.conn.tls },
    });
    this.retry = opts.retry ?? DEFAULT_RETRY;
    this.hooks = opts.hooks;
    this.pageSize = opts.historyPageSize ?? 25_000;
  }

  /** The server address, without credentials. */
  get baseUrl(): string {
    return this.conn.baseUrl;
  }

  /** experiments/get-by-name; undefined when there is none (404 RESOURCE_DOES_NOT_EXIST). Deleted experiments are returned. */
  async getExperimentByName(name: string): Promise<Experiment | undefined> {
    try {
      return (await this.api<{ experiment: Experiment }>('GET', 'experiments/get-by-name', { experiment_name: name })).experiment;
    } catch (e) {
      if (e instanceof MlflowError && e.errorCode === 'RESOURCE_DOES_NOT_EXIST') return undefined;
      throw e;
    }
  }

  /** experiments/create; resolves to the new id. @throws MlflowError RESOURCE_ALREADY_EXISTS (400) when the name is taken, deleted experiments included. */
  async createExperiment(name: string, tags: KeyValue[] = []): Promise<string> {
    return (await this.api<{ experiment_id: string }>('POST', 'experiments/create', undefined, { name, tags })).experiment_id;
  }

  /** experiments/set-experiment-tag (overwrites). */
  async setExperimentTag(experimentId: string, key: string, value: string): Promise<void> {
    await this.api('POST', 'experiments/set-experiment-tag', undefined, { experiment_id: experimentId, key, value });
  }

  /** experiments/restore. */
  async restoreExperiment(experimentId: string): Promise<void> {
    await this.api('POST', 'experiments/restore', undefined, { experiment_id: experimentId });
  }

  /**
   * runs/create. Not idempotent: pass `hooks.reconcile` (e.g. a search by a client tag) so an
   * ambiguous failure is checked before a second run is created.
   */
  async createRun(req: { experimentId: string; runName: string; startTime: number; tags: KeyValue[]; userId?: string }, hooks: Pick<RetryHooks<RunInfo>, 'reconcile' | 'unverified'> = {}): Promise<RunInfo> {
    const body = { experiment_id: req.experimentId, run_name: req.runName, start_time: req.startTime, tags: req.tags, ...(req.userId !== undefined ? { user_id: req.userId } : {}) };
    const call = async (): Promise<RunInfo> => (await this.once<{ run: { info: RunInfo } }>(this.apiCall('POST', 'runs/create', undefined, body))).run.info;
    return withRetry(call, this.retry, { ...this.hooks, ...hooks });
  }

  /** runs/update: status (validated here: the server ignores unknown ones), end time (ms), name. */
  async updateRun(runId: string, req: { status?: RunStatusName; endTime?: number; runName?: string }): Promise<RunInfo> {
    if (req.status !== undefined && !['RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED'].includes(req.status)) throw new Error(`Unknown run status '${String(req.status)}'`);
    const body = { run_id: runId, ...(req.status ? { status: req.status } : {}), ...(req.endTime !== undefined ? { end_time: req.endTime } : {}), ...(req.runName ? { run_name: req.runName } : {}) };
    return (await this.api<{ run_info: RunInfo }>('POST', 'runs/update', undefined, body)).run_info;
  }

  /** runs/delete-tag. */
  async deleteTag(runId: string, key: string): Promise<void> {
    await this.api('POST', 'runs/delete-tag', undefined, { run_id: runId, key });
  }

  /** runs/delete (a soft delete: the run moves to the deleted lifecycle stage). */
  async deleteRun(runId: string): Promise<void> {
    await this.api('POST', 'runs/delete', undefined, { run_id: runId });
  }

  /** runs/get. @throws MlflowError RESOURCE_DOES_NOT_EXIST (404). */
  async getRun(runId: string): Promise<Run> {
    return (await this.api<{ run: Run }>('GET', 'runs/get', { run_id: runId })).run;
  }

  /** runs/search, one page (`maxResults` at most 50000). */
  async searchRuns(req: { experimentIds: string[]; filter?: string; maxResults?: number; orderBy?: string[]; pageToken?: string; viewType?: 'ACTIVE_ONLY' | 'DELETED_ONLY' | 'ALL' }): Promise<{ runs: Run[]; nextPageToken?: string }> {
    const body = { experiment_ids: req.experimentIds, filter: req.filter ?? '', run_view_type: req.viewType ?? 'ACTIVE_ONLY', max_results: req.maxResults ?? 1000, order_by: req.orderBy ?? [], ...(req.pageToken ? { page_token: req.pageToken } : {}) };
    const r = await this.api<{ runs?: Run[]; next_page_token?: string }>('POST', 'runs/search', undefined, body);
    return { runs: r.runs ?? [], ...(r.next_page_token ? { nextPageToken: r.next_page_token } : {}) };
  }

  /**
   * runs/log-batch. The server takes at most 1000 metrics, 100 params, 100 tags and 1000 items in
   * all; callers split. With metrics it is not idempotent: pass `check.isStored`, which tells
   * after an ambiguous failure whether the batch is on the server already.
   */
  async logBatch(runId: string, batch: { metrics?: WireMetric[]; params?: KeyValue[]; tags?: KeyValue[] }, check: { isStored?: () => Promise<boolean>; unverified?: boolean } = {}): Promise<void> {
    const body = { run_id: runId, metrics: batch.metrics ?? [], params: batch.params ?? [], tags: batch.tags ?? [] };
    const isStored = check.isStored;
    const reconcile = isStored ? async (): Promise<true | undefined> => ((await isStored()) ? true : undefined) : undefined;
    const send = async (): Promise<true> => {
      await this.once(this.apiCall('POST', 'runs/log-batch', undefined, body));
      return true;
    };
    await withRetry<true>(send, this.retry, { ...this.hooks, ...(reconcile ? { reconcile } : {}), unverified: check.unverified ?? false });
  }

  /** metrics/get-history, every page (always sends max_results: without it MLflow 3.6 returns nothing and a token that never advances). */
  async getMetricHistory(runId: string, key: string): Promise<WireMetric[]> {
    const out: WireMetric[] = [];
    let token: string | undefined;
    do {
      const r = await this.api<{ metrics?: WireMetric[]; next_page_token?: string }>('GET', 'metrics/get-history', { run_id: runId, metric_key: key, max_results: this.pageSize, page_token: token });
      out.push(...(r.metrics ?? []));
      if (r.next_page_token && r.next_page_token === token) throw new MlflowError(200, 'BAD_PAGE_TOKEN', 'metrics/get-history returned the same page token twice', 'GET metrics/get-history');
      token = r.next_page_token;
    } while (token);
    return out;
  }

  /** runs/log-inputs: datasets (with a `mlflow.data.context` tag such as train/test). */
  async logInputs(runId: string, datasets: DatasetInput[]): Promise<void> {
    await this.api('POST', 'runs/log-inputs', undefined, { run_id: runId, datasets });
  }

  /** PUT the file `localPath` to `<artifactPath>` (e.g. `4/<run>/artifacts/plots/loss.png`) through the proxy, streamed. */
  async uploadArtifact(artifactPath: string, localPath: string): Promise<void> {
    const { size } = await stat(localPath);
    const call: Call = { method: 'PUT', url: this.artifactUrl(artifactPath), endpoint: `PUT mlflow-artifacts/artifacts/${artifactPath}`, body: () => createReadStream(localPath), length: size, type: 'application/octet-stream' };
    await withRetry(() => this.once(call), this.retry, this.hooks);
  }

  /** GET an artifact's bytes through the proxy. */
  async downloadArtifact(artifactPath: string): Promise<Buffer> {
    const call: Call = { method: 'GET', url: this.artifactUrl(artifactPath), endpoint: `GET mlflow-artifacts/artifacts/${artifactPath}` };
    return withRetry(() => this.send(call, true) as Promise<Buffer>, this.retry, this.hooks);
  }

  /** Lists the artifact folder `dir` (paths relative to it). */
  async listArtifacts(dir: string): Promise<ArtifactFile[]> {
    const url = `${this.conn.baseUrl}/api/2.0/mlflow-artifacts/artifacts?path=${encodeURIComponent(dir)}`;
    const r = await withRetry(() => this.once<{ files?: ArtifactFile[] }>({ method: 'GET', url, endpoint: 'GET mlflow-artifacts/artifacts' }), this.retry, this.hooks);
    return r.files ?? [];
  }

  /** Closes the keep-alive sockets. */
  async close(): Promise<void> {
    await this.agent.close();
  }

  private artifactUrl(path: string): string {
    return `${this.conn.baseUrl}/api/2.0/mlflow-artifacts/artifacts/${path.split('/').map(encodeURIComponent).join('/')}`;
  }

  private apiCall(method: 'GET' | 'POST', endpoint: string, query?: Query, body?: unknown): Call {
    const qs = query ? Object.entries(query).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${encodeURIComponent(String(v))}`).join('&') : '';
    return { method, url: `${this.conn.baseUrl}/api/2.0/mlflow/${endpoint}${qs ? `?${qs}` : ''}`, endpoint: `${method} ${endpoint}`, ...(body !== undefined ? { body: JSON.stringify(body), type: 'application/json' } : {}) };
  }

  /** An idempotent API call, retried by the client's policy. */
  private api<T>(method: 'GET' | 'POST', endpoint: string, query?: Query, body?: unknown): Promise<T> {
    const call = this.apiCall(method, endpoint, query, body);
    return withRetry(() => this.once<T>(call), this.retry, this.hooks);
  }

  private async once<T>(call: Call): Promise<T> {
    return (await this.send(call, false)) as T;
  }

  /** One HTTP exchange: parsed JSON (or the raw bytes), or an MlflowError. */
  private async send(call: Call, raw: boolean): Promise<unknown> {
    const headers: Record<string, string> = { ...this.conn.headers };
    if (call.type) headers['content-type'] = call.type;
    if (call.length !== undefined) headers['content-length'] = String(call.length);
    let res;
    try {
      const body = typeof call.body === 'function' ? call.body() : call.body;
      res = await request(call.url, { dispatcher: this.agent, method: call.method, headers, body });
    } catch (e) {
      throw this.redacted(transportError(e, call.endpoint));
    }
    let bytes: Buffer;
    try {
      bytes = Buffer.from(await res.body.arrayBuffer());
    } catch (e) {
      throw this.redacted(transportError(e, call.endpoint));
    }
    if (res.statusCode >= 400) {
      const { errorCode, message } = parseErrorBody(res.statusCode, bytes.toString('utf8'));
      throw this.redacted(new MlflowError(res.statusCode, errorCode, message, call.endpoint, true, parseRetryAfter(res.headers['retry-after'])));
    }
    if (raw) return bytes;
    const text = bytes.toString('utf8');
    try {
      return text.trim() === '' ? {} : JSON.parse(text);
    } catch {
      throw new MlflowError(res.statusCode, 'BAD_RESPONSE', `not JSON: ${text.slice(0, 120)} (is ${this.conn.baseUrl} an MLflow tracking server?)`, call.endpoint, true);
    }
  }

  private redacted(e: MlflowError): MlflowError {
    const msg = this.conn.redact(e.serverMessage);
    return msg === e.serverMessage ? e : new MlflowError(e.status, e.errorCode, msg, e.endpoint, e.sent, e.retryAfterMs);
  }
}

/**
 * The proxy path of a run's artifact root: `mlflow-artifacts:/4/<run>/artifacts` (or
 * `mlflow-artifacts://host:port/4/...`) -> `4/<run>/artifacts`.
 * @throws PipelineError PIPE_TRACKING when the server does not proxy artifacts (s3://, gs://, file:...).
 */
export function artifactRoot(artifactUri: string): string {
  const m = /^mlflow-artifacts:(?:\/\/[^/]*)?\/*(.*)$/.exec(artifactUri);
  if (!m) {
    throw new PipelineError('PIPE_TRACKING', `the run's artifact_uri is '${artifactUri}', which the tracking server does not proxy: pipe uploads artifacts only through the server (start it with --serve-artifacts and --artifacts-destination <store>)`);
  }
  return (m[1] ?? '').replace(/\/+$/, '');
}
