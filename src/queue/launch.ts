/**
 * Starts one queued trial in its own process (src/cli/trial-entry.ts: `pipe _trial` that stops
 * when the worker dies) and collects its output lines; see src/sweep/trial-process.ts for the
 * arguments (trialArgs) and why each trial gets a process.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runsDir } from '../paths.js';
import { trialArgs, type TrialExit, type TrialLaunch } from '../sweep/trial-process.js';

const ENTRY = join(dirname(fileURLToPath(import.meta.url)), '..', 'cli', 'trial-entry.js');

/** A started queued trial. */
export interface QueuedTrial {
  readonly done: Promise<TrialExit>;
  /** SIGINT: the trial stops after its batch and its run ends KILLED. */
  interrupt(): void;
}

/** Starts the trial in the current folder with the same runs folder; its output goes to `l.logPath`. */
export function launchQueuedTrial(l: TrialLaunch): QueuedTrial {
  mkdirSync(dirname(l.logPath), { recursive: true });
  const log = createWriteStream(l.logPath, { flags: 'a' });
  const child = spawn(process.execPath, [ENTRY, ...trialArgs(l)], { env: { ...process.env, PIPE_RUNS_DIR: runsDir() }, stdio: ['pipe', 'pipe', 'pipe'] });
  let lastError: string | undefined;
  let rest = '';
  child.stdout.on('data', (d: Buffer) => log.write(d));
  child.stderr.on('data', (d: Buffer) => {
    log.write(d);
    const parts = (rest + d.toString()).split('\n');
    rest = parts.pop() ?? '';
    for (const line of parts) if (line.startsWith('pipe: ') && !line.startsWith('pipe: warning')) lastError = line.slice(6);
  });
  const done = new Promise<TrialExit>((resolve) => {
    child.on('error', (e) => (lastError = `cannot start the trial process: ${e.message}`));
    child.on('close', (code, signal) => {
      log.end();
      if (code === 0) resolve({ status: 'finished' });
      else if (code === 130 || signal === 'SIGINT' || signal === 'SIGTERM') resolve({ status: 'killed' });
      else resolve({ status: 'failed', error: lastError ?? (signal ? `killed by ${signal}` : `exit code ${code}`) });
    });
  });
  return { done, interrupt: () => void (child.exitCode === null && child.signalCode === null && child.kill('SIGINT')) };
}
