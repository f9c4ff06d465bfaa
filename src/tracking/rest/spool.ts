/**
 * The tracking spool of one run directory: what could not reach the MLflow server, kept on disk
 * in order until it can be replayed.
 *
 *   <dir>/mlflow-spool.jsonl       one record per line, `seq` 0, 1, 2, ... (appended, fsync'd)
 *   <dir>/mlflow-spool.state.json  how far replay got: { applied, ref?, headUnverified? } (atomic)
 *   <dir>/mlflow-spool/<seq>/...   copies of artifact files, so later edits cannot change them
 *   <dir>/mlflow-spool.lock        pid of the process replaying or appending
 *
 * A crash while appending can leave a torn last line; it is ignored (that record was never
 * acknowledged to anyone).
 */
import { closeSync, fstatSync, fsyncSync, openSync, readSync, writeSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { PipelineError } from '../../errors.js';
import { writeDurable } from '../../fs-durable.js';
import type { DatasetInput, KeyValue, RunStatusName, WireMetric } from './types.js';

/** The server run records are written to. */
export interface RunRef {
  runId: string;
  experimentId: string;
  /** Proxy path of the run's artifact root (`4/<run>/artifacts`); undefined when the server does not proxy artifacts. */
  artifactRoot?: string;
}

/** One spooled thing to do, in the order it happened. */
export type SpoolRecord =
  | { op: 'open'; uri: string; ref?: RunRef }
  | { op: 'start'; experiment: string; runName: string; userId?: string; tags: KeyValue[]; startTime: number; clientRunId: string; unverified?: boolean }
  | { op: 'resume'; runId: string }
  | { op: 'batch'; metrics?: WireMetric[]; params?: KeyValue[]; tags?: KeyValue[]; unverified?: boolean; dedupe?: boolean }
  | { op: 'inputs'; datasets: DatasetInput[] }
  | { op: 'artifact'; file: string; artifactPath: string }
  | { op: 'delete-tags'; keys: string[] }
  | { op: 'end'; status: RunStatusName; endTime: number };

/** A record with its position. */
export type Spooled = SpoolRecord & { seq: number };

/** Replay progress. */
export interface SpoolState {
  /** Records with seq < applied are done. */
  applied: number;
  ref?: RunRef;
  /** The record at `applied` may have reached the server: check before resending it. */
  headUnverified?: boolean;
}

/** File names of a spool in `dir`. */
export function spoolFiles(dir: string): { log: string; state: string; files: string; lock: string } {
  return { log: join(dir, 'mlflow-spool.jsonl'), state: join(dir, 'mlflow-spool.state.json'), files: join(dir, 'mlflow-spool'), lock: join(dir, 'mlflow-spool.lock') };
}

/** The seq of the first parseable record after line `i`, or undefined. */
function nextSeqAfter(lines: string[], i: number): number | undefined {
  for (const line of lines.slice(i + 1)) {
    if (line.trim() === '') continue;
    try {
      return (JSON.parse(line) as Spooled).seq;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** Reader/appender of one spool. */
export class Spool {
  readonly paths: ReturnType<typeof spoolFiles>;
  private nextSeq: number | undefined;

  constructor(readonly dir: string) {
    this.paths = spoolFiles(dir);
  }

  /** True when the spool file exists. */
  async exists(): Promise<boolean> {
    return stat(this.paths.log).then(() => true, () => false);
  }

  /** Appends `rec` and fsyncs it before resolving; resolves to its seq. */
  async append(rec: SpoolRecord): Promise<number> {
    if (this.nextSeq === undefined) {
      await mkdir(this.dir, { recursive: true });
      this.nextSeq = (await this.records()).length;
    }
    const seq = this.nextSeq++;
    const fd = openSync(this.paths.log, 'a+');
    try {
      // After a torn last line (a crash mid-append) the new record starts on a line of its own.
      const size = fstatSync(fd).size;
      const lastByte = Buffer.alloc(1);
      const torn = size > 0 && readSync(fd, lastByte, 0, 1, size - 1) === 1 && lastByte[0] !== 0x0a;
      writeSync(fd, `${torn ? '\n' : ''}${JSON.stringify({ seq, ...rec })}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    return seq;
  }

  /** Copies `localPath` into the spool (`mlflow-spool/<tag>/<basename>`); resolves to its path relative to the spool dir. */
  async keepFile(localPath: string, tag: string): Promise<string> {
    const rel = join('mlflow-spool', tag, basename(localPath));
    await mkdir(join(this.dir, 'mlflow-spool', tag), { recursive: true });
    await copyFile(localPath, join(this.dir, rel));
    return rel;
  }

  /** Every complete record, in seq order. */
  async records(): Promise<Spooled[]> {
    const text = await readFile(this.paths.log, 'utf8').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return '';
      throw e;
    });
    const out: Spooled[] = [];
    const lines = text.split('\n');
    let last = lines.length - 1;
    while (last >= 0 && lines[last]!.trim() === '') last--;
    for (const [i, line] of lines.entries()) {
      if (line.trim() === '') continue;
      try {
        out.push(JSON.parse(line) as Spooled);
      } catch {
        // A torn line was never acknowledged (a crash mid-append): the append after the restart
        // reused its seq, so the next record carries seq = the count so far. Anything else is
        // damage: stop rather than skip records or lose what follows.
        if (i === last || nextSeqAfter(lines, i) === out.length) continue;
        const after = lines.slice(i + 1).filter((l) => l.trim() !== '').length;
        throw new Error(`${this.paths.log}:${i + 1}: not a tracking record (the spool is damaged); the ${after} line(s) after it are kept. Fix or delete that line, then run pipe sync again`);
      }
    }
    return out;
  }

  /** Replay progress (nothing applied when there is no state file). */
  async state(): Promise<SpoolState> {
    try {
      return JSON.parse(await readFile(this.paths.state, 'utf8')) as SpoolState;
    } catch {
      return { applied: 0 };
    }
  }

  /** Writes the progress atomically (writeDurable: temp file, fsync, rename). */
  async saveState(s: SpoolState): Promise<void> {
    await writeDurable(this.paths.state, JSON.stringify(s));
  }

  /**
   * Takes the lock for this process.
   * @throws PipelineError PIPE_TRACKING when a live process holds it.
   */
  async lock(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    for (let i = 0; i < 2; i++) {
      try {
        await writeFile(this.paths.lock, String(process.pid), { flag: 'wx' });
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const pid = Number(await readFile(this.paths.lock, 'utf8').catch(() => 'NaN'));
        if (pid === process.pid) return;
        if (Number.isInteger(pid) && pid > 0 && alive(pid)) {
          throw new PipelineError('PIPE_TRACKING', `the MLflow spool in ${this.dir} is in use by process ${pid} (a run still going, or a sync); wait for it to end (or delete ${this.paths.lock} if that process is gone)`);
        }
        await rm(this.paths.lock, { force: true }); // stale: its process is gone
      }
    }
    throw new PipelineError('PIPE_TRACKING', `cannot lock the MLflow spool in ${this.dir}`);
  }

  /** Releases the lock if this process holds it. */
  async unlock(): Promise<void> {
    const pid = Number(await readFile(this.paths.lock, 'utf8').catch(() => 'NaN'));
    if (pid === process.pid) await rm(this.paths.lock, { force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
