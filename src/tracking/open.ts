/**
 * Opens a tracked run in the store MLFLOW_TRACKING_URI names (see uri.ts): an MLflow tracking
 * server (rest/) or a local file store (file/).
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { FileStoreTracker } from './file/tracker.js';
import { RestTracker } from './rest/tracker.js';
import type { StartOptions, Tracker } from './tracker.js';
import { isServerUri, resolveStore } from './uri.js';

/**
 * Starts a tracked run where MLFLOW_TRACKING_URI (`uri`) points: the local file store by default,
 * an MLflow tracking server over REST for http(s) URIs.
 * @throws PipelineError PIPE_TRACKING for URIs that cannot be used (see resolveStore) and for a
 *   server that refuses the run for good (auth, host check); an unreachable server is not an
 *   error (records go to the run's spool).
 */
export async function openTracker(uri: string | undefined, runsDir: string, opts: StartOptions): Promise<Tracker> {
  if (uri !== undefined && isServerUri(uri)) {
    return RestTracker.start(uri, { ...opts, spoolDir: opts.runDir ?? join(runsDir, 'mlflow-spool', randomBytes(6).toString('hex')) });
  }
  return FileStoreTracker.start(resolveStore(uri, runsDir), opts);
}
