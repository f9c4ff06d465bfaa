/**
 * CIFAR-10 and CIFAR-100 from the official binary-version tarballs (Krizhevsky 2009,
 * https://www.cs.toronto.edu/~kriz/cifar.html: URLs, md5s and the record layout are those of that
 * page). A record is the label byte(s) then 3072 bytes: the 1024 red, then green, then blue
 * values of a 32x32 image, row-major (CHW); CIFAR-100 records carry the coarse then the fine
 * label, and the fine one (100 classes) is used. Images come out NHWC.
 */
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DatasetError, type Dataset, type ImageSplit } from './dataset.js';
import { download, fileDigest, type DownloadProgress } from './download.js';
import { extractTar } from './tar.js';

/** One CIFAR variant. */
export interface CifarSpec {
  name: string;
  url: string;
  /** The tarball's file name. */
  archive: string;
  /** md5 of the tarball, as published. */
  md5: string;
  /**
   * Size of the tarball in bytes, where known (`pipe plan` and the cache check read it, without
   * hashing): CIFAR-10's 170,052,171 as the official server sends it (TensorFlow's cifar10
   * tutorial logs "Successfully downloaded cifar-10-binary.tar.gz 170052171 bytes."); CIFAR-100's
   * binary tarball has no size on record here.
   */
  bytes?: number;
  /** The folder the tarball unpacks to. */
  folder: string;
  train: string[];
  test: string[];
  /** Label bytes per record; the last one is the label used. */
  labelBytes: 1 | 2;
  /** The class-names file in the folder (one per line). */
  namesFile: string;
  /** Class names when the folder has no names file. */
  classes: string[];
  /**
   * Images per class (label order) in each split of the published tarball (checked against its
   * md5, so fixed; an unpacked folder is read as it is and may hold others): Krizhevsky 2009's
   * page: CIFAR-10 5,000 train and 1,000 test images per class, CIFAR-100 500 and 100.
   */
  perClass: { train: readonly number[]; test: readonly number[] };
  /** Image shape [height, width, channels]. */
  shape: readonly [number, number, number];
}

/** CIFAR-10: 50000 train / 10000 test images of 32x32x3, 10 classes. */
export const CIFAR10: CifarSpec = {
  name: 'cifar10',
  url: 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz',
  archive: 'cifar-10-binary.tar.gz',
  md5: 'c32a1d4ab5d03f1284b67883e8d87530',
  bytes: 170_052_171,
  folder: 'cifar-10-batches-bin',
  train: ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'],
  test: ['test_batch.bin'],
  labelBytes: 1,
  namesFile: 'batches.meta.txt',
  classes: ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'],
  shape: [32, 32, 3],
  perClass: { train: Array<number>(10).fill(5000), test: Array<number>(10).fill(1000) },
};

/** CIFAR-100: 50000 train / 10000 test images of 32x32x3, 100 fine classes (names sorted, as in fine_label_names.txt). */
export const CIFAR100: CifarSpec = {
  name: 'cifar100',
  url: 'https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz',
  archive: 'cifar-100-binary.tar.gz',
  md5: '03b5dce01913d631647c71ecec9e9cb8',
  folder: 'cifar-100-binary',
  train: ['train.bin'],
  test: ['test.bin'],
  labelBytes: 2,
  namesFile: 'fine_label_names.txt',
  classes: ('apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can castle caterpillar cattle ' +
    'chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard ' +
    'lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree ' +
    'plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake spider ' +
    'squirrel streetcar sunflower sweet_pepper table tank telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm').split(' '),
  shape: [32, 32, 3],
  perClass: { train: Array<number>(100).fill(500), test: Array<number>(100).fill(100) },
};

const PIXELS = 32 * 32;

/**
 * Decodes concatenated CIFAR records into an NHWC split.
 * @param file shown in errors
 * @throws DatasetError when the size is not a whole number of records.
 */
export function parseCifarRecords(bufs: Uint8Array[], labelBytes: number, file: string): ImageSplit {
  const rec = labelBytes + 3 * PIXELS;
  let count = 0;
  for (const b of bufs) {
    if (b.length % rec !== 0) throw new DatasetError(`${file}: ${b.length} bytes is not a whole number of ${rec}-byte CIFAR records; the file is damaged`);
    count += b.length / rec;
  }
  const images = new Uint8Array(count * 3 * PIXELS);
  const labels = new Uint8Array(count);
  let i = 0;
  for (const b of bufs) {
    for (let off = 0; off < b.length; off += rec, i++) {
      labels[i] = b[off + labelBytes - 1]!;
      const src = off + labelBytes, dst = i * 3 * PIXELS;
      for (let p = 0; p < PIXELS; p++) {
        images[dst + 3 * p] = b[src + p]!;
        images[dst + 3 * p + 1] = b[src + PIXELS + p]!;
        images[dst + 3 * p + 2] = b[src + 2 * PIXELS + p]!;
      }
    }
  }
  return { images, labels, count, height: 32, width: 32, channels: 3 };
}

/** Reads the unpacked folder (the spec's .bin files and names file). */
async function readFolder(spec: CifarSpec, dir: string, source: string): Promise<Dataset> {
  const digest = createHash('sha256');
  const read = async (names: string[]): Promise<Uint8Array[]> => {
    const out: Uint8Array[] = [];
    for (const n of names) {
      const path = join(dir, n);
      if (!existsSync(path)) throw new DatasetError(`${spec.name}: ${dir} lacks ${n} (expected ${[...spec.train, ...spec.test].join(', ')})`);
      const buf = await readFile(path);
      digest.update(createHash('sha256').update(buf).digest());
      out.push(buf);
    }
    return out;
  };
  const train = parseCifarRecords(await read(spec.train), spec.labelBytes, join(dir, spec.train.join('|')));
  const test = parseCifarRecords(await read(spec.test), spec.labelBytes, join(dir, spec.test.join('|')));
  const namesPath = join(dir, spec.namesFile);
  const classes = existsSync(namesPath) ? (await readFile(namesPath, 'utf8')).split(/\r?\n/).map((l) => l.trim()).filter(Boolean) : spec.classes;
  for (const [what, s] of [['train', train], ['test', test]] as const) {
    const bad = s.labels.findIndex((l) => l >= classes.length);
    if (bad >= 0) throw new DatasetError(`${spec.name}: ${what} image ${bad} has label ${s.labels[bad]} but there are ${classes.length} classes (${namesPath}); the files do not belong together`);
  }
  return { name: spec.name, classes, train, test, source, digest: digest.digest('hex') };
}

/** Unpacks a verified tarball into a temporary folder of the cache, reads it, removes the folder. */
async function readArchive(spec: CifarSpec, archive: string, cache: string, source: string): Promise<Dataset> {
  const tmp = join(cache, `.extract-${process.pid}-${Date.now()}`);
  try {
    await extractTar(archive, tmp, spec.name);
    const dir = join(tmp, spec.folder);
    if (!existsSync(dir)) throw new DatasetError(`${spec.name}: ${archive} has no ${spec.folder}/ folder; it is not the ${spec.archive} tarball`);
    return await readFolder(spec, dir, source);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** The tarball's URL: the official one, or on the mirror `source` (the tarball's own URL, or a base URL its name is appended to). */
export function cifarUrl(spec: CifarSpec, source?: string): string {
  return source === undefined ? spec.url : /\.(tar\.gz|tgz|tar)$/.test(source) ? source : `${source.replace(/\/?$/, '/')}${spec.archive}`;
}

/** What to do without network: the exact tarball (name, md5, official URL) and where it goes (`cache`, the dataset's cache folder). */
export function cifarOfflineRemedy(spec: CifarSpec, cache: string): string {
  return `put ${spec.archive} (md5 ${spec.md5}, from ${spec.url}) in ${cache}/, or set the download stage's \`source\` to its path`;
}

/**
 * Loads CIFAR. `source`: a local tarball, a folder holding the tarball or its unpacked folder
 * (read as it is: the members have no published checksums), or a mirror URL (of the tarball, or
 * a base URL the tarball's name is appended to). Without `source`: the tarball in the cache, else
 * downloaded from the official URL into the cache. Every tarball is checked against the md5.
 * @throws DatasetError naming the dataset, the path or URL, and what to do.
 */
export async function loadCifar(
  spec: CifarSpec,
  opts: { cacheDir: string; source?: string; onProgress?: (p: DownloadProgress) => void; signal?: AbortSignal },
): Promise<Dataset> {
  const cache = join(opts.cacheDir, spec.name);
  const src = opts.source;
  if (src !== undefined && !/^https?:\/\//.test(src)) {
    if (!existsSync(src)) throw new DatasetError(`${spec.name}: source ${src} does not exist; point it at ${spec.archive} or the folder holding it`);
    let archive = src;
    if (statSync(src).isDirectory()) {
      for (const dir of [join(src, spec.folder), src]) {
        if (spec.train.every((f) => existsSync(join(dir, f)))) return readFolder(spec, dir, dir);
      }
      archive = join(src, spec.archive);
      if (!existsSync(archive)) throw new DatasetError(`${spec.name}: ${src} holds neither ${spec.archive} nor the unpacked ${spec.folder}/ folder`);
    }
    const got = await fileDigest(archive, 'md5');
    if (got !== spec.md5) throw new DatasetError(`${spec.name}: ${archive} has md5 ${got}, expected ${spec.md5}; it is damaged or another file: replace it with ${spec.url}`);
    return readArchive(spec, archive, cache, archive);
  }
  const url = cifarUrl(spec, src);
  const archive = join(cache, spec.archive);
  try {
    await download(url, archive, { checksum: { algorithm: 'md5', hex: spec.md5 }, onProgress: opts.onProgress, signal: opts.signal });
  } catch (e) {
    if (opts.signal?.aborted) throw e;
    throw new DatasetError(`${spec.name}: ${(e as Error).message}. Without network: ${cifarOfflineRemedy(spec, cache)}`);
  }
  return readArchive(spec, archive, cache, url);
}
