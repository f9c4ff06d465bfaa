/**
 * `pipe sync RUN_DIR`: sends what a run could not deliver to its MLflow server (the run
 * directory's tracking spool), in order, and says what happened. Exit codes: 0 everything is on
 * the server (or nothing was left), 1 records remain (the server is still unreachable or refused
 * one), 2 bad usage (no such folder, not a spool, spool in use by a running process).
 *
 * `pipe sync --all --to URL`: copies the local MLflow store (runs/mlruns, or the local store
 * MLFLOW_TRACKING_URI names, or `--from DIR`) into the MLflow server at URL (src/tracking/rest/copy.ts);
 * rerunning it copies only what is not there yet. Exit codes: 0 done, 1 the server failed, 2 bad usage.
 */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PipelineError } from '../errors.js';
import { runsDir } from '../paths.js';
import { copyStore } from '../tracking/rest/copy.js';
import { MlflowError } from '../tracking/rest/errors.js';
import { isServerUri, resolveStore } from '../tracking/uri.js';
import { syncSpool, type SyncOptions } from '../tracking/rest/replay.js';
import { Spool } from '../tracking/rest/spool.js';

/**
 * Runs `pipe sync` on `runDir`; resolves to the exit code. Messages go to stdout/stderr.
 * @param opts client settings (tests shorten the retry policy); warnings go to stderr by default.
 */
export async function cmdSync(runDir: string, opts: SyncOptions = {}): Promise<number> {
  const dir = resolve(runDir);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    process.stderr.write(`pipe: sync: '${runDir}' is not a folder; give a run folder such as runs/<run-id>\n`);
    return 2;
  }
  const spool = new Spool(dir);
  // After the spool (its records come first), a run whose process is gone without ending it is marked KILLED.
  const closeIfDead = async (): Promise<void> => {
    for (const line of await (await import('../runner/liveness.js')).closeDeadRuns([dir])) process.stderr.write(`pipe: sync: ${line}\n`);
  };
  if (!(await spool.exists())) {
    await closeIfDead();
    process.stdout.write(`pipe: sync: nothing to send: '${runDir}' has no MLflow tracking spool (${spool.paths.log})\n`);
    return 0;
  }
  try {
    const r = await syncSpool(dir, { onWarning: (m) => void process.stderr.write(`pipe: warning: ${m}\n`), ...opts });
    if (r.remaining === 0) await closeIfDead();
    if (r.remaining === 0 && r.replayed === 0 && r.rejected === 0) {
      process.stdout.write(`pipe: sync: nothing to send: every record in ${spool.paths.log} is already on ${r.uri}\n`);
      return 0;
    }
    if (r.remaining === 0) {
      const rejected = r.rejected ? `, ${r.rejected} rejected by the server (see warnings)` : '';
      process.stdout.write(`pipe: sync: ${r.replayed} tracking records sent to ${r.uri}${rejected}; nothing left in the spool\n`);
      return r.rejected ? 1 : 0;
    }
    process.stderr.write(`pipe: sync: ${r.replayed} records sent, ${r.remaining} still waiting in ${spool.paths.log}: ${r.stoppedBy?.message ?? 'the server did not answer'}\n`);
    return 1;
  } catch (e) {
    if (e instanceof PipelineError) {
      process.stderr.write(`pipe: sync: ${e.message}\n`);
      return e.exitCode;
    }
    process.stderr.write(`pipe: sync: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

/**
 * `pipe sync --all --to URL [--from STORE]`; resolves to the exit code.
 * @param opts client settings (tests); progress lines go to stdout, warnings to stderr.
 */
export async function cmdSyncAll(to: string | undefined, from: string | undefined, opts: SyncOptions = {}): Promise<number> {
  if (to === undefined || !isServerUri(to)) {
    process.stderr.write(`pipe: sync --all: --to ${to ?? '(missing)'}: give the MLflow server's http(s) address, e.g. --to http://127.0.0.1:5000\n`);
    return 2;
  }
  const env = process.env['MLFLOW_TRACKING_URI'] || undefined;
  let store: string;
  try {
    store = from !== undefined ? resolve(from) : resolveStore(isServerUri(env) ? undefined : env, runsDir());
  } catch (e) {
    process.stderr.write(`pipe: sync --all: ${(e as Error).message}\n`);
    return 2;
  }
  if (!existsSync(join(store, '0')) && !existsSync(join(store, '.trash'))) {
    process.stderr.write(`pipe: sync --all: '${store}' is not an MLflow file store (no runs were tracked there); give one with --from DIR\n`);
    return 2;
  }
  try {
    const r = await copyStore(store, to, {
      ...(opts.client ? { client: opts.client } : {}),
      onProgress: (line) => void process.stdout.write(`pipe: sync: ${line}\n`),
      onWarning: opts.onWarning ?? ((m) => void process.stderr.write(`pipe: warning: ${m}\n`)),
    });
    const redone = r.redone ? ` (${r.redone} cut-short copies made again)` : '';
    process.stdout.write(`pipe: sync: ${r.copied} runs copied${redone}, ${r.skipped} already there, ${r.artifacts} artifact files uploaded: ${store} -> ${to}\n`);
    return 0;
  } catch (e) {
    if (!(e instanceof MlflowError || e instanceof PipelineError)) throw e;
    process.stderr.write(`pipe: sync --all: ${e.message} (what was copied stays; run the command again to finish)\n`);
    return e instanceof MlflowError ? 1 : e.exitCode;
  }
}
