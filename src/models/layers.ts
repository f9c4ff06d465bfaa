/** Custom tfjs layers used by the zoo, registered for (de)serialisation. */
import * as tf from '@tensorflow/tfjs';
import { batchNormTrainJs } from '../engine/batch-norm-train.js';
import { batchNormTrain } from '../engine/native/batch-norm-train.js';

/**
 * Repeats a single-channel NHWC input to `channels` channels (grayscale datasets into nets
 * built for RGB), like torchvision's `Grayscale(num_output_channels=3)`.
 */
export class RepeatChannels extends tf.layers.Layer {
  static readonly className = 'RepeatChannels';
  readonly channels: number;

  constructor(config: { channels: number; name?: string }) {
    super(config);
    this.channels = config.channels;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const s = inputShape as tf.Shape;
    return [...s.slice(0, -1), this.channels];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0]! : inputs;
    return tf.tidy(() => (x.shape[x.rank - 1] === this.channels ? x : tf.tile(x, [...Array(x.rank - 1).fill(1), this.channels])));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), channels: this.channels };
  }
}
tf.serialization.registerClass(RepeatChannels);

/** torch's adaptive pooling bins along one axis: [floor(i*n/out), ceil((i+1)*n/out)). */
export function adaptiveBins(n: number, out: number): Array<[number, number]> {
  return Array.from({ length: out }, (_, i) => [Math.floor((i * n) / out), Math.ceil(((i + 1) * n) / out)] as [number, number]);
}

/**
 * PyTorch `nn.AdaptiveAvgPool2d(size)` on NHWC: [n, h, w, c] -> [n, size, size, c], each output
 * cell the mean of its (possibly overlapping) bin; a smaller input is replicated (VGG's 7x7 pool
 * on a 1x1 map). Reference: ATen `adaptive_avg_pool2d` (start = floor(i*H/out), end = ceil((i+1)*H/out)).
 */
export class AdaptiveAvgPool2d extends tf.layers.Layer {
  static readonly className = 'AdaptiveAvgPool2d';
  readonly size: number;

  constructor(config: { size: number; name?: string }) {
    super(config);
    this.size = config.size;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const s = inputShape as tf.Shape;
    return [s[0]!, this.size, this.size, s[3]!];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = (Array.isArray(inputs) ? inputs[0]! : inputs) as tf.Tensor4D;
    const [, h, w] = x.shape;
    const out = this.size;
    return tf.tidy(() => {
      if (h % out === 0 && w % out === 0) return tf.avgPool(x, [h / out, w / out], [h / out, w / out], 'valid');
      const rows = adaptiveBins(h, out).map(([r0, r1]) => {
        const cells = adaptiveBins(w, out).map(([c0, c1]) => tf.mean(tf.slice(x, [0, r0, c0, 0], [-1, r1 - r0, c1 - c0, -1]), [1, 2]));
        return tf.stack(cells, 1); // [n, out, c]
      });
      return tf.stack(rows, 1); // [n, out, out, c]
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), size: this.size };
  }
}
tf.serialization.registerClass(AdaptiveAvgPool2d);

/**
 * PyTorch `nn.BatchNorm2d` on NHWC (channels last), with PyTorch's semantics where tfjs-layers'
 * `BatchNormalization` (Keras) differs:
 * - `momentum` is PyTorch's: running = (1 - momentum) * running + momentum * batch
 *   (default 0.1; Keras writes the same update as momentum 0.9).
 * - The running variance is updated with the unbiased batch variance, var * n / (n - 1) with
 *   n = N*H*W per channel, as torch does (`torch.nn.functional.batch_norm`,
 *   ATen `batch_norm_cpu_update_stats_template`); tfjs/Keras use the biased one. The batch
 *   itself is normalised with the biased variance, as in both.
 * - A layer with `trainable = false` runs in inference mode even when called with
 *   `training: true` (Keras 3's rule for frozen BatchNorm, which freeze-train relies on to keep
 *   the backbone's statistics untouched; in torch the recipe puts the frozen backbone in eval()).
 * Weights are named as Keras names them (gamma, beta, moving_mean, moving_variance), so torch
 * state_dicts bind as before (torch-weights.ts) and saved models keep their weight names.
 */
export class BatchNorm2d extends tf.layers.Layer {
  static readonly className = 'BatchNorm2d';
  /** PyTorch momentum. @defaultValue 0.1 */
  readonly momentum: number;
  /** @defaultValue 1e-5 */
  readonly epsilon: number;
  private gamma!: tf.LayerVariable;
  private beta!: tf.LayerVariable;
  private movingMean!: tf.LayerVariable;
  private movingVariance!: tf.LayerVariable;

  constructor(config: { momentum?: number; epsilon?: number; name?: string; trainable?: boolean }) {
    super(config);
    this.momentum = config.momentum ?? 0.1;
    this.epsilon = config.epsilon ?? 1e-5;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const s = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const shape = [s[s.length - 1] as number];
    this.gamma = this.addWeight('gamma', shape, 'float32', tf.initializers.ones());
    this.beta = this.addWeight('beta', shape, 'float32', tf.initializers.zeros());
    this.movingMean = this.addWeight('moving_mean', shape, 'float32', tf.initializers.zeros(), undefined, false);
    this.movingVariance = this.addWeight('moving_variance', shape, 'float32', tf.initializers.ones(), undefined, false);
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    return inputShape as tf.Shape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: { training?: boolean }): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0]! : inputs;
    return tf.tidy(() => {
      if (!(kwargs['training'] ?? false) || !this.trainable) {
        return tf.batchNorm(x, this.movingMean.read(), this.movingVariance.read(), this.beta.read(), this.gamma.read(), this.epsilon);
      }
      // One fused kernel each way where the backend has it (the native route), else tfjs ops.
      const fused = batchNormTrain(x, this.gamma.read(), this.beta.read(), this.epsilon);
      let y: tf.Tensor, meanC: tf.Tensor | Float64Array, variance: tf.Tensor | Float64Array;
      if (fused) {
        ({ y, mean: meanC, variance } = fused);
      } else if (tf.getBackend() === 'wasm') {
        // The same algorithm in JavaScript, in double precision (the route without the addon).
        ({ y, mean: meanC, variance } = batchNormTrainJs(x, this.gamma.read(), this.beta.read(), this.epsilon));
      } else {
        // Per-channel mean and biased variance, summed per image first and then over the batch
        // (float32 sums: the cpu and tensorflow backends, where the data would be copied out).
        const inner = [...Array(x.rank - 2).keys()].map((a) => a + 1);
        const mean = tf.mean(tf.mean(x, inner, true), 0, true);
        variance = tf.reshape(tf.mean(tf.mean(tf.square(tf.sub(x, mean)), inner, true), 0), [-1]);
        meanC = tf.reshape(mean, [-1]);
        y = tf.batchNorm(x, meanC, variance, this.beta.read(), this.gamma.read(), this.epsilon);
      }
      this.updateRunningStatistics(meanC, variance, x.size / (x.shape[x.rank - 1] as number));
      return y;
    });
  }

  /**
   * True when a call with `training` normalises with the batch's statistics (and updates the
   * running ones): training and the layer trainable. Otherwise it uses the running statistics.
   */
  usesBatchStatistics(training: boolean): boolean {
    return training && this.trainable;
  }

  /** The layer's variables, for src/models/fused-forward.ts (which folds or fuses this layer); built layers only. */
  variables(): { gamma: tf.LayerVariable; beta: tf.LayerVariable; movingMean: tf.LayerVariable; movingVariance: tf.LayerVariable } {
    return { gamma: this.gamma, beta: this.beta, movingMean: this.movingMean, movingVariance: this.movingVariance };
  }

  /**
   * The running-statistics update after a training-mode call, from the batch's per-channel mean
   * and biased variance (float32 tensors, or double values) over `n` values per channel (N*H*W):
   * the variance enters unbiased,
   * times n / (n - 1), as in torch. The buffers are updated in double precision and rounded
   * once, as torch does (momentum * batch + (1 - momentum) * running); they are not part of the
   * output, so no gradient flows through them.
   */
  updateRunningStatistics(mean: tf.Tensor | Float64Array, variance: tf.Tensor | Float64Array, n: number): void {
    const m = this.momentum;
    const update = (v: tf.LayerVariable, batch: tf.Tensor | Float64Array, scale: number): void => {
      const r = v.read().dataSync(), b = batch instanceof Float64Array ? batch : batch.dataSync();
      v.write(tf.tensor1d(Float32Array.from(r, (ri, i) => m * (b[i]! * scale) + (1 - m) * ri)));
    };
    tf.tidy(() => {
      update(this.movingMean, mean, 1);
      update(this.movingVariance, variance, n > 1 ? n / (n - 1) : 1);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), momentum: this.momentum, epsilon: this.epsilon };
  }
}
tf.serialization.registerClass(BatchNorm2d);
