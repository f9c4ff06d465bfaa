/** Git facts for MLflow's source tags (mlflow.source.git.*), read with the git CLI when present. */
import { execFile } from 'node:child_process';
import { dirname } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Commit, branch and dirty flag of the repository holding `path`, or undefined outside git. */
export async function gitInfo(path: string): Promise<{ commit: string; branch: string; dirty: boolean } | undefined> {
  const cwd = dirname(path);
  try {
    const commit = (await run('git', ['rev-parse', 'HEAD'], { cwd })).stdout.trim();
    const branch = (await run('git', ['rev-parse', '--abbrev-ref', 'HEAD'], { cwd })).stdout.trim();
    const dirty = (await run('git', ['status', '--porcelain'], { cwd })).stdout.trim().length > 0;
    return { commit, branch, dirty };
  } catch {
    return undefined;
  }
}
