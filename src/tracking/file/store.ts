/**
 * Writer for MLflow's local file store (the "mlruns" layout read by
 * `mlflow server --backend-store-uri <dir>`), following MLflow 3.6's own
 * `FileStore`. See /shared/mlflow/FILESTORE.md for the layout. meta.yaml files
 * are emitted the way PyYAML's `safe_dump` writes them (sorted keys, same
 * quoting and line folding); every file is written atomically.
 */
import { createHash, randomBytes, randomInt, randomUUID } from 'node:crypto';
import { appendFile, copyFile, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import lockfile from 'proper-lockfile';
import { parse } from 'yaml';
import { isDiskError, withPath, writeDurable } from '../../fs-durable.js';
import { MAX_EXPERIMENT_NAME_LENGTH, MAX_PARAM_VALUE_LENGTH, MAX_TAG_VALUE_LENGTH, validateKey } from '../names.js';
import type { RunStatus } from '../tracker.js';
import type { DatasetInput } from '../rest/types.js';

/** One metric observation. */
export interface MetricPoint {
  /** Metric name (may contain `/`, which becomes a subfolder). */ key: string;
  /** Value; NaN and ±Infinity are allowed. */ value: number;
  /** Milliseconds since the Unix epoch (non-negative integer). */ timestamp: number;
  /** Training step (integer). */ step: number;
}

type Meta = Record<string, unknown>;
const TRASH = '.trash';
const ID_RE = /^[a-zA-Z0-9][\w-]{0,255}$/;

/** A run found in a store by FileStore.listRuns. */
export interface StoredRun {
  experimentId: string;
  experimentName: string;
  experimentTags: Record<string, string>;
  runId: string;
  /** Local folder of the run's artifacts (absent when its artifact_uri is not a file: URI). */
  artifactDir?: string;
}

/** MLflow's integer codes for run statuses, as stored in a run's meta.yaml. */
export const RUN_STATUS_CODES: Readonly<Record<RunStatus, number>> = { RUNNING: 1, SCHEDULED: 2, FINISHED: 3, FAILED: 4, KILLED: 5 };
export const STATUS_BY_CODE: ReadonlyMap<number, RunStatus> = new Map(Object.entries(RUN_STATUS_CODES).map(([k, v]) => [v, k as RunStatus]));

/** What `pipe runs` shows of an MLflow run (see FileStore.readRunHeader). */
export interface RunHeader {
  status: RunStatus;
  runName: string;
  /** ms since the Unix epoch. */
  startTime: number;
  /** ms since the Unix epoch; undefined while RUNNING. */
  endTime?: number;
  /** The requested tags that are set. */
  tags: Record<string, string>;
}

// ---- PyYAML-compatible scalar emission (flat mappings only) ----
const PY_IMPLICIT = [
  /^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$/,
  /^(?:~|null|Null|NULL|)$/,
  /^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/,
  /^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$/,
  /^(?:[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9]{2})?))?)$/,
  /^(?:<<|=|!|&|\*)$/,
];
const WS = '\0 \t\r\n\x85\u2028\u2029';
const printable = (c: string): boolean => {
  const p = c.codePointAt(0) ?? 0;
  return (p >= 0x20 && p <= 0x7e) || p === 0x85 || (p >= 0xa0 && p <= 0xd7ff) ||
    (p >= 0xe000 && p <= 0xfffd && p !== 0xfeff) || (p >= 0x10000 && p < 0x10ffff);
};

/** Style PyYAML's `analyze_scalar`/`choose_scalar_style` picks for a block mapping value. */
function scalarStyle(s: string): 'plain' | 'single' | 'double' {
  const ch = [...s];
  if (ch.some((c) => !printable(c) || '\n\x85\u2028\u2029'.includes(c))) return 'double';
  let block = s.startsWith('---') || s.startsWith('...') || s.startsWith(' ') || s.endsWith(' ');
  ch.forEach((c, i) => {
    const after = i + 1 >= ch.length || WS.includes(ch[i + 1] ?? '');
    if (i === 0 ? '#,[]{}&*!|>\'"%@`'.includes(c) || ('?:-'.includes(c) && after)
      : (c === ':' && after) || (c === '#' && WS.includes(ch[i - 1] ?? ''))) block = true;
  });
  return block || PY_IMPLICIT.some((re) => re.test(s)) ? 'single' : 'plain';
}

/** PyYAML's folding of long plain/single-quoted scalars: a lone space past column 80 becomes a line break. */
function fold(text: string, col: number, quoted: boolean): string {
  let out = '';
  for (const m of text.matchAll(/ +|[^ ]+/g)) {
    const tok = m[0];
    const start = m.index ?? 0;
    if (tok.startsWith(' ') && tok.length === 1 && col > 80 && (!quoted || (start !== 0 && start + 1 !== text.length))) {
      out += '\n  ';
      col = 2;
    } else {
      const t = quoted ? tok.replace(/'/g, "''") : tok;
      out += t;
      col += [...t].length;
    }
  }
  return out;
}

const ESC: Record<string, string> = { '\0': '0', '\x07': 'a', '\b': 'b', '\t': 't', '\n': 'n', '\v': 'v', '\f': 'f',
  '\r': 'r', '\x1b': 'e', '"': '"', '\\': '\\', '\x85': 'N', '\u2028': 'L', '\u2029': 'P' };

/** Serialises a flat mapping the way MLflow's `write_yaml` (PyYAML `safe_dump`, sorted keys) does. */
export function toMlflowYaml(data: Meta): string {
  return Object.keys(data).sort().map((k) => {
    const v = data[k];
    let s: string;
    if (v === null || v === undefined) s = ' null';
    else if (typeof v === 'number' && Number.isInteger(v)) s = ` ${v}`;
    else if (typeof v === 'boolean') s = ` ${v}`;
    else if (Array.isArray(v) && v.length === 0) s = ' []';
    else if (typeof v === 'string') {
      const style = scalarStyle(v);
      if (style === 'plain') s = ' ' + fold(v, k.length + 2, false);
      else if (style === 'single') s = " '" + fold(v, k.length + 3, true) + "'";
      else s = ' "' + [...v].map((c) => (ESC[c] !== undefined ? '\\' + ESC[c] : printable(c) ? c
        : (c.codePointAt(0) ?? 0) < 0x100 ? '\\x' + (c.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(2, '0')
          : '\\u' + (c.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0'))).join('') + '"';
    } else throw new Error(`meta.yaml: unsupported value for '${k}': ${JSON.stringify(v)}`);
    return `${k}:${s}\n`;
  }).join('');
}

/** Formats a metric value like Python's `str(float)`: `nan`, `inf`, `-inf`, `1.0`, `1e-05`, `1e+16`. */
export function formatMetricValue(v: number): string {
  if (Number.isNaN(v)) return 'nan';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  if (v === 0) return Object.is(v, -0) ? '-0.0' : '0.0';
  const [mant = '', expStr = '0'] = v.toExponential().split('e');
  const sign = mant.startsWith('-') ? '-' : '';
  const digits = mant.replace(/[-.]/g, '');
  const exp = Number(expStr);
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
  const int = digits.slice(0, exp + 1).padEnd(exp + 1, '0');
  return `${sign}${int}.${digits.slice(exp + 1) || '0'}`;
}

/** Parses a metric value the way Python's `float()` reads what MLflow writes (`nan`, `inf`, `-inf`, ...). */
export function parseMetricValue(s: string): number {
  const t = s.trim().toLowerCase().replace(/^\+/, '');
  if (t === 'nan' || t === '-nan') return NaN;
  if (t === 'inf' || t === 'infinity') return Infinity;
  if (t === '-inf' || t === '-infinity') return -Infinity;
  const n = Number(t);
  if (t === '' || Number.isNaN(n)) throw new Error(`Malformed metric value '${s}'`);
  return n;
}

const exists = (p: string): Promise<boolean> => stat(p).then(() => true, () => false);
const readMeta = async (dir: string): Promise<Meta> => parse(await readFile(path.join(dir, 'meta.yaml'), 'utf8'), { version: '1.1' }) as Meta;

/**
 * Writes `data` (or a copy of the file `data.copyFrom`) to `file` atomically: first to a temporary
 * file in `tmpDir` (default: the file's own directory; must be on the same file system), then renamed.
 */
async function writeAtomic(file: string, data: string | { copyFrom: string }, tmpDir = path.dirname(file)): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = path.join(tmpDir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await (typeof data === 'string' ? writeFile(tmp, data) : copyFile(data.copyFrom, tmp));
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw withPath(e, file); // a write error names no file: the CLI names this one
  }
}

/** Files under `dir`, recursively, as `/`-joined relative paths. */
async function walk(dir: string, prefix = ''): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const out: string[] = [];
  for (const e of entries) {
    if (e.isDirectory()) out.push(...await walk(path.join(dir, e.name), `${prefix}${e.name}/`));
    else if (e.isFile()) out.push(prefix + e.name);
  }
  return out.sort();
}

/**
 * Writer (and minimal reader) for an MLflow file store rooted at one directory. Times are
 * milliseconds since the Unix epoch. Temporary files of param/tag/artifact writes live in the
 * run directory (not in `params/` etc.), so a crash can never leave a stray file that MLflow
 * would read as a param or tag; meta.yaml temporaries sit beside meta.yaml.
 */
export class FileStore {
  /** Absolute path of the store's root directory. */
  readonly root: string;
  private readonly runDirs = new Map<string, string>();
  private ready: Promise<void> | undefined;
  private lock: Promise<unknown> = Promise.resolve();

  /** @param root root directory of the store (e.g. `runs/mlruns`); created, with the Default experiment "0", on first write. */
  constructor(root: string) {
    this.root = path.resolve(root);
  }

  /** Experiment id by name, creating it (random 18-digit integer id as a string, like MLflow) with `tags` if missing; restores a deleted one; adds those of `tags` an existing one lacks (existing values are kept). */
  async getOrCreateExperiment(name: string, tags: Record<string, string> = {}): Promise<string> {
    if (name.length === 0 || name.length > MAX_EXPERIMENT_NAME_LENGTH) throw new Error(`Invalid experiment name: '${name}'`);
    Object.keys(tags).forEach((k) => validateKey(k, 'tag'));
    return this.serial(async () => {
      await this.init();
      for (const trash of [false, true]) {
        for (const dir of await this.experimentDirs(trash)) {
          const meta = await readMeta(dir).catch(() => undefined);
          if (meta?.name !== name) continue;
          const id = String(meta.experiment_id);
          if (trash || meta.lifecycle_stage !== 'active') await this.restoreExperiment(dir, id, meta);
          for (const [k, v] of Object.entries(tags)) {
            if (!(await exists(path.join(this.root, id, 'tags', k)))) await writeAtomic(path.join(this.root, id, 'tags', k), v, path.join(this.root, id));
          }
          return id;
        }
      }
      let id: string;
      do id = String(randomInt(1, 10)) + Array.from({ length: 17 }, () => randomInt(10)).join('');
      while (await exists(path.join(this.root, id)) || await exists(path.join(this.root, TRASH, id)));
      await this.writeExperiment(id, name, tags);
      return id;
    });
  }

  /** Creates a run (32 lower-case hex id) with status RUNNING, `start_time` (default now, ms) and `end_time: null`; writes tag `mlflow.runName`, `mlflow.user` when `user` is given, and `tags` (e.g. `mlflow.source.name`/`mlflow.source.type`). Returns the run id and the local path of its artifact directory. */
  async createRun(experimentId: string, opts: { runName: string; user?: string; startTime?: number; tags?: Record<string, string> }): Promise<{ runId: string; artifactDir: string }> {
    await this.init();
    if (!ID_RE.test(experimentId)) throw new Error(`Invalid experiment id '${experimentId}'`);
    const expDir = path.join(this.root, experimentId);
    const exp = await readMeta(expDir).catch(() => undefined);
    if (exp?.lifecycle_stage !== 'active') throw new Error(`Experiment ${experimentId} does not exist or is not active in ${this.root}`);
    const given = opts.tags?.['mlflow.runName'];
    if (given !== undefined && given !== opts.runName) throw new Error(`runName '${opts.runName}' differs from tag mlflow.runName '${given}'`);
    const tags: Record<string, string> = { 'mlflow.runName': opts.runName, ...(opts.user !== undefined ? { 'mlflow.user': opts.user } : {}), ...opts.tags };
    Object.keys(tags).forEach((k) => validateKey(k, 'tag'));
    const runId = randomUUID().replace(/-/g, '');
    const runDir = path.join(expDir, runId);
    const artifactUri = `${String(exp.artifact_location).replace(/\/+$/, '')}/${runId}/artifacts`;
    try {
      for (const sub of ['metrics', 'params', 'artifacts', 'tags']) await mkdir(path.join(runDir, sub), { recursive: true });
      await writeAtomic(path.join(runDir, 'meta.yaml'), toMlflowYaml({ artifact_uri: artifactUri, end_time: null, entry_point_name: '',
        experiment_id: experimentId, lifecycle_stage: 'active', run_id: runId, run_name: opts.runName, source_name: '', source_type: 4,
        source_version: '', start_time: opts.startTime ?? Date.now(), status: RUN_STATUS_CODES.RUNNING, tags: [], user_id: opts.user ?? 'unknown' }));
      this.runDirs.set(runId, runDir);
      await this.setTags(runId, tags);
    } catch (e) {
      // A run half made (a full disk, most likely) is no run: no RUNNING orphan in the store.
      this.runDirs.delete(runId);
      await rm(runDir, { recursive: true, force: true }).catch(() => undefined);
      throw e;
    }
    return { runId, artifactDir: artifactUri.startsWith('file:') ? fileURLToPath(artifactUri) : path.join(runDir, 'artifacts') };
  }

  /** Logs params (values truncated to 6000 chars). Params are immutable: throws if a key already holds a different value; the same value again is a no-op. */
  async logParams(runId: string, params: Record<string, string>): Promise<void> {
    const { dir } = await this.activeRun(runId);
    const entries = Object.entries(params).map(([k, v]) => { validateKey(k, 'param'); return [k, truncate('Param', k, v, MAX_PARAM_VALUE_LENGTH)] as const; });
    for (const [k, v] of entries) {
      const file = path.join(dir, 'params', k);
      const cur = await readFile(file, 'utf8').catch(() => undefined);
      if (cur === v) continue;
      if (cur !== undefined) throw new Error(`Changing param values is not allowed. Param with key='${k}' was already logged with value='${cur}' for run ID='${runId}'. Attempted logging new value '${v}'.`);
      await writeAtomic(file, v, dir);
    }
  }

  /** Sets (overwrites) run tags (values truncated to 8000 chars); `mlflow.runName` also renames the run in meta.yaml. */
  async setTags(runId: string, tags: Record<string, string>): Promise<void> {
    const { dir, meta } = await this.activeRun(runId);
    Object.keys(tags).forEach((k) => validateKey(k, 'tag'));
    for (const [k, v] of Object.entries(tags)) await writeAtomic(path.join(dir, 'tags', k), truncate('Tag', k, v, MAX_TAG_VALUE_LENGTH), dir);
    const name = tags['mlflow.runName'];
    if (name !== undefined && meta.run_name !== name) await this.updateMeta(dir, (m) => ({ ...m, run_name: name }));
  }

  /** Removes `tags/<key>` for each key (MLflow's `delete_tag`); a missing key is no error. */
  async deleteTags(runId: string, keys: string[]): Promise<void> {
    const { dir } = await this.activeRun(runId);
    for (const k of keys) {
      validateKey(k, 'tag');
      await rm(path.join(dir, 'tags', k), { force: true });
    }
  }

  /** Appends metric points as lines `<timestamp_ms> <value> <step>` to `metrics/<key>` (NaN -> `nan`, ±Infinity -> `inf`/`-inf`, like MLflow). */
  async logMetrics(runId: string, points: MetricPoint[]): Promise<void> {
    const { dir } = await this.activeRun(runId);
    const byKey = new Map<string, string>();
    for (const p of points) {
      validateKey(p.key, 'metric');
      if (typeof p.value !== 'number') throw new Error(`Metric '${p.key}': value must be a number`);
      if (!Number.isSafeInteger(p.timestamp) || p.timestamp < 0) throw new Error(`Metric '${p.key}': timestamp must be a non-negative integer (ms), got ${p.timestamp}`);
      if (!Number.isSafeInteger(p.step)) throw new Error(`Metric '${p.key}': step must be an integer, got ${p.step}`);
      byKey.set(p.key, (byKey.get(p.key) ?? '') + `${p.timestamp} ${formatMetricValue(p.value)} ${p.step}\n`);
    }
    for (const [k, lines] of byKey) {
      const file = path.join(dir, 'metrics', k);
      await mkdir(path.dirname(file), { recursive: true });
      await appendFile(file, lines).catch((e: unknown) => Promise.reject(withPath(e, file)));
    }
  }

  /** Copies the file `localPath` to `artifacts/[artifactPath/]<basename>` of the run (atomically). */
  async logArtifact(runId: string, localPath: string, artifactPath?: string): Promise<void> {
    const { dir, meta } = await this.activeRun(runId);
    const rel = artifactPath?.replace(/^\/+|\/+$/g, '') ?? '';
    if (path.isAbsolute(artifactPath ?? '') || rel.split('/').some((s) => s === '..')) throw new Error(`Invalid artifact path '${artifactPath}'`);
    const uri = String(meta.artifact_uri);
    if (!uri.startsWith('file:')) throw new Error(`Run ${runId} stores artifacts at ${uri}, not on the local file system`);
    const dest = path.join(fileURLToPath(uri), rel, path.basename(localPath));
    await writeAtomic(dest, { copyFrom: localPath }, dest.startsWith(dir + path.sep) ? dir : path.dirname(dest));
  }

  /** Sets the run's final status (stored as MLflow's int code: RUNNING 1 … KILLED 5) and `end_time` (ms, default now). */
  async endRun(runId: string, status: RunStatus, endTime: number = Date.now()): Promise<void> {
    const code = RUN_STATUS_CODES[status];
    if (code === undefined) throw new Error(`Unknown run status '${String(status)}'`);
    await this.updateMeta((await this.activeRun(runId)).dir, (m) => ({ ...m, status: code, end_time: endTime }));
  }

  /** Sets a finished or failed run back to RUNNING with no end time (`pipe run --resume`). */
  async reopenRun(runId: string): Promise<void> {
    await this.updateMeta((await this.activeRun(runId)).dir, (m) => ({ ...m, status: RUN_STATUS_CODES.RUNNING, end_time: null }));
  }

  /** Reads a run back: parsed meta.yaml, params, tags and full metric histories (keys `/`-joined). */
  async readRun(runId: string): Promise<{ meta: Record<string, unknown>; params: Record<string, string>; tags: Record<string, string>; metrics: Record<string, MetricPoint[]> }> {
    const dir = await this.findRun(runId);
    const read = async (sub: string): Promise<Record<string, string>> => {
      const out: Record<string, string> = {};
      for (const k of await walk(path.join(dir, sub))) out[k] = await readFile(path.join(dir, sub, k), 'utf8');
      return out;
    };
    const metrics: Record<string, MetricPoint[]> = {};
    for (const [key, text] of Object.entries(await read('metrics'))) {
      metrics[key] = text.split('\n').filter((l) => l.trim() !== '').map((l) => {
        const [ts = '', val = '', step = '0'] = l.trim().split(' ');
        return { key, value: parseMetricValue(val), timestamp: Number(ts), step: Number(step) };
      });
    }
    return { meta: await readMeta(dir), params: await read('params'), tags: await read('tags'), metrics };
  }

  /**
   * The header of run `runId` in an active experiment (meta.yaml and the tags named in `tags`,
   * without metric histories, which can be large, so `pipe runs` stays quick over many runs),
   * or undefined when the run is not in this store or its meta.yaml cannot be read.
   */
  async readRunHeader(runId: string, tags: readonly string[] = []): Promise<RunHeader | undefined> {
    if (!/^[0-9a-f]{32}$/.test(runId)) return undefined;
    for (const exp of await this.experimentDirs(false)) {
      const dir = path.join(exp, runId);
      const meta = await readMeta(dir).catch(() => undefined);
      if (meta === undefined) continue;
      const found: Record<string, string> = {};
      for (const t of tags) {
        const v = await readFile(path.join(dir, 'tags', t), 'utf8').catch(() => undefined);
        if (v !== undefined) found[t] = v;
      }
      return {
        status: STATUS_BY_CODE.get(Number(meta['status'])) ?? 'RUNNING',
        runName: String(meta['run_name'] ?? ''),
        startTime: Number(meta['start_time']),
        ...(typeof meta['end_time'] === 'number' ? { endTime: meta['end_time'] } : {}),
        tags: found,
      };
    }
    return undefined;
  }

  /**
   * Every active run of every active experiment (for copying a store elsewhere): the experiment's
   * name and tags, the run id, and the folder of its artifacts when they are on this file system.
   */
  async listRuns(): Promise<StoredRun[]> {
    const out: StoredRun[] = [];
    for (const expDir of await this.experimentDirs(false)) {
      const exp = await readMeta(expDir).catch(() => undefined);
      if (exp?.lifecycle_stage !== 'active') continue;
      const expTags: Record<string, string> = {};
      for (const k of await walk(path.join(expDir, 'tags'))) expTags[k] = await readFile(path.join(expDir, 'tags', k), 'utf8');
      for (const e of await readdir(expDir, { withFileTypes: true }).catch(() => [])) {
        if (!e.isDirectory() || !ID_RE.test(e.name)) continue;
        const meta = await readMeta(path.join(expDir, e.name)).catch(() => undefined);
        if (meta?.lifecycle_stage !== 'active' || meta['run_id'] !== e.name) continue;
        const uri = String(meta['artifact_uri'] ?? '');
        out.push({
          experimentId: String(exp.experiment_id), experimentName: String(exp.name), experimentTags: expTags, runId: e.name,
          ...(uri.startsWith('file:') ? { artifactDir: fileURLToPath(uri) } : {}),
        });
      }
    }
    return out;
  }

  /** The files under a run's artifact folder, as `/`-joined paths relative to it. */
  static artifactFiles(artifactDir: string): Promise<string[]> {
    return walk(artifactDir);
  }

  /**
   * Logs dataset inputs as MLflow 3.6's FileStore.log_inputs does: the dataset once per
   * experiment in `<exp>/datasets/<md5(name + digest)>/meta.yaml` (name, digest, source_type,
   * source, schema, profile), and the run's input in `<run>/inputs/<md5(dataset id + run id)>/meta.yaml`
   * (source DATASET -> destination RUN, with the input tags). Logging the same dataset again is a no-op.
   */
  async logInputs(runId: string, inputs: DatasetInput[]): Promise<void> {
    const { dir } = await this.activeRun(runId);
    const expDir = path.dirname(dir);
    const md5 = (...parts: string[]): string => { const h = createHash('md5'); for (const p of parts) h.update(p, 'utf8'); return h.digest('hex'); };
    for (const { dataset: d, tags } of inputs) {
      const datasetId = md5(d.name, d.digest);
      const dsMeta = path.join(expDir, 'datasets', datasetId, 'meta.yaml');
      if (!(await exists(dsMeta))) {
        await writeAtomic(dsMeta, toMlflowYaml({ name: d.name, digest: d.digest, source_type: d.source_type, source: d.source, schema: d.schema ?? null, profile: d.profile ?? null }));
      }
      const inputMeta = path.join(dir, 'inputs', md5(datasetId, runId), 'meta.yaml');
      if (await exists(inputMeta)) continue;
      const tagLines = toMlflowYaml(Object.fromEntries((tags ?? []).map((t) => [t.key, t.value])));
      // MLflow writes the dataset id as destination_id too (its _FileStoreInput.write_yaml); readers use source_id.
      const head = toMlflowYaml({ destination_id: datasetId, destination_type: 'RUN', source_id: datasetId, source_type: 'DATASET' });
      await writeAtomic(inputMeta, `${head}tags:${tagLines ? `\n${tagLines.replace(/^/gm, '  ').trimEnd()}\n` : ' {}\n'}`);
    }
  }

  /** The dataset inputs of a run, as logInputs wrote them (or MLflow did). */
  async readInputs(runId: string): Promise<DatasetInput[]> {
    const dir = await this.findRun(runId);
    const out: DatasetInput[] = [];
    for (const e of await readdir(path.join(dir, 'inputs'), { withFileTypes: true }).catch(() => [])) {
      const input = await readMeta(path.join(dir, 'inputs', e.name)).catch(() => undefined);
      if (input?.['source_type'] !== 'DATASET') continue;
      const ds = await readMeta(path.join(path.dirname(dir), 'datasets', String(input['source_id']))).catch(() => undefined);
      if (!ds) continue;
      const tags = (input['tags'] ?? {}) as Record<string, unknown>;
      out.push({
        tags: Object.entries(tags).map(([key, value]) => ({ key, value: String(value) })),
        dataset: { name: String(ds['name']), digest: String(ds['digest']), source_type: String(ds['source_type']), source: String(ds['source']),
          ...(typeof ds['schema'] === 'string' ? { schema: ds['schema'] } : {}), ...(typeof ds['profile'] === 'string' ? { profile: ds['profile'] } : {}) },
      });
    }
    return out;
  }

  /** Creates the root, `.trash` and the Default experiment "0" once (as MLflow's FileStore does). */
  private init(): Promise<void> {
    this.ready ??= (async () => {
      await mkdir(path.join(this.root, TRASH), { recursive: true });
      if (!(await exists(path.join(this.root, '0'))) && !(await exists(path.join(this.root, TRASH, '0')))) await this.writeExperiment('0', 'Default', {});
    })().catch((e: unknown) => { this.ready = undefined; throw e; });
    return this.ready;
  }

  private async writeExperiment(id: string, name: string, tags: Record<string, string>): Promise<void> {
    const dir = path.join(this.root, id);
    const now = Date.now();
    await mkdir(dir, { recursive: true });
    for (const [k, v] of Object.entries(tags)) await writeAtomic(path.join(dir, 'tags', k), v, dir);
    await writeAtomic(path.join(dir, 'meta.yaml'), toMlflowYaml({ artifact_location: pathToFileURL(dir).href, creation_time: now,
      experiment_id: id, last_update_time: now, lifecycle_stage: 'active', name }));
  }

  /** Like MLflow's restore_experiment: move back from .trash, mark it and its deleted runs active. */
  private async restoreExperiment(dir: string, id: string, meta: Meta): Promise<void> {
    const target = path.join(this.root, id);
    if (dir !== target) await rename(dir, target);
    for (const e of await readdir(target, { withFileTypes: true })) {
      const runDir = path.join(target, e.name);
      const run = e.isDirectory() ? await readMeta(runDir).catch(() => undefined) : undefined;
      if (run?.lifecycle_stage !== 'deleted') continue;
      const { deleted_time: _dropped, ...rest } = run;
      await writeAtomic(path.join(runDir, 'meta.yaml'), toMlflowYaml({ ...rest, lifecycle_stage: 'active' }));
    }
    await writeAtomic(path.join(target, 'meta.yaml'), toMlflowYaml({ ...meta, lifecycle_stage: 'active', last_update_time: Date.now() }));
  }

  /**
   * Runs `fn` after every earlier serialised job (experiment creation, meta.yaml rewrites) of
   * this process has settled, holding the store's lock against other processes (proper-lockfile:
   * the folder `<root>.lock` beside the store, which MLflow does not read; a lock left by a
   * killed process is stale after 10 s). A disk too full to take the lock does not stop the
   * write (recording a failure on that disk matters more).
   */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const job = this.lock.then(async () => {
      await mkdir(path.dirname(this.root), { recursive: true });
      let release: (() => Promise<void>) | undefined;
      try {
        release = await lockfile.lock(this.root, { lockfilePath: `${this.root}.lock`, realpath: false, stale: 10_000, retries: { retries: 200, minTimeout: 10, maxTimeout: 100, factor: 1.5 } });
      } catch (e) {
        if (!isDiskError(e)) throw e;
      }
      try {
        return await fn();
      } finally {
        await release?.().catch(() => undefined);
      }
    });
    this.lock = job.catch(() => undefined);
    return job;
  }

  /** Rewrites a meta.yaml (read, patch, write) under the store's lock; on a full disk it is rewritten in place, so a run can still be marked FAILED there. */
  private updateMeta(dir: string, patch: (meta: Meta) => Meta): Promise<void> {
    return this.serial(async () => writeDurable(path.join(dir, 'meta.yaml'), toMlflowYaml(patch(await readMeta(dir))), { inPlaceWhenFull: true }));
  }

  private async experimentDirs(trash: boolean): Promise<string[]> {
    const base = trash ? path.join(this.root, TRASH) : this.root;
    const entries = await readdir(base, { withFileTypes: true }).catch(() => []);
    return entries.filter((e) => e.isDirectory() && e.name !== TRASH && e.name !== 'models').map((e) => path.join(base, e.name));
  }

  private async findRun(runId: string): Promise<string> {
    if (!ID_RE.test(runId)) throw new Error(`Invalid run id '${runId}'`);
    const known = this.runDirs.get(runId);
    if (known !== undefined && await exists(path.join(known, 'meta.yaml'))) return known;
    for (const exp of [...await this.experimentDirs(false), ...await this.experimentDirs(true)]) {
      const dir = path.join(exp, runId);
      if (await exists(path.join(dir, 'meta.yaml'))) {
        this.runDirs.set(runId, dir);
        return dir;
      }
    }
    throw new Error(`Run '${runId}' not found in ${this.root}`);
  }

  private async activeRun(runId: string): Promise<{ dir: string; meta: Meta }> {
    await this.init();
    const dir = await this.findRun(runId);
    const meta = await readMeta(dir);
    if (meta.lifecycle_stage !== 'active') throw new Error(`Run '${runId}' is deleted; it must be active to be modified`);
    return { dir, meta };
  }
}

function truncate(kind: string, key: string, value: string, max: number): string {
  if (value.length <= max) return value;
  process.emitWarning(`${kind} '${key}' (${value.length} characters) truncated to ${max} characters to meet MLflow's length limit`);
  return value.slice(0, max);
}
