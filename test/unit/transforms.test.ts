/**
 * Every augmentation op against torchvision's own outputs (test/fixtures/torchvision, TRANSFORMS.md):
 * the ops are built from their pipeline-file entries and applied with torchvision's fixed
 * parameters, image by image, and compared within the tolerance the sidecar states per tensor.
 * The float32 path is what pipe runs; the uint8 goldens of the geometric ops are checked too, on
 * 0..255 values rounded half to even (torch.round).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fixture } from '../fixtures.js';
import { LUT_U8_TO_F32, roundHalfEven, type Img } from '../../src/data/image.js';
import { grayscale } from '../../src/data/ops-color.js';
import { rotate } from '../../src/data/ops-geometry.js';
import { buildTransform, type OpSpec } from '../../src/data/transforms.js';

/** test/fixtures/torchvision: the torchvision transform goldens. */
const GOLDENS = `${fixture('torchvision')}/`;
const FILE = `${GOLDENS}transform_goldens.safetensors`;

interface Golden { data: Float32Array; shape: number[]; tol: number }
let tensors: Map<string, Golden>;

before(() => {
  if (!existsSync(FILE)) assert.fail(`${FILE} is missing: the torchvision goldens (test/fixtures/torchvision) are needed for these tests`);
  const buf = readFileSync(FILE);
  const hlen = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.toString('utf8', 8, 8 + hlen)) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const side = JSON.parse(readFileSync(`${GOLDENS}transform_goldens.json`, 'utf8')) as { tensors: Record<string, { tolerance: { atol?: number; max_abs_diff?: number } }> };
  tensors = new Map();
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [b, e] = t.data_offsets;
    const raw = buf.subarray(8 + hlen + b, 8 + hlen + e);
    const data = t.dtype === 'F32' ? new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)) : Float32Array.from(raw);
    const tol = side.tensors[name]!.tolerance;
    tensors.set(name, { data, shape: t.shape, tol: tol.atol ?? tol.max_abs_diff ?? 0 });
  }
});

function golden(name: string): Golden {
  const g = tensors.get(name);
  assert.ok(g, `golden tensor ${name} is missing from ${FILE}`);
  return g;
}

/** The images of an NHWC golden, one Img each (copies, so in-place ops do not touch the golden). */
function images(name: string): Img[] {
  const { data, shape } = golden(name);
  const [n, h, w, c] = shape as [number, number, number, number];
  return Array.from({ length: n }, (_, i) => ({ data: data.slice(i * h * w * c, (i + 1) * h * w * c), h, w, c }));
}

/** Applies `f` to every input image and compares with golden `want` within its tolerance. */
function check(want: string, input: string, f: (img: Img) => Img, u8 = false): void {
  const g = golden(want);
  const outs = images(input).map(f);
  const got = new Float32Array(g.data.length);
  let at = 0;
  for (const o of outs) {
    got.set(u8 ? o.data.map(roundHalfEven) : o.data, at);
    at += o.data.length;
  }
  assert.equal(at, g.data.length, `${want}: output has ${at} values, golden ${g.data.length}`);
  let worst = 0, where = -1;
  for (let i = 0; i < got.length; i++) {
    const d = Math.abs(got[i]! - g.data[i]!);
    if (!(d <= worst)) [worst, where] = [d, i];
  }
  assert.ok(worst <= g.tol, `${want}: max |diff| ${worst} at flat index ${where} (got ${got[where]}, torchvision ${g.data[where]}) exceeds the tolerance ${g.tol}`);
}

/** Applies one pipeline-file op with fixed parameters. */
const op = (spec: OpSpec, params: unknown) => (img: Img): Img => {
  const t = buildTransform(spec);
  const [h, w, c] = t.outShape([img.h, img.w, img.c]);
  return t.apply(img, params, new Float32Array(h * w * c));
};

test('uint8 -> float32 conversion is torchvision to_tensor (true division by 255)', () => {
  const u8 = golden('input_u8').data, f = golden('input_f32').data;
  for (let i = 0; i < u8.length; i++) assert.equal(LUT_U8_TO_F32[u8[i]!], f[i], `value ${u8[i]}`);
});

test('horizontal_flip (flip drawn) = F.hflip', () => {
  check('hflip_f32', 'input_f32', op({ horizontal_flip: {} }, true));
  check('hflip_u8', 'input_u8', op({ horizontal_flip: {} }, true), true);
});

test('random_crop 32 padding 4 at (top, left) = F.crop(F.pad(img, 4), top, left, 32, 32)', () => {
  for (const [t, l] of [[1, 7], [8, 0]] as const) {
    check(`pad4_crop_t${t}_l${l}_f32`, 'input_f32', op({ random_crop: { size: 32, padding: 4 } }, [t, l]));
    check(`pad4_crop_t${t}_l${l}_u8`, 'input_u8', op({ random_crop: { size: 32, padding: 4 } }, [t, l]), true);
  }
});

test('brightness, contrast, saturation at 0.8 and 1.2 = F.adjust_*', () => {
  for (const f of [0.8, 1.2]) {
    check(`brightness_${f}_f32`, 'input_f32', op({ color_jitter: { brightness: 0.5 } }, { order: [0], brightness: f }));
    check(`contrast_${f}_f32`, 'input_f32', op({ color_jitter: { contrast: 0.5 } }, { order: [1], contrast: f }));
    check(`saturation_${f}_f32`, 'input_f32', op({ color_jitter: { saturation: 0.5 } }, { order: [2], saturation: f }));
  }
});

test('hue -0.1 and +0.1 = F.adjust_hue', () => {
  check('hue_-0.1_f32', 'input_f32', op({ color_jitter: { hue: 0.2 } }, { order: [3], hue: -0.1 }));
  check('hue_+0.1_f32', 'input_f32', op({ color_jitter: { hue: 0.2 } }, { order: [3], hue: 0.1 }));
});

test('color_jitter with fn_idx [2,0,3,1] = ColorJitter.forward (saturation, brightness, hue, contrast)', () => {
  const params = { order: [2, 0, 3, 1], brightness: 1.1, contrast: 0.9, saturation: 1.15, hue: 0.05 };
  check('jitter_composed_f32', 'input_f32', op({ color_jitter: { brightness: 0.2, contrast: 0.2, saturation: 0.2, hue: 0.1 } }, params));
});

test('rotation +-15 degrees, nearest, fill 0 = RandomRotation (exact)', () => {
  for (const a of ['+15', '-15']) {
    check(`rotate_${a}_nearest_f32`, 'input_f32', op({ rotation: { degrees: 15 } }, Number(a)));
    check(`rotate_${a}_nearest_u8`, 'input_u8', op({ rotation: { degrees: 15 } }, Number(a)), true);
  }
});

test('rotation +-15 degrees, bilinear, fill 0 = RandomRotation (mask blend); fill None = F.rotate default', () => {
  for (const a of ['+15', '-15']) {
    check(`rotate_${a}_bilinear_f32`, 'input_f32', op({ rotation: { degrees: 15, interpolation: 'bilinear' } }, Number(a)));
    check(`rotate_${a}_bilinear_u8`, 'input_u8', op({ rotation: { degrees: 15, interpolation: 'bilinear' } }, Number(a)), true);
  }
  const noFill = (img: Img): Img => rotate(img, 15, 'bilinear', null, new Float32Array(img.data.length));
  check('rotate_+15_bilinear_fillnone_f32', 'input_f32', noFill);
  check('rotate_+15_bilinear_fillnone_u8', 'input_u8', noFill, true);
});

test('normalize with the CIFAR-10 mean/std = F.normalize', () => {
  check('normalize_cifar10_f32', 'input_f32', op({ normalize: { mean: [0.4914, 0.4822, 0.4465], std: [0.2023, 0.1994, 0.201] } }, null));
});

test('resize 32 -> 64 bilinear, antialias off and on = F.resize', () => {
  for (const aa of [false, true]) {
    const name = `resize64_bilinear_${aa ? 'aa' : 'noaa'}`;
    check(`${name}_f32`, 'input_f32', op({ resize: { size: [64, 64], antialias: aa } }, null));
    check(`${name}_u8`, 'input_u8', op({ resize: { size: 64, antialias: aa } }, null), true);
  }
});

test('grayscale to 3 channels then pad 2: 28x28x1 -> 32x32x3 = repeat(3) + F.pad(2)', () => {
  const chain = (img: Img): Img => op({ pad: { padding: 2 } }, [0, 0])(op({ grayscale: { channels: 3 } }, null)(img));
  check('gray28_rgb3_pad32_f32', 'gray28_input_f32', chain);
  check('gray28_rgb3_pad32_u8', 'gray28_input_u8', chain, true);
});

test('grayscale of RGB = F.rgb_to_grayscale (weights 0.2989, 0.587, 0.114)', () => {
  check('aux_grayscale_f32', 'input_f32', (img) => grayscale(img, 1, new Float32Array(img.h * img.w)));
});
