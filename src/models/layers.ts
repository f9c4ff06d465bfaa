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
