/**
 * The one place that reads MLFLOW_TRACKING_URI: whether it names an MLflow tracking server or a
 * local file store, and where. Light (no HTTP client), so CLI commands can import it eagerly.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PipelineError } from '../errors.js';
import { stripCredentials } from './rest/auth.js';

/** True when `uri` (a tracking URI or a resolved store, see resolveStore) names an MLflow server (http or https). */
export function isServerUri(uri: string | undefined): boolean {
  return uri !== undefined && /^https?:\/\//i.test(uri);
}

/**
 * Resolves MLFLOW_TRACKING_URI as MLflow's clients do: unset -> `<runsDir>/mlruns`; `file:` URI or
 * a plain path -> a local file store there; http(s) -> the server (returned without credentials).
 * @throws PipelineError PIPE_TRACKING for database URIs (they need an MLflow server).
 */
export function resolveStore(uri: string | undefined, runsDir: string): string {
  if (!uri) return resolve(runsDir, 'mlruns');
  if (uri.startsWith('file:')) return fileURLToPath(uri.startsWith('file://') ? uri : `file://${resolve(uri.slice(5))}`);
  if (/^(sqlite|postgresql|mysql|mssql)(\+\w+)?:/.test(uri)) {
    throw new PipelineError('PIPE_TRACKING', `MLFLOW_TRACKING_URI '${uri.split(':')[0]}:...' is a database: run \`mlflow server --backend-store-uri <that URI>\` and point MLFLOW_TRACKING_URI at the server's http:// address`);
  }
  if (isServerUri(uri)) return stripCredentials(uri);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(uri)) throw new PipelineError('PIPE_TRACKING', `MLFLOW_TRACKING_URI scheme '${uri.split(':')[0]}' is not supported`);
  return resolve(uri);
}
