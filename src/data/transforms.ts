/**
 * The augment stage's ops (one entry of the pipeline file's `train:` / `test:` lists each), with
 * torchvision.transforms semantics: RandomCrop, Pad, CenterCrop, RandomHorizontalFlip,
 * ColorJitter, RandomRotation, Resize, Grayscale, Normalize. Each op is split in two, as
 * torchvision's `get_params` / functional call: `draw` takes the random parameters for one image
 * from the Rng, `apply` runs the op with given parameters (so tests can apply torchvision's fixed
 * factors, see test/fixtures/torchvision/TRANSFORMS.md). Parameters and defaults:
 * schemas/stages/augment.schema.json.
 *
 * NOTE: every op runs on float32 images in [0, 1], i.e. torchvision's tensor path with ToTensor
 * first. Geometric ops give the same pixels as on PIL images; PIL's colour enhancers do not
 * (they work in uint8), so recipes written for PIL inputs differ slightly in colour_jitter.
 */
import type { Rng } from '../rng.js';
import { checkFill, type Fill, type Img, type Shape } from './image.js';
import { adjustBrightness, adjustContrast, adjustHue, adjustSaturation, grayscale, normalize } from './ops-color.js';
import { hflip, padCrop, resize, rotate, type Interpolation, type Padding4, type PaddingMode } from './ops-geometry.js';

/** A size: one number (square, or for `resize` the shorter side) or [height, width]. */
export type SizeSpec = number | [number, number];
/** Padding: all sides, [left/right, top/bottom], or [left, top, right, bottom] (torchvision order). */
export type PaddingSpec = number | [number, number] | [number, number, number, number];

/** One list entry (schemas/stages/augment.schema.json); omitted fields take their defaults. */
export type OpSpec =
  | { random_crop: { size: SizeSpec; padding?: PaddingSpec; fill?: Fill; padding_mode?: PaddingMode } }
  | { pad: { padding: PaddingSpec; fill?: Fill; padding_mode?: PaddingMode } }
  | { center_crop: { size: SizeSpec } }
  | { horizontal_flip: { p?: number } }
  | { color_jitter: { brightness?: number; contrast?: number; saturation?: number; hue?: number } }
  | { rotation: { degrees: number | [number, number]; interpolation?: Interpolation; fill?: Fill } }
  | { resize: { size: SizeSpec; interpolation?: Interpolation; antialias?: boolean } }
  | { grayscale: { channels?: 1 | 3 } }
  | { normalize: { mean: number[]; std: number[] } };

/** An op split into a parameter draw and a deterministic application. */
export interface Transform<P = unknown> {
  /** The op's key in the pipeline file. */
  readonly name: string;
  /** Output shape for an input shape. @throws Error naming the op when the input does not fit. */
  outShape(s: Shape): Shape;
  /** Draws this op's random parameters for one image of shape `s` (torchvision `get_params`). */
  draw(rng: Rng, s: Shape): P;
  /**
   * Applies the op with parameters `p`. It may change `src.data` in place and return `src`, or
   * write into `scratch` (at least the output size, distinct from src.data) and return an Img
   * over it.
   */
  apply(src: Img, p: P, scratch: Float32Array): Img;
}

const hw = (size: SizeSpec): [number, number] => (typeof size === 'number' ? [size, size] : size);

/** torchvision `_parse_pad_padding`-style expansion to [left, top, right, bottom]. */
export function padding4(p: PaddingSpec = 0): Padding4 {
  if (typeof p === 'number') return [p, p, p, p];
  return p.length === 2 ? [p[0], p[1], p[0], p[1]] : [p[0], p[1], p[2], p[3]];
}

function checkPad(op: string, pad: Padding4, mode: PaddingMode, [h, w]: Shape): void {
  const limit = mode === 'reflect' ? 1 : mode === 'symmetric' ? 0 : -Infinity;
  const bad = pad.some((p, i) => p > (i % 2 === 0 ? w : h) - limit);
  if (bad) throw new Error(`${op}: ${mode} padding ${pad.join(',')} needs padding ${mode === 'reflect' ? '<' : '<='} the image side (${h}x${w})`);
}

/** A pad-then-crop op (random_crop, pad, center_crop) with the window chosen by `where`. */
function padCropOp(name: string, pad: Padding4, mode: PaddingMode, fill: Fill, size: ((s: Shape) => [number, number]), where: (rng: Rng | null, ph: number, pw: number, oh: number, ow: number) => [number, number]): Transform<[number, number]> {
  return {
    name,
    outShape(s) {
      checkPad(name, pad, mode, s);
      checkFill(name, fill, s[2]);
      const [oh, ow] = size(s);
      const ph = s[0] + pad[1] + pad[3], pw = s[1] + pad[0] + pad[2];
      if (name === 'random_crop' && (oh > ph || ow > pw)) throw new Error(`random_crop: size ${oh}x${ow} is larger than the padded image ${ph}x${pw}`);
      return [oh, ow, s[2]];
    },
    draw: (rng, s) => where(rng, s[0] + pad[1] + pad[3], s[1] + pad[0] + pad[2], ...size(s)),
    apply(src, [top, left], scratch) {
      const [oh, ow] = size([src.h, src.w, src.c]);
      return padCrop(src, pad, mode, fill, top, left, oh, ow, scratch);
    },
  };
}

function randomCrop(o: Extract<OpSpec, { random_crop: unknown }>['random_crop']): Transform {
  const [oh, ow] = hw(o.size);
  // RandomCrop.get_params: top = randint(0, h - th + 1), left = randint(0, w - tw + 1).
  return padCropOp('random_crop', padding4(o.padding), o.padding_mode ?? 'constant', o.fill ?? 0, () => [oh, ow], (rng, ph, pw) => [rng!.int(ph - oh + 1), rng!.int(pw - ow + 1)]);
}

function centerCrop(o: Extract<OpSpec, { center_crop: unknown }>['center_crop']): Transform {
  const [ch, cw] = hw(o.size);
  // F.center_crop: zero-pads (floor left/top, ceil right/bottom) when the crop is larger, then
  // top = int(round((h - th) / 2)) with Python's half-to-even round.
  const roundHE = (v: number): number => (Math.abs(v % 1) === 0.5 ? 2 * Math.round(v / 2) : Math.round(v));
  const t: Transform<[number, number]> = {
    name: 'center_crop',
    outShape: (s) => [ch, cw, s[2]],
    draw: (_rng, s) => [ch > s[0] ? -Math.floor((ch - s[0]) / 2) : roundHE((s[0] - ch) / 2), cw > s[1] ? -Math.floor((cw - s[1]) / 2) : roundHE((s[1] - cw) / 2)],
    apply: (src, [top, left], scratch) => padCrop(src, [0, 0, 0, 0], 'constant', 0, top, left, ch, cw, scratch),
  };
  return t as Transform;
}

function colorJitter(o: Extract<OpSpec, { color_jitter: unknown }>['color_jitter']): Transform<JitterParams> {
  const b = o.brightness ?? 0, c = o.contrast ?? 0, s = o.saturation ?? 0, h = o.hue ?? 0;
  return {
    name: 'color_jitter',
    outShape: (sh) => sh,
    // ColorJitter.get_params: fn_idx = randperm(4), then each factor uniform in its range, or
    // None (the op skipped) when its setting is 0.
    draw(rng) {
      const order = Array.from(rng.permutation(4));
      const u = (lo: number, hi: number): number => rng.uniform(lo, hi);
      return {
        order,
        brightness: b > 0 ? u(Math.max(0, 1 - b), 1 + b) : undefined,
        contrast: c > 0 ? u(Math.max(0, 1 - c), 1 + c) : undefined,
        saturation: s > 0 ? u(Math.max(0, 1 - s), 1 + s) : undefined,
        hue: h > 0 ? u(-h, h) : undefined,
      };
    },
    apply: (src, p) => applyJitter(src, p),
  };
}

/** ColorJitter's drawn parameters: `order` is fn_idx (0 brightness, 1 contrast, 2 saturation, 3 hue). */
export interface JitterParams {
  order: number[];
  brightness?: number;
  contrast?: number;
  saturation?: number;
  hue?: number;
}

/** ColorJitter.forward with fixed parameters: the four adjustments in `order`, in place. */
export function applyJitter(img: Img, p: JitterParams): Img {
  for (const fn of p.order) {
    if (fn === 0 && p.brightness !== undefined) adjustBrightness(img, p.brightness);
    if (fn === 1 && p.contrast !== undefined) adjustContrast(img, p.contrast);
    if (fn === 2 && p.saturation !== undefined) adjustSaturation(img, p.saturation);
    if (fn === 3 && p.hue !== undefined) adjustHue(img, p.hue);
  }
  return img;
}

function rotation(o: Extract<OpSpec, { rotation: unknown }>['rotation']): Transform<number> {
  const [lo, hi] = typeof o.degrees === 'number' ? [-o.degrees, o.degrees] : o.degrees;
  const fill = o.fill ?? 0, interp = o.interpolation ?? 'nearest';
  return {
    name: 'rotation',
    outShape(s) {
      if (lo > hi) throw new Error(`rotation: degrees [${lo}, ${hi}] must be [min, max] with min <= max`);
      checkFill('rotation', fill, s[2]);
      return s;
    },
    draw: (rng) => rng.uniform(lo, hi), // RandomRotation.get_params: uniform(degrees[0], degrees[1])
    apply: (src, angle, scratch) => rotate(src, angle, interp, fill, scratch),
  };
}

/** torchvision `_compute_resized_output_size` for an int size: the shorter side becomes `size`. */
function resizedShape(size: SizeSpec, [h, w, c]: Shape): Shape {
  if (typeof size !== 'number') return [size[0], size[1], c];
  return h <= w ? [size, Math.trunc((size * w) / h), c] : [Math.trunc((size * h) / w), size, c];
}

/** Builds the op of one list entry. @throws Error on an entry with no known op key. */
export function buildTransform(spec: OpSpec): Transform {
  if ('random_crop' in spec) return randomCrop(spec.random_crop);
  if ('pad' in spec) {
    const pad = padding4(spec.pad.padding);
    return padCropOp('pad', pad, spec.pad.padding_mode ?? 'constant', spec.pad.fill ?? 0, (s) => [s[0] + pad[1] + pad[3], s[1] + pad[0] + pad[2]], () => [0, 0]);
  }
  if ('center_crop' in spec) return centerCrop(spec.center_crop);
  if ('horizontal_flip' in spec) {
    const p = spec.horizontal_flip.p ?? 0.5;
    const t: Transform<boolean> = { name: 'horizontal_flip', outShape: (s) => s, draw: (rng) => rng.next() < p, apply: (src, flip, scratch) => (flip ? hflip(src, scratch) : src) };
    return t as Transform;
  }
  if ('color_jitter' in spec) return colorJitter(spec.color_jitter) as Transform;
  if ('rotation' in spec) return rotation(spec.rotation) as Transform;
  if ('resize' in spec) {
    const { size, interpolation = 'bilinear', antialias = true } = spec.resize;
    const t: Transform<null> = { name: 'resize', outShape: (s) => resizedShape(size, s), draw: () => null, apply: (src, _p, scratch) => { const [oh, ow] = resizedShape(size, [src.h, src.w, src.c]); return resize(src, oh, ow, interpolation, antialias, scratch); } };
    return t as Transform;
  }
  if ('grayscale' in spec) {
    const ch = spec.grayscale.channels ?? 1;
    const t: Transform<null> = {
      name: 'grayscale',
      outShape: (s) => { if (s[2] !== 1 && s[2] !== 3) throw new Error(`grayscale: images have ${s[2]} channels; expected 1 or 3`); return [s[0], s[1], ch]; },
      draw: () => null,
      apply: (src, _p, scratch) => grayscale(src, ch, scratch),
    };
    return t as Transform;
  }
  if ('normalize' in spec) {
    const { mean, std } = spec.normalize;
    const t: Transform<null> = {
      name: 'normalize',
      outShape(s) {
        if ((mean.length !== 1 && mean.length !== s[2]) || (std.length !== 1 && std.length !== s[2])) {
          throw new Error(`normalize: mean/std have ${mean.length}/${std.length} values but the images have ${s[2]} channel(s)`);
        }
        return s;
      },
      draw: () => null,
      apply: (src) => { normalize(src, mean, std); return src; },
    };
    return t as Transform;
  }
  throw new Error(`unknown augmentation op '${Object.keys(spec).join(', ')}'`);
}

export type { Img } from './image.js';

/**
 * Output [height, width] of the chain `specs` on h x w images with `c` channels. Unlike
 * `chainShape` it never throws: an op that does not fit keeps the size (the augment stage reports
 * that error with the entry's path).
 * @defaultValue c 1
 */
export function outputSize(specs: readonly OpSpec[], h: number, w: number, c = 1): [number, number] {
  let s: Shape = [h, w, c];
  for (const t of specs.map(buildTransform)) {
    try {
      s = t.outShape(s);
    } catch {
      // reported by the augment stage
    }
  }
  return [s[0], s[1]];
}

/**
 * One op as a single function: draws its parameters from `rng`, then applies them, returning a
 * new image (or `img`, changed in place). Convenient for single images; batches use Chain.
 */
export function buildOp(spec: OpSpec): (img: Img, rng: Rng) => Img {
  const t = buildTransform(spec);
  return (img, rng) => {
    const [h, w, c] = t.outShape([img.h, img.w, img.c]);
    return t.apply(img, t.draw(rng, [img.h, img.w, img.c]), new Float32Array(Math.max(h * w * c, img.data.length)));
  };
}
