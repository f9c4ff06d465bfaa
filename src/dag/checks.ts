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
    if (stage.kind === 'plot') checkCompare(config, name, anc, ancestorsOf, at);
  }
  issues.push(...dataIssues(config, ancestorsOf, source), ...weightsIssues(config, ancestorsOf, source), ...storeLimitIssues(config, ancestorsOf, source));
  return issues;
}

/**
 * The training stages `stage` continues, nearest first: its chain before it (the nearest upstream
 * training stage, unless a build-model stage is nearer, which starts a new chain; as
 * src/tracking/layout.ts RunLayout and src/train/stage.ts previousTraining decide it).
 */
function chainBefore(config: PipelineConfig, stage: string, ancestorsOf: (name: string) => string[]): string[] {
  const out: string[] = [];
  for (let n: string | undefined = stage; ;) {
    const near: string | undefined = ancestorsOf(n).find((a) => ['build-model', 'freeze-train', 'unfreeze-train'].includes(config.stages[a]!.kind));
    if (near === undefined || config.stages[near]!.kind === 'build-model') return out;
    out.push(near);
    n = near;
  }
}

/**
 * A plot stage's `compare:` entries: training stages upstream of it, each once, of different
 * chains (one is not the continuation of another), with distinct labels that are not blank.
 */
function checkCompare(config: PipelineConfig, plot: string, anc: readonly string[], ancestorsOf: (name: string) => string[], at: (p: (string | number)[], m: string) => void): void {
  const compare = (config.stages[plot]!.with as { compare?: Array<string | { stage: string; label?: string }> }).compare ?? [];
  const names = Object.keys(config.stages);
  const seen = new Map<string, number>();
  const labels = new Map<string, number>();
  const isTrain = (n: string): boolean => ['freeze-train', 'unfreeze-train'].includes(config.stages[n]?.kind ?? '');
  const stageOf = (c: string | { stage: string }): string => (typeof c === 'string' ? c : c.stage);
  compare.forEach((c, i) => {
    const [stage, label] = typeof c === 'string' ? [c, c] : [c.stage, c.label ?? c.stage];
    const path = ['stages', plot, 'with', 'compare', i, ...(typeof c === 'string' ? [] : ['stage'])];
    const kind = config.stages[stage]?.kind;
    // An earlier entry of the same chain: one of them continues the other.
    const sameChain = isTrain(stage) && anc.includes(stage) ? compare.slice(0, i).map(stageOf).findIndex((o) => o !== stage && isTrain(o) && anc.includes(o)
      && (chainBefore(config, stage, ancestorsOf).includes(o) || chainBefore(config, o, ancestorsOf).includes(stage))) : -1;
    if (kind === undefined) {
      at(path, `stage '${plot}' compares '${stage}', which is not a stage of this pipeline.${didYouMean(stage, names) || ` Stages: ${names.join(', ')}.`}`);
    } else if (kind !== 'freeze-train' && kind !== 'unfreeze-train') {
      at(path, `stage '${plot}' compares '${stage}', ${/^[aeiou]/.test(kind) ? 'an' : 'a'} ${kind} stage; compare lists training stages (freeze-train or unfreeze-train), the last of each chain`);
    } else if (!anc.includes(stage)) {
      at(path, `stage '${plot}' compares '${stage}', which is not upstream of it; add '${stage}' (or a stage after it, e.g. its evaluate stage) to its needs`);
    } else if (seen.has(stage)) {
      at(path, `stage '${plot}' compares '${stage}' twice (entries ${seen.get(stage)} and ${i})`);
    } else if (sameChain >= 0) {
      const other = stageOf(compare[sameChain]!);
      const [first, then] = chainBefore(config, stage, ancestorsOf).includes(other) ? [other, stage] : [stage, other];
      at(path, `stage '${plot}' compares '${stage}' and '${other}' (entries ${sameChain} and ${i}), two stages of one training chain ('${then}' continues '${first}'); compare different chains, each by its last training stage`);
    } else if (typeof c !== 'string' && label.trim() === '') {
      at(['stages', plot, 'with', 'compare', i, 'label'], `the label of entry ${i} ('${stage}') is blank (whitespace only); give a name for the legend, or leave label out to use the stage name`);
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
