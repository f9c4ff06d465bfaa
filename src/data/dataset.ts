/** In-memory image datasets: uint8 NHWC images with integer labels. */

/** One split: `count` images of height x width x channels, uint8, NHWC, row-major. */
export interface ImageSplit {
  images: Uint8Array;
  /** Class index per image, 0-based. */
  labels: Uint8Array;
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
  /** Where the files came from (a path or URL), for the run's inputs. */
  source: string;
  /** sha256 over the raw files' digests, identifying the exact data. */
  digest: string;
}

/** The first `n` images of a seeded permutation of `split` (all of it when n >= count). */
export function subsetSplit(split: ImageSplit, n: number | undefined, order: Uint32Array): ImageSplit {
  if (n === undefined || n >= split.count) return split;
  const px = split.height * split.width * split.channels;
  const images = new Uint8Array(n * px);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const src = order[i]!;
    images.set(split.images.subarray(src * px, (src + 1) * px), i * px);
    labels[i] = split.labels[src]!;
  }
  return { ...split, images, labels, count: n };
}
