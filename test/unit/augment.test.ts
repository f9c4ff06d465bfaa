/**
 * Augmentation ops on hand-worked cases (padding modes, centre crop rounding, antialiased
 * downsampling), the parameter draws (torchvision's ranges), chain shapes and errors, and the
 * seeded batches: same seed same batches, epochs differ, worker threads give the same bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchSource, type Batch } from '../../src/data/batches.js';
import { Chain } from '../../src/data/chain.js';
import type { ImageSplit } from '../../src/data/dataset.js';
import { buildOp, buildTransform, type JitterParams, type OpSpec, type Img } from '../../src/data/transforms.js';
import { Rng } from '../../src/rng.js';

/** A 3x3 single-channel image 1..9 (row-major). */
const img = (): Img => ({ data: Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]), h: 3, w: 3, c: 1 });
const row = (...v: number[]): Img => ({ data: Float32Array.from(v), h: 1, w: v.length, c: 1 });

/** An Rng stand-in whose next() returns fixed values, so draws are known. */
function fixed(...values: number[]): Rng {
  const r = new Rng(0);
  let i = 0;
  r.next = () => values[i++ % values.length]!;
  return r;
}

const apply = (spec: OpSpec, im: Img, params: unknown): number[] => {
  const t = buildTransform(spec);
  const [h, w, c] = t.outShape([im.h, im.w, im.c]);
  return [...t.apply(im, params, new Float32Array(h * w * c)).data];
};

test('random_crop with padding: offset (0,0) takes the padded top-left corner', () => {
  // padded 5x5 with fill 0; crop 3 at top=0, left=0 -> rows [0,0,0],[0,1,2],[0,4,5]
  const out = buildOp({ random_crop: { size: 3, padding: 1, fill: 0 } })(img(), fixed(0, 0));
  assert.deepEqual([...out.data], [0, 0, 0, 0, 1, 2, 0, 4, 5]);
});

test('random_crop with padding: offset (2,2) takes the bottom-right corner', () => {
  // int(n) = floor(next * n) with n = 3: next 0.99 -> 2
  const out = buildOp({ random_crop: { size: 3, padding: 1, fill: -1 } })(img(), fixed(0.99, 0.99));
  assert.deepEqual([...out.data], [5, 6, -1, 8, 9, -1, -1, -1, -1]);
});

test('padding modes on the row [1, 2, 3] padded by 2 (numpy pad semantics)', () => {
  const pad = (mode: 'constant' | 'edge' | 'reflect' | 'symmetric'): number[] => apply({ pad: { padding: [2, 0], padding_mode: mode, fill: 9 } }, row(1, 2, 3), [0, 0]);
  assert.deepEqual(pad('constant'), [9, 9, 1, 2, 3, 9, 9]);
  assert.deepEqual(pad('edge'), [1, 1, 1, 2, 3, 3, 3]);
  assert.deepEqual(pad('reflect'), [3, 2, 1, 2, 3, 2, 1]);
  assert.deepEqual(pad('symmetric'), [2, 1, 1, 2, 3, 3, 2]);
  assert.throws(() => buildTransform({ pad: { padding: 3, padding_mode: 'reflect' } }).outShape([1, 3, 1]), /reflect padding 3,3,3,3 needs padding < the image side/);
});

test('center_crop: top/left = round((h - th) / 2) with half to even; larger crops zero-pad', () => {
  const five = { data: Float32Array.from({ length: 25 }, (_, i) => i), h: 5, w: 5, c: 1 };
  const t = buildTransform({ center_crop: { size: 3 } });
  assert.deepEqual(t.draw(new Rng(0), [5, 5, 1]), [1, 1]);
  assert.deepEqual(t.draw(new Rng(0), [4, 4, 1]), [0, 0]); // round(0.5) = 0 in Python
  assert.deepEqual(t.draw(new Rng(0), [6, 6, 1]), [2, 2]); // round(1.5) = 2
  assert.deepEqual(apply({ center_crop: { size: 3 } }, five, [1, 1]), [6, 7, 8, 11, 12, 13, 16, 17, 18]);
  // 3 -> 5: pad (5 - 3) // 2 = 1 before, 1 after.
  const big = buildTransform({ center_crop: { size: 5 } });
  assert.deepEqual(apply({ center_crop: { size: 5 } }, row(1, 2, 3), big.draw(new Rng(0), [1, 3, 1])).slice(10, 15), [0, 1, 2, 3, 0]);
});

test('resize with antialias, 4 -> 2 (triangle filter of support 2, weights normalised)', () => {
  // out0: taps 0..2, weights 0.75, 0.75, 0.25 (/1.75); out1: taps 1..3, weights 0.25, 0.75, 0.75.
  const out = apply({ resize: { size: [1, 2] } }, row(0, 0.4, 0.8, 1), null);
  assert.ok(Math.abs(out[0]! - (0.75 * 0.4 + 0.25 * 0.8) / 1.75) < 1e-6, String(out));
  assert.ok(Math.abs(out[1]! - (0.25 * 0.4 + 0.75 * 0.8 + 0.75 * 1) / 1.75) < 1e-6, String(out));
  // Without antialias: src = (i + 0.5) * 2 - 0.5 = 0.5, 2.5 -> midpoints.
  const plain = apply({ resize: { size: [1, 2], antialias: false } }, row(0, 0.4, 0.8, 1), null);
  assert.ok(Math.abs(plain[0]! - 0.2) < 1e-6 && Math.abs(plain[1]! - 0.9) < 1e-6, String(plain));
});

test('resize with one number scales the shorter side, keeping the aspect (int truncation)', () => {
  assert.deepEqual(buildTransform({ resize: { size: 64 } }).outShape([32, 48, 3]), [64, 96, 3]);
  assert.deepEqual(buildTransform({ resize: { size: 10 } }).outShape([30, 20, 1]), [15, 10, 1]);
});

test('draws: crop offsets cover 0..2p, flips follow p, angles stay in range, jitter factors in range', () => {
  const rng = new Rng(5);
  const crop = buildTransform({ random_crop: { size: 32, padding: 4 } });
  const tops = new Set<number>();
  for (let i = 0; i < 2000; i++) tops.add((crop.draw(rng, [32, 32, 3]) as number[])[0]!);
  assert.deepEqual([...tops].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
  const flip = (p: number): number => Array.from({ length: 1000 }, () => buildTransform({ horizontal_flip: { p } }).draw(rng, [1, 1, 1])).filter(Boolean).length;
  assert.equal(flip(0), 0);
  assert.equal(flip(1), 1000);
  const rot = buildTransform({ rotation: { degrees: [-5, 20] } });
  const angles = Array.from({ length: 1000 }, () => rot.draw(rng, [1, 1, 1]) as number);
  assert.ok(Math.min(...angles) >= -5 && Math.max(...angles) < 20 && Math.min(...angles) < 0, 'angles in [-5, 20)');
  const jit = buildTransform({ color_jitter: { brightness: 0.2, saturation: 1.5, hue: 0.1 } });
  for (let i = 0; i < 200; i++) {
    const p = jit.draw(rng, [1, 1, 3]) as JitterParams;
    assert.deepEqual([...p.order].sort(), [0, 1, 2, 3]);
    assert.ok(p.brightness! >= 0.8 && p.brightness! < 1.2);
    assert.ok(p.saturation! >= 0 && p.saturation! < 2.5);
    assert.ok(p.hue! >= -0.1 && p.hue! < 0.1);
    assert.equal(p.contrast, undefined, 'contrast 0 skips the adjustment (torchvision None)');
  }
});

test('horizontal_flip mirrors columns when drawn, else leaves the image', () => {
  assert.deepEqual([...buildOp({ horizontal_flip: { p: 0.5 } })(img(), fixed(0.2)).data], [3, 2, 1, 6, 5, 4, 9, 8, 7]);
  assert.deepEqual([...buildOp({ horizontal_flip: { p: 0.5 } })(img(), fixed(0.7)).data], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

test('rotation by 90 degrees counter-clockwise about the centre (nearest)', () => {
  // Output (x, y) reads input (cx + (y - cy) * -1 ... ): the top row becomes 3, 6, 9.
  assert.deepEqual(apply({ rotation: { degrees: 90 } }, img(), 90), [3, 6, 9, 2, 5, 8, 1, 4, 7]);
});

test('chain: shapes through resize and grayscale; errors name the entry', () => {
  const c = new Chain([{ grayscale: { channels: 3 } }, { resize: { size: 32 } }, { normalize: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] } }], [28, 28, 1]);
  assert.deepEqual(c.outShape, [32, 32, 3]);
  assert.throws(() => new Chain([{ random_crop: { size: 40, padding: 2 } }], [32, 32, 3]), /^Error: \[0\] random_crop: size 40x40 is larger than the padded image 36x36$/);
  assert.throws(() => new Chain([{ horizontal_flip: {} }, { normalize: { mean: [0.5, 0.5, 0.5], std: [1, 1, 1] } }], [28, 28, 1]), /\[1\] normalize: mean\/std have 3\/3 values but the images have 1 channel/);
  assert.throws(() => new Chain([{ rotation: { degrees: 5, fill: [0, 0] } }], [8, 8, 3]), /\[0\] rotation: fill has 2 values but the images have 3 channel/);
});

/** A split of n images 4x4x3 with distinct pixel patterns; label = i % 3. */
function split(n: number): ImageSplit {
  const px = 4 * 4 * 3;
  return { images: Uint8Array.from({ length: n * px }, (_, i) => (i * 37 + (i >> 5)) % 256), labels: Uint8Array.from({ length: n }, (_, i) => i % 3), count: n, height: 4, width: 4, channels: 3 };
}

const CHAIN: OpSpec[] = [{ random_crop: { size: 4, padding: 1 } }, { horizontal_flip: {} }, { color_jitter: { brightness: 0.3, contrast: 0.3, saturation: 0.3, hue: 0.1 } }, { rotation: { degrees: 20, interpolation: 'bilinear' } }, { normalize: { mean: [0.5], std: [0.25] } }];
const flat = (bs: Batch[]): number[][] => bs.map((b) => [...b.x, ...b.y, b.n]);

test('batches: same seed and epoch give the same batches; another epoch reorders and re-augments', () => {
  const s = split(10);
  const a = [...new BatchSource(s, CHAIN, 4, { shuffle: true, seed: 3 }).epoch(0)];
  const b = [...new BatchSource(s, CHAIN, 4, { shuffle: true, seed: 3 }).epoch(0)];
  const c = [...new BatchSource(s, CHAIN, 4, { shuffle: true, seed: 3 }).epoch(1)];
  assert.deepEqual(flat(a), flat(b));
  assert.deepEqual(a.map((x) => x.n), [4, 4, 2]);
  assert.deepEqual(a[0]!.shape, [4, 4, 4, 3]);
  assert.notDeepEqual(a.map((x) => [...x.y]), c.map((x) => [...x.y]));
  assert.deepEqual(a.flatMap((x) => [...x.y]).sort(), [...s.labels].sort(), 'every image once per epoch');
  // Without shuffling the order is fixed, and the augmentation still differs between epochs.
  const e0 = [...new BatchSource(s, CHAIN, 4, { shuffle: false, seed: 3 }).epoch(0)];
  const e1 = [...new BatchSource(s, CHAIN, 4, { shuffle: false, seed: 3 }).epoch(1)];
  assert.deepEqual(e0.map((x) => [...x.y]), e1.map((x) => [...x.y]));
  assert.notDeepEqual(e0.map((x) => [...x.x]), e1.map((x) => [...x.x]));
  // Another seed, other batches.
  const d = [...new BatchSource(s, CHAIN, 4, { shuffle: false, seed: 4 }).epoch(0)];
  assert.notDeepEqual(flat(e0), flat(d));
});

test('epochAsync on worker threads yields exactly the batches of epoch, in order', async () => {
  const s = split(23);
  const source = new BatchSource(s, CHAIN, 4, { shuffle: true, seed: 9, workers: 2, prefetch: 3 });
  const got: Batch[] = [];
  for await (const b of source.epochAsync(2)) got.push(b);
  assert.deepEqual(flat(got), flat([...source.epoch(2)]));
  const capped: Batch[] = [];
  for await (const b of source.epochAsync(0, 3)) capped.push(b);
  assert.deepEqual(flat(capped), flat([...source.epoch(0, 3)]));
  // Breaking out early stops the workers (the test would hang on live ones).
  for await (const b of source.epochAsync(1)) {
    assert.equal(b.n, 4);
    break;
  }
});
