/**
 * Optimizers with PyTorch's meaning of their settings:
 * - `adam` / `sgd` with `weight_decay`: L2 added to the gradient (torch.optim.Adam / SGD).
 * - `adamw`: decoupled decay, w <- w - lr * wd * w before the Adam step (Loshchilov & Hutter 2019;
 *   torch.optim.AdamW).
 * Adam uses PyTorch's defaults: betas (0.9, 0.999), eps 1e-8; with the native addon its step is one
 * fused pass per variable (src/engine/native/adam.ts), else tfjs's own Adam.
 */
import * as tf from '@tensorflow/tfjs';
import type { FreezeTrainStageParameters } from '../config/generated/freeze-train.js';
import { createAdam } from '../engine/native/adam.js';

/** A named tensor, as tfjs optimizers' getWeights/setWeights use (tfjs-core does not export the type). */
export interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}

/**
 * The `optimizer:` block of a training stage, validated (defaults filled): the type generated from
 * its schema (schemas/stages/train-common.schema.json `optimizer`), where its fields, defaults and docs live.
 */
export type OptimizerConfig = FreezeTrainStageParameters['optimizer'];

/**
 * The learning rate of a training phase: the one place it lives. `base` starts at the
 * configured `lr` and only ReduceLROnPlateau lowers it; a per-step schedule maps it to the rate
 * of the next step (`value`); the optimizer reads `value` at every step.
 */
export class LearningRate {
  private curve: ((base: number) => number) | undefined;

  constructor(public base: number) {}

  /** The rate the next step uses. */
  get value(): number {
    return this.curve ? this.curve(this.base) : this.base;
  }

  /** Sets the schedule's map from base to rate for the next steps (undefined: the base itself). */
  schedule(curve: ((base: number) => number) | undefined): void {
    this.curve = curve;
  }
}

/** A built optimizer whose learning rate can change between steps. */
export interface Optimizer {
  config: OptimizerConfig;
  /** 'l2' (added to the gradient), 'decoupled' (AdamW) or 'none'. */
  decayMode: 'l2' | 'decoupled' | 'none';
  /** The phase's learning rate (read at every step). */
  readonly lr: LearningRate;
  /** One step: gradients of `loss` w.r.t. `vars`, decay, update. Returns the loss (caller disposes). */
  step(loss: () => tf.Scalar, vars: tf.Variable[]): tf.Scalar;
  /** The optimizer's slots (e.g. Adam's step count and moments), for checkpoints. */
  getState(): Promise<NamedTensor[]>;
  /** Restores slots saved by getState (same variable list, same order). */
  setState(state: NamedTensor[]): Promise<void>;
  dispose(): void;
}

/** Builds the optimizer (a fresh one per training stage: tfjs slots are tied to the variable list). */
export function buildOptimizer(config: OptimizerConfig): Optimizer {
  // Each has a public setLearningRate (tfjs SGDOptimizer, which MomentumOptimizer extends; ours for Adam).
  const inner: tf.Optimizer & { setLearningRate(lr: number): void } =
    config.name === 'sgd'
      ? config.momentum > 0
        ? tf.train.momentum(config.lr, config.momentum, config.nesterov)
        : tf.train.sgd(config.lr)
      : createAdam(config.lr, 0.9, 0.999, 1e-8);
  let applied = config.lr;
  const decayMode = config.weight_decay === 0 ? 'none' : config.name === 'adamw' ? 'decoupled' : 'l2';
  const opt: Optimizer = {
    config,
    decayMode,
    lr: new LearningRate(config.lr),
    step(loss, vars) {
      const lr = opt.lr.value;
      if (lr !== applied) inner.setLearningRate((applied = lr));
      const { value, grads } = tf.variableGrads(loss, vars);
      tf.tidy(() => {
        const wd = config.weight_decay;
        if (decayMode === 'l2') {
          for (const v of vars) {
            const g = grads[v.name]!;
            grads[v.name] = tf.add(g, tf.mul(v, wd));
            g.dispose();
          }
        } else if (decayMode === 'decoupled') {
          for (const v of vars) v.assign(tf.mul(v, 1 - lr * wd));
        }
        inner.applyGradients(grads as tf.NamedTensorMap as Record<string, tf.Variable>);
      });
      tf.dispose(Object.values(grads));
      return value;
    },
    getState: () => inner.getWeights(),
    setState: (state) => inner.setWeights(state),
    dispose: () => inner.dispose(),
  };
  return opt;
}
