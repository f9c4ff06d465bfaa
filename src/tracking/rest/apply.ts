/**
 * Sends one tracking record to the server, the same way whether it comes live from a run or
 * from the spool. Records that must not be applied twice (runs/create, log-batch with metrics)
 * are checked against the server after an ambiguous failure before being sent again: a run is
 * looked up by its client-generated `pipe.client_run_id` tag, metric points by reading back the
 * history of the batch's last point.
 */
import { resolve } from 'node:path';
import { artifactRoot, type MlflowClient } from './client.js';
import { MlflowError } from './errors.js';
import type { RunRef, SpoolRecord } from './spool.js';
import { EXPERIMENT_TAGS } from '../layout.js';
import { decodeValue, type RunInfo, type WireMetric } from './types.js';

/** The tag that identifies a run to the client that created it (searched before re-creating). */
export const CLIENT_RUN_ID_TAG = 'pipe.client_run_id';

/**
 * The id of the experiment `name`, created if missing (race-safe: a RESOURCE_ALREADY_EXISTS
 * from a concurrent creator means re-read) and restored if deleted (runs cannot be created in a
 * deleted experiment). It carries `tags` (default: pipe's EXPERIMENT_TAGS): set at creation,
 * added to an existing experiment that lacks them (existing values are left alone).
 */
export async function ensureExperiment(client: MlflowClient, name: string, tags: Readonly<Record<string, string>> = EXPERIMENT_TAGS): Promise<string> {
  for (let i = 0; i < 3; i++) {
    const exp = await client.getExperimentByName(name);
    if (exp) {
      if (exp.lifecycle_stage === 'deleted') await client.restoreExperiment(exp.experiment_id);
      for (const [key, value] of Object.entries(tags)) {
        if (!exp.tags?.some((t) => t.key === key)) await client.setExperimentTag(exp.experiment_id, key, value);
      }
      return exp.experiment_id;
    }
    try {
      return await client.createExperiment(name, Object.entries(tags).map(([key, value]) => ({ key, value })));
    } catch (e) {
      if (!(e instanceof MlflowError && e.errorCode === 'RESOURCE_ALREADY_EXISTS')) throw e;
    }
  }
  throw new MlflowError(400, 'RESOURCE_ALREADY_EXISTS', `experiment '${name}' keeps being reported as existing but cannot be read`, 'GET experiments/get-by-name');
}

/** The run tagged `pipe.client_run_id = clientRunId` in the experiment, if any. */
export async function findRunByClientId(client: MlflowClient, experimentId: string, clientRunId: string): Promise<RunInfo | undefined> {
  const r = await client.searchRuns({ experimentIds: [experimentId], filter: `tags.\`${CLIENT_RUN_ID_TAG}\` = '${clientRunId}'`, maxResults: 2, viewType: 'ALL' });
  return r.runs[0]?.info;
}

/** Turns a created run into a RunRef; `artifactRoot` is left out when the server does not proxy artifacts. */
export function refOf(info: RunInfo): RunRef {
  let root: string | undefined;
  try {
    root = artifactRoot(info.artifact_uri);
  } catch {
    root = undefined;
  }
  return { runId: info.run_id, experimentId: info.experiment_id, ...(root !== undefined ? { artifactRoot: root } : {}) };
}

/** True when the server already holds the last point of `metrics` (same key, step, timestamp and value). */
export async function batchStored(client: MlflowClient, runId: string, metrics: WireMetric[]): Promise<boolean> {
  const last = metrics[metrics.length - 1];
  if (!last) return false;
  const want = decodeValue(last.value);
  const same = (v: number): boolean => v === want || (Number.isNaN(v) && Number.isNaN(want)) || (Math.abs(want) === Infinity && Math.abs(v) === Number.MAX_VALUE && Math.sign(v) === Math.sign(want));
  const history = await client.getMetricHistory(runId, last.key);
  return history.some((p) => p.step === last.step && p.timestamp === last.timestamp && same(decodeValue(p.value)));
}

/** Options of applyRecord. */
export interface ApplyOptions {
  /** The record may already have reached the server: check before sending. */
  unverified?: boolean;
  /** Folder that relative artifact file paths in records are relative to (the spool dir); absolute ones are used as they are. */
  baseDir: string;
  /** Called for artifacts skipped because the server does not proxy them. */
  onSkip?: (msg: string) => void;
  /**
   * Steps the run holds on the server, by metric key, for batch records marked `dedupe` (a
   * resumed run): filled from metrics/get-history the first time a key is met, then kept up to
   * date. @defaultValue a new map for this call
   */
  history?: Map<string, Set<number>>;
}

/** The points of `metrics` whose (key, step) the run does not hold yet (reading each key's history once into `history`). */
async function freshPoints(client: MlflowClient, runId: string, metrics: WireMetric[], history: Map<string, Set<number>>): Promise<WireMetric[]> {
  for (const key of new Set(metrics.map((m) => m.key))) {
    if (!history.has(key)) history.set(key, new Set((await client.getMetricHistory(runId, key)).map((p) => p.step)));
  }
  const out: WireMetric[] = [];
  const taken = new Set<string>();
  for (const m of metrics) {
    const id = `${m.key}\n${m.step}`;
    if (history.get(m.key)!.has(m.step) || taken.has(id)) continue;
    taken.add(id);
    out.push(m);
  }
  return out;
}

/**
 * Applies `rec` to the run `ref` (undefined before the run exists) and resolves to the ref
 * afterwards ('open', 'start' and 'resume' records set it).
 * @throws MlflowError from the server (after the client's retries; `unverified` set when the
 *   record may have been applied), Error for local problems (a missing artifact file) or a
 *   record that needs a run before one exists.
 */
export async function applyRecord(client: MlflowClient, ref: RunRef | undefined, rec: SpoolRecord, opts: ApplyOptions): Promise<RunRef | undefined> {
  if (rec.op === 'open') return rec.ref ?? ref;
  if (rec.op === 'start') {
    const experimentId = await ensureExperiment(client, rec.experiment);
    const reconcile = (): Promise<RunInfo | undefined> => findRunByClientId(client, experimentId, rec.clientRunId);
    const info = await client.createRun({ experimentId, runName: rec.runName, startTime: rec.startTime, tags: rec.tags, ...(rec.userId !== undefined ? { userId: rec.userId } : {}) }, { reconcile, unverified: Boolean(opts.unverified || rec.unverified) });
    return refOf(info);
  }
  if (rec.op === 'resume') {
    const { info } = await client.getRun(rec.runId);
    await client.updateRun(rec.runId, { status: 'RUNNING' });
    return refOf(info);
  }
  if (!ref) throw new Error(`spool record '${rec.op}' comes before its run was created (corrupt spool?)`);
  switch (rec.op) {
    case 'batch': {
      const history = opts.history ?? new Map<string, Set<number>>();
      const metrics = rec.dedupe && rec.metrics?.length ? await freshPoints(client, ref.runId, rec.metrics, history) : rec.metrics ?? [];
      if (!metrics.length && !rec.params?.length && !rec.tags?.length) break; // all there already
      const isStored = metrics.length ? () => batchStored(client, ref.runId, metrics) : undefined;
      await client.logBatch(ref.runId, { ...rec, metrics }, { ...(isStored ? { isStored } : {}), unverified: Boolean(opts.unverified || rec.unverified) });
      for (const m of metrics) history.get(m.key)?.add(m.step);
      break;
    }
    case 'inputs':
      await client.logInputs(ref.runId, rec.datasets);
      break;
    case 'artifact':
      if (ref.artifactRoot === undefined) opts.onSkip?.(`artifact ${rec.artifactPath} not uploaded: the server does not proxy this run's artifacts`);
      else await client.uploadArtifact(`${ref.artifactRoot}/${rec.artifactPath}`, resolve(opts.baseDir, rec.file));
      break;
    case 'delete-tags':
      for (const key of rec.keys) {
        try {
          await client.deleteTag(ref.runId, key);
        } catch (e) {
          if (!(e instanceof MlflowError && e.errorCode === 'RESOURCE_DOES_NOT_EXIST')) throw e; // already gone (a replay)
        }
      }
      break;
    case 'end':
      await client.updateRun(ref.runId, { status: rec.status, endTime: rec.endTime });
      break;
  }
  return ref;
}
