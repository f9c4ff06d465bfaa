/**
 * Durable file writes: every file pipe must not lose or tear (checkpoints, lock.json, the local
 * MLflow store's meta.yaml) is written with write-file-atomic (a temporary file beside it,
 * fsynced, renamed over the target; the temporary file is removed when anything fails), so a
 * kill or a power loss leaves the old or the new content, never half of one, and a full disk
 * leaves no temporary file behind. Errors carry the path they were about (Node's `write`
 * errors do not), so the CLI can name it.
 */
import { closeSync, constants, fstatSync, fsyncSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import writeFileAtomic from 'write-file-atomic';

/** Error codes that mean the file system is full or failing, not that pipe has a bug. */
export const DISK_ERRORS: ReadonlySet<string> = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EROFS', 'EFBIG']);

/** True for an ENOSPC / EDQUOT / EIO / EROFS / EFBIG error. */
export function isDiskError(e: unknown): e is NodeJS.ErrnoException {
  return e instanceof Error && DISK_ERRORS.has(String((e as NodeJS.ErrnoException).code));
}

/** Sets `e.path` to `path` when the error does not name one; returns `e`. */
export function withPath(e: unknown, path: string): unknown {
  if (e instanceof Error && (e as NodeJS.ErrnoException).code !== undefined && (e as NodeJS.ErrnoException).path === undefined) {
    (e as NodeJS.ErrnoException).path = path;
  }
  return e;
}

/** Options of writeDurable. */
export interface DurableOptions {
  /**
   * When the disk is full (ENOSPC/EDQUOT) and `path` exists, overwrite it in place instead
   * (no new blocks are needed for a small file that does not grow past its last block). Only for
   * small status files that must record a failure on the very disk that is full (meta.yaml,
   * lock.json): in place is not atomic, so it is the last resort. @defaultValue false
   */
  inPlaceWhenFull?: boolean;
}

/**
 * Writes `data` to `path` atomically and durably (temporary file, fsync, rename).
 * @throws the file-system error, with `path` set; no temporary file is left behind.
 */
export async function writeDurable(path: string, data: string | Uint8Array, opts: DurableOptions = {}): Promise<void> {
  try {
    await writeFileAtomic(path, typeof data === 'string' ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (opts.inPlaceWhenFull && (code === 'ENOSPC' || code === 'EDQUOT')) {
      try {
        writeInPlaceSync(path, data);
        return;
      } catch {
        // fall through to the first error: it says why
      }
    }
    throw withPath(e, path);
  }
}

/** Overwrites the existing file `path` in place (no truncation before the write), then trims and fsyncs it. */
function writeInPlaceSync(path: string, data: string | Uint8Array): void {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  const fd = openSync(path, constants.O_WRONLY); // not O_CREAT: only an existing file has blocks to reuse
  try {
    // Past the blocks the file already has, the write could stop half way: refuse before writing.
    if (buf.length > fstatSync(fd).blocks * 512) throw new Error(`${path}: no room to rewrite in place`);
    writeSync(fd, buf, 0, buf.length, 0);
    ftruncateSync(fd, buf.length);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
