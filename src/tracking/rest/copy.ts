/**
 * Copies a local MLflow file store (pipe's runs/mlruns) into any MLflow tracking server through
 * the REST API (`pipe sync --all --to URL`), so a user can move their history to a server of any
 * MLflow version: experiments by name, every active run with its start and end time, status,
 * params, tags, full metric histories (original steps and timestamps) and artifacts (through the
 * server's artifact proxy); a sweep's children point at their copied parent.
 *
 * Idempotent: each copy is created with the tag `pipe.sync.from` = the local run id and gets
 * `pipe.sync.done` = `true` as its very last record. A run already copied completely is skipped;
 * a copy that was cut short (no `pipe.sync.done`) is deleted and made again, so metrics are never
 * logged twice.
 */
import { join } from 'node:path';
import { FileStore, STATUS_BY_CODE, type StoredRun } from '../file/store.js';
import { ensureExperiment, refOf } from './apply.js';
import { MlflowClient, type ClientOptions } from './client.js';
import { MAX_TAG_VALUE_LENGTH, truncateValue } from './keys.js';
import { encodeValue, type KeyValue, type RunInfo, type WireMetric } from './types.js';

/** Tag on a copy: the id of the local run it was copied from. */
export const SYNC_FROM_TAG = 'pipe.sync.from';
/** Tag set last on a complete copy. */
export const SYNC_DONE_TAG = 'pipe.sync.done';

/** Server limits per runs/log-batch request (see tracker.ts). */
const MAX_METRICS = 1000, MAX_PARAMS = 100, MAX_TAGS = 100;

/** What a copy did. */
export interface CopyResult {
  /** Runs copied now. */
  copied: number;
  /** Runs already on the server (complete copies from an earlier sync). */
  skipped: number;
  /** Incomplete copies deleted and made again. */
  redone: number;
  /** Artifact files uploaded now. */
  artifacts: number;
  /** Target run id by local run id, for every run of the store. */
  ids: Map<string, string>;
}

/** Options of copyStore. */
export interface CopyOptions {
  client?: ClientOptions;
  /** One line per run copied or skipped. */
  onProgress?: (line: string) => void;
  /** Problems that do not stop the copy (an artifact the server does not proxy). */
  onWarning?: (msg: string) => void;
}

const chunks = <T>(items: T[], n: number): T[][] => Array.from({ length: Math.ceil(items.length / n) }, (_, i) => items.slice(i * n, (i + 1) * n));

/** The copy of local run `runId` in the experiment, if any (deleted ones left out). */
async function findCopy(client: MlflowClient, experimentId: string, runId: string): Promise<{ info: RunInfo; done: boolean } | undefined> {
  const r = await client.searchRuns({ experimentIds: [experimentId], filter: `tags.\`${SYNC_FROM_TAG}\` = '${runId}'`, maxResults: 10 });
  const complete = r.runs.find((x) => x.data.tags?.some((t) => t.key === SYNC_DONE_TAG && t.value === 'true'));
  const any = complete ?? r.runs[0];
  return any ? { info: any.info, done: complete !== undefined } : undefined;
}

/**
 * Copies every active run of the file store at `storeRoot` to the server at `uri` (see the file
 * comment). Parents (runs other runs name in `mlflow.parentRunId`) go first.
 * @throws MlflowError when the server refuses or stays unreachable (what was copied stays; a
 *   rerun finishes the job), Error when the store cannot be read.
 */
export async function copyStore(storeRoot: string, uri: string, opts: CopyOptions = {}): Promise<CopyResult> {
  const store = new FileStore(storeRoot);
  const runs = await store.listRuns();
  const read = new Map(await Promise.all(runs.map(async (r) => [r.runId, await store.readRun(r.runId)] as const)));
  const parentOf = (r: StoredRun): string | undefined => read.get(r.runId)!.tags['mlflow.parentRunId'];
  const parents = new Set(runs.map(parentOf).filter((p): p is string => p !== undefined));
  runs.sort((a, b) => Number(parents.has(b.runId)) - Number(parents.has(a.runId)) || Number(read.get(a.runId)!.meta['start_time']) - Number(read.get(b.runId)!.meta['start_time']));

  const client = new MlflowClient(uri, opts.client);
  const result: CopyResult = { copied: 0, skipped: 0, redone: 0, artifacts: 0, ids: new Map() };
  const experiments = new Map<string, string>();
  try {
    for (const r of runs) {
      const src = read.get(r.runId)!;
      let experimentId = experiments.get(r.experimentName);
      if (experimentId === undefined) {
        experimentId = await ensureExperiment(client, r.experimentName);
        experiments.set(r.experimentName, experimentId);
      }
      const name = String(src.meta['run_name'] ?? src.tags['mlflow.runName'] ?? r.runId);
      const existing = await findCopy(client, experimentId, r.runId);
      if (existing?.done) {
        result.ids.set(r.runId, existing.info.run_id);
        result.skipped++;
        opts.onProgress?.(`${r.experimentName} / ${name}: already on the server (${existing.info.run_id})`);
        continue;
      }
      if (existing) {
        await client.deleteRun(existing.info.run_id);
        result.redone++;
      }
      const tags: KeyValue[] = Object.entries(src.tags).map(([key, value]) => {
        const parent = key === 'mlflow.parentRunId' ? result.ids.get(value) : undefined;
        return { key, value: truncateValue(parent ?? value, MAX_TAG_VALUE_LENGTH).value };
      });
      const info = await client.createRun({
        experimentId, runName: name, startTime: Number(src.meta['start_time']), userId: String(src.meta['user_id'] ?? 'unknown'),
        tags: [...tags.filter((t) => t.key === 'mlflow.runName'), { key: SYNC_FROM_TAG, value: r.runId }],
      });
      const id = info.run_id;
      for (const params of chunks(Object.entries(src.params).map(([key, value]) => ({ key, value })), MAX_PARAMS)) await client.logBatch(id, { params });
      for (const t of chunks(tags.filter((x) => x.key !== 'mlflow.runName'), MAX_TAGS)) await client.logBatch(id, { tags: t });
      const points: WireMetric[] = Object.values(src.metrics).flat().map((p) => ({ key: p.key, value: encodeValue(p.value), timestamp: p.timestamp, step: p.step }));
      for (const metrics of chunks(points, MAX_METRICS)) await client.logBatch(id, { metrics });
      const inputs = await store.readInputs(r.runId);
      if (inputs.length) await client.logInputs(id, inputs);
      const root = refOf(info).artifactRoot;
      const files = r.artifactDir ? await FileStore.artifactFiles(r.artifactDir) : [];
      if (files.length && root === undefined) opts.onWarning?.(`${r.experimentName} / ${name}: ${files.length} artifacts not copied: the server does not proxy artifacts (start it with --serve-artifacts)`);
      else for (const f of files) {
        await client.uploadArtifact(`${root}/${f}`, join(r.artifactDir!, f));
        result.artifacts++;
      }
      const status = STATUS_BY_CODE.get(Number(src.meta['status'])) ?? 'RUNNING';
      const end = src.meta['end_time'];
      await client.updateRun(id, { status, ...(typeof end === 'number' ? { endTime: end } : {}) });
      await client.logBatch(id, { tags: [{ key: SYNC_DONE_TAG, value: 'true' }] });
      result.ids.set(r.runId, id);
      result.copied++;
      opts.onProgress?.(`${r.experimentName} / ${name}: copied (${Object.keys(src.params).length} params, ${points.length} metric points, ${files.length} artifacts) as ${id}`);
    }
  } finally {
    await client.close();
  }
  return result;
}
