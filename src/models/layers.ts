/** Custom tfjs layers used by the zoo, registered for (de)serialisation. */
import * as tf from '@tensorflow/tfjs';

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
