/**
 * PyTorch state_dict <-> tfjs weights, by the bindings a `Net` recorded. Layouts:
 * - Conv2d weight OIHW -> tfjs kernel HWIO (transpose [2,3,1,0]);
 * - depthwise Conv2d weight [C*m, 1, kh, kw] -> tfjs depthwise kernel [kh, kw, C, m];
 * - Linear weight [out, in] -> tfjs kernel [in, out];
 * - BatchNorm2d weight/bias/running_mean/running_var -> gamma/beta/moving_mean/moving_variance
 *   (`num_batches_tracked` is a training counter and is ignored).
 * A missing tensor, an unexpected one or a shape mismatch is an error naming the tensor.
 * Reference: PyTorch `nn.Conv2d`/`nn.Linear`/`nn.BatchNorm2d` parameter layouts; Keras
 * Conv2D/DepthwiseConv2D/Dense/BatchNormalization weight layouts.
 */
import * as tf from '@tensorflow/tfjs';
import type { Safetensors, TensorToWrite } from './safetensors.js';
import type { BindingKind, TorchBinding } from './torch-net.js';

/** A model and the torch modules its layers stand for. */
export interface BoundModel {
  model: tf.LayersModel;
  bindings: TorchBinding[];
}

/** One torch tensor <-> one tfjs variable. */
export interface WeightSlot {
  /** Full torch key, e.g. `layer1.0.conv1.weight`. */
  key: string;
  kind: BindingKind;
  layer: string;
  variable: tf.LayerVariable;
  /** The shape the torch tensor must have. */
  torchShape: number[];
}

const BN_PARTS: Record<string, string> = { gamma: 'weight', beta: 'bias', moving_mean: 'running_mean', moving_variance: 'running_var' };

/** The torch shape of a tfjs weight of a layer of `kind`. */
export function torchShapeOf(kind: BindingKind, tfShape: number[]): number[] {
  if (tfShape.length === 4 && kind === 'conv') return [tfShape[3]!, tfShape[2]!, tfShape[0]!, tfShape[1]!];
  if (tfShape.length === 4 && kind === 'dwconv') return [tfShape[2]! * tfShape[3]!, 1, tfShape[0]!, tfShape[1]!];
  if (tfShape.length === 2 && kind === 'dense') return [tfShape[1]!, tfShape[0]!];
  return [...tfShape];
}

/** Every weight slot of the bound models, in binding order. @throws Error for a binding naming no layer. */
export function weightSlots(groups: BoundModel[]): WeightSlot[] {
  const slots: WeightSlot[] = [];
  for (const { model, bindings } of groups) {
    for (const b of bindings) {
      const layer = model.getLayer(b.layer);
      for (const v of layer.weights) {
        const part = v.originalName.slice(v.originalName.lastIndexOf('/') + 1);
        const suffix = b.kind === 'bn' ? BN_PARTS[part] : part === 'bias' ? 'bias' : 'weight';
        if (!suffix) throw new Error(`layer ${b.layer}: unexpected weight '${v.originalName}'`);
        slots.push({ key: `${b.torch}.${suffix}`, kind: b.kind, layer: b.layer, variable: v, torchShape: torchShapeOf(b.kind, v.shape as number[]) });
      }
    }
  }
  return slots;
}

/** torch-layout values -> a tfjs tensor in the variable's layout. */
export function torchToTf(kind: BindingKind, data: Float32Array, torchShape: number[]): tf.Tensor {
  return tf.tidy(() => {
    const t = tf.tensor(data, torchShape, 'float32');
    if (torchShape.length === 4 && kind === 'conv') return tf.transpose(t, [2, 3, 1, 0]);
    if (torchShape.length === 4 && kind === 'dwconv') return tf.transpose(t.reshape([torchShape[0]!, 1, torchShape[2]!, torchShape[3]!]), [2, 3, 0, 1]);
    if (torchShape.length === 2 && kind === 'dense') return tf.transpose(t, [1, 0]);
    return t;
  });
}

/** A tfjs weight -> torch-layout values (the inverse of torchToTf). */
export function tfToTorch(kind: BindingKind, value: tf.Tensor): Float32Array {
  return tf.tidy(() => {
    const s = value.shape;
    if (s.length === 4 && kind === 'conv') return tf.transpose(value, [3, 2, 0, 1]);
    if (s.length === 4 && kind === 'dwconv') return tf.transpose(value, [2, 3, 0, 1]);
    if (s.length === 2 && kind === 'dense') return tf.transpose(value, [1, 0]);
    return value.clone();
  }).dataSync() as Float32Array;
}

/** A state_dict that does not fit the model; the message lists each problem by tensor name. */
export class WeightsMismatchError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    const shown = problems.slice(0, 12);
    const more = problems.length > shown.length ? `\n  ... and ${problems.length - shown.length} more` : '';
    super(`${source} does not fit the model: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n  ${shown.join('\n  ')}${more}`);
    this.name = 'WeightsMismatchError';
  }
}

/** What a load did. */
export interface LoadReport {
  /** Torch tensors copied into the model. */
  loaded: number;
  /** Torch keys present in the file but deliberately not loaded (a replaced classifier). */
  skipped: string[];
}

const ignorable = (key: string): boolean => key.endsWith('.num_batches_tracked');
const under = (key: string, prefixes: string[]): boolean => prefixes.some((p) => key === p || key.startsWith(`${p}.`));

/**
 * Copies a torch state_dict into the bound models. All problems are collected first; nothing
 * is written unless every tensor fits.
 * @param skip torch module prefixes not to load (e.g. `['fc']` when the classifier is replaced);
 *   their tensors may be present with any shape, or absent.
 * @throws WeightsMismatchError naming each missing key, unexpected key and shape mismatch.
 */
export function loadTorchWeights(st: Safetensors, groups: BoundModel[], skip: string[] = []): LoadReport {
  const slots = weightSlots(groups).filter((s) => !under(s.key, skip));
  const wanted = new Set(slots.map((s) => s.key));
  const problems: string[] = [];
  for (const s of slots) {
    const info = st.tensors.get(s.key);
    if (!info) problems.push(`missing tensor '${s.key}' (for layer ${s.layer}, torch shape [${s.torchShape.join(',')}])`);
    else if (info.shape.join(',') !== s.torchShape.join(',')) {
      problems.push(`tensor '${s.key}' has shape [${info.shape.join(',')}], the model needs [${s.torchShape.join(',')}] (layer ${s.layer})`);
    }
  }
  const skipped: string[] = [];
  for (const key of st.tensors.keys()) {
    if (wanted.has(key) || ignorable(key)) continue;
    if (under(key, skip)) skipped.push(key);
    else problems.push(`unexpected tensor '${key}' [${st.tensors.get(key)!.shape.join(',')}]: the model has no such weight`);
  }
  if (problems.length > 0) throw new WeightsMismatchError(st.source, problems);
  for (const s of slots) {
    const t = torchToTf(s.kind, st.float32(s.key), s.torchShape);
    s.variable.write(t);
    t.dispose();
  }
  return { loaded: slots.length, skipped };
}

/** The bound models' weights as a torch state_dict (BN counters included), for saving as safetensors. */
export function exportTorchWeights(groups: BoundModel[]): Record<string, TensorToWrite> {
  const out: Record<string, TensorToWrite> = {};
  for (const s of weightSlots(groups)) {
    out[s.key] = { dtype: 'F32', shape: s.torchShape, data: tfToTorch(s.kind, s.variable.read()) };
    if (s.kind === 'bn' && s.key.endsWith('.running_var')) {
      out[s.key.replace(/running_var$/, 'num_batches_tracked')] = { dtype: 'I64', shape: [], data: new BigInt64Array([0n]) };
    }
  }
  return out;
}
