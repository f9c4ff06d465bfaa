/**
 * Forward-pass throughput and memory of each zoo architecture (random weights, eval mode).
 *
 *   node dist/bench/models.js [--backend wasm] [--batch 64] [--iters 3] [--out bench/results/models.json] [arch ...]
 *
 * Each architecture runs in its own child process so its peak RSS is its own. Input: the
 * architecture's minimum input size, at least 32x32 (inception_v3: 75x75), 3 channels.
 * Per architecture: images/s (batch / mean seconds per forward, after one warm-up batch),
 * ms per batch, weight bytes, peak tfjs tensor bytes during a forward (`tf.profile`
 * peakBytes: weights + activations), and the child's peak RSS (bytes, getrusage maxrss: the
 * wasm heap included). Results are written as JSON to --out.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initEngine } from '../src/engine/backend.js';
import { listModels, MODELS } from '../src/models/registry.js';
import { Rng } from '../src/rng.js';
import type { BackendName } from '../src/config/types.js';

/** One architecture's numbers. */
export interface ModelBench {
  arch: string;
  input: number;
  batch: number;
  /** Forward images per second. */
  imagesPerSecond: number;
  /** Mean milliseconds per batch. */
  msPerBatch: number;
  /** Bytes of weights (all variables, BatchNorm statistics included). */
  weightBytes: number;
  /** Peak tfjs tensor bytes during one forward (weights + live activations). */
  peakTensorBytes: number;
  /** Peak resident set size of the process running this architecture, bytes. */
  peakRssBytes: number;
}

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : dflt;
}

async function benchOne(arch: string, backend: string, batch: number, iters: number): Promise<ModelBench> {
  await initEngine(backend as BackendName);
  const e = MODELS[arch]!;
  const input = Math.max(32, e.minInputSize);
  const bb = e.build({ height: input, width: input, channels: 3 }, new Rng(1));
  const weightBytes = bb.model.weights.reduce((n, w) => n + 4 * (w.shape as number[]).reduce((a, b) => a * b, 1), 0);
  const x = tf.randomUniform([batch, input, input, 3], -2, 2, 'float32', 7);
  const forward = async (): Promise<void> => {
    const y = bb.model.predict(x) as tf.Tensor;
    await y.data();
    y.dispose();
  };
  const prof = await tf.profile(forward); // also the warm-up (XNNPACK packs weights on first use)
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) await forward();
  const msPerBatch = (performance.now() - t0) / iters;
  return { arch, input, batch, imagesPerSecond: (batch * 1000) / msPerBatch, msPerBatch, weightBytes, peakTensorBytes: prof.peakBytes, peakRssBytes: process.resourceUsage().maxRSS * 1024 };
}

async function main(): Promise<void> {
  const backend = arg('backend', 'wasm');
  const batch = Number(arg('batch', '64'));
  const iters = Number(arg('iters', '3'));
  const child = arg('child', '');
  if (child) {
    process.stdout.write(JSON.stringify(await benchOne(child, backend, batch, iters)));
    return;
  }
  const flags = new Set(['--backend', '--batch', '--iters', '--out']);
  const named = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && !flags.has(all[i - 1] ?? ''));
  const archs = named.length ? named : listModels();
  const out = resolve(arg('out', 'bench/results/models.json'));
  const results: ModelBench[] = [];
  for (const arch of archs) {
    const json = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child', arch, '--backend', backend, '--batch', String(batch), '--iters', String(iters)], { encoding: 'utf8', maxBuffer: 1 << 20 });
    const r = JSON.parse(json) as ModelBench;
    results.push(r);
    process.stderr.write(`${arch.padEnd(16)} ${r.input}px x${r.batch}: ${r.imagesPerSecond.toFixed(1)} images/s, ${(r.peakTensorBytes / 2 ** 20).toFixed(0)} MiB tensors peak, ${(r.peakRssBytes / 2 ** 20).toFixed(0)} MiB RSS peak\n`);
  }
  mkdirSync(dirname(out), { recursive: true });
  const meta = { date: new Date().toISOString(), backend, node: process.version, cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, tfjs: tf.version.tfjs };
  writeFileSync(out, `${JSON.stringify({ ...meta, results }, null, 1)}\n`);
  process.stderr.write(`wrote ${out}\n`);
}

await main();
