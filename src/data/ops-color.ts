/**
 * Colour ops with fixed factors, in place on one HWC float32 image in [0, 1], with torchvision
 * 0.14 tensor semantics (`torchvision/transforms/functional_tensor.py`: `_blend`,
 * `rgb_to_grayscale`, `adjust_brightness`, `adjust_contrast`, `adjust_saturation`, `adjust_hue`
 * with `_rgb2hsv` / `_hsv2rgb`, `normalize`). Blends follow torch's float32 op order (factor
 * rounded to float32, each product and sum rounded, clamp to [0, 1]), so they match the goldens
 * to about 6e-8 (TRANSFORMS.md, "f32-order port"). Single-channel images: saturation and hue leave
 * them unchanged and contrast blends toward the plain mean, as torchvision does.
 */
import type { Img } from './image.js';

const f32 = Math.fround;
/** rgb_to_grayscale weights: 0.2989, 0.587, 0.114 (sum 0.9999), TRANSFORMS.md quirk 2. */
const WR = f32(0.2989), WG = f32(0.587), WB = f32(0.114);

/** float32 grey level of the RGB pixel at `i`, in torch's op order. */
function grayAt(d: Float32Array, i: number): number {
  return f32(f32(f32(WR * d[i]!) + f32(WG * d[i + 1]!)) + f32(WB * d[i + 2]!));
}

const clamp01 = (v: number): number => (v < 0 ? 0 : v > 1 ? 1 : v);

/** `_blend(img, other, ratio)` = clamp(ratio * img + (1 - ratio) * other) in float32 steps. */
function blend(v: number, other: number, ratio: number, oneMinus: number): number {
  return clamp01(f32(f32(ratio * v) + f32(oneMinus * other)));
}

/** `F.adjust_brightness(img, factor)`: blend toward black. */
export function adjustBrightness(img: Img, factor: number): void {
  const r = f32(factor), d = img.data;
  for (let i = 0; i < d.length; i++) d[i] = clamp01(f32(r * d[i]!));
}

/**
 * `F.adjust_contrast(img, factor)`: blend toward one scalar per image, the mean of its grayscale
 * (of the image itself when it has one channel).
 */
export function adjustContrast(img: Img, factor: number): void {
  const d = img.data, n = img.h * img.w;
  let sum = 0;
  if (img.c === 3) for (let i = 0; i < d.length; i += 3) sum += grayAt(d, i);
  else for (let i = 0; i < d.length; i++) sum += d[i]!;
  const mean = f32(sum / (img.c === 3 ? n : d.length));
  const r = f32(factor), om = f32(1 - factor);
  for (let i = 0; i < d.length; i++) d[i] = blend(d[i]!, mean, r, om);
}

/** `F.adjust_saturation(img, factor)`: blend each pixel toward its own grey level. */
export function adjustSaturation(img: Img, factor: number): void {
  if (img.c !== 3) return;
  const d = img.data, r = f32(factor), om = f32(1 - factor);
  for (let i = 0; i < d.length; i += 3) {
    const g = grayAt(d, i);
    d[i] = blend(d[i]!, g, r, om);
    d[i + 1] = blend(d[i + 1]!, g, r, om);
    d[i + 2] = blend(d[i + 2]!, g, r, om);
  }
}

/**
 * `F.adjust_hue(img, shift)`, shift in [-0.5, 0.5]: RGB -> HSV (Pillow's rules: ties go to r,
 * then g, then b; greys get h = s = 0; h = fmod(h/6 + 1, 1)), h' = (h + shift) floor-mod 1,
 * HSV -> RGB with sector floor(6h') mod 6 and p, q, t clamped to [0, 1]; no final clamp.
 */
export function adjustHue(img: Img, shift: number): void {
  if (img.c !== 3) return;
  const d = img.data;
  for (let i = 0; i < d.length; i += 3) {
    const r = d[i]!, g = d[i + 1]!, b = d[i + 2]!;
    const maxc = r > g ? (r > b ? r : b) : g > b ? g : b, minc = r < g ? (r < b ? r : b) : g < b ? g : b;
    const eq = maxc === minc, cr = maxc - minc;
    const s = cr / (eq ? 1 : maxc);
    const div = eq ? 1 : cr;
    const rc = (maxc - r) / div, gc = (maxc - g) / div, bc = (maxc - b) / div;
    let h: number;
    if (maxc === r) h = bc - gc;
    else if (maxc === g) h = 2 + rc - bc;
    else h = 4 + gc - rc;
    // fmod(h/6 + 1, 1) of a positive number is x - floor(x) (exact; `%` on doubles is slow in V8).
    h = h / 6 + 1;
    h -= Math.floor(h);
    h += shift;
    h -= Math.floor(h); // torch `%` on floats is floor-mod
    const v = maxc;
    const h6 = h * 6;
    let sector = Math.floor(h6);
    const f = h6 - sector;
    if (sector >= 6) sector -= 6; // h * 6 can round up to 6: i % 6 as torch
    const p = clamp01(v * (1 - s)), q = clamp01(v * (1 - s * f)), t = clamp01(v * (1 - s * (1 - f)));
    let ro: number, go: number, bo: number;
    switch (sector) {
      case 0: ro = v; go = t; bo = p; break;
      case 1: ro = q; go = v; bo = p; break;
      case 2: ro = p; go = v; bo = t; break;
      case 3: ro = p; go = q; bo = v; break;
      case 4: ro = t; go = p; bo = v; break;
      default: ro = v; go = p; bo = q; break;
    }
    d[i] = ro; d[i + 1] = go; d[i + 2] = bo;
  }
}

/**
 * Grayscale with `channels` output channels: an RGB image becomes its grey level
 * (`F.rgb_to_grayscale`), a single-channel one is kept; with `channels` = 3 the grey level is
 * repeated to R = G = B (PIL's `Grayscale(3)` on an 'L' image, or `x.repeat(3, 1, 1)` on a tensor:
 * TRANSFORMS.md quirk 8). Writes into `out` (h * w * channels values).
 */
export function grayscale(img: Img, channels: 1 | 3, out: Float32Array): Img {
  const { h, w, c, data } = img, n = h * w;
  for (let p = 0; p < n; p++) {
    const g = c === 3 ? grayAt(data, p * 3) : data[p * c]!;
    for (let ch = 0; ch < channels; ch++) out[p * channels + ch] = g;
  }
  return { data: out.subarray(0, n * channels), h, w, c: channels };
}

/**
 * `F.normalize(img, mean, std)`: (x - mean) / std per channel, in float32 steps with a true
 * division (x * (1/std) is off by up to 2.4e-7, TRANSFORMS.md quirk 6). One value applies to
 * every channel.
 */
export function normalize(img: Img, mean: readonly number[], std: readonly number[]): void {
  const c = img.c, d = img.data;
  const m = Float32Array.from({ length: c }, (_, ch) => mean[mean.length === 1 ? 0 : ch]!);
  const s = Float32Array.from({ length: c }, (_, ch) => std[std.length === 1 ? 0 : ch]!);
  if (c === 3) {
    const m0 = m[0]!, m1 = m[1]!, m2 = m[2]!, s0 = s[0]!, s1 = s[1]!, s2 = s[2]!;
    for (let i = 0; i < d.length; i += 3) {
      d[i] = f32(d[i]! - m0) / s0;
      d[i + 1] = f32(d[i + 1]! - m1) / s1;
      d[i + 2] = f32(d[i + 2]! - m2) / s2;
    }
    return;
  }
  for (let i = 0; i < d.length; i += c) {
    for (let ch = 0; ch < c; ch++) d[i + ch] = f32(d[i + ch]! - m[ch]!) / s[ch]!;
  }
}
