/**
 * Entry point of a queued trial's process: `node trial-entry.js _trial FILE ...` (as `pipe
 * _trial`), with one addition: when its stdin closes (the worker that started it died, even by
 * kill -9, so the pipe's write end is gone) the trial interrupts itself like Ctrl-C, so its
 * MLflow run ends KILLED instead of running on as an orphan that nobody waits for.
 */
import { main } from './main.js';

process.stdin.on('end', () => process.kill(process.pid, 'SIGINT'));
process.stdin.on('error', () => process.kill(process.pid, 'SIGINT'));
process.stdin.resume();
const code = await main(process.argv.slice(2));
process.exit(code);
