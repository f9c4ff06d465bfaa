/** build-model: an architecture from the zoo with a new classification head. */
import type { Dataset } from '../src/data/dataset.js';
import { buildClassifier, paramCounts, type Classifier } from '../src/models/registry.js';
import { Rng } from '../src/rng.js';
import { defineStage } from '../src/runner/stage.js';

/** schemas/stages/build-model.schema.json */
export interface BuildModelParams {
  arch: string;
  weights: string;
  num_classes?: number;
}

export default defineStage<BuildModelParams, Classifier>({
  kind: 'build-model',
  version: 1,
  summary: 'build the network and a new head of num_classes logits',
  async run(ctx) {
    const data = ctx.upstream<Dataset>('download');
    const p = ctx.params;
    const numClasses = p.num_classes ?? data.classes.length;
    const { height, width, channels } = data.train;
    const c = buildClassifier(p.arch, { height, width, channels }, numClasses, p.weights, new Rng(ctx.seed + 1));
    const counts = paramCounts(c);
    ctx.report.tags({ 'pipe.model.arch': p.arch, 'pipe.model.reinitialized': c.reinitialized.join(','), 'pipe.model.params': String(counts.total) });
    ctx.report.metric('total_params', counts.total, 0);
    ctx.report.progress(`${p.arch}: ${counts.total.toLocaleString('en')} parameters (head ${counts.head.toLocaleString('en')}), ${numClasses} classes`);
    return c;
  },
});
