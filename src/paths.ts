/** Where pipe's own files and its caches live. */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root: the nearest folder above this module holding schemas/pipeline.schema.json. */
export const PACKAGE_ROOT: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'schemas', 'pipeline.schema.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('pipe: cannot find its schemas/ folder (broken installation)');
    dir = up;
  }
})();

/**
 * The shared download cache: $PIPE_CACHE, else $XDG_CACHE_HOME/pipe, else ~/.cache/pipe
 * (XDG Base Directory Specification).
 */
export function cacheDir(override?: string): string {
  if (override) return resolve(override);
  if (process.env['PIPE_CACHE']) return resolve(process.env['PIPE_CACHE']);
  const xdg = process.env['XDG_CACHE_HOME'];
  return join(xdg ? resolve(xdg) : join(homedir(), '.cache'), 'pipe');
}

/** The runs folder (run directories and the default MLflow store): $PIPE_RUNS_DIR or ./runs. */
export function runsDir(): string {
  return resolve(process.env['PIPE_RUNS_DIR'] || 'runs');
}
