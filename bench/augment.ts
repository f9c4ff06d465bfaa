/**
 * Augmentation throughput of the reference CIFAR-10 train chain (pipelines/resnet50-cifar10.yaml:
 * random_crop 32 pad 4, horizontal_flip, color_jitter 0.2/0.2/0.2/0.1, rotation 15, normalize)
 * at batch 64, in images/s: on the calling thread (`epoch`) and prefetched by 1 and 2 worker
 * threads (`epochAsync`, consumer doing nothing), and per CPU-second on the calling thread (stable
 * when other processes share the machine). Compared with the training throughput of the
 * models (measured separately, passed in or the defaults below). Writes bench/results/augment.json.
 *
 * Run: npx tsc -p . && node dist/bench/augment.js [images] [mini_resnet img/s] [resnet18 img/s]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BatchSource } from '../src/data/batches.js';
import type { OpSpec } from '../src/data/transforms.js';
import { Rng } from '../src/rng.js';

const IMAGES = Number(process.argv[2] ?? 4096);
/** Training throughput, images/s, of the wasm backend on this machine (issue 5's figures). */
const TRAINING = { mini_resnet: Number(process.argv[3] ?? 240), resnet18: Number(process.argv[4] ?? 23) };
const BATCH = 64;

const CHAIN: OpSpec[] = [
  { random_crop: { size: 32, padding: 4 } },
  { horizontal_flip: { p: 0.5 } },
  { color_jitter: { brightness: 0.2, contrast: 0.2, saturation: 0.2, hue: 0.1 } },
  { rotation: { degrees: 15 } },
  { normalize: { mean: [0.4914, 0.4822, 0.4465], std: [0.2023, 0.1994, 0.201] } },
];

const r = new Rng(1);
const split = {
  images: Uint8Array.from({ length: IMAGES * 32 * 32 * 3 }, () => r.int(256)),
  labels: Uint8Array.from({ length: IMAGES }, () => r.int(10)),
  count: IMAGES, height: 32, width: 32, channels: 3,
};

/**
 * images/s over one epoch, best of `reps` (the machine is shared): by the wall clock, and on the
 * calling thread also per CPU-second of this process (what one uncontended core would give).
 */
async function measure(workers: number, reps = 3): Promise<{ wall: number; cpu: number }> {
  const source = new BatchSource(split, CHAIN, BATCH, { shuffle: true, seed: 1, workers, prefetch: 8 });
  let wall = 0, cpu = 0;
  for (let rep = 0; rep <= reps; rep++) {
    const t0 = performance.now(), c0 = process.cpuUsage();
    let n = 0;
    if (workers === 0) for (const b of source.epoch(rep)) n += b.n;
    else for await (const b of source.epochAsync(rep)) n += b.n;
    const c = process.cpuUsage(c0);
    if (rep === 0) continue; // warms up the JIT (and worker start-up)
    wall = Math.max(wall, n / ((performance.now() - t0) / 1000));
    cpu = Math.max(cpu, n / ((c.user + c.system) / 1e6));
  }
  return { wall, cpu };
}

const main = await measure(0);
const w1 = (await measure(1)).wall;
const w2 = (await measure(2)).wall;
const ratio = (v: number): Record<string, number> => Object.fromEntries(Object.entries(TRAINING).map(([k, t]) => [k, Math.round((10 * v) / t) / 10]));
const result = {
  what: 'augmentation throughput, reference CIFAR-10 train chain, batch 64, images/s',
  chain: CHAIN,
  batch_size: BATCH,
  images_per_epoch: IMAGES,
  machine: { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', node: process.version },
  images_per_second: { main_thread: Math.round(main.wall), workers_1: Math.round(w1), workers_2: Math.round(w2) },
  main_thread_images_per_cpu_second: Math.round(main.cpu),
  load_average: loadavg().map((v) => Math.round(v * 100) / 100),
  training_images_per_second: TRAINING,
  ratio_to_training: { main_thread: ratio(main.wall), workers_1: ratio(w1), main_thread_per_cpu_second: ratio(main.cpu) },
  target: 'ratio >= 10 (data never starves the trainer)',
  date: new Date().toISOString(),
};
const out = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results', 'augment.json');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
console.log(JSON.stringify(result.images_per_second), `per CPU-second ${result.main_thread_images_per_cpu_second}`, JSON.stringify(result.ratio_to_training));
console.log(`written to ${out}`);
