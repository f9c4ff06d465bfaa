/**
 * Training and inference speed of pipe next to PyTorch, in the same run, on the same machine.
 *
 *   npx tsc -p . && node dist/bench/speed.js [--models a,b] [--runtimes wasm,...] [--repeats 2] [--no-torch]
 *        [--quiet-load 0.5] [--python /usr/bin/python3] [--out bench/results/speed.json]
 *        [--md bench/results/speed.md]
 *
 * For each model (mini_resnet, resnet18, resnet50 from the zoo; cifar_resnet18, a bench-local
 * ResNet-18 with a 3x3 stride-1 stem and no max-pool) at 32x32, batch 64, 10 classes: pipe's
 * train and inference images/s on each backend in PLAN (each run in a child process:
 * bench/speed-child.ts), then PyTorch's with 1 and 2 threads (bench/speed_torch.py, run with
 * Debian's /usr/bin/python3 and python3-torch). Every figure is measured `--repeats` times after
 * untimed warm-up steps; the JSON keeps each repeat, the table shows them and the ratios
 * pipe/PyTorch of their medians. Writes JSON (--out) and a markdown table (--md).
 * `--quiet-load L`: before each measurement, wait (up to 5 minutes) until the 1-minute load
 * average is below L, for machines shared with other work; each figure's load is recorded.
 * Budget: about 10-15 minutes on a 2-core machine (plus any waiting).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { loadDnnl } from '../src/engine/native/dnnl.js';
import { runChild, type ChildPlan, type ChildResult } from './speed-child.js';
import { markdown, modelRatios, type SpeedReport, type TorchResult } from './speed-report.js';

const BATCH = 64;
const SIZE = 32;

/**
 * pipe's runtimes: the tfjs backend, the environment (PIPE_NATIVE=0: wasm kernels only) and the
 * optimizer. `wasm` is pipe as shipped (its kernels, and the fused Adam step, on the native addon
 * when that is built); `wasm, no addon` is the fallback route.
 */
const RUNTIMES: Record<string, Pick<ChildPlan, 'backend'> & { env: Record<string, string>; needsAddon: boolean }> = {
  wasm: { backend: 'wasm', env: {}, needsAddon: false },
  'wasm, no addon': { backend: 'wasm', env: { PIPE_NATIVE: '0' }, needsAddon: true },
  cpu: { backend: 'cpu', env: {}, needsAddon: false },
};

/** Warm-up and timed steps per model and runtime: few steps for the big nets (~15 min in all). */
const PLAN: Record<string, { runtimes: Record<string, [number, number]>; torch: [number, number] }> = {
  mini_resnet: { runtimes: { wasm: [2, 10], 'wasm, no addon': [2, 10], cpu: [1, 1] }, torch: [2, 10] },
  resnet18: { runtimes: { wasm: [2, 5], 'wasm, no addon': [1, 3] }, torch: [2, 5] },
  resnet50: { runtimes: { wasm: [1, 3], 'wasm, no addon': [1, 2] }, torch: [2, 5] },
  cifar_resnet18: { runtimes: { wasm: [1, 3], 'wasm, no addon': [1, 1] }, torch: [1, 3] },
};

/** The pure-JS cpu backend takes ~70 s per batch of 64 on mini_resnet: it runs batches of 16. */
const BATCH_OF: Record<string, number> = { cpu: 16 };

/** Waits until the 1-minute load average is below `limit` (at most `maxMs`); returns the load then. */
function waitQuiet(limit: number, maxMs = 300_000): number {
  const until = Date.now() + maxMs;
  while (loadavg()[0]! >= limit && Date.now() < until) spawnSync('sleep', ['5']);
  return loadavg()[0]!;
}

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : dflt;
}

const here = dirname(fileURLToPath(import.meta.url));

function pipeRun(plan: ChildPlan, env: Record<string, string>): ChildResult {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', JSON.stringify(plan)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env }, maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`pipe ${plan.model} on ${plan.runtime} failed (exit ${r.status})`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as ChildResult;
}

function torchRun(python: string, threads: number, model: string, repeats: number): TorchResult & { version: string } {
  const [warmup, steps] = PLAN[model]!.torch;
  const script = resolve(here, '../../bench/speed_torch.py');
  const args = [script, '--threads', String(threads), '--batch', String(BATCH), '--size', String(SIZE), '--repeats', String(repeats), '--plan', `${model}:${warmup}:${steps}`];
  const env = { ...process.env, OMP_NUM_THREADS: String(threads) };
  const r = spawnSync(python, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], env, maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`${python} ${script} failed (exit ${r.status}); install python3-torch and python3-torchvision (apt-get) or pass --no-torch`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { torch: string; threads: number; results: Array<{ model: string; train: number[]; infer: number[] }> };
  const res = out.results[0]!;
  return { model, threads: out.threads, train: res.train, infer: res.infer, version: out.torch };
}

const fmt = (xs: number[]): string => xs.map((v) => v.toFixed(1)).join(' / ');

async function main(): Promise<void> {
  const child = arg('child', '');
  if (child) {
    process.stdout.write(`${JSON.stringify(await runChild(JSON.parse(child) as ChildPlan))}\n`);
    return;
  }
  const models = arg('models', Object.keys(PLAN).join(',')).split(',');
  const unknown = models.filter((m) => !PLAN[m]);
  if (unknown.length) throw new Error(`--models: unknown ${unknown.join(', ')}; known: ${Object.keys(PLAN).join(', ')}`);
  const runtimes = arg('runtimes', Object.keys(RUNTIMES).join(',')).split(',');
  const badRuntime = runtimes.filter((r) => !RUNTIMES[r]);
  if (badRuntime.length) throw new Error(`--runtimes: unknown ${badRuntime.join(', ')}; known: ${Object.keys(RUNTIMES).join(', ')}`);
  const repeats = Number(arg('repeats', '2'));
  const python = arg('python', '/usr/bin/python3');
  const withTorch = !process.argv.includes('--no-torch');
  const quietLoad = Number(arg('quiet-load', 'Infinity'));
  const dnnl = loadDnnl();
  const addon = dnnl.addon !== undefined;
  if (!addon) process.stderr.write(`native addon unavailable (${dnnl.addon ? '' : dnnl.reason}): measuring the wasm route only\n`);
  const t0 = performance.now();
  const report: SpeedReport = {
    date: new Date().toISOString(),
    command: `${['PIPE_NATIVE_PATH', 'PIPE_NATIVE_THREADS'].filter((k) => process.env[k]).map((k) => `${k}=${process.env[k]} `).join('')}node dist/bench/speed.js ${process.argv.slice(2).join(' ')}`.trim(),
    node: process.version, tfjs: tf.version.tfjs, torch: null, cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length,
    batch: BATCH, size: SIZE, repeats, loadavgBefore: loadavg()[0]!, loadavgAfter: 0, seconds: 0, pipe: [], torch_results: [],
  };
  for (const model of models) {
    for (const [runtime, [warmup, steps]] of Object.entries(PLAN[model]!.runtimes)) {
      const { backend, env, needsAddon } = RUNTIMES[runtime]!;
      if ((needsAddon && !addon) || !runtimes.includes(runtime)) continue;
      const load = waitQuiet(quietLoad);
      const r = { ...pipeRun({ model, runtime, backend, batch: BATCH_OF[backend] ?? BATCH, size: SIZE, warmup, steps, repeats }, env), loadavg: load };
      report.pipe.push(r);
      process.stderr.write(`pipe  ${model.padEnd(15)} ${runtime.padEnd(18)} train ${fmt(r.train)}  infer ${fmt(r.infer)} images/s\n`);
    }
    if (!withTorch) continue;
    for (const threads of [1, 2]) {
      const load = waitQuiet(quietLoad);
      const { version, ...r } = torchRun(python, threads, model, repeats);
      report.torch = version;
      report.torch_results.push({ ...r, loadavg: load });
      process.stderr.write(`torch ${model.padEnd(15)} ${`${threads} thread(s)`.padEnd(18)} train ${fmt(r.train)}  infer ${fmt(r.infer)} images/s\n`);
    }
  }
  report.loadavgAfter = loadavg()[0]!;
  report.seconds = (performance.now() - t0) / 1000;
  report.models = modelRatios(report);
  const out = resolve(arg('out', 'bench/results/speed.json'));
  const md = resolve(arg('md', 'bench/results/speed.md'));
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(report, null, 1)}\n`);
  writeFileSync(md, markdown(report));
  // Issue 21's goals, one line per model (the markdown's goals table says the same).
  for (const [model, m] of Object.entries(report.models)) {
    if (m.goals_met === null) continue;
    process.stderr.write(`goal  ${model.padEnd(15)} train ${m.train_vs_torch_2_threads} (>= ${m.goal_train}), inference ${m.infer_vs_torch_2_threads} (>= ${m.goal_infer}) vs PyTorch 2 threads: ${m.goals_met ? 'met' : 'MISSED'}\n`);
  }
  process.stderr.write(`wrote ${out} and ${md} (${report.seconds.toFixed(0)} s)\n`);
}

await main();
