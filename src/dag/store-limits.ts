/**
 * Limits the tracking store and the file system put on names taken from the config, checked
 * before any work so that a run never fails (or is left RUNNING) half way:
 * - every MLflow param key the run logs (the config flattened to dotted paths, and a sweep's
 *   `sweep.params.<path>` keys) is a valid MLflow key: at most 250 characters of letters,
 *   digits, `_ - . : /` and space (src/tracking/names.ts);
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

/** Every config leaf as [config path, MLflow param key] (the keys flattenParams makes). */
function paramKeys(value: unknown, path: string[] = [], out: [string[], string][] = []): [string[], string][] {
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length > 0) {
    for (const [k, v] of Object.entries(value)) paramKeys(v, [...path, k], out);
  } else if (path.length) out.push([path, path.join('.')]);
  return out;
}

const short = (s: string): string => (s.length > 40 ? `${s.slice(0, 20)}...${s.slice(-12)}` : s);

/** The store and file-system limit issues of `config` (empty when fine). */
export function storeLimitIssues(config: PipelineConfig, source?: SourceFile): ConfigIssue[] {
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
  return issues;
}
