/**
 * Where a training step's time goes: one pipe training step (bench/speed-child.ts's) under
 * `tf.profile`, kernel time summed by kernel name (and, with --shapes, by name + input shapes).
 *
 *   npx tsc -p . && node dist/bench/profile-step.js [model] [--backend wasm] [--batch 64] [--shapes] [--infer] [--unfused]
 *
 * Prints ms per kernel, its share of the summed kernel time, and the step's wall time (ms).
 */
import * as tf from '@tensorflow/tfjs';
import { initEngine } from '../src/engine/backend.js';
import type { BackendName } from '../src/config/types.js';
import { fusedApply } from '../src/models/fused-forward.js';
import { buildClassifier, type Classifier } from '../src/models/registry.js';
import { Rng } from '../src/rng.js';
import { predictLogits } from '../src/train/evaluate.js';
import { setTrainable, trainableVariables } from '../src/train/freeze.js';
import { buildOptimizer } from '../src/train/optimizer.js';
import { cifarResnet18 } from './speed-child.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : dflt;
}

const model = process.argv[2] && !process.argv[2].startsWith('--') ? process.argv[2] : 'resnet18';
const batch = Number(arg('batch', '64'));
await initEngine(arg('backend', 'wasm') as BackendName);
const rng = new Rng(1);
const c: Classifier = model === 'cifar_resnet18' ? cifarResnet18(32, 10, rng) : buildClassifier(model, { height: 32, width: 32, channels: 3 }, 10, 'none', rng);
setTrainable(c, 'all');
const vars = trainableVariables(c);
const optimizer = buildOptimizer({ name: 'adam', lr: 1e-3, weight_decay: 0, momentum: 0, nesterov: false });
const x = tf.randomNormal([batch, 32, 32, 3]) as tf.Tensor4D;
const y = tf.oneHot(tf.tensor1d(Array.from({ length: batch }, (_, i) => i % 10), 'int32'), 10);
// --unfused: the backbone as tfjs-layers runs it (model.apply), without src/models/fused-forward.ts.
const unfused = process.argv.includes('--unfused');
const backbone = (t: tf.Tensor, training: boolean): tf.Tensor => (unfused ? (c.backbone.model.apply(t, { training }) as tf.Tensor) : fusedApply(c.backbone.model, t, training));
const step = async (): Promise<void> => {
  if (process.argv.includes('--infer')) {
    const l = unfused ? tf.tidy(() => c.head.apply(backbone(x, false), { training: false }) as tf.Tensor) : predictLogits(c, x);
    await l.data();
    l.dispose();
    return;
  }
  const loss = optimizer.step(() => tf.losses.softmaxCrossEntropy(y, c.head.apply(backbone(x, true), { training: true }) as tf.Tensor) as tf.Scalar, vars);
  await loss.data();
  loss.dispose();
};
await step();
await step();
const t0 = performance.now();
await step();
const wall = performance.now() - t0;
const prof = await tf.profile(step);
const agg = new Map<string, { ms: number; n: number }>();
const shapes = process.argv.includes('--shapes');
for (const k of prof.kernels) {
  const key = shapes ? `${k.name} ${JSON.stringify(k.inputShapes)}` : k.name;
  const a = agg.get(key) ?? { ms: 0, n: 0 };
  a.ms += k.kernelTimeMs as number;
  a.n++;
  agg.set(key, a);
}
const total = [...agg.values()].reduce((s, a) => s + a.ms, 0);
console.log(`${model} batch ${batch}: step ${wall.toFixed(0)} ms wall, kernels ${total.toFixed(0)} ms, ${prof.kernels.length} kernel calls`);
for (const [k, a] of [...agg.entries()].sort((p, q) => q[1].ms - p[1].ms).slice(0, shapes ? 40 : 25)) {
  console.log(`${a.ms.toFixed(1).padStart(8)} ms ${((100 * a.ms) / total).toFixed(1).padStart(5)}% x${String(a.n).padEnd(4)} ${k}`);
}
