/**
 * The forward pass of a zoo backbone with its conv -> BatchNorm -> ReLU layers fused, so that a
 * ResNet step issues a fraction of the tfjs ops that tfjs-layers' own execution issues (one op
 * per layer, tens of microseconds of engine bookkeeping each, plus a memory pass each). The model's layers,
 * weights and names are unchanged (safetensors, torch bindings, checkpoints and freezing see
 * the same model); only the execution differs. Chains found in the layer graph, each
 * intermediate tensor used by the next layer only, the Conv2D channels-last, undilated and with
 * no activation of its own:
 *
 *   [ZeroPadding2D] -> Conv2D -> [BatchNorm2d] -> ReLU                (conv_bn_relu)
 *   [ZeroPadding2D] -> Conv2D -> [BatchNorm2d] -> Add(residual) -> ReLU  (a residual block's end)
 *   [ZeroPadding2D] -> Conv2D -> BatchNorm2d                           (e.g. a downsample shortcut)
 *
 * How a chain runs:
 * - BatchNorm with running statistics (inference, or a frozen layer) and the conv not trained:
 *   BN folded into the conv, w' = w * s and b' = beta + (bias - mean) * s per output channel,
 *   s = gamma / sqrt(var + eps) (s and b' computed in double precision; cached until a weight changes),
 *   the padding folded into the conv's explicit padding, and the ReLU (and residual add) as the
 *   conv's post-ops: one `FusedConv2D` (bias + relu) on every backend, or one `PipeConv2DAdd`
 *   on the native route (src/engine/native/conv-bn-kernels.ts). This is PyTorch's
 *   `torch.fx` conv-BN fusion for inference (torch.nn.utils.fusion.fuse_conv_bn_weights).
 * - BatchNorm with batch statistics (training a trainable layer), conv without bias: one
 *   `PipeConvBnTrain` where the backend has it (the native route), whose gradient is one
 *   `PipeConvBnTrainGrad` plus the input's backward-data conv; the running statistics are
 *   updated as BatchNorm2d updates them.
 * - Otherwise (training on the wasm route or another backend, a conv with a bias before a
 *   training BatchNorm, a trained conv before a frozen BatchNorm) each layer is applied as
 *   tfjs-layers would apply it: the same values as `model.apply`.
 * Every other layer is applied as it is. The graph is read from tfjs-layers' internals (`Node`,
 * Conv2D's and ZeroPadding2D's fields; package.json pins @tensorflow/* exactly). Differences from `model.apply`: the folded inference
 * path rounds differently (float32, ~1e-6 relative; the zoo goldens hold, test/unit/fused-forward.test.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { convAdd, convBnTrain } from '../engine/native/conv-bn-kernels.js';
import { BatchNorm2d } from './layers.js';

type Sym = tf.SymbolicTensor;
type Layer = tf.layers.Layer;

/** The parts of a tfjs-layers graph node read here (tfjs-layers' `Node`, topology.ts). */
interface LNode {
  outboundLayer: Layer;
  inputTensors: Sym[];
  outputTensors: Sym[];
  callArgs?: Record<string, unknown>;
}

/** The parts of tfjs-layers' Conv2D read here (layers/convolutional.ts). */
interface ConvLayer extends Layer {
  kernel: tf.LayerVariable;
  bias: tf.LayerVariable | null;
  useBias: boolean;
  strides: number[];
  padding: 'valid' | 'same' | 'causal';
  dataFormat: string;
  dilationRate: number | number[];
  activation: { getClassName(): string };
}

/** A fused chain: its nodes in order, and the tensors it reads and writes. */
interface Chain {
  kind: 'chain';
  pad?: LNode;
  conv: LNode;
  bn?: LNode;
  /** The Add of a residual block, and its other input. */
  add?: LNode;
  residual?: Sym;
  /** A ReLU at the end (after the BN, or after the add). */
  relu?: LNode;
  nodes: LNode[];
  input: Sym;
  output: Sym;
}

type Step = Chain | { kind: 'layer'; node: LNode };

interface Plan {
  input: Sym;
  output: Sym;
  steps: Step[];
  /** Uses of each tensor (by SymbolicTensor id); the output has one more. */
  uses: Map<number, number>;
}

const nodeOf = (s: Sym): LNode => (s.sourceLayer as unknown as { inboundNodes: LNode[] }).inboundNodes[s.nodeIndex]!;
const cls = (l: Layer): string => l.getClassName();

function isRelu(l: Layer): boolean {
  if (cls(l) === 'ReLU') return (l as unknown as { maxValue?: number | null }).maxValue == null;
  if (cls(l) === 'Activation') return (l as unknown as { activation: { getClassName(): string } }).activation.getClassName() === 'relu';
  return false;
}

function fusableConv(l: Layer): boolean {
  if (cls(l) !== 'Conv2D') return false;
  const c = l as ConvLayer;
  const d = typeof c.dilationRate === 'number' ? [c.dilationRate] : c.dilationRate;
  return c.dataFormat === 'channelsLast' && d.every((v) => v === 1) && c.padding !== 'causal' && c.activation.getClassName() === 'linear';
}

/** The plan of `model`, or null when it has nothing to fuse (or is not a one-input, one-output graph). */
function buildPlan(model: tf.LayersModel): Plan | null {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) return null;
  const input = model.inputs[0]!, output = model.outputs[0]!;
  // Every node that the output depends on, and the consumers of each tensor.
  const uses = new Map<number, number>([[output.id, 1]]);
  const consumers = new Map<number, LNode[]>();
  const seen = new Set<LNode>();
  const stack: Sym[] = [output];
  while (stack.length) {
    const s = stack.pop()!;
    if (s.id === input.id) continue;
    const n = nodeOf(s);
    if (!n || seen.has(n)) continue;
    seen.add(n);
    for (const t of n.inputTensors) {
      uses.set(t.id, (uses.get(t.id) ?? 0) + 1);
      consumers.set(t.id, [...(consumers.get(t.id) ?? []), n]);
      stack.push(t);
    }
  }
  /** The one node that reads `s`, when `s` has exactly one use (not the model output). */
  const only = (s: Sym): LNode | undefined => (uses.get(s.id) === 1 && s.id !== output.id ? consumers.get(s.id)?.[0] : undefined);
  const chains = new Map<number, Chain>(); // by output tensor id
  const claimed = new Set<LNode>(); // Adds taken by a chain (both inputs may be conv chains)
  for (const n of seen) {
    if (!fusableConv(n.outboundLayer) || n.inputTensors.length !== 1 || n.outputTensors.length !== 1) continue;
    const conv = n.outboundLayer as ConvLayer;
    const c: Chain = { kind: 'chain', conv: n, nodes: [n], input: n.inputTensors[0]!, output: n.outputTensors[0]! };
    const src = c.input.id === input.id ? undefined : nodeOf(c.input);
    if (src && cls(src.outboundLayer) === 'ZeroPadding2D' && conv.padding === 'valid' && only(c.input) === n && src.inputTensors.length === 1 && (src.outboundLayer as unknown as { dataFormat: string }).dataFormat === 'channelsLast') {
      c.pad = src;
      c.nodes.unshift(src);
      c.input = src.inputTensors[0]!;
    }
    let next = only(c.output);
    if (next && next.outboundLayer instanceof BatchNorm2d) {
      c.bn = next;
      c.nodes.push(next);
      c.output = next.outputTensors[0]!;
      next = only(c.output);
    }
    if (next && isRelu(next.outboundLayer)) {
      c.relu = next;
    } else if (next && cls(next.outboundLayer) === 'Add' && next.inputTensors.length === 2) {
      const after = only(next.outputTensors[0]!);
      const other = next.inputTensors.find((t) => t.id !== c.output.id);
      if (after && isRelu(after.outboundLayer) && other && !claimed.has(next)) {
        claimed.add(next);
        c.add = next;
        c.residual = other;
        c.nodes.push(next);
        c.relu = after;
      }
    }
    if (c.relu) {
      c.nodes.push(c.relu);
      c.output = c.relu.outputTensors[0]!;
    }
    if (c.pad || c.bn || c.relu) chains.set(c.output.id, c);
  }
  if (chains.size === 0) return null;
  // Steps in dependency order (depth-first, post-order), each chain once.
  const steps: Step[] = [];
  const done = new Set<number>([input.id]);
  const visit = (root: Sym): void => {
    const work: Array<{ s: Sym; expanded: boolean }> = [{ s: root, expanded: false }];
    while (work.length) {
      const top = work.pop()!;
      if (done.has(top.s.id)) continue;
      const chain = chains.get(top.s.id);
      const deps = chain ? [chain.input, ...(chain.residual ? [chain.residual] : [])] : nodeOf(top.s).inputTensors;
      if (!top.expanded) {
        work.push({ s: top.s, expanded: true });
        for (const d of [...deps].reverse()) if (!done.has(d.id)) work.push({ s: d, expanded: false });
        continue;
      }
      const step: Step = chain ?? { kind: 'layer', node: nodeOf(top.s) };
      const outs = chain ? [chain.output] : nodeOf(top.s).outputTensors;
      outs.forEach((o) => done.add(o.id));
      steps.push(step);
    }
  };
  visit(output);
  return { input, output, steps, uses };
}

const plans = new WeakMap<tf.LayersModel, Plan | null>();

// ---------------------------------------------------------------------------------------------
// Folded weights (inference)

interface Folded {
  key: unknown[];
  w: tf.Tensor4D;
  b: tf.Tensor1D;
}
const foldedCache = new WeakMap<Layer, Folded>();
/** Frees a conv's folded tensors once the conv layer is garbage (a disposed model's, e.g. a finished sweep trial's). */
const freeFolded = new FinalizationRegistry<tf.Tensor[]>((ts) => tf.dispose(ts));

/**
 * The conv's filter and bias with the BatchNorm's running statistics folded in (the scale s, the
 * bias and the filter times s in double precision, each rounded once); reused while
 * every weight is the same tensor (a variable's assign gives it a new dataId, so a trained or
 * loaded weight refolds).
 */
function folded(conv: ConvLayer, bn: BatchNorm2d): Folded {
  const v = bn.variables();
  const vars = [conv.kernel.read(), conv.useBias && conv.bias ? conv.bias.read() : undefined, v.gamma.read(), v.beta.read(), v.movingMean.read(), v.movingVariance.read()];
  const key = vars.map((t) => t?.dataId);
  const hit = foldedCache.get(conv);
  if (hit && !hit.w.isDisposed && hit.key.every((k, i) => k === key[i])) return hit;
  if (hit) {
    freeFolded.unregister(hit);
    tf.dispose([hit.w, hit.b]);
  }
  const [bias, gamma, beta, mean, variance] = vars.slice(1).map((t) => t?.dataSync());
  const O = conv.kernel.shape[3] as number;
  const s = Float64Array.from({ length: O }, (_, o) => gamma![o]! / Math.sqrt(variance![o]! + bn.epsilon));
  const b = Float32Array.from({ length: O }, (_, o) => beta![o]! + ((bias ? bias[o]! : 0) - mean![o]!) * s[o]!);
  // w * s in double, rounded once (s rounded to float32 first would scale every weight of an
  // output channel by the same error, which no later sum averages away; test/unit/parity.test.ts).
  const w = tf.tensor4d(Float32Array.from(vars[0]!.dataSync(), (wi, i) => wi * s[i % O]!), vars[0]!.shape as [number, number, number, number]);
  const out: Folded = { key, w: tf.keep(w), b: tf.keep(tf.tensor1d(b)) };
  foldedCache.set(conv, out);
  freeFolded.register(conv, [out.w, out.b], out);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Execution

type Values = Map<number, tf.Tensor>;

function applyNode(n: LNode, inputs: tf.Tensor[], training: boolean): tf.Tensor[] {
  const out = n.outboundLayer.apply(inputs.length === 1 ? inputs[0]! : inputs, { ...(n.callArgs ?? {}), training }) as tf.Tensor | tf.Tensor[];
  return Array.isArray(out) ? out : [out];
}

/** The chain's layers one by one, as tfjs-layers applies them. */
function runSeparately(c: Chain, vals: Values, training: boolean): tf.Tensor {
  let t = vals.get(c.input.id)!;
  for (const n of c.nodes) {
    const ins = n === c.add ? n.inputTensors.map((s) => (s.id === c.residual!.id ? vals.get(s.id)! : t)) : [t];
    t = applyNode(n, ins, training)[0]!;
  }
  return t;
}

function runChain(c: Chain, vals: Values, training: boolean): tf.Tensor {
  const conv = c.conv.outboundLayer as ConvLayer;
  const bn = c.bn?.outboundLayer as BatchNorm2d | undefined;
  const x = vals.get(c.input.id) as tf.Tensor4D;
  const residual = c.residual ? (vals.get(c.residual.id) as tf.Tensor4D) : undefined;
  const relu = !!c.relu;
  const padding = (c.pad?.outboundLayer as unknown as { padding: [[number, number], [number, number]] } | undefined)?.padding;
  const pad = padding ? ([[0, 0], padding[0], padding[1], [0, 0]] as [[number, number], [number, number], [number, number], [number, number]]) : (conv.padding as 'same' | 'valid');
  const strides = [conv.strides[0]!, conv.strides[1] ?? conv.strides[0]!] as [number, number];
  if (bn?.usesBatchStatistics(training)) {
    if (conv.useBias) return runSeparately(c, vals, training);
    const v = bn.variables();
    const r = convBnTrain(x, conv.kernel.read() as tf.Tensor4D, v.gamma.read(), v.beta.read(), { strides, pad, epsilon: bn.epsilon, relu, residual });
    if (!r) return runSeparately(c, vals, training);
    bn.updateRunningStatistics(r.mean, r.variance, r.y.size / r.y.shape[3]);
    return r.y;
  }
  // Running statistics (or no BN): fold. A trained conv keeps its own weights (no BN, then).
  if (bn && training && conv.trainable) return runSeparately(c, vals, training);
  const f = bn ? folded(conv, bn) : undefined;
  const w = f ? f.w : (conv.kernel.read() as tf.Tensor4D);
  const b = f ? f.b : conv.useBias && conv.bias ? conv.bias.read() : undefined;
  if (residual) {
    // The native one-op kernel has no gradient: in training, the separate (differentiable) ops.
    if (!training) return convAdd(x, w, b, residual, { strides, pad, relu });
    const s = tf.add(tf.fused.conv2d({ x, filter: w, strides, pad, bias: b }), residual);
    return relu ? tf.relu(s) : s;
  }
  return tf.fused.conv2d({ x, filter: w, strides, pad, bias: b, activation: relu ? 'relu' : 'linear' });
}

/**
 * `model.apply(x, { training })` with conv -> BatchNorm -> ReLU chains fused (see the file's
 * comment); the plain `model.apply` for models with nothing to fuse.
 * @param model a functional LayersModel with one input and one output (a zoo backbone).
 * @param x NHWC float32 images [n, h, w, c].
 * @param training BatchNorm2d layers that are trainable use batch statistics and update their
 *   running ones, as in `model.apply`.
 * @returns the model's output (features [n, f] for a backbone). Tensors made on the way are
 *   disposed in inference (the caller owns x and the result); in training the caller's tidy or
 *   optimizer step owns them.
 */
export function fusedApply(model: tf.LayersModel, x: tf.Tensor, training: boolean): tf.Tensor {
  let plan = plans.get(model);
  if (plan === undefined) plans.set(model, (plan = buildPlan(model)));
  if (!plan) return model.apply(x, { training }) as tf.Tensor;
  const vals: Values = new Map([[plan.input.id, x]]);
  const left = new Map(plan.uses);
  const p = plan;
  /** One use of `s` is done; in inference a tensor nobody needs any more is freed. */
  const release = (s: Sym): void => {
    const n = left.get(s.id)! - 1;
    left.set(s.id, n);
    if (training || n > 0 || s.id === p.input.id) return;
    const t = vals.get(s.id)!;
    vals.delete(s.id);
    if (t !== x && ![...vals.values()].includes(t)) t.dispose();
  };
  for (const step of plan.steps) {
    if (step.kind === 'chain') {
      const y = runChain(step, vals, training);
      vals.set(step.output.id, y);
      release(step.input);
      if (step.residual) release(step.residual);
    } else {
      const ins = step.node.inputTensors.map((s) => vals.get(s.id)!);
      const outs = applyNode(step.node, ins, training);
      step.node.outputTensors.forEach((s, i) => vals.set(s.id, outs[i]!));
      step.node.inputTensors.forEach(release);
    }
  }
  return vals.get(plan.output.id)!;
}
