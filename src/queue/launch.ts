/**
 * Starts one queued trial in its own process (src/cli/trial-entry.ts: `pipe _trial` that stops
 * when its stdin closes: the worker asks it to, or the worker died) through the sweep's launcher (src/sweep/trial-process.ts, which says
 * why each trial gets a process).
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchTrial, type TrialLaunch, type TrialProcess } from '../sweep/trial-process.js';

const ENTRY = join(dirname(fileURLToPath(import.meta.url)), '..', 'cli', 'trial-entry.js');

/** Starts the trial in the current folder with the same runs folder; its output goes to `l.logPath`. */
export function launchQueuedTrial(l: TrialLaunch): TrialProcess {
  return launchTrial(l, { script: ENTRY, tied: true });
}
