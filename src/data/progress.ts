/** Download progress lines: bytes so far, total, rate and ETA. */

const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`;

/**
 * Formats one progress line, e.g. `cifar-10-binary.tar.gz: 12.0 MB / 170.1 MB (7%) at 4.0 MB/s, ETA 40s`.
 * @param received bytes so far
 * @param total bytes in all, when known
 * @param seconds time since the transfer started, s
 * @param resumedFrom bytes already on disk when this transfer started (not counted in the rate)
 */
export function formatProgress(name: string, received: number, total: number | undefined, seconds: number, resumedFrom = 0): string {
  const rate = (received - resumedFrom) / Math.max(1e-3, seconds);
  let line = `${name}: ${mb(received)}`;
  if (total !== undefined && total > 0) line += ` / ${mb(total)} (${Math.floor((100 * received) / total)}%)`;
  line += ` at ${mb(rate)}/s`;
  if (total !== undefined && total > received && rate > 0) line += `, ETA ${formatSeconds((total - received) / rate)}`;
  return line;
}

/** 75 -> "1m15s", 4000 -> "1h06m", 9.2 -> "10s" (rounded up). */
export function formatSeconds(s: number): string {
  const t = Math.ceil(s);
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s`;
  return `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * A DownloadProgress handler that emits a formatted line at most every `intervalMs` (and always
 * for the last chunk), timing each URL from its first callback.
 * @defaultValue intervalMs 250
 */
export function progressLines(emit: (line: string) => void, intervalMs = 250): (p: { url: string; received: number; total: number | undefined; resumedFrom: number }) => void {
  const started = new Map<string, number>();
  let last = 0;
  return ({ url, received, total, resumedFrom }) => {
    const now = performance.now();
    const key = `${url}@${resumedFrom}`;
    if (!started.has(key)) started.set(key, now);
    if (now - last < intervalMs && received !== total) return;
    last = now;
    emit(formatProgress(url.split('/').pop() ?? url, received, total, (now - started.get(key)!) / 1000, resumedFrom));
  };
}
