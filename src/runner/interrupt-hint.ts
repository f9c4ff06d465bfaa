/**
 * The command that continues an unfinished run, as printed after Ctrl-C, a full disk, and by
 * `pipe runs` for a run whose process died. It repeats the run's own `--set` overrides (a sweep
 * trial's include its trial assignments), because `--resume` refuses a config that differs from
 * the one the run started with, and names the run id, so that another unfinished run of the same
 * file (another sweep trial, say) is not picked instead. Every word is quoted for a POSIX shell
 * where needed, so the line can be pasted as is.
 */

/** Characters a POSIX shell word may hold unquoted (no globbing, expansion or splitting). */
const PLAIN = /^[A-Za-z0-9_@%+=:,./-]+$/;

/**
 * `word` quoted for a POSIX shell (sh, bash, zsh): unchanged when it holds only safe characters,
 * else in single quotes, with each `'` written as `'\''`. The empty word is `''`.
 */
export function shellQuote(word: string): string {
  if (PLAIN.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * `pipe run FILE [--set EXPR]... --resume RUN_ID`, each word shell-quoted.
 * @param file the pipeline file as the run was given it (relative to the working directory then).
 * @param sets the run's `--set` expressions (`path=value`), in the order given; a sweep trial's
 *   are the sweep's `--set`s followed by the trial's assignments.
 * @param runId the run folder's id under runs/.
 */
export function resumeCommand(file: string, sets: readonly string[], runId: string): string {
  return ['pipe', 'run', file, ...sets.flatMap((s) => ['--set', s]), '--resume', runId].map(shellQuote).join(' ');
}
