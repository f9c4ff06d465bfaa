/**
 * The dataset registry of the download stage, and the compact cache in front of it: each dataset
 * is decoded once into one compact file per split (compact.ts) under the shared cache
 * (`<cache>/<dataset>/compact/<key>.<split>.pipeds`) and read back from there on later runs. The
 * key pins the content: the published checksums for the official datasets (whatever the source,
 * the files are checked against them), a fingerprint of the folder for imagefolder and for an
 * unpacked CIFAR folder.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CIFAR10, CIFAR100, cifarOfflineRemedy, cifarUrl, loadCifar, type CifarSpec } from './cifar.js';
import { CompactFileError, readCompact, writeCompact, type CompactHeader } from './compact.js';
import type { Dataset } from './dataset.js';
import type { DownloadProgress } from './download.js';
import { imageFolderFingerprint, loadImageFolder } from './imagefolder.js';
import { FASHION_MNIST, MNIST, loadMnistFamily, mnistFilesFolder, mnistOfflineRemedy, type MnistFamilySpec } from './mnist-family.js';

/** The built-in datasets by name, by loader: the dataset catalog (schemas/stages/download.schema.json's enum is checked against it). */
const MNIST_CATALOG = { 'fashion-mnist': FASHION_MNIST, mnist: MNIST } as const;
const CIFAR_CATALOG = { cifar10: CIFAR10, cifar100: CIFAR100 } as const;

/** Datasets the download stage knows: the built-in ones and `imagefolder` (a folder of class folders). */
export type DatasetName = keyof typeof MNIST_CATALOG | keyof typeof CIFAR_CATALOG | 'imagefolder';

/** Every DatasetName, built-in ones first. */
export const DATASET_NAMES: readonly DatasetName[] = [...Object.keys(MNIST_CATALOG), ...Object.keys(CIFAR_CATALOG), 'imagefolder'] as DatasetName[];

/** What to load (the download stage's params, resolved). */
export interface DatasetRequest {
  dataset: DatasetName;
  /** A local file or folder, or a mirror URL (imagefolder: the folder, required). */
  source?: string;
  /** The shared cache folder (paths.ts cacheDir). */
  cacheDir: string;
  /** imagefolder: resize every image to [height, width]. */
  imageSize?: [number, number];
  /** imagefolder: decoded channels. @defaultValue 3 */
  channels?: 1 | 3;
}

/** Progress callbacks while loading. */
export interface LoadHooks {
  signal?: AbortSignal;
  /** Byte progress of downloads. */
  onDownload?: (p: DownloadProgress) => void;
  /** Other one-line notes (decoding progress, cache rebuilds). */
  onNote?: (line: string) => void;
}

const MNIST_FAMILY: Record<string, MnistFamilySpec> = MNIST_CATALOG;
const CIFARS: Record<string, CifarSpec> = CIFAR_CATALOG;

/** What is known of a download stage's data before loading it; a field is absent when unknown. */
export interface DatasetFacts {
  /** Number of classes. */
  classes?: number;
  /** Image shape [height, width, channels] (NHWC without N). */
  shape?: [number, number, number];
  /** Channels of the images (known even where the size is not: an imagefolder without image_size). */
  channels?: number;
  /** The class names, in label order, where the dataset's definition fixes them. */
  classNames?: string[];
  /**
   * Images per class (label order) of each split, where the dataset's definition fixes them: a
   * built-in dataset read from its checked files (not from a CIFAR folder of unpacked batches,
   * which is read as it is). An imagefolder's: imagefolder.ts imageFolderCounts.
   */
  perClass?: { train: readonly number[]; test: readonly number[] };
}

/**
 * The class count and image shape of the data a download stage with params `p` loads, from the
 * dataset's definition (cifar.ts, mnist-family.ts) or, for imagefolder, from `image_size`,
 * `channels` and the class subfolders of `<source>/train` when that folder exists now.
 */
export function datasetFacts(p: { dataset: string; source?: string; image_size?: number | [number, number]; channels?: 1 | 3 }): DatasetFacts {
  const spec = MNIST_FAMILY[p.dataset] ?? CIFARS[p.dataset];
  if (spec) {
    const cifar = CIFARS[p.dataset];
    const unpacked = cifar !== undefined && p.source !== undefined && [join(p.source, cifar.folder), p.source].some((d) => cifar.train.every((f) => existsSync(join(d, f))));
    return { classes: spec.classes.length, classNames: [...spec.classes], shape: [...spec.shape], channels: spec.shape[2], ...(unpacked ? {} : { perClass: spec.perClass }) };
  }
  if (p.dataset !== 'imagefolder') return {};
  const size = p.image_size;
  const shape: [number, number, number] | undefined = size === undefined ? undefined : typeof size === 'number' ? [size, size, p.channels ?? 3] : [size[0], size[1], p.channels ?? 3];
  const train = p.source === undefined ? undefined : join(p.source, 'train');
  let classes: number | undefined;
  try {
    // the same listing as listImageFolder: subfolders not starting with '.'
    if (train && statSync(train).isDirectory()) classes = readdirSync(train, { withFileTypes: true }).filter((d) => d.isDirectory() && !d.name.startsWith('.')).length || undefined;
  } catch {
    classes = undefined; // unreadable now: the download stage reports it
  }
  return { ...(classes !== undefined ? { classes } : {}), ...(shape ? { shape } : {}), channels: p.channels ?? 3 };
}

/**
 * What is wrong with a download stage's local `source` before loading (for `validate`): undefined
 * when it exists and holds what the loader looks for (a URL, or no source, is not checked), else
 * the problem in a few words. The loaders' own rules (mnist-family.ts loadMnistFamily: the four
 * IDX files, .gz or decompressed; cifar.ts loadCifar: the tarball, a folder holding it or the
 * unpacked batches; imagefolder.ts listImageFolder: train/ and test/ or val/). What the files hold
 * is left to the loader.
 */
export function sourceProblem(p: { dataset: string; source?: string }): string | undefined {
  const src = p.source;
  if (src === undefined || /^https?:\/\//.test(src)) return undefined;
  const family = MNIST_FAMILY[p.dataset];
  const spec = CIFARS[p.dataset];
  if (!existsSync(src)) {
    const what = family ? `a folder holding ${Object.values(family.files).map((f) => f.name).join(', ')}` : spec ? `${spec.archive} or the folder holding it` : 'a folder with train/ and test/ (or val/) subfolders, one folder of images per class in each';
    return `${src} does not exist; point it at ${what}`;
  }
  const isDir = statSync(src).isDirectory();
  if (family) {
    if (mnistFilesFolder(family, [src])) return undefined;
    const missing = Object.values(family.files).map((f) => f.name).filter((n) => !isDir || ![n, n.replace(/\.gz$/, '')].some((m) => existsSync(join(src, m))));
    return isDir ? `${src} lacks ${missing.join(', ')} (the ${family.name} files, .gz or decompressed)` : `${src} is a file; point it at the folder holding ${missing.join(', ')}`;
  }
  if (spec) {
    if (!isDir || [join(src, spec.folder), src].some((d) => spec.train.every((f) => existsSync(join(d, f)))) || existsSync(join(src, spec.archive))) return undefined;
    return `${src} holds neither ${spec.archive} nor the unpacked ${spec.folder}/ folder`;
  }
  if (p.dataset === 'imagefolder') {
    const has = (d: string): boolean => existsSync(join(src, d)) && statSync(join(src, d)).isDirectory();
    if (!has('train') || !(has('test') || has('val'))) return `${src} must hold a train/ and a test/ (or val/) folder, each with one subfolder of images per class`;
  }
  return undefined;
}

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

/** A fingerprint (names, sizes, modification times) of a local file or of a folder's files. */
export async function pathFingerprint(path: string): Promise<string> {
  const st = statSync(path);
  if (!st.isDirectory()) return sha(JSON.stringify([path, st.size, st.mtimeMs]));
  const rows: Array<[string, number, number]> = [];
  for (const e of await readdir(path, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    // NOTE: Dirent.parentPath is Node >= 20.12; earlier 20.x name it `path`.
    const p = join(e.parentPath ?? (e as unknown as { path: string }).path, e.name);
    const s = statSync(p);
    rows.push([p, s.size, s.mtimeMs]);
  }
  rows.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return sha(JSON.stringify(rows));
}

/**
 * The compact cache key of a request: the published checksums when they pin the content, plus,
 * for a local `source`, a fingerprint (names, sizes, modification times) of its files, so a
 * source that changed (or was damaged) since the cache was written is read and verified again
 * rather than served from the cache.
 */
export async function compactKey(req: DatasetRequest): Promise<string> {
  const { dataset, source } = req;
  if (dataset === 'imagefolder') return imageFolderFingerprint({ source: source ?? '', imageSize: req.imageSize, channels: req.channels });
  const family = MNIST_FAMILY[dataset];
  const localSource = source !== undefined && !/^https?:\/\//.test(source) && existsSync(source);
  if (family) return sha(JSON.stringify(['mnist-family', family.name, family.files, ...(localSource ? [await pathFingerprint(source)] : [])]));
  const spec = CIFARS[dataset]!;
  const local = source !== undefined && !/^https?:\/\//.test(source) && existsSync(source) && statSync(source).isDirectory() && !existsSync(join(source, spec.archive));
  return local ? sha(JSON.stringify(['cifar-folder', spec.name, await pathFingerprint(source)])) : sha(JSON.stringify(['cifar-archive', spec.name, spec.md5, ...(localSource ? [await pathFingerprint(source)] : [])]));
}

/**
 * Whether loading `req` would need the network, found without reading any data (for `pipe plan`):
 * undefined when the data is at hand (a local `source` that exists; the compact cache; the
 * dataset's files in the cache folder or, for the MNIST family, a system folder), else one line:
 * what the run downloads from where into which folder, and what to do without network (the
 * remedy the failed download names). A local `source` that does not exist is named too. Files
 * found are not hashed here (the run checks them against the published checksums); a CIFAR
 * tarball whose size differs from the known one (CifarSpec.bytes) counts as not there.
 */
export async function missingData(req: DatasetRequest): Promise<string | undefined> {
  const { dataset, source } = req;
  const isUrl = source !== undefined && /^https?:\/\//.test(source);
  if (source !== undefined && !isUrl) return existsSync(source) ? undefined : `${dataset}: source ${source} does not exist`;
  if (dataset === 'imagefolder') return undefined; // needs a local source (the schema and the stage say so)
  const paths = compactPaths(req.cacheDir, dataset, await compactKey(req));
  if (existsSync(paths.train) && existsSync(paths.test)) return undefined;
  const cache = join(req.cacheDir, dataset);
  const family = MNIST_FAMILY[dataset];
  if (family) {
    if (mnistFilesFolder(family, [cache, ...family.systemDirs])) return undefined;
    return `${dataset}: the run downloads it from ${isUrl ? source.replace(/\/?$/, '/') : family.baseUrl} into ${cache}; without network: ${mnistOfflineRemedy(family, cache)}`;
  }
  const spec = CIFARS[dataset]!;
  const archive = join(cache, spec.archive);
  const bytes = existsSync(archive) ? statSync(archive).size : undefined;
  if (bytes !== undefined && (spec.bytes === undefined || bytes === spec.bytes)) return undefined;
  const bad = bytes === undefined ? '' : ` (the cached ${spec.archive} is ${bytes} bytes, not ${spec.bytes}: a partial download or another file)`;
  return `${dataset}${bad}: the run downloads it${isUrl ? ` from ${cifarUrl(spec, source)}` : ''} into ${cache}; without network: ${cifarOfflineRemedy(spec, cache)}`;
}

/** Loads without the cache, from the dataset's own files. @throws DatasetError / DownloadError. */
export async function loadRaw(req: DatasetRequest, hooks: LoadHooks = {}): Promise<Dataset> {
  const common = { cacheDir: req.cacheDir, source: req.source, signal: hooks.signal, onProgress: hooks.onDownload };
  if (req.dataset === 'imagefolder') {
    if (!req.source) throw new Error('imagefolder: set `source` to the folder holding train/ and test/');
    return loadImageFolder({ source: req.source, imageSize: req.imageSize, channels: req.channels, signal: hooks.signal, onProgress: (n, t) => hooks.onNote?.(`decoded ${n} / ${t} images`) });
  }
  const family = MNIST_FAMILY[req.dataset];
  if (family) return loadMnistFamily(family, common);
  return loadCifar(CIFARS[req.dataset]!, common);
}

/** Paths of the compact files of a dataset under `cacheDir`. */
export function compactPaths(cacheDir: string, dataset: string, key: string): { train: string; test: string } {
  const base = join(cacheDir, dataset, 'compact', key.slice(0, 24));
  return { train: `${base}.train.pipeds`, test: `${base}.test.pipeds` };
}

/** A dataset with where its compact files are and what they hold. */
export interface CachedDataset {
  dataset: Dataset;
  /** True when read from the compact cache. */
  cached: boolean;
  /** Compact file paths and their recorded sha256, undefined when they could not be written. */
  files?: { train: { path: string; sha256: string }; test: { path: string; sha256: string } };
}

/**
 * Reads the compact files at `paths`: undefined when one is missing. A corrupt one is deleted
 * (keep nothing bad) and reported through `onNote`, then undefined.
 */
export async function readCompactDataset(paths: { train: string; test: string }, onNote?: (line: string) => void): Promise<{ dataset: Dataset; headers: [CompactHeader, CompactHeader] } | undefined> {
  try {
    const train = await readCompact(paths.train);
    const test = train && (await readCompact(paths.test));
    if (!train || !test || train.header.digest !== test.header.digest) return undefined;
    const h = train.header;
    return { dataset: { name: h.dataset, classes: h.classes, source: h.source, digest: h.digest, train: train.split, test: test.split }, headers: [train.header, test.header] };
  } catch (e) {
    if (!(e instanceof CompactFileError)) throw e;
    onNote?.(`${e.message}: deleted, rebuilding it`);
    await Promise.all([rm(paths.train, { force: true }), rm(paths.test, { force: true })]);
    return undefined;
  }
}

/**
 * Loads through the compact cache: reads the compact files when present and intact, else loads
 * the dataset's own files (`load`, by default loadRaw) and writes the compact files. A cache that
 * cannot be written is reported through `onNote`, and the data is still returned.
 */
export async function loadCached(req: DatasetRequest, hooks: LoadHooks = {}, load: () => Promise<Dataset> = () => loadRaw(req, hooks)): Promise<CachedDataset> {
  // A local source that is not there is the user's mistake even when the cache could serve:
  // the loader reports it (naming the path).
  if (req.source !== undefined && !/^https?:\/\//.test(req.source) && !existsSync(req.source)) return { dataset: await load(), cached: false };
  const paths = compactPaths(req.cacheDir, req.dataset, await compactKey(req));
  const hit = await readCompactDataset(paths, hooks.onNote);
  if (hit) {
    const [a, b] = hit.headers;
    return { dataset: hit.dataset, cached: true, files: { train: { path: paths.train, sha256: a.sha256 }, test: { path: paths.test, sha256: b.sha256 } } };
  }
  const dataset = await load();
  try {
    const meta = { dataset: dataset.name, source: dataset.source, digest: dataset.digest, classes: dataset.classes };
    await writeCompact(paths.train, dataset.train, { ...meta, split: 'train' });
    await writeCompact(paths.test, dataset.test, { ...meta, split: 'test' });
    const again = await readCompactDataset(paths);
    if (again) return { dataset: again.dataset, cached: false, files: { train: { path: paths.train, sha256: again.headers[0].sha256 }, test: { path: paths.test, sha256: again.headers[1].sha256 } } };
  } catch (e) {
    hooks.onNote?.(`cannot write the compact cache ${paths.train}: ${(e as Error).message} (continuing without it)`);
  }
  return { dataset, cached: false };
}
