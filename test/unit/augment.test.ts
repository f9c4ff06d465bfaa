/** Augmentation ops on hand-worked cases, and seeded batches. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchSource } from '../../src/data/batches.js';
import { buildOp, type Img } from '../../src/data/transforms.js';
import { Rng } from '../../src/rng.js';

/** A 3x3 single-channel image 1..9 (row-major). */
const img = (): Img => ({ data: Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]), h: 3, w: 3, c: 1 });

/** An Rng stand-in that returns fixed values (next) so crop offsets are known. */
function fixed(...values: number[]): Rng {
  const r = new Rng(0);
  let i = 0;
  r.next = () => values[i++ % values.length]!;
  return r;
}

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

test('horizontal_flip mirrors columns when the draw is below p, else leaves the image', () => {
  assert.deepEqual([...buildOp({ horizontal_flip: { p: 0.5 } })(img(), fixed(0.2)).data], [3, 2, 1, 6, 5, 4, 9, 8, 7]);
  assert.deepEqual([...buildOp({ horizontal_flip: { p: 0.5 } })(img(), fixed(0.7)).data], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

test('normalize: (x - mean) / std per channel', () => {
  const rgb: Img = { data: Float32Array.from([0.5, 0.25, 1]), h: 1, w: 1, c: 3 };
  const out = buildOp({ normalize: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.25, 2] } })(rgb, new Rng(1));
  assert.deepEqual([...out.data], [0, -1, 0.25]);
  assert.throws(() => buildOp({ normalize: { mean: [0.5, 0.5, 0.5], std: [1, 1, 1] } })(img(), new Rng(1)), /3\/3 values but the images have 1 channel/);
});

test('rotation by 180 degrees (degrees=180, draw at the end of the range) reverses a square image', () => {
  // uniform(-180, 180) with next -> 1 gives ~180 degrees; nearest sampling maps (x,y) -> (2-x, 2-y).
  const out = buildOp({ rotation: { degrees: 180, fill: 0 } })(img(), fixed(0.9999999));
  assert.deepEqual([...out.data], [9, 8, 7, 6, 5, 4, 3, 2, 1]);
});

test('batches: same seed and epoch give the same batches; another epoch differs', () => {
  const n = 10, px = 4;
  const split = { images: Uint8Array.from({ length: n * px }, (_, i) => i % 251), labels: Uint8Array.from({ length: n }, (_, i) => i), count: n, height: 2, width: 2, channels: 1 };
  const specs = [{ random_crop: { size: 2, padding: 1, fill: 0 } }, { horizontal_flip: { p: 0.5 } }];
  const a = [...new BatchSource(split, specs, 4, { shuffle: true, seed: 3 }).epoch(0)];
  const b = [...new BatchSource(split, specs, 4, { shuffle: true, seed: 3 }).epoch(0)];
  const c = [...new BatchSource(split, specs, 4, { shuffle: true, seed: 3 }).epoch(1)];
  assert.deepEqual(a.map((x) => [...x.x]), b.map((x) => [...x.x]));
  assert.deepEqual(a.map((x) => x.n), [4, 4, 2]);
  assert.notDeepEqual(a.map((x) => [...x.y]), c.map((x) => [...x.y]));
  // Every label appears once per epoch.
  assert.deepEqual(a.flatMap((x) => [...x.y]).sort((p, q) => p - q), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});
