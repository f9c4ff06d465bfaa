/**
 * download: fetch a dataset into the shared cache (or use a local copy or a mirror), verify it,
 * decode it once into the compact cache form, then take the optional stratified subsets and
 * validation split. The stage folder gets dataset.json: what was loaded and which compact files
 * hold it, so a cached stage reloads from those files without touching the network.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeDurable } from '../src/fs-durable.js';
import { deriveSeed } from '../src/data/batches.js';
import { selectClasses, splitValidation, subsetSplit, type Dataset, type ImageSplit } from '../src/data/dataset.js';
import { loadCached, readCompactDataset, type CachedDataset } from '../src/data/datasets.js';
import { progressLines } from '../src/data/progress.js';
import { Rng } from '../src/rng.js';
import { defineStage, type StageContext } from '../src/stage.js';
import type { DownloadStageParameters } from '../src/config/generated/download.js';
import { datasetRequest as request, stageMeta } from './meta.js';

/** The validated parameters (defaults filled): generated from schemas/stages/download.schema.json. */
export type DownloadParams = DownloadStageParameters;

/** dataset.json in the stage folder. */
interface Manifest {
  name: string;
  digest: string;
  counts: Record<string, number>;
  selection: Selection;
  files?: CachedDataset['files'];
}

type Selection = { seed: number; classes?: DownloadParams['classes']; subset?: DownloadParams['subset']; val_fraction?: number };

/** Subsets and validation split, each from its own seeded stream; the digest then covers the selection too. */
function select(full: Dataset, sel: Selection): Dataset {
  const { subset, val_fraction: vf, seed } = sel;
  let classes = full.classes, base = { train: full.train, test: full.test };
  if (sel.classes) {
    const picked = selectClasses(full.classes, [full.train, full.test], sel.classes);
    [classes, base] = [picked.classes, { train: picked.splits[0]!, test: picked.splits[1]! }];
  }
  // As `pipe validate` (src/dag/data-checks.ts checkSubset), for the counts known only now.
  for (const split of ['train', 'test'] as const) {
    const n = subset?.[split], have = base[split].count;
    if (n !== undefined && n > have) throw new RangeError(`subset.${split}: ${n} is more than the ${have} ${split} images of ${sel.classes ? `the ${classes.length} classes selected from ` : ''}${full.name}; give at most ${have}, or leave subset.${split} out to keep them all`);
  }
  let train = subsetSplit(base.train, subset?.train, new Rng(deriveSeed(seed, 1)));
  const test = subsetSplit(base.test, subset?.test, new Rng(deriveSeed(seed, 2)));
  let val;
  if (vf !== undefined) ({ train, val } = splitValidation(train, vf, new Rng(deriveSeed(seed, 3))));
  const selected = train !== full.train || test !== full.test || val !== undefined;
  const digest = selected
    ? createHash('sha256').update(full.digest).update(JSON.stringify({ subset: subset ?? null, val_fraction: vf ?? null, seed, ...(sel.classes ? { classes: sel.classes } : {}) })).digest('hex')
    : full.digest;
  return { ...full, classes, train, test, ...(val ? { val } : {}), digest };
}

/**
 * The digest MLflow shows for one split: the first 16 hex digits of the sha256 of the split's own
 * content (`pipe-split-v1`, the class names and image shape as JSON, the label bytes, the pixel
 * bytes). Train and test thus differ, and MLflow (which merges a run's inputs of equal name and
 * digest) keeps both.
 */
export function splitDigest(split: ImageSplit, classes: readonly string[]): string {
  const { count, height, width, channels } = split;
  const labels = Buffer.from(split.labels.buffer, split.labels.byteOffset, split.labels.byteLength);
  return createHash('sha256').update('pipe-split-v1\n').update(JSON.stringify({ classes, count, height, width, channels, labelBytes: split.labels.BYTES_PER_ELEMENT }))
    .update(labels).update(split.images).digest('hex').slice(0, 16);
}

function finish(ctx: StageContext<DownloadParams>, data: Dataset): Dataset {
  for (const context of ['train', 'test'] as const) {
    ctx.report.dataset({ name: data.name, digest: splitDigest(data[context], data.classes), source: data.source, context, count: data[context].count });
  }
  const val = data.val ? ` / ${data.val.count} val` : '';
  ctx.report.progress(`${data.name}: ${data.train.count} train${val} / ${data.test.count} test images of ${data.train.height}x${data.train.width}x${data.train.channels} from ${data.source}`);
  return data;
}

async function run(ctx: StageContext<DownloadParams>): Promise<Dataset> {
  const p = ctx.params;
  const loaded = await loadCached(request(p), {
    signal: ctx.signal,
    onDownload: progressLines((line) => ctx.report.progress(line)),
    onNote: (line) => ctx.report.progress(`${p.dataset}: ${line}`),
  });
  const sel: Selection = { seed: ctx.seed, ...(p.classes ? { classes: p.classes } : {}), subset: p.subset, val_fraction: p.val_fraction };
  let data: Dataset;
  try {
    data = select(loaded.dataset, sel);
  } catch (e) {
    throw new Error(`stages.${ctx.name}.with: ${(e as Error).message}`);
  }
  const manifest: Manifest = {
    name: data.name, digest: data.digest, selection: sel, files: loaded.files,
    counts: { train: data.train.count, test: data.test.count, ...(data.val ? { val: data.val.count } : {}) },
  };
  const path = join(ctx.outDir, 'dataset.json');
  await writeDurable(path, JSON.stringify(manifest, null, 2));
  return finish(ctx, data);
}

/** Rebuilds a finished stage's output from the compact files its dataset.json names; runs again when they are gone. */
async function load(ctx: StageContext<DownloadParams>, dir: string): Promise<Dataset> {
  let m: Manifest;
  try {
    m = JSON.parse(await readFile(join(dir, 'dataset.json'), 'utf8')) as Manifest;
  } catch {
    return run(ctx);
  }
  const hit = m.files ? await readCompactDataset({ train: m.files.train.path, test: m.files.test.path }) : undefined;
  if (!hit || hit.headers[0].sha256 !== m.files!.train.sha256 || hit.headers[1].sha256 !== m.files!.test.sha256) return run(ctx);
  const data = select(hit.dataset, m.selection);
  return data.digest === m.digest ? finish(ctx, data) : run(ctx);
}

export default defineStage<DownloadParams, Dataset>({
  ...stageMeta.download,
  run,
  load,
});
