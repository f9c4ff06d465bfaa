/**
 * Tiny imagefolder datasets for end-to-end runs: PNGs of seeded random pixels written with sharp,
 * in torchvision ImageFolder layout (<root>/train/<class>/*.png, <root>/test/<class>/*.png).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { Rng } from '../../src/rng.js';

/** Side of the images, px (mini_resnet takes 8 px and more). */
export const IMAGE_SIDE = 12;

/** Writes one IMAGE_SIDE x IMAGE_SIDE RGB PNG of random pixels drawn from `rng`. */
export async function writePng(path: string, rng: Rng): Promise<void> {
  mkdirSync(join(path, '..'), { recursive: true });
  const px = Buffer.from(Uint8Array.from({ length: IMAGE_SIDE * IMAGE_SIDE * 3 }, () => rng.int(256)));
  await sharp(px, { raw: { width: IMAGE_SIDE, height: IMAGE_SIDE, channels: 3 } }).png().toFile(path);
}

/**
 * Writes `classes` classes of `train` train and `test` test images under `root`.
 * @returns the paths written, train first.
 */
export async function writeImageFolder(root: string, seed: number, o: { classes?: number; train?: number; test?: number } = {}): Promise<string[]> {
  const rng = new Rng(seed);
  const paths: string[] = [];
  for (const split of ['train', 'test'] as const) {
    for (let c = 0; c < (o.classes ?? 3); c++) {
      for (let i = 0; i < (split === 'train' ? (o.train ?? 4) : (o.test ?? 2)); i++) {
        const p = join(root, split, `class${c}`, `${i}.png`);
        await writePng(p, rng);
        paths.push(p);
      }
    }
  }
  return paths;
}
