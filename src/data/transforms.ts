/**
 * Per-image augmentation ops on float32 HWC images in [0, 1] (torchvision's ToTensor scale),
 * with torchvision.transforms semantics (v0.15 `transforms.py` / `functional_tensor.py`):
 * RandomCrop(size, padding, fill), RandomHorizontalFlip(p), ColorJitter (brightness, contrast,
 * saturation, hue; factors drawn uniformly, applied in a random order), RandomRotation(degrees,
 * NEAREST, fill) and Normalize(mean, std).
 */
import type { Rng } from '../rng.js';

/** One op of the pipeline file's `train:` / `test:` lists (schemas/stages/augment.schema.json). */
export type OpSpec =
  | { random_crop: { size: number; padding: number; fill: number } }
  | { horizontal_flip: { p: number } }
  | { color_jitter: { brightness: number; contrast: number; saturation: number; hue: number } }
  | { rotation: { degrees: number; fill: number } }
  | { normalize: { mean: number[]; std: number[] } };

/** An image being transformed: HWC float32. Ops may replace `data` and the size. */
export interface Img {
  data: Float32Array;
  h: number;
  w: number;
  c: number;
}

/** An op applied to one image with the batch's random stream. */
export type Op = (img: Img, rng: Rng) => Img;

function randomCrop(size: number, padding: number, fill: number): Op {
  return (img, rng) => {
    const ph = img.h + 2 * padding, pw = img.w + 2 * padding;
    if (ph < size || pw < size) throw new Error(`random_crop: size ${size} is larger than the padded image ${ph}x${pw}`);
    const top = rng.int(ph - size + 1), left = rng.int(pw - size + 1);
    const out = new Float32Array(size * size * img.c).fill(fill);
    for (let y = 0; y < size; y++) {
      const sy = top + y - padding;
      if (sy < 0 || sy >= img.h) continue;
      for (let x = 0; x < size; x++) {
        const sx = left + x - padding;
        if (sx < 0 || sx >= img.w) continue;
        for (let ch = 0; ch < img.c; ch++) out[(y * size + x) * img.c + ch] = img.data[(sy * img.w + sx) * img.c + ch]!;
      }
    }
    return { data: out, h: size, w: size, c: img.c };
  };
}

function horizontalFlip(p: number): Op {
  return (img, rng) => {
    if (!(rng.next() < p)) return img;
    const out = new Float32Array(img.data.length);
    for (let y = 0; y < img.h; y++) {
      for (let x = 0; x < img.w; x++) {
        const s = (y * img.w + (img.w - 1 - x)) * img.c, d = (y * img.w + x) * img.c;
        for (let ch = 0; ch < img.c; ch++) out[d + ch] = img.data[s + ch]!;
      }
    }
    return { ...img, data: out };
  };
}

const clamp01 = (v: number): number => (v < 0 ? 0 : v > 1 ? 1 : v);
const gray = (d: Float32Array, i: number): number => 0.299 * d[i]! + 0.587 * d[i + 1]! + 0.114 * d[i + 2]!; // ITU-R 601-2 luma, as torchvision

/** blend(img, other, f) = clamp(f * img + (1 - f) * other), torchvision `_blend`. */
function blendInPlace(img: Img, f: number, other: (i: number) => number): void {
  for (let i = 0; i < img.data.length; i++) img.data[i] = clamp01(f * img.data[i]! + (1 - f) * other(i));
}

function adjustHue(img: Img, shift: number): void {
  const d = img.data;
  for (let i = 0; i < d.length; i += 3) {
    const r = d[i]!, g = d[i + 1]!, b = d[i + 2]!;
    const max = Math.max(r, g, b), min = Math.min(r, g, b), delta = max - min;
    let h = 0;
    if (delta > 0) h = max === r ? ((g - b) / delta) % 6 : max === g ? (b - r) / delta + 2 : (r - g) / delta + 4;
    h = (((h / 6 + shift) % 1) + 1) % 1;
    const s = max === 0 ? 0 : delta / max, v = max;
    const k = (n: number): number => (n + h * 6) % 6;
    const f = (n: number): number => v - v * s * Math.max(0, Math.min(k(n), 4 - k(n), 1));
    d[i] = f(5); d[i + 1] = f(3); d[i + 2] = f(1);
  }
}

function colorJitter(b: number, c: number, s: number, hue: number): Op {
  return (img, rng) => {
    const out: Img = { ...img, data: Float32Array.from(img.data) };
    const order = rng.permutation(4);
    const fb = rng.uniform(Math.max(0, 1 - b), 1 + b), fc = rng.uniform(Math.max(0, 1 - c), 1 + c);
    const fs = rng.uniform(Math.max(0, 1 - s), 1 + s), fh = rng.uniform(-hue, hue);
    for (const op of order) {
      if (op === 0 && b > 0) blendInPlace(out, fb, () => 0);
      if (op === 1 && c > 0) {
        let mean = 0;
        if (out.c === 3) { for (let i = 0; i < out.data.length; i += 3) mean += gray(out.data, i); mean /= out.h * out.w; }
        else { for (const v of out.data) mean += v; mean /= out.data.length; }
        blendInPlace(out, fc, () => mean);
      }
      if (op === 2 && s > 0 && out.c === 3) { const g = Float32Array.from({ length: out.data.length }, (_, i) => gray(out.data, i - (i % 3))); blendInPlace(out, fs, (i) => g[i]!); }
      if (op === 3 && hue > 0 && out.c === 3) adjustHue(out, fh);
    }
    return out;
  };
}

function rotation(degrees: number, fill: number): Op {
  return (img, rng) => {
    const angle = (rng.uniform(-degrees, degrees) * Math.PI) / 180;
    const cos = Math.cos(angle), sin = Math.sin(angle);
    const cx = (img.w - 1) / 2, cy = (img.h - 1) / 2;
    const out = new Float32Array(img.data.length);
    for (let y = 0; y < img.h; y++) {
      for (let x = 0; x < img.w; x++) {
        // Inverse map: rotate the output position by -angle (counter-clockwise positive, y down).
        const dx = x - cx, dy = y - cy;
        const sx = Math.round(cos * dx - sin * dy + cx), sy = Math.round(sin * dx + cos * dy + cy);
        const inside = sx >= 0 && sx < img.w && sy >= 0 && sy < img.h;
        for (let ch = 0; ch < img.c; ch++) out[(y * img.w + x) * img.c + ch] = inside ? img.data[(sy * img.w + sx) * img.c + ch]! : fill;
      }
    }
    return { ...img, data: out };
  };
}

function normalize(mean: number[], std: number[]): Op {
  return (img) => {
    if ((mean.length !== 1 && mean.length !== img.c) || (std.length !== 1 && std.length !== img.c)) {
      throw new Error(`normalize: mean/std have ${mean.length}/${std.length} values but the images have ${img.c} channel(s)`);
    }
    const out = new Float32Array(img.data.length);
    for (let i = 0; i < out.length; i++) {
      const ch = i % img.c;
      out[i] = (img.data[i]! - mean[mean.length === 1 ? 0 : ch]!) / std[std.length === 1 ? 0 : ch]!;
    }
    return { ...img, data: out };
  };
}

/** Builds the op function for one list entry. */
export function buildOp(spec: OpSpec): Op {
  if ('random_crop' in spec) return randomCrop(spec.random_crop.size, spec.random_crop.padding, spec.random_crop.fill);
  if ('horizontal_flip' in spec) return horizontalFlip(spec.horizontal_flip.p);
  if ('color_jitter' in spec) { const j = spec.color_jitter; return colorJitter(j.brightness, j.contrast, j.saturation, j.hue); }
  if ('rotation' in spec) return rotation(spec.rotation.degrees, spec.rotation.fill);
  return normalize(spec.normalize.mean, spec.normalize.std);
}

/** Output size of a chain on an input of h x w (crops change it). */
export function outputSize(specs: readonly OpSpec[], h: number, w: number): [number, number] {
  for (const s of specs) if ('random_crop' in s) [h, w] = [s.random_crop.size, s.random_crop.size];
  return [h, w];
}
