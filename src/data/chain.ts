/**
 * Runs an op chain on uint8 images, one image at a time, into a float32 NHWC batch: the uint8 ->
 * [0, 1] conversion (torchvision `to_tensor`), then each op's draw + apply. Two scratch buffers
 * are reused for every image, so a batch allocates nothing but its output.
 */
import type { Rng } from '../rng.js';
import { LUT_U8_TO_F32, type Img, type Shape } from './image.js';
import { buildTransform, type OpSpec, type Transform } from './transforms.js';

/** A compiled chain for one input shape. */
export class Chain {
  /** Output shape [height, width, channels] of every image. */
  readonly outShape: Shape;
  /** Values per output image (h * w * c). */
  readonly outSize: number;
  private readonly transforms: Transform[];
  private bufA: Float32Array;
  private bufB: Float32Array;

  /**
   * @param specs the pipeline file's op list
   * @param inShape [height, width, channels] of the uint8 input images
   * @throws Error naming the entry (`[1] random_crop: ...`) when an op cannot apply to the input
   */
  constructor(specs: readonly OpSpec[], readonly inShape: Shape) {
    this.transforms = specs.map(buildTransform);
    let max = inShape[0] * inShape[1] * inShape[2];
    let s = inShape;
    this.transforms.forEach((t, i) => {
      try {
        s = t.outShape(s);
      } catch (e) {
        throw new Error(`[${i}] ${(e as Error).message}`);
      }
      if (s.some((v) => !(v >= 1))) throw new Error(`[${i}] ${t.name}: gives an empty image ${s.join('x')}`);
      max = Math.max(max, s[0] * s[1] * s[2]);
    });
    this.outShape = s;
    this.outSize = s[0] * s[1] * s[2];
    this.bufA = new Float32Array(max);
    this.bufB = new Float32Array(max);
  }

  /**
   * Transforms one uint8 HWC image (`src`, inShape) with parameters drawn from `rng`, writing
   * outSize float32 values into `out` at `offset`.
   */
  run(src: Uint8Array, rng: Rng, out: Float32Array, offset: number): void {
    const [h, w, c] = this.inShape;
    const n = h * w * c;
    let cur = this.bufA, other = this.bufB;
    for (let i = 0; i < n; i++) cur[i] = LUT_U8_TO_F32[src[i]!]!;
    let img: Img = { data: cur.subarray(0, n), h, w, c };
    for (const t of this.transforms) {
      const next = t.apply(img, t.draw(rng, [img.h, img.w, img.c]), other);
      if (next.data.buffer === other.buffer) [cur, other] = [other, cur];
      img = next;
    }
    out.set(img.data, offset);
  }
}
