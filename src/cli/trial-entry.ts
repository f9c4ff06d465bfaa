/**
 * Entry point of a queued trial's process: `node trial-entry.js _trial FILE ...` (as `pipe
 * _trial`), plus how its worker stops it. The worker never signals the trial: it closes the
 * trial's stdin. The trial then interrupts itself like Ctrl-C (it stops after its batch and its
 * MLflow run ends KILLED), unless a signal already did that, so that a SIGTERM sent to the whole
 * process group (systemd's `systemctl stop`, a terminal's Ctrl-C) and the worker's own stop
 * request count as one request, never as the second, "quit now" one that would leave the run
 * RUNNING. The same self-interrupt happens when the worker dies, even by kill -9: its end of
 * stdin closes, writes to stdout/stderr fail with EPIPE (ignored: nobody reads them any more),
 * or the process is handed to another parent.
 */
import { main } from './main.js';

let stopping = false;
/** Before `pipe _trial` listens for signals (nothing started yet), a stop request ends the process. */
const early = (): boolean => process.listenerCount('SIGINT') <= 1;
const onSignal = (): void => {
  stopping = true;
  if (early()) process.exit(130);
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

/** Interrupts the trial once, unless a signal already did. */
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  if (early()) process.exit(130);
  process.kill(process.pid, 'SIGINT');
};

process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
for (const stream of [process.stdout, process.stderr]) stream.on('error', stop);
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) stop();
}, 1000).unref();

const code = await main(process.argv.slice(2));
process.exit(code);
