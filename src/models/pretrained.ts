/**
 * Pretrained weights: a typed config per weight file (timm's `PretrainedCfg`: where the file
 * is, how to check it, and the preprocessing the weights were trained with), its place in the
 * shared cache, and the download (src/data/download.ts: resume, checksum, atomic rename).
 * Anchor: timm `_pretrained.py` PretrainedCfg; Keras applications `WEIGHTS_HASHES`.
 * The pinned files themselves are in pins.ts.
 */
import { stat } from 'node:fs/promises';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { download, DownloadError, fileDigest, type DownloadProgress } from '../data/download.js';
import { cacheDir } from '../paths.js';

/** How the weights expect their input images (NHWC floats after `ToTensor` scaling to [0,1]). */
export interface Preprocessing {
  /** Per-channel mean subtracted after scaling to [0,1], RGB. */
  mean: [number, number, number];
  /** Per-channel std divided by, RGB. */
  std: [number, number, number];
  /** Training/eval input size [channels, height, width] (timm's `input_size`). */
  inputSize: [number, number, number];
  /** Resize interpolation used at evaluation. */
  interpolation: 'bilinear' | 'bicubic';
  /** Center-crop fraction at evaluation: resize to inputSize / cropPct, then crop inputSize. */
  cropPct: number;
}

/** One published weights file and everything needed to use it. */
export interface PretrainedConfig extends Preprocessing {
  /** Weight tag, `arch.tag` in timm naming, e.g. `tv_in1k`. */
  tag: string;
  /** Hugging Face Hub repository, e.g. `timm/resnet50.tv_in1k`. */
  hubId: string;
  /** Download URL, pinned to `commit` when it is known. */
  url: string;
  /** Hub commit the URL is pinned to; null when only `main` is known (sha256 is then the anchor). */
  commit: string | null;
  /** sha256 of the file (hex); null when unknown: the first download is trusted and its digest printed. */
  sha256: string | null;
  /** File size in bytes; null when not published (checked only through sha256). */
  sizeBytes: number | null;
  /** Classes of the published classifier. */
  numClasses: number;
  /** Torch module of the classifier (replaced when the class count differs). */
  classifier: string;
  /** Torch module of the first conv. */
  firstConv: string;
  /** License of the weights (SPDX-style id). */
  license: string;
  /** Who trained them. */
  origin: string;
}

/** ImageNet channel statistics (torchvision `transforms.Normalize` for its ImageNet weights). */
export const IMAGENET_MEAN: [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: [number, number, number] = [0.229, 0.224, 0.225];

/** A Hub `model.safetensors` config with the ImageNet defaults (224 px, crop 0.875, 1000 classes). */
export function hubCfg(o: {
  hubId: string;
  commit: string | null;
  sha256: string | null;
  sizeBytes: number | null;
  classifier: string;
  firstConv: string;
  interpolation: 'bilinear' | 'bicubic';
  origin: 'torchvision' | 'timm';
  mean?: [number, number, number];
  std?: [number, number, number];
  inputSize?: [number, number, number];
}): PretrainedConfig {
  return {
    tag: o.hubId.slice(o.hubId.indexOf('.') + 1),
    hubId: o.hubId,
    url: `https://huggingface.co/${o.hubId}/resolve/${o.commit ?? 'main'}/model.safetensors`,
    commit: o.commit,
    sha256: o.sha256,
    sizeBytes: o.sizeBytes,
    numClasses: 1000,
    classifier: o.classifier,
    firstConv: o.firstConv,
    mean: o.mean ?? IMAGENET_MEAN,
    std: o.std ?? IMAGENET_STD,
    inputSize: o.inputSize ?? [3, 224, 224],
    interpolation: o.interpolation,
    cropPct: 0.875,
    // torchvision's weights are BSD-3-Clause (timm's cfg for tv_in1k); timm-trained ones Apache-2.0.
    license: o.origin === 'torchvision' ? 'bsd-3-clause' : 'apache-2.0',
    origin: o.origin === 'torchvision' ? 'https://github.com/pytorch/vision' : 'https://github.com/huggingface/pytorch-image-models',
  };
}

/**
 * Where `cfg`'s file lives in the shared cache:
 * `<cacheDir>/weights/<hub repo>/<sha256 prefix or 'unverified'>/model.safetensors`.
 */
export function cachedWeightsPath(cfg: PretrainedConfig, root = cacheDir()): string {
  return join(root, 'weights', cfg.hubId.replace(/\//g, '--'), cfg.sha256 ? cfg.sha256.slice(0, 16) : 'unverified', 'model.safetensors');
}

/** `cfg.url` on the Hub mirror named by $HF_ENDPOINT (huggingface_hub's variable), if set. */
export function weightsUrl(cfg: PretrainedConfig): string {
  const mirror = process.env['HF_ENDPOINT'];
  return mirror ? cfg.url.replace(/^https:\/\/huggingface\.co/, mirror.replace(/\/+$/, '')) : cfg.url;
}

/** What to do without a network that reaches the Hub: the exact file (URL, sha256, size), where it goes, or a mirror. */
export function offlineRemedy(cfg: PretrainedConfig, path: string): string {
  const facts = [cfg.sha256 ? `sha256 ${cfg.sha256}` : 'no published sha256', cfg.sizeBytes !== null ? `${cfg.sizeBytes} bytes` : 'size not published'].join(', ');
  return `offline: download ${cfg.url} (${facts}) where the network reaches it and put it at ${path}; or set HF_ENDPOINT to a Hugging Face Hub mirror`;
}

/**
 * Bytes of the file at `cfg`'s cache path: undefined when there is none, `ok` false when the pin
 * publishes a size and the file has another (a partial download or another file). Not hashed
 * (the run re-hashes it): `pipe plan` and `pipe models` read only the size.
 */
export function cachedWeightsFile(cfg: PretrainedConfig, root = cacheDir()): { path: string; bytes?: number; ok: boolean } {
  const path = cachedWeightsPath(cfg, root);
  if (!existsSync(path)) return { path, ok: false };
  const bytes = statSync(path).size;
  return { path, bytes, ok: cfg.sizeBytes === null || bytes === cfg.sizeBytes };
}

/**
 * For `pipe plan`: undefined when `cfg`'s file is in the cache with the published size (not
 * hashed here: the run re-hashes it), else one line: the weights (and the size of a cached file
 * of the wrong size), the mirror they come from (HF_ENDPOINT, when set) and the offline remedy
 * (offlineRemedy: URL, sha256, size, where to put the file).
 */
export function missingWeights(cfg: PretrainedConfig, root = cacheDir()): string | undefined {
  const { path, bytes, ok } = cachedWeightsFile(cfg, root);
  const url = weightsUrl(cfg);
  const bad = bytes === undefined ? '' : ` (the cached file is ${bytes} bytes, not the published ${cfg.sizeBytes}: a partial download or another file)`;
  return ok ? undefined : `${cfg.hubId}${bad}: the run downloads it${url !== cfg.url ? ` from ${url}` : ''}; ${offlineRemedy(cfg, path)}`;
}

/** A fetched weights file. */
export interface FetchedWeights {
  path: string;
  sha256: string;
  bytes: number;
  /** True when the file came over the network in this call. */
  downloaded: boolean;
  /** Set when no digest was published: the first download is trusted (say so to the user). */
  trustNote?: string;
}

/**
 * Downloads `cfg`'s file once into the cache (checked against its sha256; resumed after an
 * interruption) and returns its path. A cached file is re-hashed on every call.
 * @throws DownloadError (src/data/download.ts) on HTTP/network errors or a checksum mismatch;
 *   Error when the size differs from a published `sizeBytes`.
 */
export async function fetchPretrained(
  cfg: PretrainedConfig,
  opts: { root?: string; signal?: AbortSignal; onProgress?: (p: DownloadProgress) => void } = {},
): Promise<FetchedWeights> {
  const path = cachedWeightsPath(cfg, opts.root);
  const had = existsSync(path);
  try {
    await download(weightsUrl(cfg), path, {
      checksum: cfg.sha256 ? { algorithm: 'sha256', hex: cfg.sha256 } : undefined,
      signal: opts.signal,
      onProgress: opts.onProgress,
    });
  } catch (e) {
    if (!(e instanceof DownloadError) || opts.signal?.aborted) throw e;
    throw new DownloadError(`${e.message}\n${offlineRemedy(cfg, path)}`);
  }
  const bytes = (await stat(path)).size;
  if (cfg.sizeBytes !== null && bytes !== cfg.sizeBytes) throw new Error(`${path}: ${bytes} bytes, but ${cfg.hubId} publishes ${cfg.sizeBytes}; delete the file and run again`);
  const sha256 = cfg.sha256 ?? (await fileDigest(path, 'sha256'));
  const trustNote = cfg.sha256 === null ? `${cfg.hubId}: no published sha256; trusting the first download (sha256 ${sha256}, ${bytes} bytes)` : undefined;
  return { path, sha256, bytes, downloaded: !had, trustNote };
}
