/**
 * `pipe sync RUN_DIR`: sends what a run could not deliver to its MLflow server (the run
 * directory's tracking spool), in order, and says what happened. Exit codes: 0 everything is on
 * the server (or nothing was left), 1 records remain (the server is still unreachable or refused
 * one), 2 bad usage (no such folder, not a spool, spool in use by a running process).
 */
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { PipelineError } from '../errors.js';
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
  if (!(await spool.exists())) {
    process.stdout.write(`pipe: sync: nothing to send: '${runDir}' has no MLflow tracking spool (${spool.paths.log})\n`);
    return 0;
  }
  try {
    const r = await syncSpool(dir, { onWarning: (m) => void process.stderr.write(`pipe: warning: ${m}\n`), ...opts });
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
