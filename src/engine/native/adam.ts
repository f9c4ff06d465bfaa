/**
 * A fused Adam step: tfjs-core's `AdamOptimizer` with `applyGradients` doing one pass over each
 * variable (the native addon's `adam`, every core) instead of ~14 element-wise ops, which on a
 * ResNet-18 step cost about a quarter of the time in wasm. The arithmetic is tfjs's, float32
 * operation by operation in the same order (Kingma & Ba 2015, "Adam", Algorithm 1, with tfjs's
 * bias-correction form), except that the bias corrections are PyTorch's (double precision, from
 * the step count; see FusedAdamOptimizer). The optimizer's state (moments, iterations),
 * getWeights/setWeights and serialisation ('Adam') are the parent's. On backends without the
 * `PipeAdamUpdate` kernel the same arithmetic runs as tfjs ops.
 */
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs';
import type { DnnlAddon } from './dnnl.js';
import { allFloat, offsetOf, sizeOf, type KernelArgs, type WasmBackend } from './wasm-heap.js';

/** Name of the fused kernel: inputs w, g, m, v, oneMinusAccBeta1, oneMinusAccBeta2; outputs [w', m', v']. */
export const ADAM_KERNEL = 'PipeAdamUpdate';

/** The wasm kernel config (native addon). Throws, rather than fall back, on non-float32 input. */
export function adamKernelConfig(addon: DnnlAddon): KernelConfig {
  const kernelFunc = ({ inputs, attrs, backend }: KernelArgs): TensorInfo[] => {
    const b = backend as WasmBackend;
    const { w, g, m, v, oneMinusAccBeta1: a1, oneMinusAccBeta2: a2 } = inputs as Record<string, TensorInfo>;
    if (!allFloat([w, g, m, v, a1, a2])) throw new Error(`${ADAM_KERNEL}: float32 tensors only`);
    const { beta1, beta2, epsilon, learningRate } = attrs as unknown as { beta1: number; beta2: number; epsilon: number; learningRate: number };
    const outs = [b.makeOutput([...w!.shape], 'float32'), b.makeOutput([...w!.shape], 'float32'), b.makeOutput([...w!.shape], 'float32')];
    const f = Math.fround;
    const p = [w, g, m, v, ...outs].map((t) => offsetOf(b, t!));
    addon.adam(b.wasm.HEAPU8.buffer as ArrayBuffer, new Float64Array([...p, sizeOf(w!.shape), offsetOf(b, a1!), offsetOf(b, a2!), f(beta1), f(1 - beta1), f(beta2), f(1 - beta2), f(epsilon), f(-learningRate)]));
    return outs;
  };
  return { kernelName: ADAM_KERNEL, backendName: 'wasm', kernelFunc: kernelFunc as tf.KernelFunc };
}

interface Slot {
  originalName: string;
  variable: tf.Variable;
}

/** tfjs's AdamOptimizer internals this class uses (tfjs-core/src/optimizers/adam_optimizer.ts). */
interface AdamInternals {
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  accumulatedFirstMoment: Slot[];
  accumulatedSecondMoment: Slot[];
  incrementIterations(): void;
}

/**
 * Adam whose step runs the fused kernel where the current backend has it, else the same
 * arithmetic as tfjs ops. Where tfjs's own Adam differs from PyTorch, this follows PyTorch
 * (torch.optim.Adam, 1.13, `_single_tensor_adam`): the bias corrections 1 - beta^t are computed
 * in double precision from the step count t, not as 1 minus a float32 running product (which
 * for beta2 = 0.999 is 1.3e-5 off in relative terms at t = 1, since 0.999 is not a float32).
 * So the optimizer's whole state is the moments and the step count (getWeights/setWeights,
 * tfjs's layout), and restoring it resumes bit for bit.
 */
export class FusedAdamOptimizer extends tf.AdamOptimizer {
  /** Sets the learning rate of the next steps. */
  setLearningRate(lr: number): void {
    this.learningRate = lr;
  }

  override applyGradients(variableGradients: Parameters<tf.AdamOptimizer['applyGradients']>[0]): void {
    const fused = tf.getKernel(ADAM_KERNEL, tf.getBackend()) !== undefined;
    const self = this as unknown as AdamInternals;
    const names = Array.isArray(variableGradients) ? variableGradients.map((v) => v.name) : Object.keys(variableGradients);
    const t = this.iterations + 1;
    tf.tidy(() => {
      const oneMinusAccBeta1 = tf.scalar(1 - self.beta1 ** t);
      const oneMinusAccBeta2 = tf.scalar(1 - self.beta2 ** t);
      const attrs = { beta1: self.beta1, beta2: self.beta2, epsilon: self.epsilon, learningRate: self.learningRate } as unknown as NamedAttrMap;
      names.forEach((name, i) => {
        const value = tf.engine().registeredVariables[name]!;
        self.accumulatedFirstMoment[i] ??= { originalName: `${name}/m`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
        self.accumulatedSecondMoment[i] ??= { originalName: `${name}/v`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
        const gradient = Array.isArray(variableGradients) ? variableGradients[i]!.tensor : variableGradients[name];
        if (gradient == null) return;
        const m = self.accumulatedFirstMoment[i]!.variable, v = self.accumulatedSecondMoment[i]!.variable;
        let w1: tf.Tensor, m1: tf.Tensor, v1: tf.Tensor;
        if (fused) {
          const inputs = { w: value, g: gradient, m, v, oneMinusAccBeta1, oneMinusAccBeta2 };
          [w1, m1, v1] = tf.engine().runKernel(ADAM_KERNEL, inputs, attrs) as [tf.Tensor, tf.Tensor, tf.Tensor];
        } else {
          // tfjs-core adam_optimizer.ts's ops, in its order (the fused kernel's order too).
          m1 = tf.add(tf.mul(m, self.beta1), tf.mul(gradient, 1 - self.beta1));
          v1 = tf.add(tf.mul(v, self.beta2), tf.mul(tf.square(gradient), 1 - self.beta2));
          const mHat = tf.div(m1, oneMinusAccBeta1);
          const vHat = tf.div(v1, oneMinusAccBeta2);
          w1 = tf.add(tf.mul(tf.div(mHat, tf.add(tf.sqrt(vHat), self.epsilon)), -self.learningRate), value);
        }
        m.assign(m1);
        v.assign(v1);
        value.assign(w1);
      });
    });
    self.incrementIterations();
  }
}

/**
 * Adam with PyTorch's defaults when called as createAdam(lr): betas (0.9, 0.999), eps 1e-8.
 * A drop-in for `tf.train.adam(lr, beta1, beta2, epsilon)`.
 */
export function createAdam(learningRate: number, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8): FusedAdamOptimizer {
  return new FusedAdamOptimizer(learningRate, beta1, beta2, epsilon);
}
