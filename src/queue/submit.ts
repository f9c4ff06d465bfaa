/**
 * `pipe run FILE --sweep ... --queue URL`: the sweep's trials as BullMQ jobs (job.ts), run by
 * `pipe worker` processes anywhere, under one parent MLflow run on the shared tracking server.
 * The submitter follows the jobs (follow.ts), keeping runs/<sweep-id>/sweep.json current (so
 * `pipe runs` lists the sweep), and once all are done writes the comparison of the trials from
 * the summaries the workers recorded on MLflow (src/sweep/report.ts) and logs it on the parent run.
 *
 * A sweep is its identity (the sweep key: pipeline and trial configs). Submitting it again adds
 * no job (job ids are the sweep key and the trial's config hash), keeps its sweep id and reopens
 * its one parent run (found through the queued jobs, the local sweep.json, or the run tagged
 * `pipe.sweep.key` on the server), so resubmits, retries and recoveries never split a sweep.
 * Redis is reached before anything is created on the MLflow server.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { userInfo } from 'node:os';
import { Queue } from 'bullmq';
import type { Override } from '../config/overrides.js';
import { runsDir } from '../paths.js';
import type { RunSummary } from '../sweep/collect.js';
import { prepareSweep, type PreparedSweep } from '../sweep/prepare.js';
import { writeComparison } from '../sweep/report.js';
import { listSweeps, newRunId, writeSweep, type SweepState, type TrialRecord } from '../sweep/state.js';
import { bestRow } from '../sweep/table.js';
import { openTracker } from '../tracking/open.js';
import { MlflowClient } from '../tracking/rest/client.js';
import type { Tracker } from '../tracking/tracker.js';
import { TOOL_VERSION } from '../version.js';
import { followJobs, type JobView } from './follow.js';
import { sha256, trialJobId, type TrialJobData, type TrialJobResult } from './job.js';
import type { StageTable } from '../stage.js';
import { keepParentRunning, remoteSummary } from './mlflow-trials.js';
import { connectOrFail, envMs, maskSecrets, parseQueueUrl, queueName, requireTrackingServer } from './url.js';

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
  /** The `--queue` part of the commands suggested in messages (url.ts queueHint). @defaultValue '' */
  queueHint?: string;
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

/** MLflow tag holding a sweep's key (its identity) on its parent run. */
export const SWEEP_KEY_TAG = 'pipe.sweep.key';

/**
 * The parent run of the sweep `key` on the server: the oldest tagged with the key, if any; none
 * when the server cannot be asked (the tracker then spools a new parent).
 */
async function findParent(client: MlflowClient, experiment: string, key: string): Promise<string | undefined> {
  try {
    const exp = await client.getExperimentByName(experiment);
    if (!exp) return undefined;
    const { runs } = await client.searchRuns({ experimentIds: [exp.experiment_id], filter: `tags.\`${SWEEP_KEY_TAG}\` = '${key}'`, maxResults: 100 });
    return runs.sort((a, b) => Number(a.info.start_time ?? 0) - Number(b.info.start_time ?? 0))[0]?.info.run_id;
  } catch {
    return undefined;
  }
}

/** Whether the run exists on the server (and is not deleted). */
async function runExists(client: MlflowClient, runId: string): Promise<boolean> {
  const run = await client.getRun(runId).catch(() => undefined);
  return run !== undefined && run.info.lifecycle_stage !== 'deleted';
}

/** A trial record of sweep.json from a job's view. */
function trialRecord(t: PreparedSweep['trials'][number], v: JobView | undefined, link: (r: TrialJobResult) => RunSummary | undefined): TrialRecord {
  const status: TrialRecord['status'] = !v ? 'pending' : v.state === 'completed' ? 'finished' : v.state === 'failed' ? 'failed' : v.state === 'active' ? 'running' : v.state === 'unknown' ? 'killed' : 'pending';
  const summary = v?.result ? link(v.result) : undefined;
  return {
    index: t.index, name: t.name, sets: t.overrides.map((o) => o.expr), configHash: t.configHash, status,
    ...(v?.result?.mlflowRunId ? { mlflowRunId: v.result.mlflowRunId } : {}),
    ...(v?.error && v.state !== 'completed' ? { error: v.error } : {}),
    ...(summary ? { summary, ...(summary.backend ? { backend: summary.backend } : {}), startedAt: summary.startedAt, ...(summary.endedAt !== undefined ? { endedAt: summary.endedAt } : {}) } : {}),
    ...(v ? { where: v.state === 'active' ? `running on ${v.worker ?? '?'}` : v.state } : {}),
  };
}

/**
 * Enqueues the sweep of `file` on `queueUrl` and follows it to the end.
 * @throws PipelineError (exit 2): no http(s) MLFLOW_TRACKING_URI, a bad URL, an unreachable
 *   Redis (then nothing was created anywhere), or whatever prepareSweep throws for the file and the sweep.
 */
export async function runQueuedSweep(file: string, queueUrl: string, opts: QueuedSweepOptions): Promise<QueuedSweepResult> {
  const out = opts.out ?? process.stdout;
  const trackingUri = requireTrackingServer('pipe run --queue');
  const target = parseQueueUrl(queueUrl);
  const prepared = await prepareSweep(file, { stages: opts.stages, overrides: opts.overrides, sweep: opts.sweep });
  const { config, spec, trials, key } = prepared;
  const content = await readFile(file, 'utf8');
  const experiment = config.experiment ?? config.name;
  const jobIds = trials.map((t) => trialJobId(key, t.configHash));

  let lastError = '';
  const queue = new Queue<TrialJobData, TrialJobResult>(queueName(), { connection: target.connection });
  queue.on('error', (e: Error) => void (lastError = e.message));
  const client = new MlflowClient(trackingUri);
  let tracker: Tracker | undefined;
  try {
    await connectOrFail(queue.waitUntilReady(), target.display, () => lastError);
    // The sweep's identity decides its id and its parent run: from its jobs, else the local
    // record of an earlier submit, else (parent only) the server; new ones only for a new sweep.
    const known = (await Promise.all(jobIds.map((id) => queue.getJob(id)))).find((j) => j !== undefined)?.data;
    const local = (await listSweeps(runsDir())).find((s) => s.queue !== undefined && s.pipeline === config.name && s.key === key);
    const sweepId = known?.sweepId ?? local?.sweepId ?? newRunId();
    const sweepDir = join(runsDir(), sweepId);
    let parentId: string | undefined;
    for (const candidate of [known?.parentRunId, local?.mlflowRunId]) if (!parentId && candidate && (await runExists(client, candidate))) parentId = candidate;
    parentId ??= await findParent(client, experiment, key);
    await mkdir(sweepDir, { recursive: true });
    tracker = await openTracker(trackingUri, runsDir(), {
      experiment, runName: `${config.name}-sweep-${sweepId}`, runDir: sweepDir, ...(parentId ? { resumeRunId: parentId } : {}),
      user: (() => { try { return userInfo().username; } catch { return 'unknown'; } })(),
      tags: { 'mlflow.source.name': file, 'mlflow.source.type': 'LOCAL', 'pipe.version': TOOL_VERSION, 'pipe.sweep': 'true', 'pipe.sweep.id': sweepId, [SWEEP_KEY_TAG]: key, 'pipe.sweep.mode': spec.mode, 'pipe.sweep.trials': String(trials.length), 'pipe.sweep.queue': queueName() },
    });
    const parent = tracker;
    if (!parentId) {
      const params: Record<string, string> = { 'sweep.mode': spec.mode, 'sweep.trials': String(trials.length) };
      for (const q of spec.params) params[`sweep.params.${q.path}`] = JSON.stringify(q.values);
      await parent.logParams(params).catch((e: unknown) => void out.write(`pipe: warning: sweep params not logged: ${(e as Error).message}\n`));
      await parent.logArtifact(resolve(file), 'pipeline');
    }
    const link = (r: TrialJobResult): RunSummary | undefined => r.summary && remoteSummary(r.summary, r.mlflowRunId, trackingUri, parent.experimentId);
    const state = (views: JobView[] | undefined): SweepState => ({
      version: 1, sweepId, key, pipeline: config.name, file: resolve(file), mlflowRunId: parent.runId, queue: queueName(), experiment,
      createdAt: local?.createdAt ?? Date.now(), mode: spec.mode, params: spec.params.map((q) => ({ path: q.path, values: q.values })),
      trials: trials.map((t, i) => trialRecord(t, views?.[i], link)),
    });
    await writeSweep(sweepDir, state(undefined));

    const base = (opts.overrides ?? []).map((o) => o.expr);
    const jobs = trials.map((t, i) => ({
      name: t.name,
      data: {
        version: 1 as const, sweepId, pipeline: config.name, fileName: basename(file), content, sha256: sha256(content),
        sets: [...base, ...t.overrides.map((o) => o.expr)], config: t.config, configHash: t.configHash, name: t.name,
        index: t.index, total: trials.length, parentRunId: parent.runId, experiment,
      },
      opts: { jobId: jobIds[i]!, attempts: opts.attempts ?? 3, backoff: { type: 'exponential', delay: envMs('PIPE_QUEUE_BACKOFF_MS', 10_000) }, removeOnComplete: false, removeOnFail: false },
    }));
    const earlier = (await Promise.all(jobIds.map((id) => queue.getJob(id)))).filter((j) => j !== undefined).length;
    await queue.addBulk(jobs);
    out.write(`pipe: sweep ${sweepId}: ${trials.length} trials queued on ${target.display} (queue ${queueName()}${earlier ? `; ${earlier} already queued by an earlier submit of this sweep, followed as they are` : ''}); ${parentId ? 'reopened its parent' : 'parent'} MLflow run ${parent.runId} on ${maskSecrets(trackingUri)}\n`);
    out.write(`pipe: start workers with: pipe worker${opts.queueHint ?? ''}\n`);
    const views: JobView[] = trials.map((t, i) => ({ id: jobIds[i]!, name: t.name, index: t.index, state: 'waiting', attempts: 0 }));
    const final = await followJobs(queue, views, trials.length, out, { pollMs: opts.pollMs, signal: opts.signal, onChange: (v) => writeSweep(sweepDir, state(v)) });
    await writeSweep(sweepDir, state(final));
    const interrupted = final.some((v) => v.state !== 'completed' && v.state !== 'failed' && v.state !== 'unknown');
    const rows = final.flatMap((v) => (v.result ? [link(v.result)].filter((r): r is RunSummary => r !== undefined).map((r) => ({ ...r, name: v.name })) : []));
    let artifacts: string[] = [];
    if (rows.length) {
      const comparison = await writeComparison(rows, join(sweepDir, 'comparison'), {
        title: `Sweep ${config.name} ${sweepId}`,
        facts: [['pipeline file', file], ['trials', String(trials.length)], ['queue', `${target.display} (${queueName()})`], ['swept', spec.params.map((p) => `${p.path} in ${JSON.stringify(p.values)}`).join('; ')], ['MLflow server', maskSecrets(trackingUri)]],
      });
      artifacts = comparison.files;
      for (const w of comparison.warnings) out.write(`pipe: warning: ${w}\n`);
      for (const f of artifacts) await parent.logArtifact(f, 'comparison');
      const best = bestRow(rows);
      if (best) {
        parent.metric('best_test_accuracy', best.bestTestAccuracy!, 0);
        await parent.setTags({ 'pipe.sweep.best_trial': best.name, ...(best.mlflowRunId ? { 'pipe.sweep.best_run_id': best.mlflowRunId } : {}) });
      }
    }
    const finished = final.filter((v) => v.state === 'completed').length;
    await parent.setTags({ 'pipe.sweep.finished': String(finished), 'pipe.sweep.failed': String(final.length - finished) });
    await parent.end(interrupted ? 'KILLED' : finished === final.length ? 'FINISHED' : 'FAILED');
    // Stopped following: the trials go on, so the parent is RUNNING again (the worker that ends
    // the last trial ends it, or keepParentRunning when that has just happened); `end` above only
    // released the tracker's spool and connections.
    if (interrupted) await keepParentRunning(queue, client, { sweepId, total: trials.length, parentRunId: parent.runId }).catch(() => undefined);
    return { sweepId, sweepDir, mlflowRunId: parent.runId, jobs: final, rows, artifacts, interrupted };
  } catch (e) {
    await tracker?.end('FAILED').catch(() => undefined);
    throw e;
  } finally {
    await queue.close().catch(() => undefined);
    await client.close().catch(() => undefined);
  }
}
