/**
 * Runs whose process is gone. While `pipe run` works, its run folder (a local sweep's folder too) holds process.json: the
 * process id, the host, the process's start time (Linux: boot id + start tick from /proc, so a
 * reused pid is not taken for the run) and where the run is tracked. A run that ends writes
 * how it ended there. A run folder whose process.json names a process that is gone without
 * having ended (kill -9, power loss, a crash) is closed by the next command that looks at the
 * runs (`pipe run`, `pipe runs`, `pipe sync`): its MLflow run is marked KILLED with an end time
 * (the last time the run wrote its lock.json), in the local store or on the server.
 * `pipe run --resume` reopens it as RUNNING, also when every stage was done before the process
 * died (see {@link endedByItself}). Closing or resuming a dead run removes the temporary files
 * write-file-atomic left in its folder ({@link removeAtomicTemps}).
 * A queued sweep's folder (`--queue`, src/queue/submit.ts) has no process.json, on purpose: its
 * trials run in `pipe worker` processes (each trial's run folder has its own), and the submitting
 * process only follows the jobs; when it stops, the sweep goes on (its parent MLflow run stays
 * RUNNING until a worker ends the last trial), so its end must not mark the sweep KILLED.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { PipelineError } from '../errors.js';
import { writeDurable } from '../fs-durable.js';
import { FileStore } from '../tracking/file/store.js';
import { MlflowClient } from '../tracking/rest/client.js';
import type { RunStatus } from '../tracking/tracker.js';
import { isServerUri } from '../tracking/uri.js';
import { resumeCommand } from './interrupt-hint.js';

/** runs/<run>/process.json. */
export interface RunProcess {
  pid: number;
  host: string;
  /** `<boot id>:<start tick>` of the process (Linux), to tell a reused pid from the run's process. */
  procStart?: string;
  /** ms since the Unix epoch. */
  startedAt: number;
  /** The tracking store: a local folder or a server URL (without credentials). */
  store: string;
  /** The MLflow run id ('' while a server was unreachable at the start). */
  mlflowRunId: string;
  /** Set when the run ended, by itself or by closeDeadRuns. */
  ended?: { status: RunStatus; at: number; by: 'run' | 'next command' };
}

/** The file's path in a run folder. */
export const processFile = (runDir: string): string => join(runDir, 'process.json');

/**
 * The fields of /proc/<pid>/stat after the command name (which is in parentheses and may hold
 * spaces): [0] is field 3 (state), [19] field 22 (starttime). Undefined off Linux or for no such process.
 */
function procStat(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** `<boot id>:<start tick>` of process `pid` from /proc, or undefined off Linux. */
export function procStartOf(pid: number): string | undefined {
  const tick = procStat(pid)?.[19];
  if (tick === undefined) return undefined;
  try {
    return `${readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()}:${tick}`;
  } catch {
    return undefined;
  }
}

/** Writes process.json for this process (durably: it is what tells a dead run from a live one). */
export async function recordProcess(runDir: string, store: string, mlflowRunId: string): Promise<void> {
  const p: RunProcess = { pid: process.pid, host: hostname(), procStart: procStartOf(process.pid), startedAt: Date.now(), store, mlflowRunId };
  await writeDurable(processFile(runDir), JSON.stringify(p, null, 2));
}

/** Records in process.json how the run ended (best effort: a full disk keeps the old file, and closeDeadRuns then closes the run). */
export async function recordEnd(runDir: string, status: RunStatus, by: 'run' | 'next command' = 'run'): Promise<void> {
  const p = await readProcess(runDir);
  if (p) await writeDurable(processFile(runDir), JSON.stringify({ ...p, ended: { status, at: Date.now(), by } }, null, 2), { inPlaceWhenFull: true }).catch(() => undefined);
}

/**
 * Whether the run in `runDir` ended by itself as FINISHED (its process.json says so). A run
 * whose every stage is done but whose process died before ending it (or that the next command
 * closed as KILLED) did not: `pipe run --resume` finishes it. A run folder without process.json
 * (made before it existed) counts as ended.
 */
export async function endedByItself(runDir: string): Promise<boolean> {
  const p = await readProcess(runDir);
  return !p || (p.ended?.by === 'run' && p.ended.status === 'FINISHED');
}

/**
 * Removes the temporary files write-file-atomic leaves beside a file when its process dies in the
 * middle of writing it (`<name>.<digits>`, e.g. `lock.json.3141592653`, whose `<name>` is in the
 * same folder), at the top of run folder `runDir`. Only for a run whose process is gone.
 */
export async function removeAtomicTemps(runDir: string): Promise<void> {
  const names = await readdir(runDir).catch(() => [] as string[]);
  const present = new Set(names);
  for (const n of names) {
    const m = /^(.+)\.\d+$/.exec(n);
    if (m && present.has(m[1]!)) await rm(join(runDir, n), { force: true }).catch(() => undefined);
  }
}

async function readProcess(runDir: string): Promise<RunProcess | undefined> {
  try {
    return JSON.parse(await readFile(processFile(runDir), 'utf8')) as RunProcess;
  } catch {
    return undefined;
  }
}

/** True when /proc says `pid` is a zombie (state Z: it has exited, its parent has not reaped it yet); false off Linux. */
const isZombie = (pid: number): boolean => procStat(pid)?.[0] === 'Z';

/**
 * False only when the process is surely gone: same host, and no process with that pid, or a
 * zombie (killed, not yet reaped by its parent), or another process with the same pid.
 */
export function processAlive(p: RunProcess): boolean {
  if (p.host !== hostname()) return true; // cannot tell from here
  try {
    process.kill(p.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (isZombie(p.pid)) return false;
  const now = procStartOf(p.pid);
  return p.procStart === undefined || now === undefined || now === p.procStart;
}

/** Marks the MLflow run KILLED with `endTime` where it is tracked, unless it already ended there. */
async function closeInStore(p: RunProcess, mlflowRunId: string, endTime: number): Promise<void> {
  if (isServerUri(p.store)) {
    const client = new MlflowClient(p.store, { timeoutMs: 5_000, retry: { maxRetries: 0, baseDelayMs: 0, maxDelayMs: 0, jitterMs: 0, maxRetryAfterMs: 0 } });
    try {
      const { info } = await client.getRun(mlflowRunId);
      if (info.status === 'RUNNING') await client.updateRun(mlflowRunId, { status: 'KILLED', endTime });
    } finally {
      await client.close();
    }
    return;
  }
  const store = new FileStore(p.store);
  const header = await store.readRunHeader(mlflowRunId);
  if (header?.status === 'RUNNING') await store.endRun(mlflowRunId, 'KILLED', endTime);
}

/**
 * Closes the runs among `runDirs` whose process is gone without ending them: their MLflow run
 * becomes KILLED with an end time and process.json records it. A store that cannot be reached
 * leaves the run for the next command.
 * @returns one line per run for the user.
 */
export async function closeDeadRuns(runDirs: string[]): Promise<string[]> {
  const lines: string[] = [];
  for (const dir of runDirs) {
    const p = await readProcess(dir);
    if (!p || p.ended || processAlive(p)) continue;
    const lock = await readFile(join(dir, 'lock.json'), 'utf8').then((t) => JSON.parse(t) as { mlflowRunId?: string; file?: string; sets?: string[] }, () => undefined);
    // A sweep's folder (src/sweep/run.ts) has sweep.json instead of lock.json.
    const sweep = await readFile(join(dir, 'sweep.json'), 'utf8').then((t) => JSON.parse(t) as { file?: string }, () => undefined);
    const mlflowRunId = p.mlflowRunId || lock?.mlflowRunId || '';
    const endTime = Math.max(p.startedAt, ...(await Promise.all(['lock.json', 'sweep.json', 'process.json'].map((f) => stat(join(dir, f)).then((s) => s.mtimeMs, () => 0)))).map(Math.floor));
    const hint = sweep && !lock
      ? `continue it with the same \`pipe run ${sweep.file ?? '<file>'} ...\` command that started it: finished trials are kept`
      : `continue it with \`${resumeCommand(lock?.file ?? '<file>', lock?.sets ?? [], basename(dir))}\``;
    try {
      if (mlflowRunId) await closeInStore(p, mlflowRunId, endTime);
      await writeDurable(processFile(dir), JSON.stringify({ ...p, ended: { status: 'KILLED', at: endTime, by: 'next command' } }, null, 2));
      await removeAtomicTemps(dir);
      lines.push(`${sweep && !lock ? 'sweep' : 'run'} ${dir} was left RUNNING by process ${p.pid}, which is gone: marked KILLED (${hint})`);
    } catch (e) {
      lines.push(`${sweep && !lock ? 'sweep' : 'run'} ${dir} was left RUNNING by process ${p.pid}, which is gone; marking it KILLED failed (tried again next time): ${(e as Error).message.split('\n')[0]}`);
    }
  }
  return lines;
}

/** closeDeadRuns over every run folder under `runsDir` (names `YYYYMMDDTHHMMSS-<hex>`). */
export async function closeDeadRunsUnder(runsDir: string): Promise<string[]> {
  const names = await readdir(runsDir).catch(() => [] as string[]);
  return closeDeadRuns(names.filter((n) => /^\d{8}T\d{6}-[0-9a-f]+$/.test(n)).map((n) => join(runsDir, n)));
}

/** Who holds a run folder (run.claim). */
type Claim = Pick<RunProcess, 'pid' | 'host' | 'procStart'>;

function readClaim(file: string): Claim | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Claim;
  } catch {
    return undefined;
  }
}

/**
 * Claims run folder `runDir` for this process, so two `--resume`s of one run cannot both run it
 * (each would log the same steps). The claim is `runDir/run.claim`, created with O_EXCL; a claim
 * whose process is gone (killed, crashed) is moved aside with one atomic rename, which only one
 * contender wins.
 * @returns a function that releases the claim (a claim left by a dead process is taken over).
 * @throws PipelineError PIPE_USAGE (exit 2) when a live process holds the run.
 */
export function claimRun(runDir: string): () => void {
  const file = join(runDir, 'run.claim');
  const mine: Claim = { pid: process.pid, host: hostname(), procStart: procStartOf(process.pid) };
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      writeFileSync(file, JSON.stringify(mine), { flag: 'wx' });
      return () => {
        if (readClaim(file)?.pid === process.pid) rmSync(file, { force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let holder = readClaim(file);
    if (!holder) {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50); // a claim being written
      holder = readClaim(file);
    }
    if (holder && processAlive({ ...holder, startedAt: 0, store: '', mlflowRunId: '' })) {
      throw new PipelineError('PIPE_USAGE', `run ${runDir} is being run by process ${holder.pid} on ${holder.host}: wait for it to end (or stop it), then --resume`, 2);
    }
    try {
      const aside = `${file}.gone-${process.pid}`;
      renameSync(file, aside);
      rmSync(aside, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; // another contender moved it first
    }
  }
  throw new PipelineError('PIPE_USAGE', `run ${runDir}: could not claim it (another pipe process keeps taking it)`, 2);
}
