/**
 * Checks against what the data is, made before any stage runs (`validate`, `plan` and `run`
 * alike): the class count and image shape of each download stage come from the dataset's
 * definition (src/data/datasets.ts `datasetFacts`; imagefolder: its listing), and then
 * - a build-model's `num_classes` equals the class count of the data it is built for;
 * - every augment op fits the images it gets (normalize/fill values per channel, padding for
 *   the image size, grayscale input): each op's own `outShape` check, run on the known shape;
 * - an evaluate stage asks for the `val` split only when its data holds one out (`val_fraction`);
 * - a download stage's local `source:` exists and holds the dataset's files (datasets.ts sourceProblem);
 * - a download stage's `classes:` selection names classes of the dataset;
 * - a download stage's `subset:` asks for no more images than the split has (after `classes:`),
 *   where that is known: the built-in datasets' published counts, an imagefolder's listing;
 * - `unfreeze: { from: <block> }` names a block of the architecture upstream (the model catalog's blocks, src/models/catalog.ts).
 * An imagefolder without `image_size` has a known channel count but no known size: its ops get
 * the channel checks only. A check whose fact is unknown before loading (the size then, the
 * class count of a folder not there yet) is left to the stage.
 */
import { issueAt, type ConfigIssue } from '../config/load.js';
import type { SourceFile } from '../config/source.js';
import { didYouMean } from '../config/suggest.js';
import type { PipelineConfig } from '../config/types.js';
import type { StageKindName } from '../stage-kinds.js';
import { classIndices } from '../data/dataset.js';
import { datasetFacts, sourceProblem, type DatasetFacts } from '../data/datasets.js';
import { imageFolderCounts } from '../data/imagefolder.js';
import { buildTransform, type OpSpec } from '../data/transforms.js';
import { MODEL_CATALOG as MODELS } from '../models/catalog.js';

type At = (path: (string | number)[], message: string) => void;

/** The data issues of a compiled pipeline (empty when fine). */
export function dataIssues(config: PipelineConfig, ancestorsOf: (name: string) => string[], source?: SourceFile): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const at: At = (path, message) => void issues.push(issueAt(source, path, message));
  const nearest = (name: string, kind: StageKindName): string | undefined => ancestorsOf(name).find((a) => config.stages[a]!.kind === kind);
  const dataOf = (name: string): { stage: string; dataset: string; w: Record<string, unknown> } | undefined => {
    const stage = nearest(name, 'download');
    return stage === undefined ? undefined : { stage, dataset: String(config.stages[stage]!.with['dataset']), w: config.stages[stage]!.with };
  };
  for (const [name, stage] of Object.entries(config.stages)) {
    const w = stage.with;
    const data = dataOf(name);
    const facts = data ? datasetFacts(data.w as Parameters<typeof datasetFacts>[0]) : {};
    if (stage.kind === 'download') checkDownload(name, w, datasetFacts(w as Parameters<typeof datasetFacts>[0]), at);
    // A download stage's `classes:` selection keeps that many classes.
    const classes = Array.isArray(data?.w['classes']) ? (data!.w['classes'] as unknown[]).length : facts.classes;
    if (stage.kind === 'build-model' && typeof w['num_classes'] === 'number' && classes !== undefined && w['num_classes'] !== classes) {
      at(['stages', name, 'with', 'num_classes'], `num_classes is ${w['num_classes']}, but the data of stage '${data!.stage}' (${data!.dataset}) has ${classes} classes; leave num_classes out to use the data's count`);
    }
    if (stage.kind === 'augment' && facts.shape) checkOps(name, w as { train?: OpSpec[]; test?: OpSpec[] }, facts.shape, `stage '${data!.stage}' loads ${facts.shape.join('x')} ${data!.dataset} images`, at);
    else if (stage.kind === 'augment' && facts.channels !== undefined) {
      checkOps(name, w as { train?: OpSpec[]; test?: OpSpec[] }, [ANY_SIDE, ANY_SIDE, facts.channels], `stage '${data!.stage}' loads ${facts.channels}-channel ${data!.dataset} images`, at, true);
    }
    if (stage.kind === 'evaluate' && Array.isArray(w['splits']) && data && data.w['val_fraction'] === undefined) {
      const i = (w['splits'] as string[]).indexOf('val');
      if (i >= 0) at(['stages', name, 'with', 'splits', i], `the data of stage '${data.stage}' has no val split; set val_fraction in that download stage, or drop val`);
    }
    const unfreeze = w['unfreeze'];
    if (stage.kind === 'unfreeze-train' && typeof unfreeze === 'object' && unfreeze !== null) {
      const from = String((unfreeze as { from: unknown }).from);
      const model = nearest(name, 'build-model');
      const arch = model === undefined ? undefined : String(config.stages[model]!.with['arch']);
      const blocks = arch === undefined ? undefined : MODELS[arch]?.blocks;
      if (blocks && !blocks.includes(from)) {
        at(['stages', name, 'with', 'unfreeze', 'from'], `'${from}' is not a block of ${arch} (stage '${model}'); blocks: ${blocks.join(', ')}.${didYouMean(from, blocks)}`.replace(/\.$/, ''));
      }
    }
  }
  return issues;
}

/**
 * A download stage's local source holds the data; its `classes:` selection names classes of the
 * dataset (where its definition fixes them); its `subset:` asks for no more images than each
 * split has after that selection (where the counts are known: checkSubset).
 */
function checkDownload(name: string, w: Record<string, unknown>, facts: DatasetFacts, at: At): void {
  const problem = sourceProblem(w as { dataset: string; source?: string });
  if (problem !== undefined) at(['stages', name, 'with', 'source'], problem);
  let selected: number[] | undefined;
  if (Array.isArray(w['classes']) && facts.classNames) {
    try {
      selected = classIndices(facts.classNames, w['classes'] as Array<number | string>);
    } catch (e) {
      at(['stages', name, 'with', 'classes'], (e as Error).message.replace(/^classes: /, ''));
      return;
    }
  }
  if (w['subset'] !== undefined) checkSubset(name, w, facts, selected, at);
}

/**
 * `subset.train` / `subset.test` at most the images of that split: the dataset's published
 * counts per class (DatasetFacts.perClass), or an imagefolder's listing now; summed over the
 * `classes:` selection (`selected`, label indices) when there is one. Unknown counts (a CIFAR
 * folder of unpacked batches, an imagefolder not there yet) are left to the stage, which refuses
 * the same way (stages/download.ts).
 */
function checkSubset(name: string, w: Record<string, unknown>, facts: DatasetFacts, selected: number[] | undefined, at: At): void {
  const subset = w['subset'] as { train?: number; test?: number };
  const dataset = String(w['dataset']);
  let perClass = facts.perClass;
  let names = facts.classNames;
  if (dataset === 'imagefolder' && typeof w['source'] === 'string') {
    const listed = imageFolderCounts(w['source']);
    [perClass, names] = [listed, listed?.classes];
    if (Array.isArray(w['classes']) && names) {
      try {
        selected = classIndices(names, w['classes'] as Array<number | string>);
      } catch {
        return; // the stage names the class that is not there
      }
    }
  }
  if (!perClass) return;
  const of = selected ? `the ${selected.length} classes selected from ${dataset}` : dataset === 'imagefolder' ? `imagefolder ${String(w['source'])}` : dataset;
  for (const split of ['train', 'test'] as const) {
    const n = subset[split];
    const counts = perClass[split];
    const have = (selected ?? counts.map((_, i) => i)).reduce((sum, i) => sum + (counts[i] ?? 0), 0);
    if (n !== undefined && n > have) {
      const fix = have > 0 ? `give at most ${have}, or leave subset.${split} out to keep them all` : 'it has none';
      at(['stages', name, 'with', 'subset', split], `${n} is more than the ${have} ${split} images of ${of}; ${fix}`);
    }
  }
}

/** Stand-in image side when only the channels are known: no crop or padding is too large for it. */
const ANY_SIDE = 1 << 20;

/**
 * Runs each op's shape check on the image shape, split by split. With `channelsOnly` (the size
 * is a stand-in) only the channel checks count: normalize and fill values per channel, grayscale.
 */
function checkOps(name: string, w: { train?: OpSpec[]; test?: OpSpec[] }, shape: [number, number, number], loads: string, at: At, channelsOnly = false): void {
  for (const split of ['train', 'test'] as const) {
    let s: [number, number, number] = shape;
    for (const [i, spec] of (w[split] ?? []).entries()) {
      try {
        s = buildTransform(spec).outShape(s);
      } catch (e) {
        const message = (e as Error).message;
        if (channelsOnly && !/channel/.test(message)) break; // depends on the size, which is not known yet
        const here = channelsOnly ? `${s[2]}-channel` : s.join('x');
        at(['stages', name, 'with', split, i], `${message} (${split} images are ${here} at this op; ${loads})`);
        break;
      }
    }
  }
}
