/**
 * The `--queue` URL: `redis://[user:password@]host[:port][/db]` or `rediss://` (TLS), turned
 * into ioredis connection options (https://github.com/redis/ioredis#connect-to-redis), and the
 * queue-mode rules shared by the submitter and the workers: the Redis password is never printed
 * (maskSecrets), and the MLflow store must be a shared http(s) server.
 */
import { readFileSync } from 'node:fs';
import { PipelineError } from '../errors.js';
import { isServerUri } from '../tracking/uri.js';

/** BullMQ queue name of the trials (Redis keys `bull:pipe-trials:*`). @defaultValue 'pipe-trials' ($PIPE_QUEUE_NAME) */
export function queueName(env: NodeJS.ProcessEnv = process.env): string {
  return env['PIPE_QUEUE_NAME'] || 'pipe-trials';
}

/** ioredis options of a queue URL (a subset of ioredis' RedisOptions). */
export interface RedisConnection {
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  /** Present (empty: Node's default CA store and SNI from host) for rediss://. */
  tls?: Record<string, never>;
  /** BullMQ workers need null: blocking commands must not fail after N retries. */
  maxRetriesPerRequest: null;
}

/** A parsed queue URL. */
export interface QueueTarget {
  connection: RedisConnection;
  /** The URL with its password replaced by `***`, for messages. */
  display: string;
}

/** Replaces the password of every `scheme://user:password@` in `text` with `***`. */
export function maskSecrets(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)([^:@/\s]*):([^@/\s]*)@/gi, '$1$2:***@');
}

/**
 * The queue URL of a command: `--queue URL`, else $PIPE_QUEUE_URL (so the URL, and a password in
 * it, stays off the command line, where `ps` shows it to every user of the machine).
 * @throws PipelineError PIPE_USAGE (exit 2) when neither is given.
 */
export function queueUrl(flag: string | boolean | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (typeof flag === 'string' && flag !== '') return flag;
  const url = env['PIPE_QUEUE_URL'];
  if (url) return url;
  throw new PipelineError('PIPE_USAGE', `no queue: pass --queue redis://host:port/db or set PIPE_QUEUE_URL (the password from PIPE_QUEUE_PASSWORD_FILE or PIPE_QUEUE_PASSWORD)`);
}

/**
 * The Redis password when the URL has none: the first line of the file $PIPE_QUEUE_PASSWORD_FILE
 * (a mounted secret, mode 0600), else $PIPE_QUEUE_PASSWORD.
 * @throws PipelineError PIPE_USAGE (exit 2) when the file cannot be read.
 */
function passwordFromEnv(env: NodeJS.ProcessEnv): string | undefined {
  const file = env['PIPE_QUEUE_PASSWORD_FILE'];
  if (file) {
    try {
      return readFileSync(file, 'utf8').split(/\r?\n/)[0];
    } catch (e) {
      throw new PipelineError('PIPE_USAGE', `PIPE_QUEUE_PASSWORD_FILE ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
  return env['PIPE_QUEUE_PASSWORD'] || undefined;
}

/**
 * Parses a queue URL; without a password in it, the password comes from the environment
 * (passwordFromEnv).
 * @throws PipelineError PIPE_USAGE (exit 2) for a malformed URL, another scheme, or a db that
 *   is not a whole number; the message shows the URL with its password masked.
 */
export function parseQueueUrl(url: string, env: NodeJS.ProcessEnv = process.env): QueueTarget {
  const display = maskSecrets(url);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new PipelineError('PIPE_USAGE', `--queue ${display}: not a URL; expected redis://[user:password@]host[:port][/db] or rediss://...`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new PipelineError('PIPE_USAGE', `--queue ${display}: expected a redis:// or rediss:// URL, got ${u.protocol}//`);
  const dbText = u.pathname.replace(/^\//, '') || '0';
  const db = Number(dbText);
  if (!Number.isInteger(db) || db < 0) throw new PipelineError('PIPE_USAGE', `--queue ${display}: database '${dbText}' is not a whole number`);
  if (!u.hostname) throw new PipelineError('PIPE_USAGE', `--queue ${display}: no host`);
  const connection: RedisConnection = {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port ? Number(u.port) : 6379,
    db,
    maxRetriesPerRequest: null,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : (() => {
      const password = passwordFromEnv(env);
      return password ? { password } : {};
    })()),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  };
  return { connection, display };
}

/**
 * The MLflow tracking server of queue mode: trials run on other machines, so their runs must go
 * to a server every machine reaches, never to a local file store.
 * @returns MLFLOW_TRACKING_URI.
 * @throws PipelineError PIPE_USAGE (exit 2) when it is unset or not http(s).
 */
export function requireTrackingServer(what: string, env: NodeJS.ProcessEnv = process.env): string {
  const uri = env['MLFLOW_TRACKING_URI'] || '';
  if (!isServerUri(uri)) {
    throw new PipelineError('PIPE_USAGE', `${what} needs a shared MLflow tracking server: set MLFLOW_TRACKING_URI to its http(s):// address (got ${uri ? `'${maskSecrets(uri)}', a local store` : 'nothing: the local file store runs/mlruns'}; trials run on other machines, so a local store would scatter the runs)`);
  }
  return uri;
}

/** Positive whole milliseconds from `env[name]`, else `fallback`. */
export function envMs(name: string, fallback: number, env: NodeJS.ProcessEnv = process.env): number {
  const v = Number(env[name]);
  return Number.isInteger(v) && v > 0 ? v : fallback;
}

/**
 * Waits for a BullMQ client's connection (`ready`), at most `ms` (default $PIPE_QUEUE_CONNECT_MS or 10000 ms).
 * A process held up past `ms` (descheduled on a loaded machine) finds its timer due and Redis's
 * answer waiting at once; Node runs due timers before it reads sockets, so the verdict waits for
 * that loop turn's socket reads (setImmediate) and an answer that came in time decides.
 * @throws PipelineError PIPE_USAGE (exit 2) naming the masked URL when Redis cannot be reached or refuses the password.
 */
export async function connectOrFail(ready: Promise<unknown>, display: string, lastError: () => string, ms = envMs('PIPE_QUEUE_CONNECT_MS', 10_000)): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => setImmediate(() => reject(new Error(lastError() || `no answer in ${ms} ms`))), ms)));
  try {
    await Promise.race([ready, timeout]);
  } catch (e) {
    throw new PipelineError('PIPE_USAGE', `cannot reach the queue ${display}: ${maskSecrets((e as Error).message)}; check the host, port, password and TLS (rediss://)`);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The `--queue` part of a command suggested to the user, one that works as printed: nothing when
 * the URL came from $PIPE_QUEUE_URL, the URL itself when it holds no secret, else a placeholder
 * (the password is never printed).
 */
export function queueHint(flag: string | boolean | undefined): string {
  if (typeof flag !== 'string' || flag === '') return '';
  return maskSecrets(flag) === flag ? ` --queue ${flag}` : ' --queue <the same URL>';
}
