/**
 * `pipe run FILE --sweep ... --queue URL`: the sweep's trials as BullMQ jobs (job.ts), run by
 * `pipe worker` processes anywhere, under one parent MLflow run on the shared tracking server.
 * The submitter follows the jobs (follow.ts) and, once all are done, writes the comparison of
 * the trials from the summaries the workers returned (src/sweep/report.ts) and logs it on the
 * parent run. Submitting the same sweep again adds no job (job ids are the sweep key and the
 * trial's config hash) and follows the existing ones.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { userInfo } from 'node:os';
import { Queue } from 'bullmq';
import type { Override } from '../config/overrides.js';
import { runsDir } from '../paths.js';
import type { RunSummary } from '../sweep/collect.js';
import { prepareSweep } from '../sweep/prepare.js';
import { writeComparison } from '../sweep/report.js';
import { newRunId } from '../sweep/state.js';
import { bestRow } from '../sweep/table.js';
import { openTracker } from '../tracking/open.js';
import { TOOL_VERSION } from '../version.js';
import { followJobs, type JobView } from './follow.js';
import { sha256, trialJobId, type TrialJobData, type TrialJobResult } from './job.js';
import type { StageTable } from '../stage.js';
import { connectOrFail, maskSecrets, parseQueueUrl, queueName, requireTrackingServer } from './url.js';

/** Options of a queued sweep. */
export interface QueuedSweepOptions {
  /** The stage kinds (stages/index.ts, handed down by the CLI), to plan the trials. */
  stages: StageTable;
  overrides?: Override[];
  sweep?: string[];
  /** Runs of a trial before it fails for good (BullMQ job `attempts`). @defaultValue 3 */
  attempts?: number;
  out?: NodeJS.WritableStream;
  /** Stops following (the jobs stay queued). */
  signal?: AbortSignal;
  /** Poll period, ms. @defaultValue 500 */
  pollMs?: number;
}

/** What a queued sweep produced. */
export interface QueuedSweepResult {
  sweepId: string;
  sweepDir: string;
  mlflowRunId: string;
  jobs: JobView[];
  /** One per finished trial, as its worker summarised it. */
  rows: RunSummary[];
  artifacts: string[];
  /** True when following stopped before every job was done. */
  interrupted: boolean;
}

/**
 * Enqueues the sweep of `file` on `queueUrl` and follows it to the end.
 * @throws PipelineError (exit 2): no http(s) MLFLOW_TRACKING_URI, a bad URL, an unreachable
 *   Redis, or whatever prepareSweep throws for the file and the sweep.
 */
export async function runQueuedSweep(file: string, queueUrl: string, opts: QueuedSweepOptions): Promise<QueuedSweepResult> {
  const out = opts.out ?? process.stdout;
  const trackingUri = requireTrackingServer('pipe run --queue');
  const target = parseQueueUrl(queueUrl);
  const prepared = await prepareSweep(file, { stages: opts.stages, overrides: opts.overrides, sweep: opts.sweep });
  const { config, spec, trials, key } = prepared;
  const content = await readFile(file, 'utf8');
  const sweepId = newRunId();
  const sweepDir = join(runsDir(), sweepId);
  await mkdir(sweepDir, { recursive: true });
  const experiment = config.experiment ?? config.name;
  const tracker = await openTracker(trackingUri, runsDir(), {
    experiment, runName: `${config.name}-sweep-${sweepId}`, runDir: sweepDir,
    user: (() => { try { return userInfo().username; } catch { return 'unknown'; } })(),
    tags: { 'mlflow.source.name': file, 'mlflow.source.type': 'LOCAL', 'pipe.version': TOOL_VERSION, 'pipe.sweep': 'true', 'pipe.sweep.id': sweepId, 'pipe.sweep.mode': spec.mode, 'pipe.sweep.trials': String(trials.length), 'pipe.sweep.queue': queueName() },
  });
  const params: Record<string, string> = { 'sweep.mode': spec.mode, 'sweep.trials': String(trials.length) };
  for (const q of spec.params) params[`sweep.params.${q.path}`] = JSON.stringify(q.values);
  await tracker.logParams(params).catch((e: unknown) => void out.write(`pipe: warning: sweep params not logged: ${(e as Error).message}\n`));
  await tracker.logArtifact(resolve(file), 'pipeline');

  let lastError = '';
  const queue = new Queue<TrialJobData, TrialJobResult>(queueName(), { connection: target.connection });
  queue.on('error', (e: Error) => void (lastError = e.message));
  try {
    await connectOrFail(queue.waitUntilReady(), target.display, () => lastError);
    const base = (opts.overrides ?? []).map((o) => o.expr);
    const jobs = trials.map((t) => ({
      name: t.name,
      data: {
        version: 1 as const, sweepId, pipeline: config.name, fileName: basename(file), content, sha256: sha256(content),
        sets: [...base, ...t.overrides.map((o) => o.expr)], config: t.config, configHash: t.configHash, name: t.name,
        index: t.index, total: trials.length, parentRunId: tracker.runId, experiment,
      },
      opts: { jobId: trialJobId(key, t.configHash), attempts: opts.attempts ?? 3, removeOnComplete: false, removeOnFail: false },
    }));
    const earlier = (await Promise.all(jobs.map((j) => queue.getJob(j.opts.jobId)))).filter((j) => j !== undefined).length;
    await queue.addBulk(jobs);
    out.write(`pipe: sweep ${sweepId}: ${trials.length} trials queued on ${target.display} (queue ${queueName()}${earlier ? `; ${earlier} already queued by an earlier submit of this sweep, followed as they are` : ''}); parent MLflow run ${tracker.runId} on ${maskSecrets(trackingUri)}\n`);
    out.write(`pipe: start workers with: pipe worker --queue ${target.display}\n`);
    const views: JobView[] = trials.map((t, i) => ({ id: jobs[i]!.opts.jobId, name: t.name, index: t.index, state: 'waiting', attempts: 0 }));
    const final = await followJobs(queue, views, trials.length, out, { pollMs: opts.pollMs, signal: opts.signal });
    const interrupted = final.some((v) => v.state !== 'completed' && v.state !== 'failed' && v.state !== 'unknown');
    const rows = final.flatMap((v) => (v.result?.summary ? [{ ...v.result.summary, name: v.name }] : []));
    let artifacts: string[] = [];
    if (rows.length) {
      const comparison = await writeComparison(rows, join(sweepDir, 'comparison'), {
        title: `Sweep ${config.name} ${sweepId}`,
        facts: [['pipeline file', file], ['trials', String(trials.length)], ['queue', `${target.display} (${queueName()})`], ['swept', spec.params.map((p) => `${p.path} in ${JSON.stringify(p.values)}`).join('; ')]],
      });
      artifacts = comparison.files;
      for (const w of comparison.warnings) out.write(`pipe: warning: ${w}\n`);
      for (const f of artifacts) await tracker.logArtifact(f, 'comparison');
      const best = bestRow(rows);
      if (best) {
        tracker.metric('best_test_accuracy', best.bestTestAccuracy!, 0);
        await tracker.setTags({ 'pipe.sweep.best_trial': best.name, ...(best.mlflowRunId ? { 'pipe.sweep.best_run_id': best.mlflowRunId } : {}) });
      }
    }
    const finished = final.filter((v) => v.state === 'completed').length;
    await tracker.setTags({ 'pipe.sweep.finished': String(finished), 'pipe.sweep.failed': String(final.length - finished) });
    await tracker.end(interrupted ? 'KILLED' : finished === final.length ? 'FINISHED' : 'FAILED');
    return { sweepId, sweepDir, mlflowRunId: tracker.runId, jobs: final, rows, artifacts, interrupted };
  } catch (e) {
    await tracker.end('FAILED').catch(() => undefined);
    throw e;
  } finally {
    await queue.close().catch(() => undefined);
  }
}
