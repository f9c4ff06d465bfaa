/**
 * What the native kernels need from tfjs-backend-wasm's `BackendWasm` (tfjs 4.22.0,
 * tfjs-backend-wasm/src/backend_wasm.ts): a tensor's byte offset in the wasm heap, outputs
 * allocated there, and the heap's ArrayBuffer, which the addon reads and writes in place.
 *
 * INTERNALS: these are tfjs internals, not its public API (so are the tensor ids used as filter
 * keys in conv-kernels.ts, and the replacement of wasm's kernels keeping their setupFuncs in
 * ../kernels/register.ts). package.json therefore pins every @tensorflow/* package to exactly
 * TFJS_VERSION, and register.ts keeps the native route off under any other tfjs version.
 */
import type { KernelConfig, KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs';

/** The tfjs version whose internals the native kernels rely on (package.json pins it exactly). */
export const TFJS_VERSION = '4.22.0';

/** The parts of BackendWasm used by the native kernels (tfjs internals, see TFJS_VERSION). */
export interface WasmBackend {
  dataIdMap: { get(id: unknown): { memoryOffset: number } };
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  disposeData(dataId: unknown): boolean;
  wasm: { HEAPU8: Uint8Array };
}

/** A kernel's arguments. */
export type KernelArgs = { inputs: NamedTensorInfoMap; attrs?: NamedAttrMap; backend: unknown };

/** Byte offset of a tensor's data in the wasm heap. */
export const offsetOf = (b: WasmBackend, t: TensorInfo): number => b.dataIdMap.get(t.dataId).memoryOffset;

/** Number of elements of a shape. */
export const sizeOf = (s: readonly number[]): number => s.reduce((a, v) => a * v, 1);

/** True when every given tensor is a non-empty float32 tensor. */
export const allFloat = (ts: Array<TensorInfo | undefined>): boolean => ts.every((t) => !t || (t.dtype === 'float32' && sizeOf(t.shape) > 0));

/**
 * Runs `call` with the heap and a fresh float32 output of `shape`; returns null when the addon
 * throws, and adds `key` to `refused` (the kernel's own set of argument keys the addon refused
 * once and would refuse again), so that later calls skip the addon. The heap's ArrayBuffer is
 * read after the output is allocated, since allocating may grow (and so replace) it.
 */
export function withOutput(b: WasmBackend, shape: number[], refused: Set<string>, key: string, call: (heap: ArrayBuffer, out: number) => void): TensorInfo | null {
  if (refused.has(key)) return null;
  const out = b.makeOutput(shape, 'float32');
  try {
    call(b.wasm.HEAPU8.buffer as ArrayBuffer, offsetOf(b, out));
    return out;
  } catch {
    refused.add(key);
    b.disposeData(out.dataId);
    return null;
  }
}

/** Calls per kernel name that ran natively and that went to the fallback, since start-up. */
const stats = { native: new Map<string, number>(), fallback: new Map<string, number>() };
const bump = (m: Map<string, number>, k: string): void => void m.set(k, (m.get(k) ?? 0) + 1);

/** Copies of the call counters (tests check that a kernel really ran natively). */
export function nativeStats(): { native: Record<string, number>; fallback: Record<string, number> } {
  return { native: Object.fromEntries(stats.native), fallback: Object.fromEntries(stats.fallback) };
}

/**
 * A kernel config that tries `native` first and calls `fallback` (keeping its setupFunc, where
 * wasm binds its C++ functions) when `native` returns null.
 */
export function nativeFirst(name: string, fallback: KernelConfig | undefined, native: (args: KernelArgs) => TensorInfo | null): KernelConfig {
  const kernelFunc = (args: KernelArgs): TensorInfo | TensorInfo[] => {
    const out = native(args);
    if (out) {
      bump(stats.native, name);
      return out;
    }
    bump(stats.fallback, name);
    if (!fallback) throw new Error(`${name}: no fallback kernel for these arguments`);
    return (fallback.kernelFunc as KernelFunc)(args as Parameters<KernelFunc>[0]);
  };
  return { kernelName: name, backendName: 'wasm', setupFunc: fallback?.setupFunc, kernelFunc: kernelFunc as KernelFunc };
}
