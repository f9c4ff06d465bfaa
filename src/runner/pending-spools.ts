/**
 * Replays, at the start of a run that logs to a tracking server, the MLflow spools that earlier
 * runs left behind (records kept while the server was unreachable), so an outage is healed by
 * the next `pipe` command as well as by `pipe sync`. Best effort: a server that still does not
 * answer leaves the spool for later, with one line saying so.
 */
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { syncSpool } from '../tracking/rest/replay.js';
import { Spool } from '../tracking/rest/spool.js';

/** Run folders under `runsDir` whose spool still holds records not yet applied. */
export async function pendingSpools(runsDir: string): Promise<string[]> {
  const names = existsSync(runsDir) ? await readdir(runsDir) : [];
  const out: string[] = [];
  for (const n of names) {
    const dir = join(runsDir, n);
    const spool = new Spool(dir);
    if (!existsSync(spool.paths.log)) continue;
    const [records, state] = await Promise.all([spool.records(), spool.state()]);
    if (records.length > state.applied) out.push(dir);
  }
  return out;
}

/**
 * Tries each pending spool once, with short timeouts and no retries.
 * @returns one line per spool for the user.
 */
export async function replayPendingSpools(runsDir: string): Promise<string[]> {
  const lines: string[] = [];
  for (const dir of await pendingSpools(runsDir)) {
    try {
      const r = await syncSpool(dir, { client: { timeoutMs: 5_000, retry: { maxRetries: 0, baseDelayMs: 0, maxDelayMs: 0, jitterMs: 0, maxRetryAfterMs: 0 } } });
      lines.push(r.remaining === 0 ? `replayed ${r.replayed} spooled MLflow records of ${dir}` : `${r.remaining} spooled MLflow records of ${dir} still wait for the server (pipe sync ${dir})`);
    } catch (e) {
      lines.push(`spooled MLflow records of ${dir} not replayed: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  return lines;
}
