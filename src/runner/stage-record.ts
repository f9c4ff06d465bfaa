/**
 * What a stage reported for tracking while it ran (metric points with their steps, tags,
 * artifacts, datasets), kept in its folder as `tracked.json`, so that a run reusing the stage
 * from the cache logs the same things to its own MLflow run: a cached rerun, or a sweep trial
 * whose shared stages came from an earlier trial, is then as complete as a run that did the work.
 * Metric timestamps are not kept (the reusing run logs at its own time); steps are.
 */
import { readFile } from 'node:fs/promises';
import { isAbsolute, join, relative, sep } from 'node:path';
import { writeDurable } from '../fs-durable.js';
import type { StageReport } from '../stage.js';

/** The file in a stage folder. */
export const RECORD_FILE = 'tracked.json';

type Dataset = Parameters<StageReport['dataset']>[0];
/** A metric value in JSON: a number, or NaN/±Infinity by name (JSON has no literal for them). */
type JsonNumber = number | 'NaN' | 'Infinity' | '-Infinity';

/** tracked.json, version 1. */
export interface StageRecord {
  version: 1;
  /** [name, value, step] in report order; names are the stage's own (the MLflow key layout is applied when logging). */
  metrics: [string, JsonNumber, number][];
  /** Tags in report order (later ones overwrite earlier ones, as in MLflow). */
  tags: Record<string, string>[];
  /** [file, artifactPath]: `file` relative to the stage folder when inside it, else absolute. */
  artifacts: [string, string | null][];
  datasets: Dataset[];
}

const toJson = (v: number): JsonNumber => (Number.isFinite(v) ? v : Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity');
const fromJson = (v: JsonNumber): number => (typeof v === 'number' ? v : v === 'NaN' ? NaN : v === 'Infinity' ? Infinity : -Infinity);

/**
 * Sits between a stage and the run's reporter. In `record` mode (the default) every tracking
 * event is passed on and kept; in `quiet` mode only progress lines are passed on (a stage's
 * `load` re-reporting what its tracked.json already holds). `save` writes what was kept.
 */
export class StageRecorder {
  mode: 'record' | 'quiet' = 'record';
  private rec: StageRecord = { version: 1, metrics: [], tags: [], artifacts: [], datasets: [] };
  /** The reporter to hand the stage. */
  readonly report: StageReport;

  constructor(private readonly outDir: string, target: StageReport) {
    const on = (): boolean => this.mode === 'record';
    this.report = {
      progress: (text) => target.progress(text),
      batch: (b) => target.batch(b),
      epoch: (e) => target.epoch(e),
      metric: (k, v, step, opts) => {
        if (!on()) return;
        this.rec.metrics.push([k, toJson(v), step]);
        target.metric(k, v, step, opts);
      },
      tags: (t) => {
        if (!on()) return;
        this.rec.tags.push({ ...t });
        target.tags(t);
      },
      artifact: (p, art) => {
        if (!on()) return;
        const rel = relative(this.outDir, p);
        this.rec.artifacts.push([rel.startsWith(`..${sep}`) || rel === '..' || isAbsolute(rel) ? p : rel, art ?? null]);
        target.artifact(p, art);
      },
      dataset: (d) => {
        if (!on()) return;
        this.rec.datasets.push({ ...d });
        target.dataset(d);
      },
    };
  }

  /** Forgets what was kept (a reuse attempt that fell back to running the stage). */
  reset(): void {
    this.rec = { version: 1, metrics: [], tags: [], artifacts: [], datasets: [] };
    this.mode = 'record';
  }

  /** Writes tracked.json into the stage folder (atomically). */
  async save(): Promise<void> {
    await writeDurable(join(this.outDir, RECORD_FILE), JSON.stringify(this.rec));
  }
}

/** The tracked.json of the stage folder `dir`, or undefined when it has none (folders written before it existed) or it does not parse. */
export async function readStageRecord(dir: string): Promise<StageRecord | undefined> {
  try {
    const r = JSON.parse(await readFile(join(dir, RECORD_FILE), 'utf8')) as StageRecord;
    return r.version === 1 && Array.isArray(r.metrics) ? r : undefined;
  } catch {
    return undefined;
  }
}

/** Reports everything in `rec` (recorded in the stage folder `dir`) to `report`, in the recorded order per kind. */
export function replayStageRecord(rec: StageRecord, dir: string, report: StageReport): void {
  for (const d of rec.datasets) report.dataset(d);
  for (const t of rec.tags) report.tags(t);
  for (const [k, v, step] of rec.metrics) report.metric(k, fromJson(v), step);
  for (const [file, art] of rec.artifacts) report.artifact(isAbsolute(file) ? file : join(dir, file), art ?? undefined);
}
