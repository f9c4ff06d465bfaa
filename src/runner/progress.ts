/**
 * Throttles stage progress lines: on a terminal at most ~8 updates/s (listr2 redraws in place);
 * otherwise (CI logs) one line every `plainIntervalMs`, plus every line that ends an epoch or a
 * stage, so logs stay readable.
 */
export class ProgressThrottle {
  private last = 0;

  constructor(
    private readonly tty: boolean,
    private readonly plainIntervalMs = 15_000,
  ) {}

  /** True when `text` should be shown now. */
  shouldShow(text: string, important: boolean): boolean {
    const now = Date.now();
    const gap = this.tty ? 120 : this.plainIntervalMs;
    if (important || now - this.last >= gap) {
      this.last = now;
      return true;
    }
    return false;
  }
}

/** Lines worth showing even when throttled: epoch summaries and stage summaries. */
export function isImportant(text: string): boolean {
  return /^epoch \d+:|^(freeze|unfreeze):|test accuracy|wrote|parameters|images from|train batches/.test(text);
}
