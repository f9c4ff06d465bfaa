/**
 * Finds a saved model (a `best-model` folder: model.json + weights.bin, see src/models/model-files.ts)
 * from a run folder, a run id or the folder itself, and the test-time preprocessing it was
 * trained with: model.json's `userDefinedMetadata.preprocess` when the training stage stored it,
 * else the augment stage's `with.test` list in the run's resolved.yaml.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { parse } from 'yaml';
import type { OpSpec } from '../data/transforms.js';
import { PipelineError } from '../errors.js';
import { runsDir } from '../paths.js';
import { RunLayout, type LayoutStage } from '../tracking/layout.js';

/**
 * The preprocessing record a training stage may store in model.json's `userDefinedMetadata`
 * (key `preprocess`), so the model carries it without its run folder.
 */
export interface PreprocessMeta {
  /** The test-time op chain (augment stage `with.test`), applied to pixels scaled to [0, 1]. */
  test: OpSpec[];
  /** [height, width] the op chain expects as input (the dataset's image size), pixels. */
  input_size?: [number, number];
}

/** A located model and what predicting with it needs. */
export interface ModelLocation {
  /** Absolute path of the folder holding model.json and weights.bin. */
  dir: string;
  /** model.json's userDefinedMetadata (classes, arch, best_epoch, preprocess, ...). */
  meta: Record<string, unknown>;
  /** The test-time ops, and where they came from (`none`: pixels in [0, 1], nothing else). */
  preprocess: PreprocessMeta & { source: 'model.json' | 'resolved.yaml' | 'none' };
}

const MAX_DEPTH = 3;

async function isFile(p: string): Promise<boolean> {
  return (await stat(p).catch(() => undefined))?.isFile() ?? false;
}

/** model.json files at most MAX_DEPTH folders below `dir`, with their modification times (ms). */
async function modelJsons(dir: string, depth = 0): Promise<Array<{ dir: string; mtimeMs: number }>> {
  const found: Array<{ dir: string; mtimeMs: number }> = [];
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    if (e.name === 'mlruns' || e.name.startsWith('.')) continue;
    const sub = join(dir, e.name);
    // A stage reused from another run is a link to that run's folder (src/runner/stage-task.ts).
    if (!e.isDirectory() && !(e.isSymbolicLink() && (await stat(sub).catch(() => undefined))?.isDirectory())) continue;
    const mj = join(sub, 'model.json');
    const st = await stat(mj).catch(() => undefined);
    if (st?.isFile()) found.push({ dir: sub, mtimeMs: st.mtimeMs });
    else if (depth + 1 < MAX_DEPTH) found.push(...(await modelJsons(sub, depth + 1)));
  }
  return found;
}

/** How `dir` is shown in messages: relative to the working folder when inside it, else absolute. */
function shown(dir: string): string {
  const rel = relative(process.cwd(), dir);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : dir;
}

/**
 * The training chains of the run in `runDir` (src/tracking/layout.ts `RunLayout`, from the
 * run's resolved.yaml), by name (the last stage of each); empty when the file is missing or
 * unreadable.
 */
async function chainsOfRun(runDir: string): Promise<string[]> {
  const text = await readFile(join(runDir, 'resolved.yaml'), 'utf8').catch(() => undefined);
  if (text === undefined) return [];
  let stages: Record<string, LayoutStage & { needs?: string[] }>;
  try {
    stages = (parse(text) as { stages?: typeof stages } | null)?.stages ?? {};
  } catch {
    return [];
  }
  const ancestorsOf = (name: string): string[] => {
    const out: string[] = [];
    const queue = [...(stages[name]?.needs ?? [])];
    while (queue.length) {
      const n = queue.shift()!;
      if (out.includes(n) || !stages[n]) continue;
      out.push(n);
      queue.push(...(stages[n]!.needs ?? []));
    }
    return out;
  };
  return new RunLayout(stages, ancestorsOf).chains.map((c) => c.name);
}

/**
 * The model folder for `target`: a folder holding model.json; else a run folder (or a run id
 * under the runs folder, $PIPE_RUNS_DIR or ./runs): with `stage`, that stage's
 * `<run>/<stage>/best-model`; else, when the run has one training chain, the most recently
 * written model.json below it (the chain's last stage's best model); when the run has several
 * chains (its resolved.yaml, src/tracking/layout.ts), the best model of the one chain that has
 * one, and no guess among several.
 * @throws PipelineError PIPE_FILE_NOT_FOUND (exit 2) naming `target` when there is no such
 *   folder or no model.json in it; PIPE_USAGE (exit 2) listing the candidates
 *   (`runs/<run>/<stage>/best-model`) when several chains have a best model and no `stage` is
 *   given, or `stage` has none.
 */
export async function findModelDir(target: string, opts: { stage?: string } = {}): Promise<string> {
  let dir = resolve(target);
  let st = await stat(dir).catch(() => undefined);
  if (!st && basename(target) === target) {
    const inRuns = join(runsDir(), target);
    const st2 = await stat(inRuns).catch(() => undefined);
    if (st2) (dir = inRuns), (st = st2);
  }
  if (!st) throw new PipelineError('PIPE_FILE_NOT_FOUND', `no model at '${target}': no such file or folder (give a run folder, a run id under ${runsDir()}, or a best-model folder)`);
  if (!st.isDirectory()) throw new PipelineError('PIPE_FILE_NOT_FOUND', `no model at '${target}': it is a file; give the folder holding model.json, or a run folder`);
  if (await isFile(join(dir, 'model.json'))) {
    if (opts.stage !== undefined) throw new PipelineError('PIPE_USAGE', `--stage ${opts.stage}: '${target}' is a model folder already; --stage picks a stage's best model in a run folder`);
    return dir;
  }
  const chains = await chainsOfRun(dir);
  const bestModel = (stage: string): string => join(dir, stage, 'best-model');
  const withModel: string[] = [];
  for (const c of chains) if (await isFile(join(bestModel(c), 'model.json'))) withModel.push(c);
  const list = (names: string[]): string => names.map((c) => `  ${shown(bestModel(c))}`).join('\n');
  if (opts.stage !== undefined) {
    if (await isFile(join(bestModel(opts.stage), 'model.json'))) return bestModel(opts.stage);
    throw new PipelineError('PIPE_USAGE', `--stage ${opts.stage}: no best model at ${shown(bestModel(opts.stage))} (not a training stage of that run, or it did not finish)${withModel.length ? `; the run's chains have:\n${list(withModel)}` : ''}`);
  }
  if (chains.length > 1 && withModel.length > 1) {
    throw new PipelineError('PIPE_USAGE', `run '${target}' has ${chains.length} training chains with a best model each; name one (the folder, or --stage <stage>):\n${list(withModel)}`);
  }
  if (chains.length > 1 && withModel.length === 1) return bestModel(withModel[0]!);
  const found = await modelJsons(dir);
  if (found.length === 0) throw new PipelineError('PIPE_FILE_NOT_FOUND', `no model at '${target}': no model.json in it or in its subfolders (did a training stage of that run finish?)`);
  found.sort((a, b) => b.mtimeMs - a.mtimeMs || a.dir.localeCompare(b.dir));
  return found[0]!.dir;
}

/**
 * The augment stage's `with.test` for the stage that saved `modelDir`, read from
 * `<run>/resolved.yaml` when `modelDir` is `<run>/<stage>/best-model`: the nearest stage of
 * kind `augment` up that stage's `needs` (breadth first). Undefined when any piece is missing.
 */
export async function testOpsFromRun(modelDir: string): Promise<OpSpec[] | undefined> {
  const stageDir = dirname(modelDir);
  const file = join(dirname(stageDir), 'resolved.yaml');
  const text = await readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  let config: { stages?: Record<string, { kind?: string; needs?: string[]; with?: { test?: OpSpec[] } }> };
  try {
    config = parse(text) ?? {};
  } catch {
    return undefined;
  }
  const stages = config.stages ?? {};
  const queue = [basename(stageDir)];
  const seen = new Set<string>();
  while (queue.length > 0) {
    const name = queue.shift()!;
    if (seen.has(name)) continue;
    seen.add(name);
    const s = stages[name];
    if (!s) continue;
    if (s.kind === 'augment') return Array.isArray(s.with?.test) ? s.with.test : [];
    queue.push(...(s.needs ?? []));
  }
  return undefined;
}

/**
 * Locates the model for `target` (and `opts.stage`; see {@link findModelDir}) and reads its metadata and
 * preprocessing.
 * @throws PipelineError PIPE_FILE_NOT_FOUND / PIPE_MODEL (exit 2) naming the file when
 *   model.json is missing or is not JSON.
 */
export async function locateModel(target: string, opts: { stage?: string } = {}): Promise<ModelLocation> {
  const dir = await findModelDir(target, opts);
  const file = join(dir, 'model.json');
  let json: { userDefinedMetadata?: Record<string, unknown> };
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new PipelineError('PIPE_MODEL', `cannot read model '${file}': ${(e as Error).message}`);
  }
  const meta = json.userDefinedMetadata ?? {};
  const stored = meta['preprocess'] as PreprocessMeta | undefined;
  if (stored && Array.isArray(stored.test)) return { dir, meta, preprocess: { ...stored, source: 'model.json' } };
  const ops = await testOpsFromRun(dir);
  return { dir, meta, preprocess: ops ? { test: ops, source: 'resolved.yaml' } : { test: [], source: 'none' } };
}
