/**
 * Safe tar extraction with node-tar (https://github.com/isaacs/node-tar): every entry must stay
 * inside the target folder. An absolute path, a `..` segment or a link (symbolic or hard) is
 * refused: nothing is written for it, the target folder is removed, and the error names the
 * entry. (node-tar's own default, preservePaths: false, also strips such paths; the explicit
 * check turns a silent strip into an error.) gzip is detected by node-tar.
 */
import { mkdir, rm } from 'node:fs/promises';
import { DatasetError } from './dataset.js';

/** Why an entry path is refused, or '' when it is safe. */
export function unsafeEntry(path: string, type: string): string {
  const p = path.replace(/\\/g, '/');
  if (p.startsWith('/') || /^[A-Za-z]:/.test(p)) return 'an absolute path';
  if (p.split('/').includes('..')) return "a '..' segment that would escape the target folder";
  if (type === 'SymbolicLink' || type === 'Link') return 'a link';
  return '';
}

/**
 * Extracts `archive` (.tar or .tar.gz) into `target` (created).
 * @param what the dataset name, for messages
 * @throws DatasetError naming the archive and the first refused entry, or the read error.
 */
export async function extractTar(archive: string, target: string, what: string): Promise<void> {
  await mkdir(target, { recursive: true });
  const refused: string[] = [];
  try {
    const { extract } = await import('tar'); // loaded on first use
    await extract({
      file: archive,
      cwd: target,
      strict: true,
      filter: (path, entry) => {
        const why = unsafeEntry(path, 'type' in entry ? String(entry.type) : 'File');
        if (why) refused.push(`'${path}' (${why})`);
        return !why;
      },
    });
  } catch (e) {
    await rm(target, { recursive: true, force: true });
    throw new DatasetError(`${what}: cannot extract ${archive}: ${(e as Error).message}; the archive is damaged: delete it (it is downloaded again) or replace it`);
  }
  if (refused.length > 0) {
    await rm(target, { recursive: true, force: true });
    throw new DatasetError(`${what}: refusing to extract ${archive}: entry ${refused[0]}${refused.length > 1 ? ` and ${refused.length - 1} more` : ''}; the archive is not a genuine copy: delete it and download it again`);
  }
}
