/** download: fetch a dataset into the cache (or use a local copy), verify it, load it. */
import { PipelineError } from '../src/errors.js';
import { subsetSplit, type Dataset } from '../src/data/dataset.js';
import { FASHION_MNIST, MNIST, loadMnistFamily } from '../src/data/mnist-family.js';
import { cacheDir } from '../src/paths.js';
import { Rng } from '../src/rng.js';
import { defineStage } from '../src/runner/stage.js';

/** schemas/stages/download.schema.json */
export interface DownloadParams {
  dataset: 'fashion-mnist' | 'mnist' | 'cifar10' | 'cifar100';
  source?: string;
  cache_dir?: string;
  subset?: { train?: number; test?: number };
}

const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`;

export default defineStage<DownloadParams, Dataset>({
  kind: 'download',
  version: 1,
  summary: 'fetch and verify a dataset (cache, Debian package, mirror or official URL)',
  async run(ctx) {
    const p = ctx.params;
    if (p.dataset === 'cifar10' || p.dataset === 'cifar100') {
      throw new PipelineError('PIPE_DATA', `dataset '${p.dataset}' is not available yet in this version (fashion-mnist and mnist are)`, 1);
    }
    const spec = p.dataset === 'mnist' ? MNIST : FASHION_MNIST;
    const t0 = Date.now();
    const full = await loadMnistFamily(spec, {
      cacheDir: cacheDir(p.cache_dir),
      source: p.source,
      signal: ctx.signal,
      onProgress: ({ url, received, total }) => {
        const rate = received / Math.max(0.001, (Date.now() - t0) / 1000);
        const eta = total ? ` ETA ${Math.ceil((total - received) / Math.max(1, rate))}s` : '';
        ctx.report.progress(`${url.split('/').pop()}: ${mb(received)}${total ? ` / ${mb(total)}` : ''} at ${mb(rate)}/s${eta}`);
      },
    });
    const rng = new Rng(ctx.seed);
    const data: Dataset = {
      ...full,
      train: subsetSplit(full.train, p.subset?.train, rng.permutation(full.train.count)),
      test: subsetSplit(full.test, p.subset?.test, rng.permutation(full.test.count)),
    };
    for (const context of ['train', 'test'] as const) {
      ctx.report.dataset({ name: data.name, digest: data.digest.slice(0, 16), source: data.source, context, count: data[context].count });
    }
    ctx.report.progress(`${data.name}: ${data.train.count} train / ${data.test.count} test images from ${data.source}`);
    return data;
  },
});
