/**
 * Test helpers. `runCli` writes an inline file tree to a temporary folder, runs the real CLI
 * there (a child process), and returns its output with ANSI codes stripped and the temporary
 * path shown as `<root>`. Anchor: Vitest `runInlineTests`, DVC `tmp_dir.gen`.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is dist/test/utils.js). */
export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Result of one CLI run. */
export interface CliResult {
  stdout: string;
  stderr: string;
  exitCode: number | null;
  root: string;
}

const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

/** Writes `files` (path -> content) under a new temporary folder and returns it. */
export function makeTree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'pipe-test-'));
  for (const [p, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, p)), { recursive: true });
    writeFileSync(join(root, p), content);
  }
  return root;
}

/** Runs `pipe <args>` in a fresh tree; runs/ lands inside it. */
export function runCli(files: Record<string, string>, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const root = makeTree(files);
  return runCliIn(root, args, env);
}

/** Runs `pipe <args>` with `root` as the working directory. */
export function runCliIn(root: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(REPO, 'bin', 'pipe.js'), ...args], {
      cwd: root,
      env: { ...process.env, MLFLOW_TRACKING_URI: '', PIPE_RUNS_DIR: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (exitCode) => {
      const clean = (s: string): string => s.replace(ANSI, '').split(root).join('<root>');
      resolve({ stdout: clean(stdout), stderr: clean(stderr), exitCode, root });
    });
  });
}
