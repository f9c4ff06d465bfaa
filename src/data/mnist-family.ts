/**
 * MNIST and Fashion-MNIST: four IDX files each, from their official URLs (or a mirror, a local
 * folder, or Debian's dataset-fashion-mnist package), checked before use.
 *
 * Sources: Fashion-MNIST, Xiao, Rasul & Vollgraf 2017, https://github.com/zalandoresearch/fashion-mnist
 * (URLs and the .gz md5s as listed there and in torchvision.datasets.FashionMNIST); the sha256 of
 * the decompressed files is what issue "Datasets and augmentation" pins, because Debian's package
 * recompresses the .gz files (other md5, same content). MNIST: LeCun et al. 1998, the mirror
 * torchvision uses, with torchvision.datasets.MNIST's md5s.
 */
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { download, type DownloadProgress } from './download.js';
import { maybeGunzip, parseIdx } from './idx.js';
import { DatasetError, type Dataset, type ImageSplit } from './dataset.js';

export { DatasetError };

interface FileSpec {
  name: string;
  /** md5 of the official .gz file. */
  gzMd5: string;
  /** sha256 of the decompressed IDX file, when known. */
  rawSha256?: string;
}

/** One dataset of the MNIST family. */
export interface MnistFamilySpec {
  name: 'fashion-mnist' | 'mnist';
  baseUrl: string;
  classes: string[];
  /** Image shape [height, width, channels], as the IDX headers give it. */
  shape: readonly [number, number, number];
  /**
   * Images per class (label order) in each split of the published files, which are checked
   * against their checksums, so these are fixed (`pipe validate` refuses a larger `subset:`).
   */
  perClass: { train: readonly number[]; test: readonly number[] };
  files: { trainImages: FileSpec; trainLabels: FileSpec; testImages: FileSpec; testLabels: FileSpec };
  /** Folders a Debian package installs the files into. */
  systemDirs: string[];
  /** What to run to get the files without network. */
  offlineHint: string;
}

export const FASHION_MNIST: MnistFamilySpec = {
  name: 'fashion-mnist',
  baseUrl: 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/',
  classes: ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'],
  shape: [28, 28, 1],
  // Balanced: 6,000 train and 1,000 test images per class (Xiao et al. 2017, arXiv:1708.07747,
  // and the zalandoresearch/fashion-mnist README).
  perClass: { train: Array<number>(10).fill(6000), test: Array<number>(10).fill(1000) },
  files: {
    trainImages: { name: 'train-images-idx3-ubyte.gz', gzMd5: '8d4fb7e6c68d591d4c3dfef9ec88bf0d', rawSha256: 'c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888' },
    trainLabels: { name: 'train-labels-idx1-ubyte.gz', gzMd5: '25c81989df183df01b3e8a0aad5dffbe', rawSha256: 'bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9' },
    testImages: { name: 't10k-images-idx3-ubyte.gz', gzMd5: 'bef4ecab320f06d8554ea6380940ec79', rawSha256: '5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b' },
    testLabels: { name: 't10k-labels-idx1-ubyte.gz', gzMd5: 'bb300cfdad3c16e7a12a480ee83cd310', rawSha256: '0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34' },
  },
  systemDirs: ['/usr/share/datasets/fashion-mnist'],
  offlineHint: 'sudo apt-get install dataset-fashion-mnist',
};

export const MNIST: MnistFamilySpec = {
  name: 'mnist',
  baseUrl: 'https://ossci-datasets.s3.amazonaws.com/mnist/',
  classes: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
  shape: [28, 28, 1],
  // torch.bincount(torchvision.datasets.MNIST(...).targets) of the published files (its docstring
  // for train; sums 60,000 and 10,000).
  perClass: {
    train: [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    test: [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
  },
  files: {
    trainImages: { name: 'train-images-idx3-ubyte.gz', gzMd5: 'f68b3c2dcbeaaa9fbdd348bbdeb94873' },
    trainLabels: { name: 'train-labels-idx1-ubyte.gz', gzMd5: 'd53e105ee54ea40749a09fcbcd1e9432' },
    testImages: { name: 't10k-images-idx3-ubyte.gz', gzMd5: '9fb629c4189551a2d022fa330f9573f3' },
    testLabels: { name: 't10k-labels-idx1-ubyte.gz', gzMd5: 'ec29112dd5afa0611ce80d1b7f02629c' },
  },
  systemDirs: [],
  offlineHint: '',
};

type Role = keyof MnistFamilySpec['files'];
const ROLES: Role[] = ['trainImages', 'trainLabels', 'testImages', 'testLabels'];

/** What to do without network: the Debian package where there is one, or the files and the folder to put them in (`cache`). */
export function mnistOfflineRemedy(spec: MnistFamilySpec, cache: string): string {
  return [spec.offlineHint ? `run \`${spec.offlineHint}\`` : '', `put ${ROLES.map((r) => spec.files[r].name).join(', ')} in ${cache}`].filter(Boolean).join(', or ');
}

/** The folder, of `dirs`, that holds all four files (each as .gz or decompressed), unread and unverified; undefined when none does. */
export function mnistFilesFolder(spec: MnistFamilySpec, dirs: readonly string[]): string | undefined {
  return dirs.find((dir) => ROLES.every((r) => [spec.files[r].name, spec.files[r].name.replace(/\.gz$/, '')].some((n) => existsSync(join(dir, n)))));
}

/**
 * Reads and verifies one file from a folder (the .gz or the decompressed name). A file that fails
 * its check is deleted when `deleteBad` (the cache: keep nothing bad), never in a user's folder.
 */
async function readVerified(spec: MnistFamilySpec, dir: string, f: FileSpec, deleteBad: boolean): Promise<Uint8Array | undefined> {
  for (const name of [f.name, f.name.replace(/\.gz$/, '')]) {
    const path = join(dir, name);
    if (!existsSync(path)) continue;
    const buf = await readFile(path);
    const expected = f.rawSha256 ? `content sha256 ${f.rawSha256}` : `md5 ${f.gzMd5}`;
    let raw: Uint8Array;
    try {
      raw = maybeGunzip(buf);
    } catch (e) {
      // zlib's own words ("incorrect data check", "unexpected end of file") name neither the file nor a way out.
      if (deleteBad) await rm(path, { force: true });
      throw new DatasetError(`${spec.name}: ${path} does not decompress (${(e as Error).message}): the file is damaged or cut short (expected ${expected}); ${deleteBad ? 'the file was deleted from the cache, run again to download it' : `replace it with a good copy (${spec.baseUrl}${f.name})`}`);
    }
    let problem = '';
    if (f.rawSha256) {
      const got = createHash('sha256').update(raw).digest('hex');
      if (got !== f.rawSha256) problem = `content sha256 ${got} does not match the expected ${f.rawSha256}`;
    } else if (name === f.name) {
      const got = createHash('md5').update(buf).digest('hex');
      if (got !== f.gzMd5) problem = `md5 ${got} does not match the expected ${f.gzMd5}`;
    }
    if (problem) {
      if (deleteBad) await rm(path, { force: true });
      throw new DatasetError(`${spec.name}: ${path}: ${problem}; ${deleteBad ? 'the file was deleted from the cache, run again to download it' : 'delete or replace the file'}`);
    }
    return raw;
  }
  return undefined;
}

function toSplit(images: Uint8Array, labels: Uint8Array, what: string): ImageSplit {
  const im = parseIdx(images, `${what} images`);
  const lb = parseIdx(labels, `${what} labels`);
  const [count, height, width] = im.shape as [number, number, number];
  if (im.shape.length !== 3 || lb.shape.length !== 1 || lb.shape[0] !== count) {
    throw new DatasetError(`${what}: images ${im.shape.join('x')} and labels ${lb.shape.join('x')} do not match`);
  }
  return { images: im.data, labels: lb.data, count, height, width, channels: 1 };
}

/**
 * Loads the dataset: from `source` when given (a folder, or a mirror base URL), else the cache
 * folder, else a system folder (Debian's package), else the official URLs into the cache.
 * @throws DatasetError / DownloadError naming the file or URL and what to do.
 */
export async function loadMnistFamily(
  spec: MnistFamilySpec,
  opts: { cacheDir: string; source?: string; onProgress?: (p: DownloadProgress) => void; signal?: AbortSignal },
): Promise<Dataset> {
  const cache = join(opts.cacheDir, spec.name);
  const isUrl = opts.source !== undefined && /^https?:\/\//.test(opts.source);
  const dirs = opts.source !== undefined && !isUrl ? [opts.source] : [cache, ...spec.systemDirs];
  if (opts.source !== undefined && !isUrl && !existsSync(opts.source)) {
    throw new DatasetError(`${spec.name}: source folder ${opts.source} does not exist`);
  }
  for (const dir of dirs) {
    if (!existsSync(dir)) continue;
    // A bad file in the cache is deleted and downloaded again below; elsewhere it is an error.
    const read = (r: Role): Promise<Uint8Array | undefined> => readVerified(spec, dir, spec.files[r], dir === cache).catch((e: unknown) => {
      if (dir === cache) return undefined;
      throw e;
    });
    const raws = await Promise.all(ROLES.map(read));
    if (raws.every((r) => r !== undefined)) return assemble(spec, raws as Uint8Array[], dir);
    if (opts.source !== undefined) {
      const missing = ROLES.filter((_, i) => raws[i] === undefined).map((r) => spec.files[r].name);
      throw new DatasetError(`${spec.name}: ${dir} lacks ${missing.join(', ')}`);
    }
  }
  const base = isUrl ? opts.source!.replace(/\/?$/, '/') : spec.baseUrl;
  try {
    for (const r of ROLES) {
      const f = spec.files[r];
      // A mirror may serve recompressed .gz files (as Debian's package is): when the content's
      // sha256 is known, that is what readVerified checks, else the official .gz md5.
      const checksum = isUrl && f.rawSha256 ? undefined : { algorithm: 'md5' as const, hex: f.gzMd5 };
      await download(base + f.name, join(cache, f.name), { checksum, onProgress: opts.onProgress, signal: opts.signal });
    }
  } catch (e) {
    throw new DatasetError(`${spec.name}: ${(e as Error).message}. Without network: ${mnistOfflineRemedy(spec, cache)}.`);
  }
  const raws = await Promise.all(ROLES.map((r) => readVerified(spec, cache, spec.files[r], true)));
  return assemble(spec, raws as Uint8Array[], isUrl ? base : spec.baseUrl);
}

function assemble(spec: MnistFamilySpec, raws: Uint8Array[], source: string): Dataset {
  const [ti, tl, vi, vl] = raws as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
  const digest = createHash('sha256');
  for (const r of raws) digest.update(createHash('sha256').update(r).digest());
  return {
    name: spec.name,
    classes: spec.classes,
    train: toSplit(ti, tl, `${spec.name} train`),
    test: toSplit(vi, vl, `${spec.name} test`),
    source,
    digest: digest.digest('hex'),
  };
}
