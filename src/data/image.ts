/**
 * The image type the augmentation ops work on, and small numeric helpers shared by them.
 * Images are HWC (one image of an NHWC batch), float32, values in [0, 1] after the uint8 -> float
 * conversion (torchvision `to_tensor` / `convert_image_dtype` scale).
 */

/** One image: `data` is h x w x c, row-major, channels last (HWC). */
export interface Img {
  data: Float32Array;
  h: number;
  w: number;
  c: number;
}

/** An image's shape, [height, width, channels]. */
export type Shape = [number, number, number];

/**
 * A fill value for pixels outside the source image: one number for every channel or one per
 * channel, on the same scale as the image (so 0..1 after the uint8 conversion).
 */
export type Fill = number | readonly number[];

/** The fill value for channel `ch`. */
export function fillAt(fill: Fill, ch: number): number {
  return typeof fill === 'number' ? fill : (fill[fill.length === 1 ? 0 : ch] ?? 0);
}

/**
 * Rounds half to even (banker's rounding), like `torch.round` / C `nearbyint` under the default
 * rounding mode. JS `Math.round` rounds half up, which differs on exact .5 ties.
 */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * uint8 -> float32 lookup: `LUT_U8_TO_F32[v]` is `float32(v) / 255` as a true float32 division,
 * bit-identical to torchvision `to_tensor` (a multiplication by 1/255 differs for 126 of the 256
 * values; TRANSFORMS.md quirk 6).
 */
export const LUT_U8_TO_F32: Float32Array = Float32Array.from({ length: 256 }, (_, v) => v / 255);

/** Checks that `fill` has 1 or `c` values. @throws Error naming the op. */
export function checkFill(op: string, fill: Fill | null, c: number): void {
  if (fill !== null && typeof fill !== 'number' && fill.length !== 1 && fill.length !== c) {
    throw new Error(`${op}: fill has ${fill.length} values but the images have ${c} channel(s); give 1 or ${c}`);
  }
}
