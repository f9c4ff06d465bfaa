/**
 * build-model: an architecture from the zoo with a new classification head; `weights: imagenet`
 * downloads the published file once into the shared cache, a path loads a local torch
 * state_dict (.safetensors).
 */
import type { Dataset } from '../src/data/dataset.js';
import type { AugmentedData } from '../src/data/batches.js';
import { buildClassifier, ensureWeights, paramCounts, preprocessingFor, type Classifier } from '../src/models/registry.js';
import { PipelineError } from '../src/errors.js';
import { UPSTREAM_NEEDS_TRAINING } from '../src/dag/weights-checks.js';
import { Rng } from '../src/rng.js';
import { stageMeta } from './meta.js';
import { defineStage, type StageContext } from '../src/stage.js';
import { join } from 'node:path';
import { saveClassifier } from '../src/models/model-files.js';
import { loadWeightsInto } from '../src/train/persist.js';
import type { BuildModelStageParameters } from '../src/config/generated/build-model.js';

/** The validated parameters (defaults filled): generated from schemas/stages/build-model.schema.json. */
export type BuildModelParams = BuildModelStageParameters;

/**
 * Builds the classifier (deterministic for a given seed and params) for the images training will
 * see: the upstream augment stage's output size when there is one, else the dataset's.
 */
function build(ctx: StageContext<BuildModelParams>, weights = ctx.params.weights): Classifier {
  const data = ctx.upstream<Dataset>('download');
  const aug = ctx.maybeUpstream<AugmentedData>('augment');
  const p = ctx.params;
  const { channels } = data.train;
  const height = aug?.train.height ?? data.train.height;
  const width = aug?.train.width ?? data.train.width;
  if (weights !== 'upstream') return buildClassifier(p.arch, { height, width, channels }, p.num_classes ?? data.classes.length, weights, new Rng(ctx.seed + 1));
  // The best model of the nearest upstream training stage, as the torch state_dict it saved; a new head.
  const trained = ctx.maybeUpstream<{ modelDir?: string }>('unfreeze-train', 'freeze-train');
  if (!trained?.modelDir) throw new PipelineError('PIPE_MODEL', `stages.${ctx.name}.with.weights: ${UPSTREAM_NEEDS_TRAINING}`);
  const file = join(trained.modelDir, 'model.safetensors');
  return buildClassifier(p.arch, { height, width, channels }, p.num_classes ?? data.classes.length, file, new Rng(ctx.seed + 1), { newHead: true });
}

const MB = (n: number): string => (n / 1e6).toFixed(1);

export default defineStage<BuildModelParams, Classifier>({
  ...stageMeta['build-model'],
  async load(ctx, dir) {
    // Every weight is restored from the saved model: no need to read the pretrained file again.
    const c = build(ctx, 'none');
    await loadWeightsInto(c, join(dir, 'model'));
    c.weights = { source: ctx.params.weights, loaded: 0, skipped: [] };
    c.preprocessing = preprocessingFor(ctx.params.arch, ctx.params.weights);
    return c;
  },
  async run(ctx) {
    const data = ctx.upstream<Dataset>('download');
    const p = ctx.params;
    const numClasses = p.num_classes ?? data.classes.length;
    const fetched = await ensureWeights(p.arch, p.weights, {
      signal: ctx.signal,
      onProgress: (d) => ctx.report.progress(`downloading ${p.arch} weights: ${MB(d.received)}${d.total ? ` / ${MB(d.total)}` : ''} MB`),
    });
    if (fetched?.trustNote) ctx.report.progress(fetched.trustNote);
    const c = build(ctx);
    await saveClassifier(c, join(ctx.outDir, 'model'), { arch: p.arch, classes: data.classes, preprocessing: c.preprocessing ?? null });
    const counts = paramCounts(c);
    const tags: Record<string, string> = {
      'pipe.model.arch': p.arch,
      'pipe.model.weights': p.weights,
      'pipe.model.reinitialized': c.reinitialized.join(',') || 'none',
      'pipe.model.params': String(counts.learnable),
      'pipe.model.params_incl_bn_stats': String(counts.total),
    };
    if (fetched) Object.assign(tags, { 'pipe.model.weights_sha256': fetched.sha256, 'pipe.model.weights_file': fetched.path });
    if (c.preprocessing) Object.assign(tags, { 'pipe.model.mean': c.preprocessing.mean.join(','), 'pipe.model.std': c.preprocessing.std.join(','), 'pipe.model.input_size': c.preprocessing.inputSize.join('x') });
    ctx.report.tags(tags);
    ctx.report.metric('total_params', counts.total, 0);
    ctx.report.metric('learnable_params', counts.learnable, 0);
    const loaded = c.weights?.file ? `, ${c.weights.loaded} tensors loaded from ${c.weights.file}` : '';
    const reinit = c.reinitialized.length ? `re-initialised: ${c.reinitialized.join(', ')}` : 'classifier kept';
    ctx.report.progress(`${p.arch}: ${counts.learnable.toLocaleString('en')} parameters (head ${counts.head.toLocaleString('en')}; ${counts.total.toLocaleString('en')} incl. BatchNorm running statistics), ${numClasses} classes; ${reinit}${loaded}`);
    return c;
  },
});
