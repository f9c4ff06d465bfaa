/**
 * A sweep's state on disk: runs/<sweep-id>/sweep.json (written only by the sweep process, after
 * every trial start and end) and runs/<trial-run-id>/trial.json (written by the trial process
 * when it ends). A rerun of the same sweep (same pipeline, same set of trial configs) finds the
 * newest sweep.json with the same key and continues it: finished trials are matched by the hash
 * of their resolved config and skipped, the others run again in their own run folder.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeDurable } from '../fs-durable.js';
import type { PipelineConfig } from '../config/types.js';
import { canonicalJson } from '../runner/cache.js';
import type { FailureKind } from './trial-failure.js';
import type { RunSummary } from './collect.js';

/** Where a trial stands. `killed`: interrupted (Ctrl-C, or stopped by fail-fast). */
export type TrialStatus = 'pending' | 'running' | 'finished' | 'failed' | 'killed';

/** One trial in sweep.json. */
export interface TrialRecord {
  /** 1-based position in the sweep. */
  index: number;
  name: string;
  /** The trial's own `--set` expressions (the sweep's `--set` options come on top). */
  sets: string[];
  /** configHash of the trial's resolved config. */
  configHash: string;
  status: TrialStatus;
  /** runs/<runId>: set once the trial started. */
  runId?: string;
  mlflowRunId?: string;
  /** Why it failed: the trial's last `pipe:` error line. */
  error?: string;
  /** Engine backend the trial ran on (tag pipe.backend). */
  backend?: string;
  /** ms since the Unix epoch. */
  startedAt?: number;
  endedAt?: number;
  /** Queued sweeps: the trial's summary as its worker recorded it (it has no run folder here). */
  summary?: RunSummary;
  /** Queued sweeps: where the trial stands on the queue, e.g. `running on gpu-1`. */
  where?: string;
}

/** runs/<sweep-id>/sweep.json. */
export interface SweepState {
  version: 1;
  sweepId: string;
  /** sweepKey of the pipeline name and the trials' config hashes. */
  key: string;
  pipeline: string;
  file: string;
  /** The parent MLflow run. */
  mlflowRunId?: string;
  /** Queued sweeps (`pipe run --queue`): the queue name; the trials ran on workers. */
  queue?: string;
  /** Queued sweeps: the experiment of the parent and trial runs on the MLflow server. */
  experiment?: string;
  /** ms since the Unix epoch. */
  createdAt: number;
  mode: 'grid' | 'random';
  params: { path: string; values: unknown[] }[];
  trials: TrialRecord[];
}

/** runs/<run-id>/trial.json, written by `pipe _trial` when the trial ends. */
export interface TrialResult {
  name: string;
  sweepId?: string;
  status: 'finished' | 'failed' | 'killed';
  backend?: string;
  error?: string;
  /** For failed trials: whether another attempt could help (src/sweep/trial-failure.ts). */
  failure?: FailureKind;
  /** Wall time of the whole trial process's run, s. */
  seconds: number;
}

/** File name of a sweep's state in its folder. */
export const SWEEP_FILE = 'sweep.json';
/** File name of a trial's result in its run folder. */
export const TRIAL_FILE = 'trial.json';
/** Run and sweep folder names under runs/: `YYYYMMDDTHHMMSS-<hex>` (UTC). */
export const RUN_ID_RE = /^\d{8}T\d{6}-[0-9a-f]+$/;

/** A new run or sweep id: UTC time to the second, then 6 random hex digits (as runPipeline makes them). */
export function newRunId(now = new Date()): string {
  return `${now.toISOString().replace(/[-:]/g, '').replace(/\..*/, '')}-${randomBytes(3).toString('hex')}`;
}

/**
 * 16 hex digits of the sha256 of the canonical JSON of a resolved config without its `sweep`
 * block: two trials with equal hashes train the same thing, whatever the sweep around them.
 */
export function configHash(config: PipelineConfig): string {
  const { sweep: _sweep, ...rest } = config;
  return createHash('sha256').update(canonicalJson(rest)).digest('hex').slice(0, 16);
}

/** Identity of a sweep: sha256 of the pipeline name and the sorted trial config hashes. */
export function sweepKey(pipeline: string, hashes: readonly string[]): string {
  return createHash('sha256').update(canonicalJson({ pipeline, trials: [...hashes].sort() })).digest('hex');
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

const writeJsonAtomic = (path: string, value: unknown): Promise<void> => writeDurable(path, JSON.stringify(value, null, 2));

/** Reads `<dir>/sweep.json`, or undefined. */
export function readSweep(dir: string): Promise<SweepState | undefined> {
  return readJson<SweepState>(join(dir, SWEEP_FILE));
}

/** Writes `<dir>/sweep.json` atomically. */
export function writeSweep(dir: string, state: SweepState): Promise<void> {
  return writeJsonAtomic(join(dir, SWEEP_FILE), state);
}

/** Reads `<runDir>/trial.json`, or undefined. */
export function readTrialResult(runDir: string): Promise<TrialResult | undefined> {
  return readJson<TrialResult>(join(runDir, TRIAL_FILE));
}

/** Writes `<runDir>/trial.json` atomically. */
export function writeTrialResult(runDir: string, result: TrialResult): Promise<void> {
  return writeJsonAtomic(join(runDir, TRIAL_FILE), result);
}

/** Every sweep under `runsDir`, newest first. */
export async function listSweeps(runsDir: string): Promise<SweepState[]> {
  const names = await readdir(runsDir).catch(() => [] as string[]);
  const out: SweepState[] = [];
  for (const n of names.filter((x) => RUN_ID_RE.test(x)).sort().reverse()) {
    const s = await readSweep(join(runsDir, n));
    if (s?.version === 1) out.push(s);
  }
  return out;
}
