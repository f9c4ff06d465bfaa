/**
 * In-memory state and validation rules of the fake MLflow server (test/fake-mlflow.ts),
 * reproducing MLflow 3.6's answers as recorded in test/fixtures/mlflow/transcript-3.6.txt: the
 * same statuses, error codes and messages, the batch limits, key rules, silent value
 * truncation, param immutability, and "NaN"/"Infinity" handling.
 */
import { randomBytes } from 'node:crypto';

/** An API error answer: `{"error_code", "message"}` with an HTTP status. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

const docs = 'See the API docs for more information about request parameters.';
/** 400 "Missing value for required parameter 'p'". */
export const missing = (p: string): ApiError => new ApiError(400, 'INVALID_PARAMETER_VALUE', `Missing value for required parameter '${p}'. ${docs}`);
const invalid = (msg: string): ApiError => new ApiError(400, 'INVALID_PARAMETER_VALUE', msg);

/** A stored metric point (value as a JS number: NaN and ±Infinity included). */
export interface Point { key: string; value: number; timestamp: number; step: number }
export interface FakeExperiment { experiment_id: string; name: string; artifact_location: string; lifecycle_stage: 'active' | 'deleted'; creation_time: number; last_update_time: number; tags?: { key: string; value: string }[] }
export interface FakeRun {
  info: { run_uuid: string; run_id: string; experiment_id: string; run_name: string; user_id: string; status: string; start_time: number; end_time?: number; artifact_uri: string; lifecycle_stage: 'active' | 'deleted' };
  params: Map<string, string>;
  tags: Map<string, string>;
  /** Every point, in arrival order. */
  points: Point[];
  inputs: unknown[];
}

/** Python's posixpath.normpath for relative/absolute names (enough for key checks). */
function normpath(p: string): string {
  const abs = p.startsWith('/');
  const out: string[] = [];
  for (const s of p.split('/')) {
    if (s === '' || s === '.') continue;
    if (s === '..' && out.length && out[out.length - 1] !== '..') out.pop();
    else if (s !== '..' || !abs) out.push(s);
  }
  const r = (abs ? '/' : '') + out.join('/');
  return r || '.';
}

/** MLflow's key checks (`_validate_metric_name` & co.); `kind` names the length error ('Param key'). */
export function checkKey(key: unknown, kind: string, field = 'key'): string {
  if (typeof key !== 'string' || key === '') throw missing(field);
  if (!/^[/\p{L}\p{N}_.\- :]*$/u.test(key)) throw invalid(`Invalid value "${key}" for parameter 'name' supplied: Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colon(:) and slashes (/).`);
  const norm = normpath(key);
  if (norm !== key || norm === '.' || norm.startsWith('..') || norm.startsWith('/')) {
    throw invalid(`Invalid value "${key}" for parameter 'name' supplied: Names may be treated as files in certain cases, and must not resolve to other names when treated as such. This name would resolve to '${norm}'`);
  }
  if (key.length > 250) throw invalid(`'${kind}' exceeds the maximum length of 250 characters`);
  return key;
}

/** Reads a metric value as MLflow's JSON parser does: numbers, and strings float() accepts. */
function metricValue(v: unknown, field: string): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') {
    const t = v.trim().toLowerCase();
    if (t === 'nan') return NaN;
    if (t === 'infinity' || t === 'inf') return Infinity;
    if (t === '-infinity' || t === '-inf') return -Infinity;
    if (t !== '' && !Number.isNaN(Number(t))) return Number(t);
  }
  throw missing(field);
}

/** How stored values are written back: NaN as "NaN", ±Infinity as ±1.7976931348623157e308 (SQL store). */
export function outValue(v: number): number | string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return Number.MAX_VALUE;
  if (v === -Infinity) return -Number.MAX_VALUE;
  return v;
}

const ADJ = ['brawny', 'skittish', 'fun', 'calm'], ANIMAL = ['fawn', 'seal', 'foal', 'owl'];

/** The fake server's experiments, runs and artifacts. */
export class FakeStore {
  readonly experiments = new Map<string, FakeExperiment>();
  readonly runs = new Map<string, FakeRun>();
  readonly artifacts = new Map<string, Buffer>();
  private nextExp = 1;

  constructor() {
    this.experiments.set('0', { experiment_id: '0', name: 'Default', artifact_location: 'mlflow-artifacts:/0', lifecycle_stage: 'active', creation_time: 0, last_update_time: 0 });
  }

  experimentByName(name: unknown): FakeExperiment {
    if (typeof name !== 'string' || name === '') throw missing('experiment_name');
    const e = [...this.experiments.values()].find((x) => x.name === name);
    if (!e) throw new ApiError(404, 'RESOURCE_DOES_NOT_EXIST', `Could not find experiment with name '${name}'`);
    return e;
  }

  experiment(id: unknown): FakeExperiment {
    if (id === undefined || id === '') throw missing('experiment_id');
    const e = this.experiments.get(String(id));
    if (!e) throw new ApiError(404, 'RESOURCE_DOES_NOT_EXIST', `No Experiment with id=${String(id)} exists`);
    return e;
  }

  createExperiment(name: unknown, tags: unknown = []): string {
    if (name === undefined || name === '') throw missing('name');
    if (typeof name !== 'string') throw invalid(`Invalid value ${JSON.stringify(name)} for parameter 'name' supplied: Hint: Value was of type '${typeof name === 'number' ? 'int' : typeof name}'. ${docs}`);
    if ([...this.experiments.values()].some((x) => x.name === name)) throw new ApiError(400, 'RESOURCE_ALREADY_EXISTS', `Experiment(name=${name}) already exists.`);
    const id = String(this.nextExp++);
    this.experiments.set(id, { experiment_id: id, name, artifact_location: `mlflow-artifacts:/${id}`, lifecycle_stage: 'active', creation_time: Date.now(), last_update_time: Date.now(), tags: Array.isArray(tags) ? (tags as { key: string; value: string }[]) : [] });
    return id;
  }

  createRun(b: Record<string, unknown>): FakeRun {
    const exp = this.experiment(b['experiment_id']);
    if (exp.lifecycle_stage !== 'active') throw invalid(`The experiment ${exp.experiment_id} must be in the 'active' state. Current state is ${exp.lifecycle_stage}.`);
    const tags = new Map<string, string>();
    for (const t of (b['tags'] as { key: string; value: string }[] | undefined) ?? []) tags.set(checkKey(t.key, 'Tag key'), String(t.value ?? '').slice(0, 8000));
    const tagName = tags.get('mlflow.runName');
    const given = typeof b['run_name'] === 'string' && b['run_name'] !== '' ? b['run_name'] : undefined;
    if (given !== undefined && tagName !== undefined && given !== tagName) {
      throw invalid(`Both 'run_name' argument and 'mlflow.runName' tag are specified, but with different values (run_name='${given}', mlflow.runName='${tagName}').`);
    }
    const name = given ?? tagName ?? `${ADJ[this.runs.size % 4]}-${ANIMAL[this.runs.size % 4]}-${100 + this.runs.size}`;
    tags.set('mlflow.runName', name);
    const id = randomBytes(16).toString('hex');
    const run: FakeRun = {
      info: { run_uuid: id, run_id: id, experiment_id: exp.experiment_id, run_name: name, user_id: typeof b['user_id'] === 'string' ? b['user_id'] : '', status: 'RUNNING',
        start_time: Number(b['start_time'] ?? 0), artifact_uri: `${exp.artifact_location}/${id}/artifacts`, lifecycle_stage: 'active' },
      params: new Map(), tags, points: [], inputs: [],
    };
    this.runs.set(id, run);
    return run;
  }

  /** The run `id`; with `active`, a deleted run is a 400 (writes need an active run). */
  run(id: unknown, active = false): FakeRun {
    if (typeof id !== 'string' || id === '') throw missing('run_id');
    const r = this.runs.get(id);
    if (!r) throw new ApiError(404, 'RESOURCE_DOES_NOT_EXIST', `Run with id=${id} not found`);
    if (active && r.info.lifecycle_stage !== 'active') throw invalid(`The run ${id} must be in the 'active' state. Current state is ${r.info.lifecycle_stage}.`);
    return r;
  }

  /** runs/log-batch: limits first, then validation of every item, then the writes (all or nothing). */
  logBatch(b: Record<string, unknown>): void {
    const run = this.run(b['run_id'], true);
    const metrics = (b['metrics'] as Record<string, unknown>[] | undefined) ?? [];
    const params = (b['params'] as { key: string; value: unknown }[] | undefined) ?? [];
    const tags = (b['tags'] as { key: string; value: unknown }[] | undefined) ?? [];
    for (const [n, what, max] of [[metrics.length, 'metrics', 1000], [params.length, 'params', 100], [tags.length, 'tags', 100]] as const) {
      if (n > max) throw invalid(`A batch logging request can contain at most ${max} ${what}. Got ${n} ${what}. Please split up ${what} across multiple requests and try again.`);
    }
    const total = metrics.length + params.length + tags.length;
    if (total > 1000) throw invalid(`A batch logging request can contain at most 1000 metrics, params, and tags. Got ${total} metrics, params, and tags. Please split up metrics, params, and tags across multiple requests and try again.`);
    const points = metrics.map((m, i): Point => {
      const key = checkKey(m['key'], 'Metric name', `metrics[${i}].key`);
      if (m['value'] === undefined || m['value'] === null) throw missing(`metrics[${i}].value`);
      if (m['timestamp'] === undefined || m['timestamp'] === null) throw missing(`metrics[${i}].timestamp`);
      return { key, value: metricValue(m['value'], `metrics[${i}].value`), timestamp: Number(m['timestamp']), step: Number(m['step'] ?? 0) };
    });
    const keys = params.map((p) => checkKey(p.key, 'Param key'));
    const dups = keys.filter((k, i) => keys.indexOf(k) !== i);
    if (dups.length) throw invalid(`Duplicate parameter keys have been submitted: [${[...new Set(dups)].map((k) => `'${k}'`).join(', ')}]. Please ensure the request contains only one param value per param key.`);
    const newParams = params.map((p) => ({ key: p.key, value: String(p.value ?? '').slice(0, 6000) }));
    const changed = newParams.filter((p) => run.params.has(p.key) && run.params.get(p.key) !== p.value);
    if (changed.length) {
      const list = changed.map((p) => `{'key': '${p.key}', 'old_value': '${run.params.get(p.key)}', 'new_value': '${p.value}'}`).join(', ');
      throw invalid(`Changing param values is not allowed. Params were already logged='[${list}]' for run ID='${run.info.run_id}'.`);
    }
    tags.forEach((t) => checkKey(t.key, 'Tag key'));
    for (const p of newParams) run.params.set(p.key, p.value);
    for (const t of tags) {
      run.tags.set(t.key, String(t.value ?? '').slice(0, 8000));
      if (t.key === 'mlflow.runName') run.info.run_name = String(t.value);
    }
    run.points.push(...points);
  }

  /** runs/log-parameter (single): the message names the one param. */
  logParam(b: Record<string, unknown>): void {
    const run = this.run(b['run_id'], true);
    const key = checkKey(b['key'], 'Param key');
    const value = String(b['value'] ?? '').slice(0, 6000);
    const old = run.params.get(key);
    if (old !== undefined && old !== value) {
      throw invalid(`Changing param values is not allowed. Param with key='${key}' was already logged with value='${old}' for run ID='${run.info.run_id}'. Attempted logging new value '${value}'.`);
    }
    run.params.set(key, value);
  }

  /** runs/get's `run` message: latest value per metric key, params, tags, inputs. */
  runMessage(r: FakeRun): Record<string, unknown> {
    const latest = new Map<string, Point>();
    for (const p of r.points) {
      const cur = latest.get(p.key);
      if (!cur || p.step > cur.step || (p.step === cur.step && p.timestamp >= cur.timestamp)) latest.set(p.key, p);
    }
    const kv = (m: Map<string, string>): { key: string; value: string }[] => [...m].map(([key, value]) => ({ key, value }));
    return {
      info: r.info,
      data: { metrics: [...latest.values()].map((p) => ({ ...p, value: outValue(p.value) })), params: kv(r.params), tags: kv(r.tags) },
      inputs: r.inputs.length ? { dataset_inputs: r.inputs } : {},
    };
  }
}
