/**
 * Geometric ops with fixed parameters, on one HWC float32 image, with torchvision 0.14 tensor
 * semantics (`torchvision/transforms/functional_tensor.py`: `pad`, `crop`, `hflip`, `rotate`,
 * `resize`; PyTorch `grid_sample` and `upsample_bilinear2d[_aa]`). Each writes into `out` (sized
 * by the caller, at least oh * ow * c) and returns an Img over it. Checked against
 * test/fixtures/torchvision (TRANSFORMS.md) in test/unit/transforms.test.ts.
 */
import { fillAt, roundHalfEven, type Fill, type Img } from './image.js';

/** torchvision `padding_mode`. */
export type PaddingMode = 'constant' | 'edge' | 'reflect' | 'symmetric';

/** Padding per side in pixels: [left, top, right, bottom] (torchvision's 4-sequence order). */
export type Padding4 = [number, number, number, number];

/**
 * Source index for a coordinate `s` that may lie outside 0..n-1, or -1 for "use the fill".
 * reflect mirrors without repeating the edge (-1 -> 1), symmetric repeats it (-1 -> 0),
 * as numpy/torch `reflect` and `symmetric` padding.
 */
function sourceIndex(s: number, n: number, mode: PaddingMode): number {
  if (s >= 0 && s < n) return s;
  switch (mode) {
    case 'constant': return -1;
    case 'edge': return s < 0 ? 0 : n - 1;
    case 'reflect': return s < 0 ? -s : 2 * (n - 1) - s;
    case 'symmetric': return s < 0 ? -s - 1 : 2 * n - 1 - s;
  }
}

/**
 * Pads `src` by `pad` ([left, top, right, bottom]) with `mode`, then crops the oh x ow window whose
 * top-left corner is (`top`, `left`) in the padded image: `F.crop(F.pad(img, pad, fill, mode),
 * top, left, oh, ow)`, which is RandomCrop once it has drawn (top, left), and CenterCrop.
 * Crop windows reaching past the padded image read the fill (as `F.crop` does).
 * reflect needs each pad < the image side, symmetric <= it (checked by the op builder).
 */
export function padCrop(src: Img, pad: Padding4, mode: PaddingMode, fill: Fill, top: number, left: number, oh: number, ow: number, out: Float32Array): Img {
  const { h, w, c, data } = src;
  const padH = h + pad[1] + pad[3], padW = w + pad[0] + pad[2];
  const rows = new Int32Array(oh), cols = new Int32Array(ow);
  for (let y = 0; y < oh; y++) {
    const py = top + y;
    rows[y] = py < 0 || py >= padH ? -1 : sourceIndex(py - pad[1], h, mode);
  }
  for (let x = 0; x < ow; x++) {
    const px = left + x;
    cols[x] = px < 0 || px >= padW ? -1 : sourceIndex(px - pad[0], w, mode);
  }
  const fillV = Float32Array.from({ length: c }, (_, ch) => fillAt(fill, ch));
  for (let y = 0; y < oh; y++) {
    const sy = rows[y]!;
    let d = y * ow * c;
    if (mode === 'constant' && sy >= 0) {
      // Fast path: in constant mode the inside columns are one contiguous run of the source row.
      let xa = 0, xb = ow;
      while (xa < ow && cols[xa]! < 0) xa++;
      while (xb > xa && cols[xb - 1]! < 0) xb--;
      for (let x = 0; x < xa; x++) for (let ch = 0; ch < c; ch++) out[d++] = fillV[ch]!;
      if (xb > xa) {
        const s = (sy * w + cols[xa]!) * c;
        out.set(data.subarray(s, s + (xb - xa) * c), d);
        d += (xb - xa) * c;
      }
      for (let x = xb; x < ow; x++) for (let ch = 0; ch < c; ch++) out[d++] = fillV[ch]!;
      continue;
    }
    for (let x = 0; x < ow; x++) {
      const sx = cols[x]!;
      if (sy < 0 || sx < 0) {
        for (let ch = 0; ch < c; ch++) out[d++] = fillV[ch]!;
      } else {
        let s = (sy * w + sx) * c;
        for (let ch = 0; ch < c; ch++) out[d++] = data[s++]!;
      }
    }
  }
  return { data: out.subarray(0, oh * ow * c), h: oh, w: ow, c };
}

/** Mirrors left-right: `F.hflip`. */
export function hflip(src: Img, out: Float32Array): Img {
  const { h, w, c, data } = src;
  for (let y = 0; y < h; y++) {
    const rowEnd = (y * w + w - 1) * c;
    let d = y * w * c;
    if (c === 3) {
      for (let s = rowEnd; s >= y * w * 3; s -= 3) {
        out[d++] = data[s]!;
        out[d++] = data[s + 1]!;
        out[d++] = data[s + 2]!;
      }
      continue;
    }
    for (let x = 0; x < w; x++) {
      const s = rowEnd - x * c;
      for (let ch = 0; ch < c; ch++) out[d++] = data[s + ch]!;
    }
  }
  return { data: out.subarray(0, h * w * c), h, w, c };
}

/** Interpolation of `rotate` and `resize`. */
export type Interpolation = 'nearest' | 'bilinear';

/**
 * Rotates by `degrees` counter-clockwise (on screen, y down) about the image centre, same size:
 * `F.rotate(img, degrees, interpolation, expand=False, center=None, fill)`.
 *
 * The inverse map in pixel indices, with c = ((w-1)/2, (h-1)/2) (torchvision's centre (w/2, h/2)
 * in corner-origin coordinates, `_get_inverse_affine_matrix` + `_gen_affine_grid`):
 * xs = cos a (x - cx) - sin a (y - cy) + cx, ys = sin a (x - cx) + cos a (y - cy) + cy.
 * Sampling is `grid_sample(align_corners=False, padding_mode='zeros')`; nearest rounds half to
 * even. With a `fill` (RandomRotation always passes one) a ones mask is sampled alongside and
 * `out = img * mask + (1 - mask) * fill` (bilinear: border pixels attenuated twice, as torchvision
 * does); nearest takes the fill where mask < 0.5. `fill: null` is F.rotate's own default (no mask).
 */
export function rotate(src: Img, degrees: number, interpolation: Interpolation, fill: Fill | null, out: Float32Array): Img {
  const { h, w, c, data } = src;
  const a = (degrees * Math.PI) / 180;
  const cos = Math.cos(a), sin = Math.sin(a);
  const cx = (w - 1) / 2, cy = (h - 1) / 2;
  const fillV = Float64Array.from({ length: c }, (_, ch) => (fill === null ? 0 : fillAt(fill, ch)));
  for (let y = 0; y < h; y++) {
    const dy = y - cy;
    for (let x = 0; x < w; x++) {
      const dx = x - cx;
      const xs = cos * dx - sin * dy + cx, ys = sin * dx + cos * dy + cy;
      const d = (y * w + x) * c;
      if (interpolation === 'nearest') {
        const ix = roundHalfEven(xs), iy = roundHalfEven(ys);
        if (ix >= 0 && ix < w && iy >= 0 && iy < h) {
          const s = (iy * w + ix) * c;
          for (let ch = 0; ch < c; ch++) out[d + ch] = data[s + ch]!;
        } else {
          for (let ch = 0; ch < c; ch++) out[d + ch] = fillV[ch]!;
        }
        continue;
      }
      // grid_sample bilinear, zeros padding: the four taps, each only when inside.
      const x0 = Math.floor(xs), y0 = Math.floor(ys);
      const fx = xs - x0, fy = ys - y0;
      const inX0 = x0 >= 0 && x0 < w, inX1 = x0 + 1 >= 0 && x0 + 1 < w;
      const inY0 = y0 >= 0 && y0 < h, inY1 = y0 + 1 >= 0 && y0 + 1 < h;
      const w00 = inY0 && inX0 ? (1 - fx) * (1 - fy) : 0, w01 = inY0 && inX1 ? fx * (1 - fy) : 0;
      const w10 = inY1 && inX0 ? (1 - fx) * fy : 0, w11 = inY1 && inX1 ? fx * fy : 0;
      const s00 = (y0 * w + x0) * c;
      const mask = w00 + w01 + w10 + w11;
      for (let ch = 0; ch < c; ch++) {
        let v = 0;
        if (w00 !== 0) v += w00 * data[s00 + ch]!;
        if (w01 !== 0) v += w01 * data[s00 + c + ch]!;
        if (w10 !== 0) v += w10 * data[s00 + w * c + ch]!;
        if (w11 !== 0) v += w11 * data[s00 + w * c + c + ch]!;
        // With a fill, RandomRotation blends with the sampled ones-mask: img * mask + (1 - mask) * fill.
        out[d + ch] = fill !== null && mask < 1 ? v * mask + (1 - mask) * fillV[ch]! : v;
      }
    }
  }
  return { data: out.subarray(0, h * w * c), h, w, c };
}

/** Taps and weights of one output index along one axis. */
interface Taps {
  start: Int32Array;
  count: Int32Array;
  weights: Float64Array;
  /** Taps per output index (the stride of `weights`). */
  span: number;
}

const tapCache = new Map<string, Taps>();

/**
 * 1-D bilinear taps for `inSize` -> `outSize`, align_corners=False (half-pixel centres).
 * Without antialias: PyTorch `upsample_bilinear2d`, src = (i + 0.5) * in/out - 0.5 clamped at 0,
 * the second tap clamped at the edge. With antialias: PyTorch `_upsample_bilinear2d_aa` (Pillow's
 * resampling): a triangle filter widened by the scale when downsampling, weights normalised.
 */
function bilinearTaps(inSize: number, outSize: number, antialias: boolean): Taps {
  const key = `${inSize}:${outSize}:${antialias}`;
  const hit = tapCache.get(key);
  if (hit) return hit;
  const scale = inSize / outSize;
  const support = antialias && scale >= 1 ? scale : 1;
  const span = antialias ? Math.ceil(support) * 2 + 1 : 2;
  const t: Taps = { start: new Int32Array(outSize), count: new Int32Array(outSize), weights: new Float64Array(outSize * span), span };
  for (let i = 0; i < outSize; i++) {
    if (!antialias) {
      const src = Math.max(0, scale * (i + 0.5) - 0.5);
      const i0 = Math.trunc(src), lambda = src - i0;
      t.start[i] = i0;
      t.count[i] = i0 < inSize - 1 ? 2 : 1;
      t.weights[i * span] = 1 - lambda;
      t.weights[i * span + 1] = lambda;
      if (t.count[i] === 1) t.weights[i * span] = 1; // (1 - l) * v + l * v at the clamped edge
      continue;
    }
    const center = scale * (i + 0.5);
    const invscale = scale >= 1 ? 1 / scale : 1;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xsize = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let total = 0;
    for (let j = 0; j < xsize; j++) {
      const x = Math.abs((j + xmin - center + 0.5) * invscale);
      const wj = x < 1 ? 1 - x : 0;
      t.weights[i * span + j] = wj;
      total += wj;
    }
    if (total !== 0) for (let j = 0; j < xsize; j++) t.weights[i * span + j] = t.weights[i * span + j]! / total;
    t.start[i] = xmin;
    t.count[i] = xsize;
  }
  tapCache.set(key, t);
  return t;
}

/**
 * Resizes to oh x ow: `F.resize(img, [oh, ow], interpolation, antialias)`.
 * bilinear: separable, width first then height (PyTorch's order), half-pixel centres, edge
 * clamped; antialias only changes results when downsampling. nearest: PyTorch `nearest`,
 * src = floor(dst * in/out).
 */
export function resize(src: Img, oh: number, ow: number, interpolation: Interpolation, antialias: boolean, out: Float32Array): Img {
  const { h, w, c, data } = src;
  if (interpolation === 'nearest') {
    for (let y = 0; y < oh; y++) {
      const sy = Math.min(Math.floor((y * h) / oh), h - 1);
      for (let x = 0; x < ow; x++) {
        const sx = Math.min(Math.floor((x * w) / ow), w - 1);
        for (let ch = 0; ch < c; ch++) out[(y * ow + x) * c + ch] = data[(sy * w + sx) * c + ch]!;
      }
    }
    return { data: out.subarray(0, oh * ow * c), h: oh, w: ow, c };
  }
  const tx = bilinearTaps(w, ow, antialias), ty = bilinearTaps(h, oh, antialias);
  const mid = new Float32Array(h * ow * c); // the float32 intermediate, as PyTorch's
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < ow; x++) {
      const s0 = tx.start[x]!, n = tx.count[x]!;
      for (let ch = 0; ch < c; ch++) {
        let acc = 0;
        for (let k = 0; k < n; k++) acc += tx.weights[x * tx.span + k]! * data[(y * w + s0 + k) * c + ch]!;
        mid[(y * ow + x) * c + ch] = acc;
      }
    }
  }
  for (let y = 0; y < oh; y++) {
    const s0 = ty.start[y]!, n = ty.count[y]!;
    for (let i = 0; i < ow * c; i++) {
      let acc = 0;
      for (let k = 0; k < n; k++) acc += ty.weights[y * ty.span + k]! * mid[(s0 + k) * ow * c + i]!;
      out[y * ow * c + i] = acc;
    }
  }
  return { data: out.subarray(0, oh * ow * c), h: oh, w: ow, c };
}
