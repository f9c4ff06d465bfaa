/**
 * Retries with exponential backoff, jitter and Retry-After, the policy of MLflow's Python client
 * (mlflow/utils/request_utils.py: urllib3 `Retry` on 408/429/500/502/503/504 and connection/read
 * errors, POSTs included, `respect_retry_after_header=True`). urllib3's delay before retry n
 * (n = 1, 2, ...) is `backoff_factor * 2^(n-1)` plus `uniform(0, backoff_jitter)`, capped at
 * `backoff_max`; we use the same formula in milliseconds.
 */
import { MlflowError } from './errors.js';

/** How hard to try. */
export interface RetryPolicy {
  /** Retries after the first attempt. @defaultValue 5 */
  maxRetries: number;
  /** Delay before the first retry, ms; doubled each retry. @defaultValue 500 */
  baseDelayMs: number;
  /** Cap on one backoff delay, ms. @defaultValue 30000 */
  maxDelayMs: number;
  /** Uniform random extra delay in [0, jitterMs), ms. @defaultValue 250 */
  jitterMs: number;
  /** Cap on a server's Retry-After, ms (urllib3 honours it uncapped; we cap so a run never hangs). @defaultValue 120000 */
  maxRetryAfterMs: number;
}

/**
 * Default policy: 5 retries, 0.5 s doubling to at most 30 s, so a dead server costs about
 * 0.5+1+2+4+8 = 15.5 s (plus jitter) before records go to the spool. MLflow's Python client
 * waits longer (7 retries, factor 2, 120 s timeout); we spool instead of waiting.
 */
export const DEFAULT_RETRY: RetryPolicy = { maxRetries: 5, baseDelayMs: 500, maxDelayMs: 30_000, jitterMs: 250, maxRetryAfterMs: 120_000 };

/** Hooks of one retried call. */
export interface RetryHooks<T> {
  /** Source of randomness in [0, 1). @defaultValue Math.random */
  random?: () => number;
  /** Waits `ms`. @defaultValue setTimeout-based sleep */
  sleep?: (ms: number) => Promise<void>;
  /** Called before each retry with the error and the delay chosen (for logs and tests). */
  onRetry?: (err: MlflowError, retry: number, delayMs: number) => void;
  /**
   * For requests that must not be applied twice (runs/create, log-batch with metrics): after an
   * ambiguous failure (the request may have been applied), this check runs before anything is
   * resent. It resolves to a result when the request did take effect (the run exists, the points
   * are stored), or undefined when it did not, so the request is sent again. Without it, a
   * retryable failure is simply retried.
   */
  reconcile?: () => Promise<T | undefined>;
  /** Start as if an earlier attempt (e.g. before a crash or an outage) may have been applied. */
  unverified?: boolean;
}

/**
 * The delay before retry `retry` (1-based): `min(maxDelayMs, baseDelayMs * 2^(retry-1)) +
 * jitter`, but at least the server's Retry-After (capped at `maxRetryAfterMs`).
 */
export function backoffDelay(policy: RetryPolicy, retry: number, random: () => number, retryAfterMs?: number): number {
  const exp = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (retry - 1)) + random() * policy.jitterMs;
  return retryAfterMs === undefined ? exp : Math.max(exp, Math.min(retryAfterMs, policy.maxRetryAfterMs));
}

/**
 * Parses a Retry-After header (RFC 9110 §10.2.3: delay-seconds or an HTTP-date) into ms from
 * `now`; undefined when absent or malformed.
 */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

const defaultSleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Calls `attempt` until it succeeds, fails with a final error, or `policy.maxRetries` retries
 * are spent. With `hooks.reconcile`, nothing is resent after an ambiguous failure until the
 * check has shown it was not applied. Errors other than MlflowError are never retried.
 * @throws the last MlflowError (its `unverified` is true when an attempt may have been applied
 *   and no check has cleared it), or any non-MlflowError thrown by `attempt`/`reconcile`.
 */
export async function withRetry<T>(attempt: () => Promise<T>, policy: RetryPolicy, hooks: RetryHooks<T> = {}): Promise<T> {
  const random = hooks.random ?? Math.random;
  const sleep = hooks.sleep ?? defaultSleep;
  let unverified = Boolean(hooks.unverified && hooks.reconcile);
  for (let retry = 1; ; retry++) {
    try {
      if (unverified && hooks.reconcile) {
        const done = await hooks.reconcile();
        if (done !== undefined) return done;
        unverified = false;
      }
      return await attempt();
    } catch (e) {
      if (!(e instanceof MlflowError)) throw e;
      if (e.ambiguous && hooks.reconcile) unverified = true;
      e.unverified = unverified;
      if (!e.retryable || retry > policy.maxRetries) throw e;
      const delay = backoffDelay(policy, retry, random, e.retryAfterMs);
      hooks.onRetry?.(e, retry, delay);
      await sleep(delay);
    }
  }
}
