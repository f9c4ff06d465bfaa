/**
 * The stage cache. A stage's key is the sha256 of the canonical JSON (sorted keys) of its kind,
 * implementation version, resolved params, the run seed and the keys of its upstream stages, so
 * a change anywhere upstream changes every key below it. Each run writes runs/<run>/lock.json
 * (stage -> key, params, upstream, output folder, finished); runs/.cache/keys/<key> names the
 * folder holding that stage's finished outputs.
 * Anchor: DVC `stage/cache.py` `_get_stage_hash`, dvc.lock; `plan_repro` for the decisions.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { writeDurable, type DurableOptions } from '../fs-durable.js';

/** JSON with object keys sorted at every level. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** What a stage's key is made of. */
export interface KeyParts {
  kind: string;
  version: number;
  params: unknown;
  seed: number;
  /** Keys of the direct upstream stages, by stage name. */
  upstream: Record<string, string>;
  /** Extra parts a stage adds (e.g. a data source fingerprint). */
  extra?: unknown;
}

/** sha256 hex of the canonical JSON of `parts`. */
export function stageKey(parts: KeyParts): string {
  return createHash('sha256').update(canonicalJson(parts)).digest('hex');
}

/** One stage's entry in a run's lock.json. */
export interface LockEntry {
  kind: string;
  key: string;
  parts: KeyParts;
  /** Folder with the stage's outputs (absolute). */
  outDir: string;
  status: 'pending' | 'running' | 'done' | 'failed' | 'skipped';
  /** Set when the outputs were reused from another run. */
  reusedFrom?: string;
}

/** A run's lock.json. */
export interface Lock {
  pipeline: string;
  file: string;
  runId: string;
  mlflowRunId?: string;
  createdAt: number;
  stages: Record<string, LockEntry>;
  /** The run's `--set` expressions (a sweep trial's include its assignments), for the command that resumes it (interrupt-hint.ts). */
  sets?: string[];
  /** Why the run ended FAILED or KILLED (`stage: message`, `; `-joined), the `pipe.error` tag's value. */
  failure?: { status: 'FAILED' | 'KILLED'; reason: string };
}

/** Reads runs/<run>/lock.json, or undefined. */
export async function readLock(runDir: string): Promise<Lock | undefined> {
  try {
    return JSON.parse(await readFile(join(runDir, 'lock.json'), 'utf8')) as Lock;
  } catch {
    return undefined;
  }
}

/** Writes runs/<run>/lock.json atomically and durably (see fs-durable.ts; `opts.inPlaceWhenFull` for the final write of a run that failed on a full disk). */
export function writeLock(runDir: string, lock: Lock, opts: DurableOptions = {}): Promise<void> {
  return writeDurable(join(runDir, 'lock.json'), JSON.stringify(lock, null, 2), opts);
}

/**
 * The key -> output folder index of finished stages, shared by all runs under runs/: one small
 * file per key, runs/.cache/keys/<key>, holding the folder. Separate files (each written with
 * writeDurable) make concurrent runs safe (`pipe run --parallel` sweeps, two terminals): a
 * writer never rewrites another key's entry, and readers see either the old or the new file,
 * never half of one.
 */
export class StageIndex {
  constructor(private readonly runsDir: string) {}

  private keyPath(key: string): string {
    if (!/^[0-9a-f]{64}$/.test(key)) throw new Error(`stage cache: malformed key '${key}'`);
    return join(this.runsDir, '.cache', 'keys', key);
  }

  /** The folder of a finished stage with this key, if it still exists. */
  async lookup(key: string): Promise<string | undefined> {
    const dir = await readFile(this.keyPath(key), 'utf8').catch(() => undefined);
    return dir !== undefined && existsSync(join(dir, '.done')) ? dir : undefined;
  }

  /** Marks `dir` finished (writes its .done marker) and indexes it under `key`. */
  async record(key: string, dir: string): Promise<void> {
    await writeFile(join(dir, '.done'), key);
    const path = this.keyPath(key);
    await mkdir(dirname(path), { recursive: true });
    await writeDurable(path, dir);
  }
}

/** Lock files of earlier runs of `pipeline`, newest first. */
export async function previousLocks(runsDir: string, pipeline: string): Promise<Lock[]> {
  let names: string[];
  try {
    names = await readdir(runsDir);
  } catch {
    return [];
  }
  const locks: Lock[] = [];
  for (const n of names.filter((x) => /^\d{8}T\d{6}-[0-9a-f]+$/.test(x)).sort().reverse()) {
    const lock = await readLock(join(runsDir, n));
    if (lock?.pipeline === pipeline) locks.push(lock);
  }
  return locks;
}

/** Dotted paths whose values differ between two param objects, `path: old -> new`. */
export function paramDiff(before: unknown, after: unknown, prefix = ''): string[] {
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (isObj(before) && isObj(after)) {
    return [...new Set([...Object.keys(before), ...Object.keys(after)])].sort().flatMap((k) => paramDiff(before[k], after[k], prefix ? `${prefix}.${k}` : k));
  }
  return canonicalJson(before) === canonicalJson(after) ? [] : [`${prefix}: ${before === undefined ? '(unset)' : canonicalJson(before)} -> ${after === undefined ? '(unset)' : canonicalJson(after)}`];
}
