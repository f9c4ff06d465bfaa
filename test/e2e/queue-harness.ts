/**
 * What the queue e2e tests share: a real redis-server on a free 127.0.0.1 port (no persistence),
 * an MLflow server (the real one of $PIPE_REAL_MLFLOW_URI when set, as .ci/run does; else the
 * fake of test/fake-mlflow.ts), `pipe` processes (workers, submitters, operator commands) with
 * their output collected, and readers of the queue (BullMQ) and of the MLflow runs (REST).
 * Waits are on conditions (a run RUNNING, a file written, a process exited), never on time; the
 * test timeouts bound them.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Queue, type Job } from 'bullmq';
import { MlflowClient } from '../../src/tracking/rest/client.js';
import type { Run } from '../../src/tracking/rest/types.js';
import { FakeMlflow } from '../fake-mlflow.js';
import { FASHION_MNIST_DIR, makeTree, quickPipeline, REPO } from '../utils.js';

const hasRedis = spawnSync('redis-server', ['--version']).status === 0;
/** Why the queue e2e tests cannot run here, or false. */
export const skipQueue: string | false = !existsSync(FASHION_MNIST_DIR) ? `${FASHION_MNIST_DIR} is missing (apt-get install dataset-fashion-mnist)` : !hasRedis ? 'redis-server is missing (apt-get install redis-server; .ci/run installs it)' : false;

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Resolves when the process has exited (at once when it already has). */
export const exited = (c: ChildProcess): Promise<void> => (c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise((r) => c.once('exit', () => r())));

/** A started redis-server. */
export interface Redis {
  port: number;
  url: string;
  stop(): Promise<void>;
}

/** Starts redis-server (no persistence, optional password) and resolves once it accepts connections. */
export async function startRedis(password?: string): Promise<Redis> {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', ...(password ? ['--requirepass', password] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let log = '';
    child.stdout!.on('data', (d: Buffer) => {
      log += d.toString();
      if (log.includes('Ready to accept connections')) resolve();
    });
    child.on('exit', (c) => reject(new Error(`redis-server exited ${c}: ${log}`)));
  });
  return {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    stop: async () => {
      child.kill('SIGKILL');
      await exited(child);
    },
  };
}

/** The MLflow server of a test and a reader of its runs. */
export interface Tracking {
  uri: string;
  real: boolean;
  /** Every run of `experiment` (deleted ones excluded). */
  runs(experiment: string): Promise<Run[]>;
  close(): Promise<void>;
}

/** The real MLflow server ($PIPE_REAL_MLFLOW_URI) when set, else a fake one. */
export async function startTracking(): Promise<Tracking> {
  const real = process.env['PIPE_REAL_MLFLOW_URI'];
  const fake = real ? undefined : await FakeMlflow.start();
  const uri = real ?? fake!.uri;
  const client = new MlflowClient(uri);
  return {
    uri,
    real: fake === undefined,
    runs: async (experiment) => {
      const exp = await client.getExperimentByName(experiment);
      if (!exp) return [];
      const out: Run[] = [];
      let pageToken: string | undefined;
      do {
        const page = await client.searchRuns({ experimentIds: [exp.experiment_id], maxResults: 1000, ...(pageToken ? { pageToken } : {}) });
        out.push(...page.runs);
        pageToken = page.nextPageToken;
      } while (pageToken);
      return out;
    },
    close: async () => {
      await client.close();
      await fake?.close();
    },
  };
}

/** A run's tag value. */
export const tagOf = (r: Run, key: string): string | undefined => r.data.tags?.find((t) => t.key === key)?.value;

/** A `pipe` process with its output. */
export interface Proc {
  child: ChildProcess;
  root: string;
  out(): string;
  /** Resolves to the exit code (null when killed by a signal). */
  done: Promise<number | null>;
}

/**
 * Starts `pipe <args>` in `root` (a new folder when omitted). `detached` gives it its own process
 * group (its id is the pid), so a test can signal the whole group as systemd or a terminal does.
 */
export function startPipe(args: string[], env: Record<string, string>, opts: { root?: string; detached?: boolean } = {}): Proc {
  const root = opts.root ?? makeTree({});
  let out = '';
  const child = spawn(process.execPath, [join(REPO, 'bin', 'pipe.js'), ...args], { cwd: root, env: { ...process.env, PIPE_RUNS_DIR: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: opts.detached ?? false });
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
  return { child, root, out: () => out, done };
}

/** Polls `check` every 50 ms until it returns a value other than undefined/false. */
export async function until<T>(check: () => Promise<T | undefined | false> | T | undefined | false): Promise<T> {
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The environment of queue processes: tracking server, short lock/stall/heartbeat periods, the
 * test's own queue. The lock is what a live worker must renew in time on a loaded CI machine:
 * BullMQ renews it every half lockDuration or so, so a worker whose event loop is held up for
 * longer than about half of it loses its job (stalled: moved back to the queue while it runs,
 * a double run). 8 s tolerates a worker held up for 3-4 s; a killed worker's job comes back
 * after at most lockDuration and two stalledIntervals (10 s). The heartbeat only dates the
 * silence (stoppedAnswering: a worker is silent once its lock expired).
 */
export function queueEnv(tracking: Tracking, redis: Redis, extra: Record<string, string> = {}): Record<string, string> {
  return {
    MLFLOW_TRACKING_URI: tracking.uri, PIPE_QUEUE_URL: redis.url, PIPE_QUEUE_NAME: `t${redis.port}`,
    PIPE_QUEUE_LOCK_MS: '8000', PIPE_QUEUE_STALLED_MS: '1000', PIPE_QUEUE_HEARTBEAT_MS: '300', PIPE_QUEUE_BACKOFF_MS: '200', ...extra,
  };
}

/** A BullMQ view of the test's queue (close it). */
export function openQueue(redis: Redis, password?: string): Queue {
  return new Queue(`t${redis.port}`, { connection: { host: '127.0.0.1', port: redis.port, ...(password ? { password } : {}), maxRetriesPerRequest: null } });
}

/** The job of trial `name` on the queue, if any. */
export async function jobOf(q: Queue, name: string): Promise<Job | undefined> {
  return (await q.getJobs(['waiting', 'active', 'completed', 'failed', 'delayed', 'prioritized'])).find((j) => j?.data?.name === name);
}

/** Paths under `dir` (recursively) whose base name is `name`. */
export function findFiles(dir: string, name: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...findFiles(p, name));
    else if (e.name === name) out.push(p);
  }
  return out;
}

/** Ends a queue test: SIGKILLs what still runs of `procs`, waits for them, then closes the queue, Redis and the tracking server. */
export async function teardown(procs: Proc[], queue: Queue, redis: Redis, tracking: Tracking): Promise<void> {
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await Promise.all(procs.map((p) => exited(p.child)));
  await queue.close();
  await redis.stop();
  await tracking.close();
}

/**
 * What a queue test starts with: Redis, a fake MLflow server, the quick pipeline named
 * `<prefix><redis port>` with `finetuneEpochs` fine-tuning epochs (long enough that the trial is
 * still running when the test acts on it), the environment, the queue and the list of processes
 * to tear down.
 */
export async function queueTest(prefix: string, finetuneEpochs: number): Promise<{ redis: Redis; tracking: Tracking; name: string; pipeline: string; env: Record<string, string>; queue: Queue; procs: Proc[] }> {
  const redis = await startRedis();
  const tracking = await startTracking();
  const name = `${prefix}${redis.port}`;
  const one = 'finetune: { kind: unfreeze-train, needs: [head], with: { epochs: 1,';
  const pipeline = quickPipeline(name).replace(one, one.replace('epochs: 1,', `epochs: ${finetuneEpochs},`));
  if (!pipeline.includes(`epochs: ${finetuneEpochs},`)) throw new Error('quickPipeline has no one-epoch finetune stage to lengthen');
  return { redis, tracking, name, pipeline, env: queueEnv(tracking, redis), queue: openQueue(redis), procs: [] };
}
