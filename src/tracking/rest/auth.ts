/**
 * Connection settings from the environment, read as MLflow's Python client reads them
 * (mlflow/environment_variables.py, mlflow/utils/rest_utils.py `http_request`):
 * MLFLOW_TRACKING_USERNAME + MLFLOW_TRACKING_PASSWORD -> Basic auth, else MLFLOW_TRACKING_TOKEN
 * -> Bearer; MLFLOW_TRACKING_INSECURE_TLS=true skips certificate checks;
 * MLFLOW_TRACKING_SERVER_CERT_PATH is a CA bundle (both TLS settings at once is an error);
 * MLFLOW_TRACKING_CLIENT_CERT_PATH is a PEM file holding the client certificate and its key.
 * Credentials in the URI itself (`https://user:pass@host`) are used as Basic auth when the
 * variables are unset. Every secret is registered for redaction and never leaves this module
 * except in the Authorization header.
 */
import { readFileSync } from 'node:fs';
import { PipelineError } from '../../errors.js';

/** How to reach the server. */
export interface Connection {
  /** Base URL without credentials and without a trailing slash, path prefix kept (`http://h:5000/mlflow`). */
  baseUrl: string;
  /** Headers to send with every request (Authorization when configured). */
  headers: Record<string, string>;
  /** TLS options for undici's connector (empty for http). */
  tls: { rejectUnauthorized?: boolean; ca?: string; cert?: string; key?: string };
  /** Replaces every known secret in `text` with `***`. */
  redact: (text: string) => string;
}

/** True for the spellings of "true" MLflow accepts for boolean variables. */
function truthy(v: string | undefined): boolean {
  return v !== undefined && ['true', '1', 'yes'].includes(v.trim().toLowerCase());
}

/**
 * Parses `uri` (http or https) and the auth/TLS variables of `env`.
 * @throws PipelineError PIPE_TRACKING (exit 2) for a malformed URI, both
 *   MLFLOW_TRACKING_INSECURE_TLS and MLFLOW_TRACKING_SERVER_CERT_PATH set, or an unreadable
 *   certificate file.
 */
export function connectionFromEnv(uri: string, env: NodeJS.ProcessEnv = process.env): Connection {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new PipelineError('PIPE_TRACKING', `MLFLOW_TRACKING_URI is not a valid URL: '${stripCredentials(uri)}'`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new PipelineError('PIPE_TRACKING', `MLFLOW_TRACKING_URI must be http(s):// here, got ${url.protocol}`);
  const secrets: string[] = [];
  const user = env['MLFLOW_TRACKING_USERNAME'] || decodeURIComponent(url.username);
  const pass = env['MLFLOW_TRACKING_USERNAME'] ? (env['MLFLOW_TRACKING_PASSWORD'] ?? '') : decodeURIComponent(url.password);
  const token = env['MLFLOW_TRACKING_TOKEN'];
  const headers: Record<string, string> = {};
  if (user) {
    const basic = Buffer.from(`${user}:${pass}`).toString('base64');
    headers['authorization'] = `Basic ${basic}`;
    secrets.push(pass, basic);
  } else if (token) {
    headers['authorization'] = `Bearer ${token}`;
    secrets.push(token);
  }
  const insecure = truthy(env['MLFLOW_TRACKING_INSECURE_TLS']);
  const caPath = env['MLFLOW_TRACKING_SERVER_CERT_PATH'];
  if (insecure && caPath) {
    throw new PipelineError('PIPE_TRACKING', 'MLFLOW_TRACKING_INSECURE_TLS and MLFLOW_TRACKING_SERVER_CERT_PATH are both set: they contradict each other (skip certificate checks vs. check against this CA bundle); unset one of them');
  }
  const tls: Connection['tls'] = {};
  if (insecure) tls.rejectUnauthorized = false;
  if (caPath) tls.ca = readPem(caPath, 'MLFLOW_TRACKING_SERVER_CERT_PATH');
  const clientCert = env['MLFLOW_TRACKING_CLIENT_CERT_PATH'];
  if (clientCert) {
    const pem = readPem(clientCert, 'MLFLOW_TRACKING_CLIENT_CERT_PATH');
    tls.cert = pem;
    tls.key = pem;
  }
  url.username = '';
  url.password = '';
  const clean = secrets.filter((s) => s.length >= 4);
  return {
    baseUrl: `${url.origin}${url.pathname.replace(/\/+$/, '')}`,
    headers,
    tls,
    redact: (text) => clean.reduce((t, s) => t.split(s).join('***'), text),
  };
}

/** `uri` without `user:password@`, for messages. */
export function stripCredentials(uri: string): string {
  return uri.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1');
}

function readPem(path: string, variable: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new PipelineError('PIPE_TRACKING', `${variable}: cannot read '${path}' (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
}
