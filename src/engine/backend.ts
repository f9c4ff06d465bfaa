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
  /**
   * The route the heavy work takes, short (engineName): e.g. `native (oneDNN, 2 threads) + wasm
   * SIMD`, `wasm`. The one name shown everywhere (engine line, `pipe.backend` tag, report header,
   * sweep table `backend` column).
   */
  name: string;
  /** The long form for `--log-format json` (run-start `engineDetail`): backend, device, kernel route, and the backends skipped and why. */
  description: string;
  /** Something the user should fix, said on the engine line after the name (e.g. an out-of-date native addon); absent when all is well. */
  warning?: string;
}

/**
 * The short name of the route the heavy work (convolutions, matMuls) takes:
 * - wasm backend with pipe's oneDNN addon: `native (oneDNN, N threads) + wasm SIMD` (the rest
 *   of the kernels stay in WebAssembly SIMD, one thread);
 * - wasm backend without it: `wasm`;
 * - tfjs-node: `tensorflow (libtensorflow CPU)` or `tensorflow (libtensorflow GPU)`; pure JavaScript: `cpu`.
 * @param backend tfjs backend in use (`tf.getBackend()`).
 * @param gpu whether the tensorflow backend came from tfjs-node-gpu.
 * @param route the wasm kernel route (kernels/register.ts kernelRoute), when registered.
 */
export function engineName(backend: string, gpu: boolean, route: { route: 'native' | 'wasm'; threads?: number } | undefined): string {
  if (backend === 'wasm') {
    if (route?.route !== 'native') return 'wasm';
    const t = route.threads ?? 1;
    return `native (oneDNN, ${t} thread${t === 1 ? '' : 's'}) + wasm SIMD`;
  }
  if (backend === 'tensorflow') return `tensorflow (libtensorflow ${gpu ? 'GPU' : 'CPU'})`;
  return backend;
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
      const stale = backend === 'wasm' && route?.stale ? `native ${route.stale}` : undefined;
      return { backend, requested, name: engineName(backend, name === 'tensorflow-gpu', route), description: `${backend} [${device}]${note}`, ...(stale ? { warning: stale } : {}) };
    }
    if (requested !== 'auto') throw new PipelineError('PIPE_BACKEND', `engine.backend '${requested}' cannot load: ${why}`, 2);
    skipped.push(why);
  }
  throw new PipelineError('PIPE_BACKEND', `no backend could load: ${skipped.join('; ')}`, 2);
}
