/**
 * Benchmark: MLflow logging overhead per training epoch through the RestTracker.
 *
 * An epoch of the quickstart is 938 iterations (60000 images / batch 64) and ~250 s. We
 * simulate it: 938 iterations of a fixed amount of synchronous "compute" (arithmetic, about
 * `COMPUTE_MS` each), each followed by a yield to the event loop as the tfjs training loop does;
 * the tracked variant adds one `metric('batch_loss')` per iteration, 10 epoch metrics, and a
 * flush at the end of the epoch (the runner flushes only at stage ends, so this is the worse
 * case). The fake MLflow server (test/fake-mlflow.ts) runs in a child process, so
 * `process.cpuUsage()` counts only the training process. The overhead is the CPU time the
 * tracking adds to the training process per epoch (tracked - untracked, median of `REPS`
 * pairs): on a CPU-bound trainer that is the time taken from training. Wall times are reported
 * too, but on a shared machine their differences are mostly noise.
 *
 * Run: npx tsc -p . && node dist/bench/tracking-overhead.js
 * Writes bench/results/tracking-overhead.json.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import { RestTracker } from '../src/tracking/rest/tracker.js';
import { FakeMlflow } from '../test/fake-mlflow.js';

const ITERATIONS = 938;
const EPOCH_METRICS = ['train_loss', 'train_accuracy', 'test_loss', 'test_accuracy', 'lr', 'epoch_seconds', 'images_per_second', 'rss_bytes', 'tensor_bytes', 'trainable_params'];
const COMPUTE_MS = Number(process.env['COMPUTE_MS'] ?? 2);
const REPS = Number(process.env['REPS'] ?? 5);
const QUICKSTART_EPOCH_S = 250;

let sink = 0;
/** A fixed amount of arithmetic (`n` square roots): the same CPU work in every epoch. */
function compute(n: number): void {
  let acc = 0;
  for (let i = 1; i <= n; i++) acc += Math.sqrt(i);
  sink += acc;
}
/** Square roots per iteration for about `COMPUTE_MS` of compute on this machine. */
function calibrate(): number {
  const n = 200_000;
  for (let r = 0; r < 20; r++) compute(n); // JIT warm-up
  const t0 = performance.now();
  for (let r = 0; r < 5; r++) compute(n);
  return Math.round((n * COMPUTE_MS) / ((performance.now() - t0) / 5));
}
let WORK = 0;
const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const yieldLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

/** One simulated epoch; with a tracker, logs as the training loop does. Returns timings in ms. */
async function epoch(tracker: RestTracker | undefined, epochNo: number): Promise<{ wallMs: number; cpuMs: number; metricCallsMs: number; flushMs: number }> {
  const t0 = performance.now();
  const c0 = cpuMs();
  let metricCallsMs = 0;
  for (let i = 0; i < ITERATIONS; i++) {
    compute(WORK);
    if (tracker) {
      const m0 = performance.now();
      tracker.metric('batch_loss', 1 / (i + 1), epochNo * ITERATIONS + i);
      metricCallsMs += performance.now() - m0;
    }
    await yieldLoop();
  }
  let flushMs = 0;
  if (tracker) {
    for (const k of EPOCH_METRICS) tracker.metric(k, Math.random(), epochNo + 1);
    const f0 = performance.now();
    await tracker.flush();
    flushMs = performance.now() - f0;
  }
  return { wallMs: performance.now() - t0, cpuMs: cpuMs() - c0, metricCallsMs, flushMs };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  const server = spawn(process.execPath, [fileURLToPath(import.meta.url), '--server'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const uri = await new Promise<string>((r) => server.stdout.once('data', (d: Buffer) => r(d.toString().trim())));
  const tracker = await RestTracker.start(uri, { experiment: 'bench', runName: 'bench', spoolDir: mkdtempSync(join(tmpdir(), 'pipe-bench-')) });
  WORK = calibrate();
  await epoch(undefined, 0); // warm-up (JIT)
  await epoch(tracker, 0);
  const base: ReturnType<typeof epoch> extends Promise<infer T> ? T[] : never = [];
  const tracked: typeof base = [];
  for (let r = 0; r < REPS; r++) {
    base.push(await epoch(undefined, r + 1));
    tracked.push(await epoch(tracker, r + 1));
  }
  await tracker.end('FINISHED');
  server.kill();
  const overheadCpuMs = Math.max(0, median(tracked.map((t, i) => t.cpuMs - base[i]!.cpuMs)));
  const fraction = overheadCpuMs / (QUICKSTART_EPOCH_S * 1000);
  const result = {
    date: new Date().toISOString(),
    node: process.version,
    setup: { iterationsPerEpoch: ITERATIONS, epochMetrics: EPOCH_METRICS.length, computeMsPerIteration: COMPUTE_MS, reps: REPS, server: 'test/fake-mlflow.ts in a child process on 127.0.0.1', tracker: 'RestTracker defaults (log-batch of <= 1000 points, background flush every 5 s), plus a flush at each epoch end' },
    untrackedEpoch: { wallMs: base.map((x) => +x.wallMs.toFixed(1)), cpuMs: base.map((x) => +x.cpuMs.toFixed(1)) },
    trackedEpoch: { wallMs: tracked.map((x) => +x.wallMs.toFixed(1)), cpuMs: tracked.map((x) => +x.cpuMs.toFixed(1)) },
    overheadCpuMsPerEpochMedian: +overheadCpuMs.toFixed(1),
    overheadWallMsPerEpochMedian: +median(tracked.map((t, i) => t.wallMs - base[i]!.wallMs)).toFixed(1),
    metricCallsMsPerEpochMedian: +median(tracked.map((t) => t.metricCallsMs)).toFixed(3),
    epochEndFlushMsMedian: +median(tracked.map((t) => t.flushMs)).toFixed(1),
    quickstartEpochSeconds: QUICKSTART_EPOCH_S,
    overheadFractionOfQuickstartEpoch: +fraction.toExponential(2),
    target: '< 0.01 (1% of epoch time)',
    meetsTarget: fraction < 0.01,
  };
  const out = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results', 'tracking-overhead.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(result, null, 2)}\nwritten to ${out}\n`);
}

if (process.argv[2] === '--server') {
  const fake = await FakeMlflow.start();
  process.stdout.write(`${fake.uri}\n`);
} else {
  await main();
  if (sink === 42) process.stdout.write(''); // keep the compute from being optimised away
}
