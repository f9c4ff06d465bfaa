/**
 * Ctrl-C and SIGTERM for a command: the first signal aborts the command's AbortSignal (the run
 * stops after the current batch and ends KILLED; a sweep forwards it to its trials once), a
 * second one quits at once with exit code 130.
 */

/**
 * Installs the handlers for SIGINT and SIGTERM until the returned function is called.
 * @param notice what to print on stderr at the first signal (nothing when it returns undefined).
 */
export function onInterrupt(controller: AbortController, notice: (sig: NodeJS.Signals) => string | undefined = () => undefined): () => void {
  let interrupts = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    // The second one quits now, but first marks this process's runs KILLED with an end time (at most 3 s).
    if (++interrupts > 1) return void import('../runner/failure.js').then((f) => f.closeActiveRuns()).finally(() => process.exit(130));
    const text = notice(sig);
    if (text !== undefined) process.stderr.write(text);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}
