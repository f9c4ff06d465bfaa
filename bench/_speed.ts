import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { conv2dBackpropFilterConfig } from '../src/engine/kernels/conv2d-backprop-filter.js';
tf.registerKernel(conv2dBackpropFilterConfig);
import { conv2dBackpropInputConfig } from '../src/engine/kernels/conv2d-backprop-input.js';
import { fusedBatchNormGradConfig } from '../src/engine/batch-norm-grad.js';
if (process.env.NEWK) { const orig = tf.getKernel('Conv2DBackpropInput', 'wasm'); tf.unregisterKernel('Conv2DBackpropInput', 'wasm'); tf.registerKernel(conv2dBackpropInputConfig(orig)); }
if (process.env.NEWBN) tf.registerGradient(fusedBatchNormGradConfig);
tf.env().set('PROD', true);
await tf.setBackend(process.argv[2] ?? 'wasm');
const widths = (process.argv[3] ?? '16,32,64').split(',').map(Number);
const stemStride = Number(process.argv[4] ?? 1);
function block(x: tf.SymbolicTensor, f: number, s: number) {
  let y = tf.layers.conv2d({ filters: f, kernelSize: 3, strides: s, padding: 'same', useBias: false }).apply(x) as tf.SymbolicTensor;
  y = tf.layers.batchNormalization().apply(y) as tf.SymbolicTensor;
  y = tf.layers.reLU().apply(y) as tf.SymbolicTensor;
  y = tf.layers.conv2d({ filters: f, kernelSize: 3, padding: 'same', useBias: false }).apply(y) as tf.SymbolicTensor;
  y = tf.layers.batchNormalization().apply(y) as tf.SymbolicTensor;
  let sc = x;
  if (s !== 1 || x.shape[3] !== f) {
    sc = tf.layers.conv2d({ filters: f, kernelSize: 1, strides: s, useBias: false }).apply(x) as tf.SymbolicTensor;
    sc = tf.layers.batchNormalization().apply(sc) as tf.SymbolicTensor;
  }
  return tf.layers.reLU().apply(tf.layers.add().apply([y, sc]) as tf.SymbolicTensor) as tf.SymbolicTensor;
}
const inp = tf.input({ shape: [28, 28, 3] });
let x = tf.layers.conv2d({ filters: widths[0]!, kernelSize: 3, strides: stemStride, padding: 'same', useBias: false }).apply(inp) as tf.SymbolicTensor;
x = tf.layers.reLU().apply(tf.layers.batchNormalization().apply(x) as tf.SymbolicTensor) as tf.SymbolicTensor;
widths.forEach((w, i) => { x = block(x, w, i === 0 ? 1 : 2); });
x = tf.layers.globalAveragePooling2d({}).apply(x) as tf.SymbolicTensor;
const out = tf.layers.dense({ units: 10 }).apply(x) as tf.SymbolicTensor;
const model = tf.model({ inputs: inp, outputs: out });
const opt = tf.train.adam(1e-3);
const B = 64;
const xb = tf.randomNormal([B, 28, 28, 3]); const yb = tf.oneHot(tf.randomUniform([B], 0, 10, 'int32'), 10);
process.on("uncaughtException", (e) => { console.log("UNCAUGHT", typeof e, e); process.exit(1); });
for (let it = 0; it < 12; it++) {
  const t0 = performance.now();
  let l: tf.Scalar;
  try { l = opt.minimize(() => tf.losses.softmaxCrossEntropy(yb, model.apply(xb, { training: true }) as tf.Tensor), true) as tf.Scalar; } catch (e) { console.log('ERR', e, (e as any)?.stack); process.exit(1); }
  await l.data(); l.dispose();
  if (it >= 2) console.log('train img/s', (B / ((performance.now() - t0) / 1000)).toFixed(1));
}
for (let it = 0; it < 4; it++) {
  const t0 = performance.now();
  const p = model.predict(xb) as tf.Tensor; await p.data(); p.dispose();
  console.log('infer img/s', (B / ((performance.now() - t0) / 1000)).toFixed(1));
}
console.log(tf.memory().numTensors, model.countParams());
const prof = await tf.profile(async () => {
  const l = opt.minimize(() => tf.losses.softmaxCrossEntropy(yb, model.apply(xb, { training: true }) as tf.Tensor), true) as tf.Scalar;
  await l.data(); l.dispose();
});
const agg = new Map<string, number>();
for (const k of prof.kernels) agg.set(k.name, (agg.get(k.name) ?? 0) + (k.kernelTimeMs as number));
console.log([...agg.entries()].sort((a, b) => b[1] - a[1]).slice(0, 14).map(([n, t]) => `${n} ${t.toFixed(1)}`).join('\n'));
