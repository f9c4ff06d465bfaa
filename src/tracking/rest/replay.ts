/**
 * Replays a run's tracking spool to the MLflow server, in order, recording progress after every
 * record so a crash or a second outage never sends a record twice or skips one. Used by the
 * RestTracker when the server answers again and by `pipe sync RUN_DIR`.
 */
import { PipelineError } from '../../errors.js';
import { stripCredentials } from './auth.js';
import { MlflowClient, type ClientOptions } from './client.js';
import { applyRecord } from './apply.js';
import { MlflowError } from './errors.js';
import { Spool } from './spool.js';

/** What a replay did. */
export interface ReplayResult {
  /** Records applied now. */
  replayed: number;
  /** Records the server rejected for good (400 INVALID_PARAMETER_VALUE), skipped with a warning. */
  rejected: number;
  /** Records still waiting (the server stopped answering, or refused in a way that may pass). */
  remaining: number;
  /** Why replay stopped early, when it did. */
  stoppedBy?: MlflowError;
}

/**
 * Applies the spool's pending records in seq order until one fails. A 400
 * INVALID_PARAMETER_VALUE (the record itself is wrong, e.g. a changed param value) is skipped
 * with `onWarning`; any other failure stops the replay with the record kept.
 * @throws Error for local problems (unreadable spool, missing artifact copy).
 */
export async function replaySpool(spool: Spool, client: MlflowClient, onWarning: (msg: string) => void, history = new Map<string, Set<number>>()): Promise<ReplayResult> {
  const state = await spool.state();
  const pending = (await spool.records()).filter((r) => r.seq >= state.applied);
  let replayed = 0, rejected = 0;
  for (const [i, rec] of pending.entries()) {
    try {
      state.ref = await applyRecord(client, state.ref, rec, { unverified: state.headUnverified ?? false, baseDir: spool.dir, onSkip: onWarning, history });
      replayed++;
    } catch (e) {
      if (!(e instanceof MlflowError)) throw e;
      if (e.retryable || e.errorCode !== 'INVALID_PARAMETER_VALUE') {
        await spool.saveState({ ...state, ...(e.unverified ? { headUnverified: true } : {}) });
        return { replayed, rejected, remaining: pending.length - i, stoppedBy: e };
      }
      onWarning(`MLflow rejected a spooled ${rec.op} record (kept in ${spool.paths.log}, seq ${rec.seq}): ${e.message}`);
      rejected++;
    }
    state.applied = rec.seq + 1;
    delete state.headUnverified;
    await spool.saveState(state);
  }
  return { replayed, rejected, remaining: 0 };
}

/** Options of syncSpool. */
export interface SyncOptions {
  /** Client settings (timeouts, retries, env for auth). */
  client?: ClientOptions;
  onWarning?: (msg: string) => void;
}

/**
 * `pipe sync`: replays the spool in `dir` to the server recorded in it (credentials from the
 * environment), holding the spool's lock.
 * @throws PipelineError PIPE_TRACKING when the spool is locked by a live process or names no server.
 */
export async function syncSpool(dir: string, opts: SyncOptions = {}): Promise<ReplayResult & { uri: string }> {
  const spool = new Spool(dir);
  const first = (await spool.records())[0];
  if (first?.op !== 'open') throw new PipelineError('PIPE_TRACKING', `${spool.paths.log} does not start with an 'open' record naming the server: not a pipe tracking spool`);
  await spool.lock();
  const client = new MlflowClient(first.uri, opts.client);
  try {
    const r = await replaySpool(spool, client, opts.onWarning ?? (() => undefined));
    return { ...r, uri: stripCredentials(first.uri) };
  } finally {
    await client.close();
    await spool.unlock();
  }
}
