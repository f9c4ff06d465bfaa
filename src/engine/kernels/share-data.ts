/**
 * `Identity`, and `Cast` to the tensor's own dtype, for the wasm backend without a copy: the
 * output shares the input's data (a reference count, as wasm's own Reshape and tfjs's cpu
 * backend's Identity do). tfjs tensor data is never written after it is made, so sharing is
 * safe. wasm's own Identity copies the tensor in JavaScript: a training step calls it for every
 * tensor a custom gradient saves (~600 times a ResNet-18 step, ~1,500 a ResNet-50 step), and
 * `tf.moments` casts every BatchNorm input to float32.
 */
import type { KernelConfig, KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs';

interface RefCounted {
  incRef(dataId: unknown): void;
}

type Args = { inputs: NamedTensorInfoMap; attrs?: NamedAttrMap; backend: unknown };

function share(x: TensorInfo, backend: unknown): TensorInfo {
  (backend as RefCounted).incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
}

/** Identity and same-dtype Cast configs; `originals` (wasm's own) handle strings and real casts. */
export function shareDataConfigs(originals: Record<string, KernelConfig | undefined>): KernelConfig[] {
  const call = (name: string, args: Args): TensorInfo | TensorInfo[] => (originals[name]!.kernelFunc as KernelFunc)(args as Parameters<KernelFunc>[0]);
  const identity = (args: Args): TensorInfo | TensorInfo[] => {
    const x = args.inputs['x']!;
    return x.dtype === 'string' ? call('Identity', args) : share(x, args.backend);
  };
  const cast = (args: Args): TensorInfo | TensorInfo[] => {
    const x = args.inputs['x']!;
    const { dtype } = args.attrs as unknown as { dtype: string };
    return x.dtype === dtype && dtype !== 'string' ? share(x, args.backend) : call('Cast', args);
  };
  return [
    { kernelName: 'Identity', backendName: 'wasm', setupFunc: originals['Identity']?.setupFunc, kernelFunc: identity as KernelFunc },
    { kernelName: 'Cast', backendName: 'wasm', setupFunc: originals['Cast']?.setupFunc, kernelFunc: cast as KernelFunc },
  ];
}
