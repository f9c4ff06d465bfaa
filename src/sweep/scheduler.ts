/**
 * Starts a sweep's trials as child processes, at most `parallel` at once, in trial order, and
 * records each start and end in the sweep state. A trial that would run a cacheable stage that
 * an earlier, unfinished trial is to produce (same stage key, not in the stage cache yet) waits
 * until it is cached, so a stage shared by trials runs once even when they run at once.
 * Fail-fast: after a failed trial the running ones are interrupted and no new one starts, unless
 * `keepGoing`. An aborted signal interrupts the running trials (they end KILLED).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { runsDir } from '../paths.js';
import { readLock, StageIndex } from '../runner/cache.js';
import { isEngineLine } from '../runner/reporters.js';
import { summarizeRun } from './collect.js';
import type { FileStore } from '../tracking/file/store.js';
import type { PlannedTrial } from './prepare.js';
import type { SweepOptions } from './run.js';
import { newRunId, readTrialResult, type TrialRecord } from './state.js';
import { launchTrial, type TrialExit, type TrialProcess } from './trial-process.js';

/**
 * Earlier trials, still pending or running, that are to produce a stage `t` would run and the
 * cache lacks: `t` waits for them. Pure; `active` may include `t` itself.
 */
export function waitsFor(t: { index: number; runKeys: readonly string[] }, active: readonly { index: number; runKeys: readonly string[] }[], cached: ReadonlySet<string>): number[] {
  const need = t.runKeys.filter((k) => !cached.has(k));
  return active.filter((o) => o.index < t.index && o.runKeys.some((k) => need.includes(k))).map((o) => o.index);
}

/**
 * The echo of the trials' output when they run one at a time: each line as `    [<trial>] <line>`,
 * except the engine line every trial prints (`pipe: engine ...`), shown once per sweep (again
 * only when it changes, as in a sweep over `engine.backend`). Each trial's log keeps its own.
 */
export function trialEcho(out: NodeJS.WritableStream): (trial: string, line: string) => void {
  const engines = new Set<string>();
  return (trial, line) => {
    if (isEngineLine(line)) {
      if (engines.has(line)) return;
      engines.add(line);
    }
    out.write(`    [${trial}] ${line}\n`);
  };
}

/** What the scheduler needs from the sweep. */
export interface SchedulerContext {
  file: string;
  opts: SweepOptions & { parallel: number };
  sweepId: string;
  sweepDir: string;
  /** The parent MLflow run (tag `mlflow.parentRunId` of every trial); '' when an MLflow server was unreachable at the start. */
  parentRunId: string;
  trials: PlannedTrial[];
  out: NodeJS.WritableStream;
  headers?: FileStore;
  /** Writes the sweep state (the records passed to run are part of it). */
  save: () => Promise<void>;
}

/** How the trials ended as a whole. */
export type SweepOutcome = 'done' | 'failure' | 'interrupt';

const POLL_MS = 200;
const pct = (v: number | undefined): string => (v === undefined ? '-' : `${(100 * v).toFixed(2)}%`);

/** Runs trials; see the module comment. One instance per sweep run. */
export class TrialScheduler {
  private readonly running = new Map<number, { proc: TrialProcess; done: Promise<void> }>();
  private readonly planned: Map<number, PlannedTrial>;
  private readonly cached = new Set<string>();
  private readonly index = new StageIndex(runsDir());
  private stopping: 'failure' | 'interrupt' | undefined;
  private readonly echo: (trial: string, line: string) => void;

  constructor(private readonly ctx: SchedulerContext) {
    this.planned = new Map(ctx.trials.map((t) => [t.index, t]));
    this.echo = trialEcho(ctx.out);
  }

  /** Runs the `pending` records (in order) to the end; resolves once no trial process is left. */
  async run(pending: TrialRecord[], signal?: AbortSignal): Promise<SweepOutcome> {
    const onAbort = (): void => this.stop('interrupt');
    signal?.addEventListener('abort', onAbort);
    if (signal?.aborted) onAbort();
    try {
      for (;;) {
        if (!this.stopping) await this.startReady(pending);
        if (this.running.size === 0 && (this.stopping || pending.length === 0)) break;
        await Promise.race([...[...this.running.values()].map((r) => r.done), new Promise((r) => setTimeout(r, POLL_MS))]);
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      await Promise.all([...this.running.values()].map((r) => r.done));
    }
    return this.stopping ?? 'done';
  }

  private stop(why: 'failure' | 'interrupt'): void {
    this.stopping ??= why;
    for (const r of this.running.values()) r.proc.interrupt();
  }

  /** Starts pending trials, in order, while there are free slots and nothing to wait for. */
  private async startReady(pending: TrialRecord[]): Promise<void> {
    for (const k of pending.flatMap((r) => this.planned.get(r.index)!.runKeys)) if (!this.cached.has(k) && (await this.index.lookup(k))) this.cached.add(k);
    const active = [...this.running.keys(), ...pending.map((r) => r.index)].map((i) => this.planned.get(i)!);
    for (const rec of [...pending]) {
      // A trial may have failed (fail-fast) or the user interrupted while the lookups above awaited.
      if (this.stopping || this.running.size >= this.ctx.opts.parallel) break;
      // With nothing running there is nothing to wait for (the producer ended without it).
      if (this.running.size > 0 && waitsFor(this.planned.get(rec.index)!, active, this.cached).length > 0) continue;
      pending.splice(pending.indexOf(rec), 1);
      this.start(rec);
    }
  }

  private start(rec: TrialRecord): void {
    const { ctx } = this;
    const t = this.planned.get(rec.index)!;
    rec.runId ??= newRunId();
    const resume = existsSync(join(runsDir(), rec.runId, 'lock.json'));
    Object.assign(rec, { status: 'running', startedAt: Date.now() });
    delete rec.error;
    delete rec.endedAt;
    void ctx.save();
    const logPath = join(ctx.sweepDir, 'logs', `${rec.index}-${rec.runId}.log`);
    ctx.out.write(`> trial ${rec.index}/${ctx.trials.length} ${rec.name}: started, run ${rec.runId}${resume ? ' (continuing it)' : ''}\n`);
    const proc = launchTrial({
      file: ctx.file, sets: [...(ctx.opts.overrides ?? []).map((o) => o.expr), ...t.overrides.map((o) => o.expr)], runId: rec.runId, name: rec.name, resume,
      tags: { ...(ctx.parentRunId ? { 'mlflow.parentRunId': ctx.parentRunId } : {}), 'pipe.sweep.id': ctx.sweepId, 'pipe.sweep.trial': rec.name },
      force: ctx.opts.force, from: ctx.opts.from, jobs: ctx.opts.jobs, logPath,
      onLine: ctx.opts.parallel === 1 ? (line) => this.echo(rec.name, line) : undefined,
    });
    const done = proc.done.then((exit) => this.ended(rec, exit, logPath));
    this.running.set(rec.index, { proc, done });
  }

  /** Records how a trial ended and says so at once (a failure is reported live, not only at the end). */
  private async ended(rec: TrialRecord, exit: TrialExit, logPath: string): Promise<void> {
    const { ctx } = this;
    this.running.delete(rec.index);
    // NOTE: decide fail-fast before the first await: the run loop's poll timer may run
    // startReady in between and would start the next trial.
    if (exit.status === 'failed' && !ctx.opts.keepGoing) this.stop('failure');
    const runDir = join(runsDir(), rec.runId!);
    Object.assign(rec, { status: exit.status, endedAt: Date.now() });
    rec.mlflowRunId = (await readLock(runDir))?.mlflowRunId ?? rec.mlflowRunId;
    rec.backend = (await readTrialResult(runDir))?.backend ?? rec.backend;
    const head = `trial ${rec.index}/${ctx.trials.length} ${rec.name}`;
    const secs = ((rec.endedAt! - rec.startedAt!) / 1000).toFixed(1);
    if (exit.status === 'finished') {
      const s = await summarizeRun(runDir, ctx.headers);
      ctx.out.write(`✓ ${head}: finished in ${secs} s, best test accuracy ${pct(s?.bestTestAccuracy)}${s?.bestEpoch !== undefined ? ` (epoch ${s.bestEpoch})` : ''}\n`);
    } else if (exit.status === 'failed') {
      rec.error = exit.error;
      ctx.out.write(`✗ ${head}: FAILED after ${secs} s: ${exit.error}\n    log: ${logPath}\n`);
    } else ctx.out.write(`■ ${head}: interrupted after ${secs} s\n`);
    await ctx.save();
  }
}
