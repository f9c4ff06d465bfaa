/**
 * Filter taps that only ever meet padding. A 3x3 'same' convolution on a 1x1 map (ResNet's last
 * stage at 32x32 input) multiplies 8 of its 9 taps by zeros; the same convolution restricted to
 * the live taps, with the padding shifted, gives the same output (and its filter gradient is zero
 * outside them). Both kernel routes use this; the arithmetic is the definition of a convolution
 * (output i reads input rows i*stride + a - padBefore, a = 0..k-1).
 */

/**
 * The window of taps of one spatial axis that meets real input for some output position:
 * [first tap, number of taps, padding before, padding after] for the windowed conv, or the whole
 * filter when leaving taps out would need negative padding.
 */
export function liveTaps(inSize: number, k: number, stride: number, padBefore: number, padAfter: number, outSize: number): [number, number, number, number] {
  let lo = k, hi = -1;
  for (let a = 0; a < k; a++) {
    for (let i = 0; i < outSize; i++) {
      const h = i * stride + a - padBefore;
      if (h >= 0 && h < inSize) {
        lo = Math.min(lo, a);
        hi = Math.max(hi, a);
        break;
      }
    }
  }
  const whole: [number, number, number, number] = [0, k, padBefore, padAfter];
  if (hi < 0 || (lo === 0 && hi === k - 1)) return whole;
  const kk = hi - lo + 1, pb = padBefore - lo;
  const pa = Math.max(0, (outSize - 1) * stride + kk - inSize - pb);
  if (pb < 0 || Math.floor((inSize + pb + pa - kk) / stride) + 1 !== outSize) return whole;
  return [lo, kk, pb, pa];
}

/** The live-tap window of a 2-D convolution (tfjs `Conv2DInfo`, channels last). */
export interface TapWindow {
  /** First live tap (row, column) and the window's size. */
  a0: number;
  b0: number;
  kh: number;
  kw: number;
  /** Explicit NHWC padding of the windowed convolution (same output size). */
  pad: [[number, number], [number, number], [number, number], [number, number]];
  /** True when the window is smaller than the filter. */
  cropped: boolean;
}

/** The window for a convolution described by `info` (from tf.backend_util.computeConv2DInfo). */
export function tapWindow(info: {
  inHeight: number; inWidth: number; filterHeight: number; filterWidth: number; strideHeight: number; strideWidth: number;
  outHeight: number; outWidth: number; padInfo: { top: number; bottom: number; left: number; right: number };
}): TapWindow {
  const { top, bottom, left, right } = info.padInfo;
  const [a0, kh, pt, pb] = liveTaps(info.inHeight, info.filterHeight, info.strideHeight, top, bottom, info.outHeight);
  const [b0, kw, pl, pr] = liveTaps(info.inWidth, info.filterWidth, info.strideWidth, left, right, info.outWidth);
  return { a0, b0, kh, kw, pad: [[0, 0], [pt, pb], [pl, pr], [0, 0]], cropped: kh !== info.filterHeight || kw !== info.filterWidth };
}
