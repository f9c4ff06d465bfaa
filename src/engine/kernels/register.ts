/**
 * Registers the training kernels the wasm backend lacks or runs slowly, and the faster
 * FusedBatchNorm gradient. Must run before `tf.setBackend('wasm')`: a kernel that replaces an
 * existing one keeps the original's setupFunc (wasm binds its C++ functions there), or the
 * original could no longer be called as a fallback.
 */
import * as tf from '@tensorflow/tfjs';
import { fusedBatchNormGradConfig } from '../batch-norm-grad.js';
import { conv2dBackpropFilterConfig } from './conv2d-backprop-filter.js';
import { conv2dBackpropInputConfig } from './conv2d-backprop-input.js';
import { depthwiseBackpropConfigs } from './depthwise-backprop.js';

let done = false;

/** Idempotent. Returns the names of the kernels registered for wasm. */
export function registerWasmKernels(): string[] {
  const names = ['Conv2DBackpropFilter', 'Conv2DBackpropInput', ...depthwiseBackpropConfigs.map((c) => c.kernelName)];
  if (done) return names;
  done = true;
  const replace = (config: tf.KernelConfig): void => {
    if (tf.getKernel(config.kernelName, 'wasm')) tf.unregisterKernel(config.kernelName, 'wasm');
    tf.registerKernel(config);
  };
  replace(conv2dBackpropFilterConfig);
  replace(conv2dBackpropInputConfig(tf.getKernel('Conv2DBackpropInput', 'wasm')));
  depthwiseBackpropConfigs.forEach(replace);
  return names;
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
