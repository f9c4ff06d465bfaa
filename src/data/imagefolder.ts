/**
 * imagefolder: a local folder of class subfolders, as torchvision.datasets.ImageFolder reads them
 * (classes = the subfolder names sorted, label = index in that list, files sorted by name), with
 * a `train/` and a `test/` (or `val/`) folder at the top. Images (PNG, JPEG, WebP, TIFF) are
 * decoded with sharp (libvips, https://sharp.pixelplumbing.com): alpha dropped, like PIL's
 * convert('RGB'); 3 channels in sRGB, or 1 (libvips' grey conversion).
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { DatasetError, type Dataset, type ImageSplit } from './dataset.js';

/** File name endings read as images (case-insensitive); other files are skipped, as torchvision does. */
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp', '.tif', '.tiff'];

/** Options of an imagefolder dataset. */
export interface ImageFolderOptions {
  /** The folder holding train/ and test/ (or val/). */
  source: string;
  /** Resize every image to [height, width] (stretching, bilinear); without it all images must share one size. */
  imageSize?: [number, number];
  /** Channels of the decoded images. @defaultValue 3 */
  channels?: 1 | 3;
  /** Called every few images with the number decoded so far and the total. */
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

interface Entry { path: string; label: number; size: number; mtimeMs: number }

const byCodePoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

async function subdirs(dir: string): Promise<string[]> {
  return (await readdir(dir, { withFileTypes: true })).filter((d) => d.isDirectory() && !d.name.startsWith('.')).map((d) => d.name).sort(byCodePoint);
}

const isImageName = (name: string): boolean => IMAGE_EXTENSIONS.some((e) => name.toLowerCase().endsWith(e));

/**
 * The images per class of each split, as listImageFolder would find them (classes: the sorted
 * subfolders of train/; the test split in test/, else val/), read without decoding anything, for
 * `pipe validate`; undefined when the folder is not laid out that way now (the stage says why).
 */
export function imageFolderCounts(root: string): { classes: string[]; train: number[]; test: number[] } | undefined {
  try {
    const dirs = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory() && !d.name.startsWith('.')).map((d) => d.name).sort(byCodePoint);
    const images = (dir: string): number => readdirSync(dir).filter((n) => isImageName(n) && statSync(join(dir, n)).isFile()).length;
    const testDir = ['test', 'val'].map((d) => join(root, d)).find(existsSync);
    if (testDir === undefined) return undefined;
    const classes = dirs(join(root, 'train'));
    const test = new Set(dirs(testDir));
    return { classes, train: classes.map((c) => images(join(root, 'train', c))), test: classes.map((c) => (test.has(c) ? images(join(testDir, c)) : 0)) };
  } catch {
    return undefined;
  }
}

/** The folder's classes and image files. @throws DatasetError when the layout is wrong. */
export async function listImageFolder(root: string): Promise<{ classes: string[]; train: Entry[]; test: Entry[]; testDir: string }> {
  if (!existsSync(root)) throw new DatasetError(`imagefolder: source ${root} does not exist`);
  const trainDir = join(root, 'train');
  const testDir = ['test', 'val'].map((d) => join(root, d)).find(existsSync);
  if (!existsSync(trainDir) || !testDir) {
    throw new DatasetError(`imagefolder: ${root} must hold a train/ and a test/ (or val/) folder, each with one subfolder of images per class`);
  }
  const classes = await subdirs(trainDir);
  if (classes.length === 0) throw new DatasetError(`imagefolder: ${trainDir} has no class subfolders`);
  const files = async (dir: string): Promise<Entry[]> => {
    const out: Entry[] = [];
    for (const cls of await subdirs(dir)) {
      const label = classes.indexOf(cls);
      if (label < 0) throw new DatasetError(`imagefolder: ${join(dir, cls)} is a class that ${trainDir} does not have (classes: ${classes.join(', ')})`);
      const names = (await readdir(join(dir, cls))).filter(isImageName).sort(byCodePoint);
      for (const n of names) {
        const path = join(dir, cls, n);
        const st = await stat(path);
        if (st.isFile()) out.push({ path, label, size: st.size, mtimeMs: st.mtimeMs });
      }
    }
    if (out.length === 0) throw new DatasetError(`imagefolder: ${dir} holds no images (${IMAGE_EXTENSIONS.join(' ')})`);
    return out;
  };
  return { classes, train: await files(trainDir), test: await files(testDir), testDir };
}

/**
 * A fingerprint of the folder (file names, sizes, modification times) and the decode options:
 * changes when any image does. Used as the compact cache key without reading every image.
 */
export async function imageFolderFingerprint(opts: ImageFolderOptions): Promise<string> {
  const { classes, train, test } = await listImageFolder(opts.source);
  const rows = [...train, ...test].map((e) => [relative(opts.source, e.path), e.size, e.mtimeMs]);
  return createHash('sha256').update(JSON.stringify({ classes, rows, size: opts.imageSize ?? null, channels: opts.channels ?? 3 })).digest('hex');
}

/** Decodes one file to raw HWC uint8. @throws DatasetError naming the file. */
async function decode(path: string, buf: Buffer, o: ImageFolderOptions): Promise<{ data: Buffer; h: number; w: number }> {
  const channels = o.channels ?? 3;
  const sharp = (await import('sharp')).default; // loaded on first use: `pipe validate` needs no libvips
  try {
    let img = sharp(buf, { failOn: 'error' }).removeAlpha();
    if (o.imageSize) img = img.resize(o.imageSize[1], o.imageSize[0], { fit: 'fill', kernel: 'linear' });
    img = channels === 1 ? img.grayscale() : img.toColourspace('srgb');
    const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== channels) throw new Error(`decoded to ${info.channels} channels, expected ${channels}`);
    return { data, h: info.height, w: info.width };
  } catch (e) {
    throw new DatasetError(`imagefolder: cannot decode ${path}: ${(e as Error).message}; fix or remove the file`);
  }
}

async function readSplit(entries: Entry[], o: ImageFolderOptions, digest: ReturnType<typeof createHash>, done: { n: number; total: number }): Promise<ImageSplit> {
  const channels = o.channels ?? 3;
  const decoded: Array<{ data: Buffer; h: number; w: number }> = new Array(entries.length);
  const hashes: Buffer[] = new Array(entries.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < entries.length) {
      o.signal?.throwIfAborted();
      const i = next++;
      const e = entries[i]!;
      const buf = await readFile(e.path);
      hashes[i] = createHash('sha256').update(buf).digest();
      decoded[i] = await decode(e.path, buf, o);
      if (++done.n % 64 === 0 || done.n === done.total) o.onProgress?.(done.n, done.total);
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  const first = decoded[0]!;
  const px = first.h * first.w * channels;
  const images = new Uint8Array(entries.length * px);
  const labels = new Uint8Array(entries.length);
  const wide = entries.some((e) => e.label > 255);
  const labels16 = wide ? new Uint16Array(entries.length) : undefined;
  entries.forEach((e, i) => {
    const d = decoded[i]!;
    if (d.h !== first.h || d.w !== first.w) {
      throw new DatasetError(`imagefolder: ${e.path} is ${d.w}x${d.h} but ${entries[0]!.path} is ${first.w}x${first.h}; set image_size in the download stage to resize every image`);
    }
    images.set(d.data, i * px);
    if (labels16) labels16[i] = e.label;
    else labels[i] = e.label;
    digest.update(relative(o.source, e.path)).update('\0').update(hashes[i]!);
  });
  return { images, labels: labels16 ?? labels, count: entries.length, height: first.h, width: first.w, channels };
}

/**
 * Decodes the whole folder.
 * @throws DatasetError naming the folder or the file (undecodable, or of another size).
 */
export async function loadImageFolder(o: ImageFolderOptions): Promise<Dataset> {
  const { classes, train, test } = await listImageFolder(o.source);
  const digest = createHash('sha256');
  const done = { n: 0, total: train.length + test.length };
  const trainSplit = await readSplit(train, o, digest, done);
  const testSplit = await readSplit(test, o, digest, done);
  if (testSplit.height !== trainSplit.height || testSplit.width !== trainSplit.width) {
    throw new DatasetError(`imagefolder: test images are ${testSplit.width}x${testSplit.height} but train images ${trainSplit.width}x${trainSplit.height}; set image_size in the download stage`);
  }
  return { name: 'imagefolder', classes, train: trainSplit, test: testSplit, source: o.source, digest: digest.digest('hex') };
}
