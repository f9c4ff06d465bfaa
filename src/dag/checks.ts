/**
 * Cross-field rules the schema cannot express, checked on the compiled graph before any work:
 * - each stage kind has the upstream kinds it reads (augment needs a download, ...);
 * - the training stages of a chain train for at least one epoch in all;
 * - an architecture's minimum input size fits the images after augmentation;
 * - a plot stage's `compare:` names training stages upstream of it, each once, labels distinct;
 * - the stages fit the data: class count, image shape, val split, block names (data-checks.ts);
 * - a build-model's `weights:` can be had: ImageNet pins, a training stage upstream, a file (weights-checks.ts);
 * - names fit the tracking store and the file system (store-limits.ts).
 * Anchor: DVC `repo/graph.py` checks as named errors, Keras applications' input-size checks.
 */
import { issueAt, type ConfigIssue } from '../config/load.js';
import type { SourceFile } from '../config/source.js';
import type { PipelineConfig } from '../config/types.js';
import type { StageKindName } from '../stage-kinds.js';
import type { OpSpec } from '../data/transforms.js';
import { outputSize } from '../data/transforms.js';
import { datasetFacts } from '../data/datasets.js';
import { MODEL_CATALOG as MODELS } from '../models/catalog.js';
import { STAGE_KINDS } from '../stage-kinds.js';
import { dataIssues } from './data-checks.js';
import { didYouMean } from '../config/suggest.js';
import { storeLimitIssues } from './store-limits.js';
import { weightsIssues } from './weights-checks.js';


/** The semantic issues of a compiled pipeline (empty when fine). */
export function semanticIssues(config: PipelineConfig, ancestorsOf: (name: string) => string[], source?: SourceFile): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const at = (path: (string | number)[], message: string): void => void issues.push(issueAt(source, path, message));
  const kindOf = (n: string): StageKindName => config.stages[n]!.kind;
  const isTrain = (n: string): boolean => kindOf(n) === 'freeze-train' || kindOf(n) === 'unfreeze-train';
  for (const [name, stage] of Object.entries(config.stages)) {
    const anc = ancestorsOf(name);
    for (const kinds of STAGE_KINDS[stage.kind].inputs as readonly (readonly StageKindName[])[]) {
      if (!anc.some((a) => kinds.includes(kindOf(a)))) {
        at(['stages', name, 'needs'], `stage '${name}' (${stage.kind}) reads the output of ${/^[aeiou]/.test(kinds[0]!) ? 'an' : 'a'} ${kinds.join(' or ')} stage, but none is upstream of it; add one to its needs (directly or through another stage)`);
      }
    }
    if (isTrain(name)) {
      const chain = [...anc.filter(isTrain).reverse(), name];
      const total = chain.reduce((n, s) => n + Number((config.stages[s]!.with as { epochs?: number }).epochs ?? 0), 0);
      const isLast = !Object.keys(config.stages).some((o) => isTrain(o) && ancestorsOf(o).includes(name));
      if (isLast && total === 0) {
        at(['stages', name, 'with', 'epochs'], chain.length === 1
          ? `stage '${name}' trains for 0 epochs; set epochs >= 1`
          : `the training stages ${chain.join(', ')} train for 0 epochs in all; give at least one of them epochs >= 1`);
      }
    }
    if (stage.kind === 'build-model') checkInputSize(config, name, ancestorsOf, at);
    if (stage.kind === 'plot') checkCompare(config, name, anc, at);
  }
  issues.push(...dataIssues(config, ancestorsOf, source), ...weightsIssues(config, ancestorsOf, source), ...storeLimitIssues(config, ancestorsOf, source));
  return issues;
}

/** A plot stage's `compare:` entries: training stages upstream of it, each once, with distinct labels. */
function checkCompare(config: PipelineConfig, plot: string, anc: readonly string[], at: (p: (string | number)[], m: string) => void): void {
  const compare = (config.stages[plot]!.with as { compare?: Array<string | { stage: string; label?: string }> }).compare ?? [];
  const names = Object.keys(config.stages);
  const seen = new Map<string, number>();
  const labels = new Map<string, number>();
  compare.forEach((c, i) => {
    const [stage, label] = typeof c === 'string' ? [c, c] : [c.stage, c.label ?? c.stage];
    const path = ['stages', plot, 'with', 'compare', i, ...(typeof c === 'string' ? [] : ['stage'])];
    const kind = config.stages[stage]?.kind;
    if (kind === undefined) {
      at(path, `stage '${plot}' compares '${stage}', which is not a stage of this pipeline.${didYouMean(stage, names) || ` Stages: ${names.join(', ')}.`}`);
    } else if (kind !== 'freeze-train' && kind !== 'unfreeze-train') {
      at(path, `stage '${plot}' compares '${stage}', ${/^[aeiou]/.test(kind) ? 'an' : 'a'} ${kind} stage; compare lists training stages (freeze-train or unfreeze-train), the last of each chain`);
    } else if (!anc.includes(stage)) {
      at(path, `stage '${plot}' compares '${stage}', which is not upstream of it; add '${stage}' (or a stage after it, e.g. its evaluate stage) to its needs`);
    } else if (seen.has(stage)) {
      at(path, `stage '${plot}' compares '${stage}' twice (entries ${seen.get(stage)} and ${i})`);
    } else if (labels.has(label)) {
      at(typeof c === 'string' ? path : ['stages', plot, 'with', 'compare', i, 'label' in c ? 'label' : 'stage'], `stage '${plot}' has two chains labelled '${label}' (entries ${labels.get(label)} and ${i}); give them distinct labels`);
    }
    if (!seen.has(stage)) seen.set(stage, i);
    if (!labels.has(label)) labels.set(label, i);
  });
}

/** Image size (height, width) of a download stage's images, when known before running. */
function datasetSize(w: Record<string, unknown>): [number, number] | undefined {
  const shape = datasetFacts(w as Parameters<typeof datasetFacts>[0]).shape;
  return shape && [shape[0], shape[1]];
}

function checkInputSize(config: PipelineConfig, model: string, ancestorsOf: (n: string) => string[], at: (p: (string | number)[], m: string) => void): void {
  const arch = String(config.stages[model]!.with['arch']);
  const min = MODELS[arch]?.minInputSize;
  if (min === undefined) return;
  // The augment stages feeding the same training stages as this model.
  for (const [name, s] of Object.entries(config.stages)) {
    if (s.kind !== 'freeze-train' && s.kind !== 'unfreeze-train') continue;
    const anc = ancestorsOf(name);
    if (!anc.includes(model)) continue;
    for (const aug of anc.filter((a) => config.stages[a]!.kind === 'augment')) {
      const data = ancestorsOf(aug).find((a) => config.stages[a]!.kind === 'download');
      const size = data ? datasetSize(config.stages[data]!.with) : undefined;
      if (size === undefined) continue;
      const w = config.stages[aug]!.with as { train?: OpSpec[]; test?: OpSpec[] };
      for (const split of ['train', 'test'] as const) {
        const [h, wd] = outputSize(w[split] ?? [], size[0], size[1]);
        if (Math.min(h, wd) < min) {
          at(['stages', model, 'with', 'arch'], `${arch} needs images of at least ${min}x${min} px, but stage '${aug}' makes ${h}x${wd} ${split} images (from ${size[0]}x${size[1]} ${String(config.stages[data!]!.with['dataset'])}); add a resize op of at least ${min} px (\`- resize: { size: ${min} }\`) to its train and test lists`);
          return;
        }
      }
    }
  }
}
