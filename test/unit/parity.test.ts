/**
 * Training against PyTorch, step for step (goldens: test/fixtures/parity, made by
 * make_parity.py with torch 1.13; see its docstring). A slim torchvision-layout ResNet loads the
 * same initial state_dict and sees the same batches; the training loop, optimizer, BatchNorm and
 * freeze logic are the pipeline's own. Each quantity must be no further from torch's float64
 * run than torch's own float32 runs are (the floor stored with the goldens, times SPREAD below).
 * Every scenario runs on each kernel route this machine has: `native` (the oneDNN addon, when
 * built) and `wasm` (no addon).
 * (a) 5 train-mode steps of Adam(lr 1e-3, weight_decay 1e-4): loss per step, every weight and BN
 *     running statistic, eval-mode logits; (b) the frozen phase: loss per step, fc after, the
 *     backbone bit-identical; (c) the first unfrozen steps with a fresh Adam(lr 1e-4);
 * (d) ReduceLROnPlateau and early stopping on scripted sequences, against torch's outputs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import type { BatchSource } from '../../src/data/batches.js';
import { initEngine } from '../../src/engine/backend.js';
import { kernelRoute, setKernelRoute, type KernelRoute } from '../../src/engine/kernels/register.js';
import type { Classifier } from '../../src/models/registry.js';
import { resnet } from '../../src/models/resnet.js';
import { Safetensors } from '../../src/models/safetensors.js';
import { tfToTorch, torchToTf, weightSlots, type WeightSlot } from '../../src/models/torch-weights.js';
import { BestModel } from '../../src/train/best.js';
import { EarlyStopping, ReduceLROnPlateau } from '../../src/train/callbacks.js';
import { setTrainable } from '../../src/train/freeze.js';
import { trainPhase } from '../../src/train/loop.js';
import { buildOptimizer } from '../../src/train/optimizer.js';
import { predictLogits } from '../../src/train/evaluate.js';

const DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fixtures', 'parity');
const st = Safetensors.read(join(DIR, 'parity.safetensors'));
interface Meta {
  layout: { counts: number[]; widths: number[]; stem: number; classes: number; side: number; batch: number };
  state_dict: string[];
  floor: Record<string, number>;
  floor_runs: number;
  self_spread: number;
}
const meta = JSON.parse(readFileSync(join(DIR, 'parity.json'), 'utf8')) as Meta;
const L = meta.layout;

/** The float64 torch reference of `name`. */
function ref(name: string): Float64Array {
  const b = st.bytes(name);
  return new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** Batch `i` as NHWC float32, x = (p - 128) / 64, as the generator feeds torch (NCHW). */
function batch(i: number): { x: Float32Array; y: Int32Array; n: number; shape: [number, number, number, number] } {
  const px = st.bytes('batch.x');
  const ys = st.bytes('batch.y');
  const { batch: n, side: s } = L;
  const per = 3 * s * s;
  const x = new Float32Array(n * per);
  for (let k = 0; k < n; k++) {
    for (let c = 0; c < 3; c++) for (let h = 0; h < s; h++) for (let w = 0; w < s; w++) {
      x[k * per + (h * s + w) * 3 + c] = (px[(i * n + k) * per + (c * s + h) * s + w]! - 128) / 64;
    }
  }
  return { x, y: Int32Array.from(ys.subarray(i * n, (i + 1) * n)), n, shape: [n, s, s, 3] };
}

/** A source that yields the given fixed batches, in order, every epoch. */
function source(ids: number[]): BatchSource {
  return {
    batchesPerEpoch: ids.length,
    async *epochAsync(_epoch: number, max = Infinity) {
      for (const i of ids.slice(0, Math.min(ids.length, max))) yield batch(i);
    },
  } as unknown as BatchSource;
}

function model(): { c: Classifier; slots: WeightSlot[] } {
  const backbone = resnet({ block: 'basic', counts: L.counts, widths: L.widths, stem: L.stem }, { height: L.side, width: L.side, channels: 3 }, 'zeros', 'parity_resnet');
  const featIn = tf.input({ shape: [backbone.features], name: 'features' });
  const logits = tf.layers.dense({ units: L.classes, name: 'head_fc' }).apply(featIn) as tf.SymbolicTensor;
  const head = tf.model({ inputs: featIn, outputs: logits, name: 'head' });
  const c: Classifier = { arch: 'parity_resnet', backbone, head, numClasses: L.classes, reinitialized: [] };
  const slots = weightSlots([{ model: backbone.model, bindings: backbone.bindings }, { model: head, bindings: [{ layer: 'head_fc', torch: 'fc', kind: 'dense' }] }]);
  assert.deepEqual(slots.map((s) => s.key).sort(), [...meta.state_dict].sort(), 'the TypeScript net has torch\'s state_dict keys');
  for (const s of slots) {
    const t = torchToTf(s.kind, st.float32(`init.${s.key}`), s.torchShape);
    s.variable.write(t);
    t.dispose();
  }
  return { c, slots };
}

async function train(c: Classifier, phase: 'freeze' | 'unfreeze', ids: number[], lr: number): Promise<number[]> {
  const r = await trainPhase({
    phase, classifier: c, train: source(ids), test: source([7]), epochs: 1,
    optimizer: buildOptimizer({ name: 'adam', lr, weight_decay: 1e-4, momentum: 0, nesterov: false }),
    best: new BestModel('test_loss'), startEpoch: 0, startStep: 0, signal: new AbortController().signal, onIteration: () => {}, onEpoch: () => {},
  });
  return r.iterationLosses;
}

/**
 * How far past the floor ours may be: torch float32's own run-to-run spread, measured by the
 * generator (`self_spread`: the largest factor by which one of its 64 equally valid torch float32
 * runs exceeds the floor of the other 63, on any quantity; 1.61 with torch 1.13), not a chosen
 * slack. A float32 implementation exactly as accurate as torch's lands past the floor of torch's
 * runs about as often as one more torch run does: 20 of those 64 runs exceed the other 63's floor
 * on some quantity, so 1 here would reject torch float32 itself. (The earlier floor, over two
 * distinct runs, was 3.4x too low on a.layer4.0.conv2.weight: torch float32 with the images of a
 * batch merely reordered failed the earlier 3 x floor.)
 * Measured against the 64-run floor, largest err / floor over all quantities, before -> after
 * BatchNorm in double (sums, per-element arithmetic, the backward's statistics; in
 * native/batch_norm_train.cc, and src/engine/batch-norm-train.ts on the wasm route, whose float32
 * statistics were the one systematic cause; and the filter times scale of BatchNorm folded for
 * inference, src/models/fused-forward.ts, which put eval_logits and, through the frozen phase,
 * c.layer3.0.bn1.running_mean at 1.08 and 1.30): native route 1.23 -> 1.00 (2 threads),
 * 1.10 -> 1.00 (1 thread); wasm route 1.52 -> 1.05 (c.layer3.0.downsample.1.running_mean
 * 1.52 -> 0.54). What is left on the wasm route (conv weights of (a): 1.03 to 1.05) is float32
 * rounding in convolutions and their gradients, amplified where an Adam step divides nearly
 * cancelling moments. A semantic difference is orders of magnitude larger (biased running
 * variance: 1.9e-4 on the stem's bn1, against a floor of about 1e-7).
 */
const SPREAD = meta.self_spread;

/** Largest err / floor seen per route (reported as a test diagnostic). */
const worst = new Map<string, { ratio: number; name: string }>();

/** Max |ours - torch float64| over the quantity against SPREAD x the quantity's float32 floor. */
function check(name: string, ours: ArrayLike<number>): void {
  const want = ref(name);
  assert.equal(ours.length, want.length, `${name}: size`);
  let err = 0;
  for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(ours[i]! - want[i]!));
  const floor = meta.floor[name]!;
  const route = kernelRoute()!.route;
  if (err / floor > (worst.get(route)?.ratio ?? 0)) worst.set(route, { ratio: err / floor, name });
  assert.ok(err <= SPREAD * floor, `${name} (${route} route): max |ours - torch float64| = ${err.toExponential(3)} > ${SPREAD.toFixed(2)} x torch float32's ${floor.toExponential(3)}`);
}

const torchValues = (s: WeightSlot): Float32Array => tfToTorch(s.kind, s.variable.read());

/** The kernel routes this machine has: wasm always, native when the addon is built and passes its self-test. */
async function routes(): Promise<KernelRoute[]> {
  await initEngine('wasm');
  return kernelRoute()!.route === 'native' ? ['native', 'wasm'] : ['wasm'];
}

test('(a) 5 train-mode Adam steps: losses, weights, BN running statistics and eval logits match torch', async (t) => {
  for (const route of await routes()) {
    setKernelRoute(route);
    const { c, slots } = model();
    setTrainable(c, 'all');
    check('a.loss', await train(c, 'unfreeze', [0, 1, 2, 3, 4], 1e-3));
    for (const s of slots) check(`a.${s.key}`, torchValues(s));
    const x = batch(7);
    check('a.eval_logits', predictLogits(c, tf.tensor4d(x.x, x.shape)).dataSync());
  }
  setKernelRoute('auto');
  for (const [route, w] of worst) t.diagnostic(`${route}: largest err / floor ${w.ratio.toFixed(3)} (${w.name}); allowed ${SPREAD.toFixed(3)}`);
});

test('(b) frozen phase: head losses and weights match torch, backbone bit-identical; (c) first unfrozen steps with a fresh optimizer match torch', async (t) => {
  worst.clear();
  for (const route of await routes()) {
    setKernelRoute(route);
    const { c, slots } = model();
    setTrainable(c, 'none');
    check('b.loss', await train(c, 'freeze', [5, 6, 7], 1e-3));
    for (const s of slots) {
      if (s.key.startsWith('fc.')) check(`b.${s.key}`, torchValues(s));
      else assert.deepEqual(torchValues(s), st.float32(`init.${s.key}`), `${s.key} must not change while frozen`);
    }
    setTrainable(c, 'all');
    check('c.loss', await train(c, 'unfreeze', [0, 1, 2], 1e-4));
    for (const s of slots) check(`c.${s.key}`, torchValues(s));
  }
  setKernelRoute('auto');
  for (const [route, w] of worst) t.diagnostic(`${route}: largest err / floor ${w.ratio.toFixed(3)} (${w.name}); allowed ${SPREAD.toFixed(3)}`);
});

test('(d) ReduceLROnPlateau gives torch\'s lr after every epoch; early stopping stops where the recipe does', () => {
  const d = meta as unknown as {
    plateau: { seq: number[]; args: Record<string, number | string>; lrs: number[] }[];
    early_stopping: { seq: number[]; mode: 'min' | 'max'; patience: number; min_delta: number; stop_epoch: number | null }[];
  };
  assert.deepEqual(d.plateau[0]!.lrs, [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25], 'torch lowers at epochs 5 and 9 (issue 19)');
  for (const c of d.plateau) {
    const a = c.args as { lr?: number; mode: 'min' | 'max'; factor: number; patience: number; threshold?: number; threshold_mode?: 'rel' | 'abs'; cooldown?: number; min_lr?: number; eps?: number };
    const rl = new ReduceLROnPlateau({ monitor: 'test_loss', mode: a.mode, factor: a.factor, patience: a.patience, threshold: a.threshold ?? 1e-4, threshold_mode: a.threshold_mode ?? 'rel', cooldown: a.cooldown ?? 0, min_lr: a.min_lr ?? 0, eps: a.eps ?? 1e-8 });
    let lr = a.lr ?? 1;
    assert.deepEqual(c.seq.map((v) => (lr = rl.step({ test_loss: v }, lr))), c.lrs, JSON.stringify(c.args));
  }
  for (const c of d.early_stopping) {
    const es = new EarlyStopping({ monitor: 'test_loss', mode: c.mode, patience: c.patience, min_delta: c.min_delta });
    const stop = c.seq.findIndex((v, i) => es.update(i + 1, { test_loss: v }));
    assert.equal(stop < 0 ? null : stop + 1, c.stop_epoch, JSON.stringify(c));
  }
});
