/** In-memory image datasets (uint8 NHWC images with integer labels) and seeded, stratified selections. */
import type { Rng } from '../rng.js';

/** One split: `count` images of height x width x channels, uint8, NHWC, row-major. */
export interface ImageSplit {
  images: Uint8Array;
  /** Class index per image, 0-based (uint16 when a dataset has more than 256 classes). */
  labels: Uint8Array | Uint16Array;
  count: number;
  height: number;
  width: number;
  channels: number;
}

/** A dataset ready for training. */
export interface Dataset {
  name: string;
  classes: string[];
  train: ImageSplit;
  test: ImageSplit;
  /** Held out from train by `val_fraction` (seeded, stratified), when asked for. */
  val?: ImageSplit;
  /** Where the files came from (a path or URL), for the run's inputs. */
  source: string;
  /**
   * sha256 (hex) identifying the exact data: over the source files' digests, and, when a subset
   * or validation split was taken, over that selection too.
   */
  digest: string;
}

/** Reading, verifying or decoding a dataset failed; the message names the dataset, the file or URL, and what to do. */
export class DatasetError extends Error {}

/**
 * The images at `indices` (in that order) as a new split, its images in a SharedArrayBuffer (so
 * augmentation workers share them without a copy).
 */
export function takeIndices(split: ImageSplit, indices: ArrayLike<number>): ImageSplit {
  const px = split.height * split.width * split.channels;
  const n = indices.length;
  const images = new Uint8Array(new SharedArrayBuffer(n * px));
  const labels = split.labels instanceof Uint16Array ? new Uint16Array(n) : new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const src = indices[i]!;
    images.set(split.images.subarray(src * px, (src + 1) * px), i * px);
    labels[i] = split.labels[src]!;
  }
  return { ...split, images, labels, count: n };
}

/**
 * Picks `n` of the split's images so that every class keeps its share: class c gets
 * floor(n * count_c / count) images, and the remaining ones go to the classes with the largest
 * remainders (ties: lower class index), the largest-remainder (Hamilton) method. Within a class
 * the images are a seeded random choice. Returns the picked indices in ascending order.
 * @throws RangeError when n is not in 0..count.
 */
export function stratifiedPick(labels: ArrayLike<number>, n: number, rng: Rng): Uint32Array {
  const count = labels.length;
  if (!(n >= 0 && n <= count)) throw new RangeError(`cannot pick ${n} of ${count} images`);
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < count; i++) {
    const l = labels[i]!;
    let g = byClass.get(l);
    if (!g) byClass.set(l, (g = []));
    g.push(i);
  }
  const classes = [...byClass.keys()].sort((a, b) => a - b);
  const quota = new Map<number, number>();
  let given = 0;
  for (const c of classes) {
    const q = Math.floor((n * byClass.get(c)!.length) / count);
    quota.set(c, q);
    given += q;
  }
  const byRemainder = [...classes].sort((a, b) => ((n * byClass.get(b)!.length) % count) - ((n * byClass.get(a)!.length) % count) || a - b);
  for (let k = 0; given < n; k++, given++) {
    const c = byRemainder[k]!;
    quota.set(c, quota.get(c)! + 1);
  }
  const picked: number[] = [];
  for (const c of classes) {
    const g = byClass.get(c)!;
    const perm = rng.permutation(g.length);
    for (let k = 0; k < quota.get(c)!; k++) picked.push(g[perm[k]!]!);
  }
  return Uint32Array.from(picked).sort();
}

/**
 * Keeps the images of the given classes (indices into `classes`, or names), in the split's
 * order, relabelled 0..k-1 in the order given; returns the kept class names in that order too.
 * @throws RangeError naming an unknown class or a repeated one.
 */
export function selectClasses(classes: readonly string[], splits: ImageSplit[], wanted: Array<number | string>): { classes: string[]; splits: ImageSplit[] } {
  const idx = classIndices(classes, wanted);
  const relabel = new Map(idx.map((c, k) => [c, k]));
  const out = splits.map((s) => {
    const keep: number[] = [];
    for (let i = 0; i < s.count; i++) if (relabel.has(s.labels[i]!)) keep.push(i);
    const t = takeIndices(s, keep);
    for (let i = 0; i < t.count; i++) t.labels[i] = relabel.get(t.labels[i]!)!;
    return t;
  });
  return { classes: idx.map((i) => classes[i]!), splits: out };
}

/**
 * The class indices a `classes:` selection names (indices or names), in its order.
 * @throws RangeError naming the entry that is not a class of `classes`, or one listed twice.
 */
export function classIndices(classes: readonly string[], wanted: Array<number | string>): number[] {
  const idx = wanted.map((w) => {
    const i = typeof w === 'number' ? w : classes.indexOf(w);
    if (!Number.isInteger(i) || i < 0 || i >= classes.length) throw new RangeError(`classes: ${JSON.stringify(w)} is not a class of this dataset; its classes are 0..${classes.length - 1}: ${classes.join(', ')}`);
    return i;
  });
  const dup = idx.find((i, k) => idx.indexOf(i) !== k);
  if (dup !== undefined) throw new RangeError(`classes: '${classes[dup]}' (${dup}) is listed twice`);
  return idx;
}

/**
 * A stratified subset of `n` images (all of the split when n is undefined or equals its count),
 * in the split's order.
 * @throws RangeError when n is larger than the split (never silently fewer images than asked for).
 */
export function subsetSplit(split: ImageSplit, n: number | undefined, rng: Rng): ImageSplit {
  if (n !== undefined && n > split.count) throw new RangeError(`${n} images asked for, but the split has ${split.count}`);
  if (n === undefined || n === split.count) return split;
  return takeIndices(split, stratifiedPick(split.labels, n, rng));
}

/**
 * Holds out round(fraction * count) images of `split` as a validation split, stratified and
 * seeded; the rest stay in train, in order.
 * @throws RangeError when the fraction leaves train or val empty.
 */
export function splitValidation(split: ImageSplit, fraction: number, rng: Rng): { train: ImageSplit; val: ImageSplit } {
  const nVal = Math.round(fraction * split.count);
  if (nVal < 1 || nVal >= split.count) throw new RangeError(`val_fraction ${fraction} of ${split.count} images leaves ${nVal} for validation; choose a fraction giving 1..${split.count - 1}`);
  const val = stratifiedPick(split.labels, nVal, rng);
  const isVal = new Uint8Array(split.count);
  for (const i of val) isVal[i] = 1;
  const rest: number[] = [];
  for (let i = 0; i < split.count; i++) if (!isVal[i]) rest.push(i);
  return { train: takeIndices(split, rest), val: takeIndices(split, val) };
}
