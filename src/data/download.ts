/**
 * Downloads one file into the cache: resumed with an HTTP Range request after an interruption,
 * written to `<dest>.part`, checksummed, and renamed to `dest` only when the checksum matches.
 * A mismatch deletes the partial file (nothing bad is kept) and never touches a good `dest`.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Expected digest of the downloaded bytes (hex). */
export interface Checksum {
  algorithm: 'md5' | 'sha256';
  hex: string;
}

/** Progress of one download, in bytes. */
export interface DownloadProgress {
  url: string;
  received: number;
  /** Total size when the server says it, else undefined. */
  total: number | undefined;
  /** Bytes already on disk when this request started (a resumed download), for rates. */
  resumedFrom: number;
}

/** A download failed; the message names the URL and what to do. */
export class DownloadError extends Error {}

/** Digest of a file on disk (hex). */
export async function fileDigest(path: string, algorithm: Checksum['algorithm']): Promise<string> {
  const h = createHash(algorithm);
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

/**
 * Fetches `url` to `dest` (resume, checksum, atomic rename). A `dest` that already exists is
 * trusted only if its checksum matches; otherwise it is downloaded again.
 * @param maxAttempts connection attempts, each resuming where the last stopped. @defaultValue 4
 * @throws DownloadError on HTTP errors, network errors after every attempt, or a checksum mismatch.
 */
export async function download(
  url: string,
  dest: string,
  opts: { checksum?: Checksum; onProgress?: (p: DownloadProgress) => void; signal?: AbortSignal; maxAttempts?: number; timeoutMs?: number } = {},
): Promise<void> {
  const { checksum } = opts;
  if ((await sizeOf(dest)) > 0 && (!checksum || (await fileDigest(dest, checksum.algorithm)) === checksum.hex)) return;
  await mkdir(dirname(dest), { recursive: true });
  const part = `${dest}.part`;
  let lastError: unknown;
  for (let attempt = 0; attempt < (opts.maxAttempts ?? 4); attempt++) {
    try {
      if (await fetchOnce(url, part, opts)) {
        lastError = undefined;
        break;
      }
    } catch (e) {
      if (e instanceof DownloadError || opts.signal?.aborted) throw e;
      lastError = e;
    }
  }
  if (lastError !== undefined) {
    // Claim a partial file only when there is one (a refused connection leaves none).
    const kept = await sizeOf(part);
    const note = kept > 0 ? ` (partial data kept in ${part}, ${kept} bytes; the next run resumes it)` : '';
    throw new DownloadError(`download of ${url} failed: ${(lastError as Error).message ?? String(lastError)}${note}`);
  }
  if (checksum) {
    const got = await fileDigest(part, checksum.algorithm);
    if (got !== checksum.hex) {
      await rm(part, { force: true });
      throw new DownloadError(`checksum mismatch for ${url}: expected ${checksum.algorithm} ${checksum.hex}, got ${got}; the bad file was deleted`);
    }
  }
  await rename(part, dest);
}

/** One HTTP exchange; returns true when the file is complete. */
async function fetchOnce(
  url: string,
  part: string,
  opts: { onProgress?: (p: DownloadProgress) => void; signal?: AbortSignal; timeoutMs?: number },
): Promise<boolean> {
  const have = await sizeOf(part);
  const { getGlobalDispatcher, interceptors, request } = await import('undici'); // loaded on first use: `pipe validate` needs no HTTP stack
  const res = await request(url, {
    method: 'GET',
    headers: have > 0 ? { range: `bytes=${have}-` } : {},
    signal: opts.signal,
    headersTimeout: opts.timeoutMs ?? 30_000,
    bodyTimeout: opts.timeoutMs ?? 30_000,
    // NOTE: undici 7 rejects a `maxRedirections` request option ("use the redirect interceptor").
    dispatcher: getGlobalDispatcher().compose(interceptors.redirect({ maxRedirections: 5 })),
  });
  if (res.statusCode === 416 && have > 0) {
    await res.body.dump();
    return true; // the part file already holds everything
  }
  if (res.statusCode !== 200 && res.statusCode !== 206) {
    await res.body.dump();
    throw new DownloadError(`GET ${url} answered HTTP ${res.statusCode}`);
  }
  const resumed = res.statusCode === 206;
  const length = Number(res.headers['content-length'] ?? NaN);
  const total = Number.isFinite(length) ? length + (resumed ? have : 0) : undefined;
  const fh = await open(part, resumed ? 'a' : 'w');
  let received = resumed ? have : 0;
  try {
    for await (const chunk of res.body) {
      await fh.write(chunk as Buffer);
      received += (chunk as Buffer).length;
      opts.onProgress?.({ url, received, total, resumedFrom: resumed ? have : 0 });
    }
  } finally {
    await fh.close();
  }
  if (total !== undefined && received < total) throw new Error(`connection closed after ${received} of ${total} bytes`);
  return true;
}
