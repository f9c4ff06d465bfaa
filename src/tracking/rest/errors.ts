/**
 * The one error class of the MLflow REST client. A server answer carries its HTTP status and
 * MLflow's `error_code` (JSON `{"error_code", "message"}`, or an HTML/text page for unknown
 * routes, wrong methods, auth proxies and the host check); a transport failure has status 0 and
 * a code of our own. Whether it is worth retrying, and whether the request may have reached the
 * server (ambiguous), is decided here once.
 * Source of the status/error_code table: ../shared/mlflow/CONTRACT.md (measured on MLflow 3.6).
 */
import { PipelineError } from '../../errors.js';

/** HTTP statuses MLflow's Python client retries (mlflow/utils/request_utils.py `_TRANSIENT_FAILURE_RESPONSE_CODES`). */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);

/** Transport error codes that prove the request never reached the server (safe to resend anything). */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

/**
 * A failed MLflow request. Extends PipelineError (code PIPE_TRACKING, exit 2), so when it
 * reaches the CLI the message is printed without a stack trace.
 */
export class MlflowError extends PipelineError {
  /** Set by withRetry: an attempt may have been applied and no check has cleared it. */
  unverified = false;

  /**
   * @param status HTTP status; 0 when no answer came (network error, timeout).
   * @param errorCode MLflow's `error_code` (e.g. RESOURCE_DOES_NOT_EXIST), `HTTP_<status>` for a
   *   non-JSON answer, or NETWORK_ERROR / TIMEOUT.
   * @param serverMessage the server's message (HTML reduced to its text), or the transport error.
   * @param endpoint `METHOD path` of the request (no host, no credentials).
   * @param sent for transport errors: false when the request provably never left (connection
   *   refused, DNS, connect timeout), true when it may have been processed.
   */
  constructor(
    readonly status: number,
    readonly errorCode: string,
    readonly serverMessage: string,
    readonly endpoint: string,
    readonly sent = true,
    readonly retryAfterMs?: number,
  ) {
    super('PIPE_TRACKING', `MLflow ${endpoint}: ${status ? `${status} ` : ''}${errorCode}: ${serverMessage}${hint(status, serverMessage)}`);
    this.name = 'MlflowError';
  }

  /** Network errors, 408, 429 and 5xx are worth retrying; any other 4xx is final. */
  get retryable(): boolean {
    return this.status === 0 || RETRYABLE_STATUSES.has(this.status);
  }

  /** The server may have applied the request although we got no success answer. */
  get ambiguous(): boolean {
    return this.status === 0 ? this.sent : this.status >= 500 && this.status !== 503;
  }
}

/** What to tell the user for a few answers whose cause is on their side. */
function hint(status: number, msg: string): string {
  if (status === 403 && /invalid host header/i.test(msg)) {
    return ' (MLflow\'s security middleware rejected the Host header: start the server with `--allowed-hosts <host[:port]>` listing the host in MLFLOW_TRACKING_URI)';
  }
  if (status === 401) return ' (set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN)';
  if (status === 403) return ' (the credentials in MLFLOW_TRACKING_USERNAME/_PASSWORD or _TOKEN lack permission)';
  return '';
}

/**
 * Reads `{error_code, message}` from an error body; for HTML or text bodies (404/405 pages,
 * auth proxies) returns `HTTP_<status>` and the page's title/text, at most 300 characters.
 */
export function parseErrorBody(status: number, body: string): { errorCode: string; message: string } {
  try {
    const j = JSON.parse(body) as { error_code?: unknown; message?: unknown };
    if (j && typeof j === 'object' && typeof j.error_code === 'string') {
      return { errorCode: j.error_code, message: typeof j.message === 'string' ? j.message : '' };
    }
  } catch {
    // not JSON: HTML or text below
  }
  const title = /<h1>([\s\S]*?)<\/h1>/i.exec(body)?.[1] ?? /<title>([\s\S]*?)<\/title>/i.exec(body)?.[1];
  const para = /<p>([\s\S]*?)<\/p>/i.exec(body)?.[1];
  const text = (title ? `${title}${para ? `: ${para}` : ''}` : body).replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim();
  return { errorCode: `HTTP_${status}`, message: text.length > 300 ? `${text.slice(0, 297)}...` : text || '(empty body)' };
}

/** Wraps a transport error (undici or node:net) as an MlflowError with status 0. */
export function transportError(e: unknown, endpoint: string): MlflowError {
  const err = e as { code?: unknown; name?: unknown; message?: unknown; cause?: { code?: unknown } };
  const code = typeof err?.code === 'string' ? err.code : typeof err?.cause?.code === 'string' ? err.cause.code : '';
  const timeout = /TIMEOUT/.test(code) || err?.name === 'TimeoutError';
  const msg = `${typeof err?.message === 'string' ? err.message : String(e)}${code ? ` (${code})` : ''}`;
  return new MlflowError(0, timeout ? 'TIMEOUT' : 'NETWORK_ERROR', msg, endpoint, !NOT_SENT_CODES.has(code));
}
