/**
 * One model on one backend for bench/speed.ts (run in its own process so that backends and
 * memory do not mix): train and inference images/s of pipe's real training step.
 *
 * The train step is src/train/loop.ts's: images made from a Float32Array, backbone + head in
 * training mode, softmax cross-entropy on one-hot labels, Adam (PyTorch's defaults, lr 1e-3, no
 * weight decay) through src/train/optimizer.ts over every trainable variable, loss and arg-max
 * read back. Inference is src/train/evaluate.ts's `predictLogits` with the logits read back.
 * Warm-up steps are not timed (XNNPACK packs weights, tfjs allocates on first use).
 */
import * as tf from '@tensorflow/tfjs';
import { initEngine } from '../src/engine/backend.js';
import { kernelRoute } from '../src/engine/kernels/register.js';
import type { BackendName } from '../src/config/types.js';
import { fusedApply } from '../src/models/fused-forward.js';
import { Net } from '../src/models/torch-net.js';
import { buildClassifier, type Classifier } from '../src/models/registry.js';
import { Rng } from '../src/rng.js';
import { predictLogits } from '../src/train/evaluate.js';
import { setTrainable, trainableVariables } from '../src/train/freeze.js';
import { buildOptimizer } from '../src/train/optimizer.js';

/** What one child reports. */
export interface ChildResult {
  model: string;
  /** The runtime's label in bench/speed.ts (backend, kernel route, optimizer). */
  runtime: string;
  backend: string;
  /** Kernel route on wasm: 'native' (the addon) or 'wasm'; '-' on other backends. */
  route: string;
  /** 'fused-adam' in results recorded while the fused Adam step was not yet the default; now always 'pipe'. */
  optimizer: 'pipe' | 'fused-adam';
  batch: number;
  /** Train images/s of each repeat. */
  train: number[];
  /** Inference images/s of each repeat. */
  infer: number[];
  /** The engine's own description of the backend. */
  description: string;
}

/** What to run. */
export interface ChildPlan {
  model: string;
  runtime: string;
  backend: string;
  batch: number;
  size: number;
  warmup: number;
  /** Timed train steps per repeat; inference times twice as many batches. */
  steps: number;
  repeats: number;
}

type T = tf.SymbolicTensor;

/**
 * CIFAR-style ResNet-18 (bench only; not in the zoo): torchvision's resnet18 with a 3x3 stride-1
 * stem of 64 channels and no max-pool (as kuangliu/pytorch-cifar), built with the zoo's Net so
 * that init, padding and BatchNorm settings are the zoo's.
 */
export function cifarResnet18(size: number, numClasses: number, rng: Rng): Classifier {
  const net = new Net({ height: size, width: size, channels: 3 }, rng);
  const block = (x: T, planes: number, stride: number, p: string): T => {
    let y = net.convBn(x, `${p}.conv1`, `${p}.bn1`, { filters: planes, kernel: 3, stride, pad: 1 }, 'relu');
    y = net.convBn(y, `${p}.conv2`, `${p}.bn2`, { filters: planes, kernel: 3, pad: 1 });
    const sc = stride !== 1 || x.shape[3] !== planes ? net.convBn(x, `${p}.downsample.0`, `${p}.downsample.1`, { filters: planes, kernel: 1, stride }) : x;
    return net.act(net.add([y, sc], `${p}.add`), 'relu', `${p}.relu`);
  };
  net.enter('stem');
  let x = net.convBn(net.rgb, 'conv1', 'bn1', { filters: 64, kernel: 3, pad: 1 }, 'relu');
  [64, 128, 256, 512].forEach((w, s) => {
    net.enter(`layer${s + 1}`);
    for (let i = 0; i < 2; i++) x = block(x, w, i === 0 && s > 0 ? 2 : 1, `layer${s + 1}.${i}`);
  });
  const backbone = net.finish(x, 'cifar_resnet18');
  const featIn = tf.input({ shape: [backbone.features] });
  const bound = 1 / Math.sqrt(backbone.features); // nn.Linear's default init, as buildClassifier
  const init = (): tf.serialization.Serializable => tf.initializers.randomUniform({ minval: -bound, maxval: bound, seed: rng.seed() });
  const logits = tf.layers.dense({ units: numClasses, name: 'head_fc', kernelInitializer: init() as never, biasInitializer: init() as never }).apply(featIn) as T;
  return { arch: 'cifar_resnet18', backbone, head: tf.model({ inputs: featIn, outputs: logits }), numClasses, reinitialized: ['head_fc'] };
}

function build(model: string, size: number, rng: Rng): Classifier {
  if (model === 'cifar_resnet18') return cifarResnet18(size, 10, rng);
  return buildClassifier(model, { height: size, width: size, channels: 3 }, 10, 'none', rng);
}

/** images/s of each repeat of `steps` awaited calls, after `warmup` untimed ones. */
async function timed(fn: () => Promise<void>, p: ChildPlan, steps: number): Promise<number[]> {
  for (let i = 0; i < p.warmup; i++) await fn();
  const out: number[] = [];
  for (let r = 0; r < p.repeats; r++) {
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) await fn();
    out.push((p.batch * steps * 1000) / (performance.now() - t0));
  }
  return out;
}

/** Runs the plan in this process. */
export async function runChild(p: ChildPlan): Promise<ChildResult> {
  const engine = await initEngine(p.backend as BackendName);
  const rng = new Rng(1);
  const c = build(p.model, p.size, rng);
  setTrainable(c, 'all');
  const vars = trainableVariables(c);
  const optimizer = buildOptimizer({ name: 'adam', lr: 1e-3, weight_decay: 0, momentum: 0, nesterov: false });
  const xs = Float32Array.from({ length: p.batch * p.size * p.size * 3 }, () => rng.next() * 4 - 2);
  const ys = Int32Array.from({ length: p.batch }, () => rng.int(10));
  const shape: [number, number, number, number] = [p.batch, p.size, p.size, 3];
  const trainStep = async (): Promise<void> => {
    const x = tf.tensor4d(xs, shape);
    const y = tf.tensor1d(ys, 'int32');
    let predicted: tf.Tensor | undefined;
    const loss = optimizer.step(() => {
      const logits = c.head.apply(fusedApply(c.backbone.model, x, true), { training: true }) as tf.Tensor2D;
      predicted = tf.keep(tf.argMax(logits, 1));
      return tf.losses.softmaxCrossEntropy(tf.oneHot(y, c.numClasses), logits) as tf.Scalar;
    }, vars);
    await loss.data();
    await predicted!.data();
    tf.dispose([x, y, loss, predicted!]);
  };
  const inferStep = async (): Promise<void> => {
    const x = tf.tensor4d(xs, shape);
    const logits = predictLogits(c, x);
    await logits.data();
    tf.dispose([x, logits]);
  };
  const train = await timed(trainStep, p, p.steps);
  const infer = await timed(inferStep, p, p.steps * 2);
  return { model: p.model, runtime: p.runtime, backend: engine.backend, route: engine.backend === 'wasm' ? kernelRoute()?.route ?? '-' : '-', optimizer: 'pipe', batch: p.batch, train, infer, description: engine.description };
}
