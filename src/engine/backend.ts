/**
 * Backend selection: `auto` takes the fastest that loads (tensorflow-gpu, tensorflow, wasm,
 * cpu); an explicitly requested backend that cannot load is an error before any work.
 * @tensorflow/tfjs-node and -gpu are optionalDependencies: their install script downloads
 * libtensorflow, so they are often absent; a failed native load falls through.
 */
import * as tf from '@tensorflow/tfjs';
import { PipelineError } from '../errors.js';
import type { BackendName } from '../config/types.js';
import { kernelRoute, registerBatchNormGrad, registerWasmKernels } from './kernels/register.js';

/** What the engine runs on. */
export interface EngineInfo {
  /** tfjs backend name in use: tensorflow, wasm or cpu. */
  backend: string;
  /** What the pipeline asked for. */
  requested: BackendName;
  /** One line for people: backend, device and why. */
  description: string;
}

type Concrete = Exclude<BackendName, 'auto'>;

async function tryNative(pkg: string): Promise<string | undefined> {
  try {
    await import(pkg);
    return undefined;
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0] ?? String(e);
    return (e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' ? `${pkg} is not installed (its install script needs to download libtensorflow)` : `${pkg} failed to load: ${msg}`;
  }
}

async function activate(name: Concrete): Promise<string | undefined> {
  tf.env().set('PROD', true); // also silences tfjs's "install tfjs-node" banner
  if (name === 'tensorflow-gpu' || name === 'tensorflow') {
    const why = await tryNative(name === 'tensorflow-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node');
    if (why) return why;
    return (await tf.setBackend('tensorflow')) ? undefined : 'the tensorflow backend did not initialise';
  }
  if (name === 'wasm') {
    await import('@tensorflow/tfjs-backend-wasm');
    registerWasmKernels();
  }
  registerBatchNormGrad();
  return (await tf.setBackend(name)) ? undefined : `the ${name} backend did not initialise`;
}

/**
 * Picks and activates the backend.
 * @throws PipelineError PIPE_BACKEND when an explicitly requested backend cannot load.
 */
export async function initEngine(requested: BackendName): Promise<EngineInfo> {
  const order: Concrete[] = requested === 'auto' ? ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] : [requested];
  const skipped: string[] = [];
  for (const name of order) {
    const why = await activate(name);
    if (why === undefined) {
      await tf.ready();
      const backend = tf.getBackend();
      const route = kernelRoute();
      // The kernel route and its threads, or why the native addon is not used.
      const wasmDevice = route ? `CPU, ${route.detail}` : 'CPU, WebAssembly SIMD, 1 thread';
      const device = backend === 'wasm' ? wasmDevice : backend === 'cpu' ? 'CPU, pure JavaScript (slow: tests only)' : name === 'tensorflow-gpu' ? 'GPU, libtensorflow' : 'CPU, libtensorflow';
      const note = skipped.length ? ` (skipped: ${skipped.join('; ')})` : '';
      return { backend, requested, description: `${backend} [${device}]${note}` };
    }
    if (requested !== 'auto') throw new PipelineError('PIPE_BACKEND', `engine.backend '${requested}' cannot load: ${why}`, 2);
    skipped.push(why);
  }
  throw new PipelineError('PIPE_BACKEND', `no backend could load: ${skipped.join('; ')}`, 2);
}
