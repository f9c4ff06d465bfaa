/**
 * Limits the tracking store and the file system put on names taken from the config, checked
 * before any work so that a run never fails (or is left RUNNING) half way:
 * - every MLflow param key the run logs (the config flattened to dotted paths, and a sweep's
 *   `sweep.params.<path>` keys) is a valid MLflow key: at most 250 characters of letters,
 *   digits, `_ - . : /` and space (src/tracking/names.ts);
 * - every MLflow metric and run tag key the run's stages log is valid too: the keys of
 *   src/tracking/layout.ts (`RunLayout`), which with several training chains put the chain's
 *   name (its last stage's) into every key its stages log (`system/<chain>/eval_test_images_per_second`,
 *   `pipe.<chain>.unfreeze.stopped_early_at_epoch`), and name the stage in
 *   `system/stage_seconds.<stage>` and `pipe.reused.<stage>`; a per-class key
 *   (`eval/<chain>/per_class/test_precision.<class>`) is checked where the data's class names
 *   are known before loading (the built-in datasets, src/data/datasets.ts `datasetFacts`);
 *   a too long key is charged to the stage name that makes it so;
 * - the MLflow experiment name has at most 500 characters;
 * - a stage name, which names its output folder (runs/<run>/<stage>), has at most 255 bytes
 *   (NAME_MAX): it follows from the key rule, since `stages.<name>.kind` is a param key and
 *   stage names are ASCII (schema pattern), so a stage name has at most 238 characters.
 * Anchor: MLflow mlflow/utils/validation.py (`MAX_ENTITY_KEY_LENGTH`, `MAX_EXPERIMENT_NAME_LENGTH`);
 * POSIX NAME_MAX (255 bytes on ext4, xfs, btrfs, APFS).
 */
import { positionOf, dotted, type SourceFile } from '../config/source.js';
import { issueAt, type ConfigIssue } from '../config/load.js';
import type { PipelineConfig } from '../config/types.js';
import { isValidKey, MAX_EXPERIMENT_NAME_LENGTH, MAX_KEY_LENGTH } from '../tracking/names.js';
import { CURVES, MODEL, RunLayout, SYSTEM } from '../tracking/layout.js';
import { metricSafeNames, splitMetrics, type SplitReport } from '../eval/split-report.js';
import { datasetFacts } from '../data/datasets.js';

/** Every config leaf as [config path, MLflow param key] (the keys flattenParams makes). */
function paramKeys(value: unknown, path: string[] = [], out: [string[], string][] = []): [string[], string][] {
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length > 0) {
    for (const [k, v] of Object.entries(value)) paramKeys(v, [...path, k], out);
  } else if (path.length) out.push([path, path.join('.')]);
  return out;
}

/**
 * The metric names (before src/tracking/layout.ts keys them) and run tag keys a stage of each
 * kind logs, as far as validate knows them: a training stage's curves and system figures and a
 * build-model stage's sizes (layout.ts's CURVES, SYSTEM and MODEL, the sets that key them), an evaluate
 * stage's figures per split (src/eval/split-report.ts `splitMetrics`; per class where
 * `classNames` are known), and the training stage's tags (src/train/stage.ts: the longest
 * `pipe.best_<monitor>` is `pipe.best_train_accuracy`).
 */
function stageNames(kind: string, w: Record<string, unknown>, classNames: readonly string[] | undefined): { metrics: string[]; tags: string[] } {
  if (kind === 'freeze-train' || kind === 'unfreeze-train') {
    const phase = kind === 'freeze-train' ? 'freeze' : 'unfreeze';
    return {
      metrics: [...CURVES, ...SYSTEM],
      tags: [`pipe.${phase}.trainable_params`, `pipe.${phase}.weight_decay_mode`, `pipe.${phase}.stopped_early_at_epoch`, 'pipe.unfreeze_epoch', 'pipe.best_epoch', 'pipe.best_phase', 'pipe.best_train_accuracy'],
    };
  }
  if (kind === 'build-model') return { metrics: [...MODEL], tags: [] };
  if (kind === 'evaluate') {
    const splits = Array.isArray(w['splits']) ? (w['splits'] as string[]) : ['test'];
    const per_class = metricSafeNames(classNames ?? []).map((c) => ({ class: c }));
    const metrics = splits.flatMap((split) => Object.keys(splitMetrics({ split, top_k: typeof w['top_k'] === 'number' ? w['top_k'] : 5, averages: { macro: {}, weighted: {} }, per_class } as unknown as SplitReport)));
    return { metrics, tags: [] };
  }
  return { metrics: [], tags: [] };
}

/** The class names of the data `stage` reads (its nearest download stage's, after a `classes:` selection), when known before loading. */
function classNamesOf(config: PipelineConfig, ancestorsOf: (name: string) => readonly string[], stage: string): string[] | undefined {
  const data = ancestorsOf(stage).find((a) => config.stages[a]!.kind === 'download');
  if (data === undefined) return undefined;
  const w = config.stages[data]!.with;
  const all = datasetFacts(w as Parameters<typeof datasetFacts>[0]).classNames;
  if (!Array.isArray(w['classes'])) return all;
  return (w['classes'] as (number | string)[]).map((c) => (typeof c === 'string' ? c : all?.[c] ?? ''));
}

const short = (s: string): string => (s.length > 40 ? `${s.slice(0, 20)}...${s.slice(-12)}` : s);

/**
 * The store and file-system limit issues of `config` (empty when fine).
 * @param ancestorsOf every upstream stage of a stage, nearest first (src/dag/compile.ts `ancestors`).
 */
export function storeLimitIssues(config: PipelineConfig, ancestorsOf: (name: string) => readonly string[], source?: SourceFile): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const atKey = (path: string[], message: string): void => {
    const issue = issueAt(source, path, message);
    issues.push(source && issue.override === undefined ? { ...issue, pos: positionOf(source, path, true) } : issue);
  };
  const experiment = config.experiment ?? config.name;
  if (experiment.length > MAX_EXPERIMENT_NAME_LENGTH) {
    atKey([config.experiment !== undefined ? 'experiment' : 'name'], `the MLflow experiment name${config.experiment !== undefined ? '' : ' (the pipeline name)'} has ${experiment.length} characters; MLflow allows at most ${MAX_EXPERIMENT_NAME_LENGTH}`);
  }
  const keys = paramKeys(config);
  const sweep = config.sweep as Record<string, unknown> | undefined;
  if (sweep) {
    const table = (typeof sweep['mode'] === 'string' ? sweep['params'] : sweep) as Record<string, unknown> | undefined;
    const prefix = typeof sweep['mode'] === 'string' ? ['sweep', 'params'] : ['sweep'];
    for (const p of Object.keys(table ?? {})) keys.push([[...prefix, p], `sweep.params.${p}`]);
  }
  // One issue per culprit: the longest segment of a too-long key (a stage name, a sweep path), else the key itself.
  const reported = new Set<string>();
  for (const [path, key] of keys) {
    if (isValidKey(key)) continue;
    if (key.length > MAX_KEY_LENGTH) {
      const i = path.reduce((best, s, j) => (s.length > path[best]!.length ? j : best), 0);
      const culprit = path.slice(0, i + 1);
      if (reported.has(dotted(culprit))) continue;
      reported.add(dotted(culprit));
      const longestKey = keys.filter(([p]) => culprit.every((s, j) => p[j] === s)).map(([, k]) => k).reduce((a, b) => (b.length > a.length ? b : a));
      const longest = longestKey.length;
      const what = culprit[0] === 'stages' && culprit.length === 2 ? 'stage name' : 'key';
      atKey(culprit, `${what} '${short(path[i]!)}' (${path[i]!.length} characters) makes MLflow param keys of up to ${longest} characters (such as '${short(longestKey)}'); MLflow allows ${MAX_KEY_LENGTH}: shorten it by ${longest - MAX_KEY_LENGTH} or more`);
    } else if (!reported.has(dotted(path))) {
      reported.add(dotted(path));
      atKey(path, `'${key}' is not a valid MLflow param key: letters, digits, _, -, ., :, / and spaces only, with no empty, '.' or '..' part between slashes`);
    }
  }
  // Metric and tag keys: each too long one charged to the stage name in it (a chain's name, or the stage's own).
  const layout = new RunLayout(config.stages, ancestorsOf);
  const longest = new Map<string, { key: string; what: 'metric' | 'tag' }>();
  const charge = (stage: string, key: string, what: 'metric' | 'tag'): void => {
    if (key.length <= MAX_KEY_LENGTH) return;
    const prev = longest.get(stage);
    if (!prev || key.length > prev.key.length) longest.set(stage, { key, what });
  };
  for (const [name, stage] of Object.entries(config.stages)) {
    const chains = layout.scoped ? layout.chainsOf(name) : [];
    const { metrics, tags } = stageNames(stage.kind, stage.with, stage.kind === 'evaluate' ? classNamesOf(config, ancestorsOf, name) : undefined);
    for (const m of metrics) layout.metricKeys(name, m).forEach((k, i) => charge(chains[i] ?? name, k, 'metric'));
    for (const t of tags) Object.keys(layout.tags(name, { [t]: '' })).forEach((k, i) => charge(chains[i] ?? name, k, 'tag'));
    for (const k of layout.metricKeys(name, `stage_seconds.${name}`)) charge(name, k, 'metric');
    charge(name, Object.keys(layout.tags(name, { [`pipe.reused.${name}`]: '' }))[0]!, 'tag');
    if (stage.kind === 'download') for (const context of ['train', 'test'] as const) charge(name, layout.dataset(name, { name: '', digest: '', source: '', context }).tag, 'tag');
  }
  for (const [stage, { key, what }] of longest) {
    const path = ['stages', stage];
    if (reported.has(dotted(path))) continue;
    reported.add(dotted(path));
    atKey(path, `stage name '${short(stage)}' (${stage.length} characters) makes MLflow ${what} keys of up to ${key.length} characters (such as '${short(key)}'); MLflow allows ${MAX_KEY_LENGTH}: shorten it by ${key.length - MAX_KEY_LENGTH} or more`);
  }
  return issues;
}
