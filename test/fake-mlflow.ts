/**
 * A fake MLflow tracking server on 127.0.0.1 (node:http) that answers like MLflow 3.6 with
 * the artifact proxy on (test/fixtures/mlflow/transcript-3.6.txt): the REST endpoints pipe uses,
 * HTML 404/405 pages, the mlflow-artifacts proxy (PUT/GET/list), and fault injection: error
 * statuses with Retry-After, dropped connections (before or after the request is applied),
 * latency, Basic/Bearer auth and MLflow 3's host check.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApiError, checkKey, FakeStore, missing, outValue } from './fake-mlflow-store.js';

const safeDecode = (s: string): string => {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
};

/** A fault applied to matching requests while active. */
export interface Fault {
  /** 'drop': close the connection without answering, before applying; 'drop-after': apply, then close; a number: answer that status. */
  kind: 'drop' | 'drop-after' | number;
  /** Only requests whose path contains this. */
  path?: string;
  /** Affect this many requests (default: unlimited while `until` holds). */
  count?: number;
  /** Active until this Date.now() value (default: forever, bounded by `count`). */
  until?: number;
  /** Retry-After header value (seconds) for status faults. */
  retryAfter?: number;
}

/** One request as received. */
export interface Received { method: string; path: string; rawUrl: string; query: URLSearchParams; body: string; headers: IncomingMessage['headers']; answered: number | 'dropped' }

const HTML_404 = '<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n<p>The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.</p>\n';
const HTML_405 = '<!doctype html>\n<html lang=en>\n<title>405 Method Not Allowed</title>\n<h1>Method Not Allowed</h1>\n<p>The method is not allowed for the requested URL.</p>\n';
const STATUS_CODES: Record<number, string> = { 408: 'DEADLINE_EXCEEDED', 429: 'REQUEST_LIMIT_EXCEEDED', 500: 'INTERNAL_ERROR', 502: 'BAD_GATEWAY', 503: 'TEMPORARILY_UNAVAILABLE', 504: 'DEADLINE_EXCEEDED' };

/** MLflow's page token: base64 of Python's json.dumps({"offset": n}). */
const pageToken = (offset: number): string => Buffer.from(`{"offset": ${offset}}`).toString('base64');

type Handler = (b: Record<string, unknown>, q: URLSearchParams) => unknown;

/** The fake server. `await FakeMlflow.start()`, use `.uri`, `await .close()`. */
export class FakeMlflow {
  readonly store = new FakeStore();
  readonly requests: Received[] = [];
  faults: Fault[] = [];
  /** Delay before answering each request, ms. */
  latencyMs = 0;
  /** Required Authorization header value (e.g. `Basic ...`); 401 otherwise. */
  auth: string | undefined;
  /** Answer 403 "Invalid Host header" unless Host is localhost[:port]. */
  hostCheck = false;
  private readonly routes: Record<string, Handler>;

  private constructor(private readonly server: Server, readonly uri: string) {
    const s = this.store;
    this.routes = {
      'GET experiments/get-by-name': (_b, q) => ({ experiment: s.experimentByName(q.get('experiment_name') ?? undefined) }),
      'GET experiments/get': (_b, q) => ({ experiment: s.experiment(q.get('experiment_id') ?? undefined) }),
      'POST experiments/create': (b) => ({ experiment_id: s.createExperiment(b['name'], b['tags']) }),
      'POST experiments/set-experiment-tag': (b) => {
        const e = s.experiment(b['experiment_id']);
        e.tags = [...(e.tags ?? []).filter((t) => t.key !== b['key']), { key: String(b['key']), value: String(b['value']) }];
      },
      'POST experiments/delete': (b) => void (s.experiment(b['experiment_id']).lifecycle_stage = 'deleted'),
      'POST experiments/restore': (b) => void (s.experiment(b['experiment_id']).lifecycle_stage = 'active'),
      'POST runs/create': (b) => ({ run: s.runMessage(s.createRun(b)) }),
      'GET runs/get': (_b, q) => ({ run: s.runMessage(s.run(q.get('run_id') ?? undefined)) }),
      'POST runs/update': (b) => ({ run_info: this.updateRun(b) }),
      'POST runs/delete': (b) => void (s.run(b['run_id']).info.lifecycle_stage = 'deleted'),
      'POST runs/restore': (b) => void (s.run(b['run_id']).info.lifecycle_stage = 'active'),
      'POST runs/log-batch': (b) => void s.logBatch(b),
      'POST runs/log-metric': (b) => void (checkKey(b['key'], 'Metric name'), s.logBatch({ run_id: b['run_id'], metrics: [{ key: b['key'], value: b['value'], timestamp: b['timestamp'], step: b['step'] }] })),
      'POST runs/log-parameter': (b) => void s.logParam(b),
      'POST runs/delete-tag': (b) => {
        // MLflow 3.6 (SqlAlchemyStore.delete_tag): 404 RESOURCE_DOES_NOT_EXIST when the run has no such tag.
        const run = s.run(b['run_id'], true);
        if (!run.tags.delete(String(b['key']))) throw new ApiError(404, 'RESOURCE_DOES_NOT_EXIST', `No tag with name: ${String(b['key'])} in run with id ${String(b['run_id'])}`);
      },
      'POST runs/log-inputs': (b) => void s.run(b['run_id'], true).inputs.push(...((b['datasets'] as unknown[]) ?? [])),
      'POST runs/search': (b) => this.search(b),
      'GET metrics/get-history': (_b, q) => this.history(q),
    };
  }

  /** Starts on 127.0.0.1, port 0 (or `port`). */
  static async start(port = 0): Promise<FakeMlflow> {
    let fake: FakeMlflow | undefined;
    const server = createServer((req, res) => void fake!.handle(req, res));
    server.keepAliveTimeout = 30_000;
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    fake = new FakeMlflow(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    return fake;
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  /** Drops every connection for the next `ms` (the server is "down"). */
  down(ms: number, kind: Fault['kind'] = 'drop'): void {
    this.faults.push({ kind, until: Date.now() + ms });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', 'http://x');
    const rec: Received = { method: req.method ?? 'GET', path: url.pathname, rawUrl: req.url ?? '/', query: url.searchParams, body: raw.toString('utf8'), headers: req.headers, answered: 0 };
    this.requests.push(rec);
    if (this.latencyMs) await new Promise((r) => setTimeout(r, this.latencyMs));
    const fault = this.takeFault(url.pathname);
    if (fault?.kind === 'drop') return this.drop(req, rec);
    const send = (status: number, body: string | Buffer, type = 'application/json', headers: Record<string, string> = {}): void => {
      rec.answered = status;
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), ...headers });
      res.end(body);
    };
    if (typeof fault?.kind === 'number') {
      const code = STATUS_CODES[fault.kind] ?? 'INTERNAL_ERROR';
      return send(fault.kind, JSON.stringify({ error_code: code, message: `injected ${fault.kind}` }), 'application/json', fault.retryAfter !== undefined ? { 'retry-after': String(fault.retryAfter) } : {});
    }
    if (this.hostCheck && !/^localhost(:\d+)?$/.test(req.headers.host ?? '')) return send(403, 'Invalid Host header - possible DNS rebinding attack detected', 'text/plain');
    if (this.auth !== undefined && req.headers.authorization !== this.auth) return send(401, 'You are not authenticated. Please see https://www.mlflow.org/docs/latest/auth/index.html#authenticating-to-mlflow on how to authenticate.', 'text/html', { 'www-authenticate': 'Basic realm="mlflow"' });
    try {
      const out = this.route(rec, raw);
      if (fault?.kind === 'drop-after') return this.drop(req, rec); // applied, but no answer
      if (Buffer.isBuffer(out)) send(200, out, 'application/octet-stream');
      else send(200, JSON.stringify(out ?? {}));
    } catch (e) {
      if (e === HTML_404 || e === HTML_405) send(e === HTML_404 ? 404 : 405, e, 'text/html; charset=utf-8');
      else if (e instanceof ApiError) send(e.status, JSON.stringify({ error_code: e.code, message: e.message }));
      else send(500, JSON.stringify({ error_code: 'INTERNAL_ERROR', message: String(e) }));
    }
  }

  private drop(req: IncomingMessage, rec: Received): void {
    rec.answered = 'dropped';
    req.socket.destroy();
  }

  private takeFault(path: string): Fault | undefined {
    const now = Date.now();
    this.faults = this.faults.filter((f) => (f.until === undefined || f.until > now) && (f.count === undefined || f.count > 0));
    const f = this.faults.find((x) => x.path === undefined || path.includes(x.path));
    if (f && f.count !== undefined) f.count--;
    return f;
  }

  private route(rec: Received, raw: Buffer): unknown {
    if (rec.rawUrl.split('?')[0]!.split('/').some((seg) => ['..', '.'].includes(safeDecode(seg)))) throw HTML_404; // traversal (URL parsing would hide it)
    const art = /^\/api\/2\.0\/mlflow-artifacts\/artifacts(?:\/(.*))?$/.exec(rec.path);
    if (art) return this.artifacts(rec, art[1], raw);
    const m = /^\/api\/2\.0\/mlflow\/(.+)$/.exec(rec.path);
    const names = Object.keys(this.routes);
    if (!m || !names.some((n) => n.endsWith(` ${m[1]}`))) throw HTML_404;
    const handler = this.routes[`${rec.method} ${m[1]}`];
    if (!handler) throw HTML_405;
    let body: Record<string, unknown> = {};
    try {
      const parsed: unknown = rec.body ? JSON.parse(rec.body) : {};
      if (parsed && typeof parsed === 'object') body = parsed as Record<string, unknown>;
    } catch {
      body = {}; // MLflow answers malformed JSON as if the fields were missing
    }
    return handler(body, rec.query);
  }

  private artifacts(rec: Received, rawPath: string | undefined, data: Buffer): unknown {
    if (rawPath === undefined) {
      if (rec.method !== 'GET') throw HTML_405;
      const dir = (rec.query.get('path') ?? '').replace(/^\/+|\/+$/g, '');
      const prefix = dir ? `${dir}/` : '';
      const seen = new Map<string, { path: string; is_dir: boolean; file_size?: number }>();
      for (const [p, b] of this.store.artifacts) {
        if (!p.startsWith(prefix)) continue;
        const [head = '', ...rest] = p.slice(prefix.length).split('/');
        seen.set(head, rest.length ? { path: head, is_dir: true } : { path: head, is_dir: false, file_size: b.length });
      }
      return seen.size ? { files: [...seen.values()] } : {};
    }
    const path = decodeURIComponent(rawPath);
    if (path.split('/').some((s) => s === '..' || s === '.' || s === '') || rawPath.toLowerCase().includes('%2e%2e')) throw HTML_404;
    if (rec.method === 'PUT') {
      this.store.artifacts.set(path, data);
      return {};
    }
    if (rec.method !== 'GET') throw HTML_405;
    const file = this.store.artifacts.get(path);
    if (!file) throw new ApiError(404, 'RESOURCE_DOES_NOT_EXIST', `File ${path} not found`);
    return file;
  }

  private updateRun(b: Record<string, unknown>): unknown {
    const r = this.store.run(b['run_id']);
    const status = b['status'];
    if (typeof status === 'string' && ['RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED'].includes(status)) {
      r.info.status = status;
      if (status !== 'RUNNING') r.info.end_time = Number(b['end_time'] ?? Date.now());
    }
    if (b['end_time'] !== undefined) r.info.end_time = Number(b['end_time']);
    if (typeof b['run_name'] === 'string' && b['run_name']) {
      r.info.run_name = b['run_name'];
      r.tags.set('mlflow.runName', b['run_name']);
    }
    return r.info;
  }

  /** runs/search with filters `tags.<key> = '<v>'` / `attributes.<field> = '<v>'` joined by AND. */
  private search(b: Record<string, unknown>): unknown {
    const max = Number(b['max_results'] ?? 1000);
    if (max > 50000) throw new ApiError(400, 'INVALID_PARAMETER_VALUE', `Invalid value ${max} for parameter 'max_results' supplied: Hint: Value was of type 'int'. See the API docs for more information about request parameters.`);
    const conds = String(b['filter'] ?? '').trim() === '' ? [] : String(b['filter']).split(/\s+and\s+/i).map((c) => {
      const m = /^(tags|tag|attributes|attribute)\.(`[^`]+`|[\w.]+)\s*(\S+)\s*'([^']*)'$/.exec(c.trim());
      if (!m) throw new ApiError(400, 'INVALID_PARAMETER_VALUE', `Invalid filter '${c}'`);
      if (m[3] !== '=' && m[3] !== '!=') throw new ApiError(400, 'INVALID_PARAMETER_VALUE', `Invalid comparator '${m[3]}' not one of '{'<', '=', '>', '>=', '<=', '!='}`);
      return { tag: m[1]!.startsWith('tag'), key: m[2]!.replace(/`/g, ''), eq: m[3] === '=', value: m[4]! };
    });
    const ids = ((b['experiment_ids'] as unknown[]) ?? []).map(String);
    const view = String(b['run_view_type'] ?? 'ACTIVE_ONLY');
    const runs = [...this.store.runs.values()].filter((r) => ids.includes(r.info.experiment_id)
      && (view === 'ALL' || (view === 'DELETED_ONLY') === (r.info.lifecycle_stage === 'deleted'))
      && conds.every((c) => ((c.tag ? r.tags.get(c.key) : (r.info as unknown as Record<string, unknown>)[c.key]) === c.value) === c.eq))
      .sort((x, y) => y.info.start_time - x.info.start_time);
    const offset = b['page_token'] ? (JSON.parse(Buffer.from(String(b['page_token']), 'base64').toString()) as { offset: number }).offset : 0;
    const page = runs.slice(offset, offset + max).map((r) => this.store.runMessage(r));
    const next = offset + max < runs.length ? { next_page_token: pageToken(offset + max) } : {};
    return { ...(page.length ? { runs: page } : {}), ...next };
  }

  /** metrics/get-history, arrival order; without max_results, MLflow 3.6's bug: no metrics and a token that never advances. */
  private history(q: URLSearchParams): unknown {
    const run = this.store.run(q.get('run_id') ?? undefined);
    const key = q.get('metric_key');
    if (!key) throw missing('metric_key');
    const token = q.get('page_token');
    const offset = token ? (JSON.parse(Buffer.from(token, 'base64').toString()) as { offset: number }).offset : 0;
    if (!q.get('max_results')) return { next_page_token: pageToken(offset) };
    const max = Number(q.get('max_results'));
    const all = run.points.filter((p) => p.key === key);
    const page = all.slice(offset, offset + max).map((p) => ({ ...p, value: outValue(p.value) }));
    const next = offset + max < all.length ? { next_page_token: pageToken(offset + max) } : {};
    return { ...(page.length ? { metrics: page } : {}), ...next };
  }
}
