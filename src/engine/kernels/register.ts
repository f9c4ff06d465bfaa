/**
 * Registers the training kernels the wasm backend lacks or runs slowly, and the faster
 * FusedBatchNorm gradient. Two routes:
 * - `wasm`: everything stays in WebAssembly (one thread): filter and input gradients of
 *   convolutions re-expressed as XNNPACK convolutions (this folder), depthwise gradients, and
 *   wasm's forward convolutions run on the filter taps that meet real input (live-taps.ts);
 *   Identity and same-dtype Cast share their input's data instead of copying it (share-data.ts).
 * - `native`: convolutions (forward and both gradients) and matMuls go to pipe's oneDNN addon
 *   (../native/), on every core, and so do large element-wise ops, channel reductions, the
 *   max-pool gradient, the fused Adam step (../native/adam.ts) and the fused conv + BatchNorm
 *   (+ residual) (+ ReLU) kernels (../native/conv-bn-kernels.ts); the `wasm` route's kernels
 *   stay underneath as the fallback for what the addon does not take. Used when the addon is
 *   built and passes its self-test.
 * Must run before `tf.setBackend('wasm')`: a kernel that replaces an existing one keeps the
 * original's setupFunc (wasm binds its C++ functions there), or the original could no longer be
 * called as a fallback. That, and the native kernels' use of BackendWasm's heap, are tfjs
 * internals: the native route is only taken under the tfjs version they were written against
 * (TFJS_VERSION in ../native/wasm-wasm-heap.ts; package.json pins it exactly).
 */
import * as tf from '@tensorflow/tfjs';
import { fusedBatchNormGradConfig } from '../batch-norm-grad.js';
import { ADAM_KERNEL, adamKernelConfig } from '../native/adam.js';
import { BN_TRAIN_GRAD_KERNEL, BN_TRAIN_KERNEL, batchNormTrainGradConfig, batchNormTrainKernelConfigs } from '../native/batch-norm-train.js';
import { CONV_ADD_KERNEL, CONV_BN_TRAIN_GRAD_KERNEL, CONV_BN_TRAIN_KERNEL, convBnKernelConfigs, convBnTrainGradConfig } from '../native/conv-bn-kernels.js';
import { loadDnnl, type DnnlStatus } from '../native/dnnl.js';
import { TFJS_VERSION } from '../native/wasm-heap.js';
import { CONV_KERNEL_NAMES, convKernelConfigs } from '../native/conv-kernels.js';
import { POINTWISE_KERNEL_NAMES, pointwiseKernelConfigs } from '../native/pointwise-kernels.js';
import { conv2dBackpropFilterConfig } from './conv2d-backprop-filter.js';
import { conv2dBackpropInputConfig } from './conv2d-backprop-input.js';
import { conv2dForwardConfigs } from './conv2d-forward.js';
import { depthwiseBackpropConfigs } from './depthwise-backprop.js';
import { shareDataConfigs } from './share-data.js';

/** Which kernels run convolutions and matMuls on the wasm backend. */
export type KernelRoute = 'native' | 'wasm';

/** tfjs-backend-wasm's own kernels, captured before anything replaced them. */
let originals: Record<string, tf.KernelConfig | undefined> | undefined;
/** The registered route: its kernel names, a line for logs, and on the native route the addon's threads and why it is out of date (when it is). */
export interface RouteInfo { route: KernelRoute; names: string[]; detail: string; threads?: number; stale?: string }
let current: RouteInfo | undefined;

const NATIVE_NAMES = [...CONV_KERNEL_NAMES, ...POINTWISE_KERNEL_NAMES];
/** wasm's own kernels that the wasm route keeps as they are (the native route replaces them). */
const KEPT = NATIVE_NAMES.filter((n) => !['Conv2D', 'FusedConv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter'].includes(n));

function replace(config: tf.KernelConfig): void {
  if (tf.getKernel(config.kernelName, 'wasm')) tf.unregisterKernel(config.kernelName, 'wasm');
  tf.registerKernel(config);
}

function wasmRoute(): tf.KernelConfig[] {
  return [
    conv2dBackpropFilterConfig, conv2dBackpropInputConfig(originals!['Conv2DBackpropInput']), ...depthwiseBackpropConfigs,
    ...conv2dForwardConfigs(originals!), ...shareDataConfigs(originals!),
  ];
}

/** The addon's status, refused under a tfjs other than the one whose internals it relies on. */
function nativeStatus(): DnnlStatus {
  if (tf.version_core !== TFJS_VERSION) return { addon: undefined, reason: `native kernels off: they rely on the internals of tfjs ${TFJS_VERSION}, and this is tfjs ${tf.version_core}` };
  return loadDnnl();
}

/**
 * Registers `route` ('auto': native when the addon loads and passes its self-test, else wasm).
 * May be called again to switch routes (tests and benchmarks compare them).
 * @returns the route in use, the kernel names pipe registered, and a line for logs.
 * @throws Error when `route` is 'native' and the addon is unavailable (the reason is given).
 */
export function setKernelRoute(route: KernelRoute | 'auto'): { route: KernelRoute; names: string[]; detail: string } {
  originals ??= Object.fromEntries([...NATIVE_NAMES, 'Identity', 'Cast'].map((n) => [n, tf.getKernel(n, 'wasm')]));
  const dnnl = route === 'wasm' ? undefined : nativeStatus();
  if (route === 'native' && !dnnl?.addon) throw new Error(`native kernels unavailable: ${dnnl && !dnnl.addon ? dnnl.reason : ''}`);
  const base = wasmRoute();
  base.forEach(replace);
  const names = base.map((c) => c.kernelName);
  for (const n of KEPT) {
    const o = originals[n];
    if (o) replace(o);
  }
  for (const k of [ADAM_KERNEL, BN_TRAIN_KERNEL, BN_TRAIN_GRAD_KERNEL, CONV_ADD_KERNEL, CONV_BN_TRAIN_KERNEL, CONV_BN_TRAIN_GRAD_KERNEL]) if (tf.getKernel(k, 'wasm')) tf.unregisterKernel(k, 'wasm');
  if (dnnl?.addon) {
    const fallbacks = Object.fromEntries(NATIVE_NAMES.map((n) => [n, tf.getKernel(n, 'wasm')]));
    const configs = [...convKernelConfigs(dnnl.addon, fallbacks), ...pointwiseKernelConfigs(dnnl.addon, fallbacks), adamKernelConfig(dnnl.addon), ...batchNormTrainKernelConfigs(dnnl.addon), ...(dnnl.fused ? convBnKernelConfigs(dnnl.addon) : [])];
    if (!tf.getGradient(BN_TRAIN_KERNEL)) tf.registerGradient(batchNormTrainGradConfig);
    if (!tf.getGradient(CONV_BN_TRAIN_KERNEL)) tf.registerGradient(convBnTrainGradConfig);
    configs.forEach(replace);
    names.push(...configs.map((c) => c.kernelName).filter((n) => !names.includes(n)));
    current = { route: 'native', names, threads: dnnl.threads, ...(dnnl.stale ? { stale: dnnl.stale } : {}), detail: `native route: oneDNN addon on ${dnnl.threads} thread${dnnl.threads === 1 ? '' : 's'} for convolutions, matMuls and large element-wise ops, WebAssembly SIMD (1 thread) for the rest${dnnl.stale ? ` (${dnnl.stale})` : ''}` };
  } else {
    const why = dnnl && !dnnl.addon ? ` (${dnnl.reason})` : '';
    current = { route: 'wasm', names, detail: `wasm route: WebAssembly SIMD, 1 thread${why}` };
  }
  return current;
}

/** Idempotent: registers the 'auto' route once. Returns the names of the kernels registered for wasm. */
export function registerWasmKernels(): string[] {
  return (current ?? setKernelRoute('auto')).names;
}

/** The route registered last, or undefined before any registration. */
export function kernelRoute(): RouteInfo | undefined {
  return current;
}

let bnDone = false;

/** Replaces tfjs-core's FusedBatchNorm gradient (all backends) with the broadcast form. */
export function registerBatchNormGrad(): void {
  if (bnDone) return;
  bnDone = true;
  const warn = console.warn;
  console.warn = () => {}; // NOTE: tfjs warns "Overriding the gradient for 'FusedBatchNorm'" (intended here).
  try {
    tf.registerGradient(fusedBatchNormGradConfig);
  } finally {
    console.warn = warn;
  }
}
