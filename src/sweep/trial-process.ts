/**
 * Runs one sweep trial as a child process, `pipe _trial FILE --set ... --run-id ID ...`: each
 * trial gets a fresh process, so one trial's memory (its peak RSS is a compared figure), a crash
 * or an out-of-memory kill cannot touch the others or the sweep. The child gets its own process
 * group, so a Ctrl-C in the terminal reaches only the sweep, which forwards it exactly once
 * (a second SIGINT would make the trial quit without closing its MLflow run).
 */
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PACKAGE_ROOT, runsDir } from '../paths.js';

/** How to start one trial. */
export interface TrialLaunch {
  file: string;
  /** `--set` expressions: the sweep's own, then the trial's. */
  sets: string[];
  runId: string;
  /** MLflow run name (the trial name). */
  name: string;
  /** Continue the existing run folder runs/<runId> (`--resume`). */
  resume: boolean;
  tags: Record<string, string>;
  force?: boolean;
  from?: string;
  jobs?: number;
  /** Everything the child prints goes here too. */
  logPath: string;
  /** Each complete output line, as it comes. */
  onLine?: (line: string) => void;
}

/** How a trial process ended. */
export interface TrialExit {
  status: 'finished' | 'failed' | 'killed';
  /** The child's last `pipe: ...` error line (without `pipe: `), for failed trials. */
  error?: string;
}

/** A started trial. */
export interface TrialProcess {
  readonly done: Promise<TrialExit>;
  /** The trial process's id (undefined when it could not start). */
  readonly pid: number | undefined;
  /**
   * Asks the trial to stop after its current batch; its run ends KILLED. Untied trials get one
   * SIGINT; tied ones get their stdin closed (src/cli/trial-entry.ts), which never adds up with
   * a signal the trial got directly (a SIGTERM to the whole process group) to a "quit now".
   */
  interrupt(): void;
}

/** The child's arguments after `node bin/pipe.js`. */
export function trialArgs(l: TrialLaunch): string[] {
  return [
    '_trial', l.file, '--plain', '--run-id', l.runId, '--run-name', l.name,
    ...l.sets.flatMap((s) => ['--set', s]),
    ...Object.entries(l.tags).flatMap(([k, v]) => ['--tag', `${k}=${v}`]),
    ...(l.resume ? ['--resume'] : []),
    ...(l.force ? ['--force'] : []),
    ...(l.from !== undefined ? ['--from', l.from] : []),
    ...(l.jobs !== undefined ? ['--jobs', String(l.jobs)] : []),
  ];
}

/** How the trial process is tied to this one. */
export interface LaunchMode {
  /** The script node runs. @defaultValue `<package>/bin/pipe.js` */
  script?: string;
  /**
   * Sweep trials (false): own process group, so a terminal's Ctrl-C reaches only the sweep,
   * which forwards it once. Queued trials (true, with src/cli/trial-entry.ts): same group, and
   * the child's stdin is a pipe from this process, which the child reads as "stop" when it
   * closes (this process died, even by kill -9).
   */
  tied?: boolean;
}

/**
 * Starts `node <script> _trial ...` in the current folder, with the same runs folder: the one
 * launcher of trial processes (sweeps and queue workers).
 */
export function launchTrial(l: TrialLaunch, mode: LaunchMode = {}): TrialProcess {
  mkdirSync(dirname(l.logPath), { recursive: true });
  const log = createWriteStream(l.logPath, { flags: 'a' });
  const child = spawn(process.execPath, [mode.script ?? join(PACKAGE_ROOT, 'bin', 'pipe.js'), ...trialArgs(l)], {
    env: { ...process.env, PIPE_RUNS_DIR: runsDir() },
    stdio: [mode.tied ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    detached: !mode.tied,
  });
  let lastError: string | undefined;
  const lines = (chunkStream: NodeJS.ReadableStream, isErr: boolean): void => {
    let rest = '';
    chunkStream.on('data', (d: Buffer) => {
      log.write(d);
      const parts = (rest + d.toString()).split('\n');
      rest = parts.pop() ?? '';
      for (const line of parts) {
        if (isErr && line.startsWith('pipe: ') && !line.startsWith('pipe: warning')) lastError = line.slice(6);
        l.onLine?.(line);
      }
    });
    chunkStream.on('end', () => {
      if (rest) l.onLine?.(rest);
    });
  };
  lines(child.stdout!, false);
  lines(child.stderr!, true);
  const done = new Promise<TrialExit>((resolve) => {
    child.on('error', (e) => {
      lastError = `cannot start the trial process: ${e.message}`;
    });
    child.on('close', (code, signal) => {
      log.end();
      if (code === 0) resolve({ status: 'finished' });
      else if (code === 130 || signal === 'SIGINT' || signal === 'SIGTERM') resolve({ status: 'killed' });
      else resolve({ status: 'failed', error: lastError ?? (signal ? `killed by ${signal}` : `exit code ${code}`) });
    });
  });
  child.stdin?.on('error', () => undefined); // a tied trial that exited first: nothing left to stop
  return {
    done,
    pid: child.pid,
    interrupt: () => {
      if (mode.tied) child.stdin!.end();
      else if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
    },
  };
}
