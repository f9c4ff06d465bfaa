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

/**
 * The best weights of a training stage that did not finish (killed or failed): its last epoch
 * checkpoint (src/train/checkpoint.ts), in a classifier of the architecture its chain's
 * build-model stage saved.
 */
export interface CheckpointSource {
  /** The stage's checkpoint folder, `<run>/<stage>/checkpoint`. */
  dir: string;
  /** The training stage. */
  stage: string;
  /** The build-model stage's saved model folder (`<run>/<build>/model`): architecture, input, classes. */
  template: string;
  /** The last epoch the checkpoint holds (global epoch count of the chain). */
  epoch: number;
}

/** A located model and what predicting with it needs. */
export interface ModelLocation {
  /** Absolute path of the folder holding model.json and weights.bin, or of a checkpoint's folder (`checkpoint`). */
  dir: string;
  /** model.json's userDefinedMetadata (classes, arch, best_epoch, preprocess, ...). */
  meta: Record<string, unknown>;
  /** The test-time ops, and where they came from (`none`: pixels in [0, 1], nothing else). */
  preprocess: PreprocessMeta & { source: 'model.json' | 'resolved.yaml' | 'none' };
  /** Set when the model is an unfinished training stage's checkpoint. */
  checkpoint?: CheckpointSource;
  /** Why this model and not a finished chain's (a run that stopped before its chain finished), for the user. */
  note?: string;
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

/** A training chain of a run: its stages in training order, and the build-model stage it starts from. */
interface RunChain {
  /** The chain's last stage. */
  name: string;
  stages: string[];
  build: string | undefined;
}

/**
 * The training chains of the run in `runDir` (src/tracking/layout.ts `RunLayout`, from the
 * run's resolved.yaml); empty when the file is missing or unreadable.
 */
async function chainsOfRun(runDir: string): Promise<RunChain[]> {
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
  return new RunLayout(stages, ancestorsOf).chains.map((c) => ({
    name: c.name, stages: [...c.stages], build: ancestorsOf(c.stages[0]!).find((a) => stages[a]?.kind === 'build-model'),
  }));
}

/**
 * What a chain of the run in `runDir` has to predict with: its last stage's best model
 * (`finished`); else, walking back from its last stage, the first stage with a best model or an
 * epoch checkpoint (killed or failed while training: `unfinished`); else undefined. Never the
 * build-model stage's untrained model, nor a `last-model`.
 */
async function chainModel(runDir: string, chain: RunChain): Promise<{ finished: boolean; stage: string; dir: string; checkpoint: boolean } | undefined> {
  const stages = [...chain.stages].reverse();
  for (const stage of stages) {
    const best = join(runDir, stage, 'best-model');
    if (await isFile(join(best, 'model.json'))) return { finished: stage === chain.name, stage, dir: best, checkpoint: false };
    const ckpt = join(runDir, stage, 'checkpoint');
    if (await isFile(join(ckpt, 'latest.json'))) return { finished: false, stage, dir: ckpt, checkpoint: true };
  }
  return undefined;
}

/** Where {@link findModelDir} found the model. */
export interface FoundModel {
  /** The best-model folder, or the checkpoint folder of an unfinished stage (`checkpoint` set). */
  dir: string;
  /**
   * For a checkpoint: the stage, the build-model stage's saved model folder (its architecture)
   * and the chain's stages before `stage`, nearest first (their models store the preprocessing).
   */
  checkpoint?: { stage: string; template: string; earlier: string[] };
  /** Why this model (a run that stopped before its chain finished), for the user. */
  note?: string;
}

/**
 * The model folder for `target`: a folder holding model.json; else a run folder (or a run id
 * under the runs folder, $PIPE_RUNS_DIR or ./runs). In a run (its training chains from its
 * resolved.yaml, src/tracking/layout.ts): with `stage`, that stage's `<run>/<stage>/best-model`,
 * or its last checkpoint when it did not finish; else the best model of the one chain that
 * finished (no guess among several); when none finished (a killed or failed run), the model the
 * one chain got to, with a note: the checkpoint of the stage that was training (its best epoch
 * so far, the full classifier), or an earlier stage's best model when the stopped stage finished
 * no epoch; never the build-model stage's untrained model. A folder without resolved.yaml: the
 * most recently written model.json below it.
 * @throws PipelineError PIPE_FILE_NOT_FOUND (exit 2) naming `target` when there is no such
 *   folder or no usable model in it (a run stopped before its first epoch checkpoint);
 *   PIPE_USAGE (exit 2) listing the candidates (`runs/<run>/<stage>/best-model`) when several
 *   chains have a model and no `stage` is given, or `stage` has none.
 */
export async function findModelDir(target: string, opts: { stage?: string } = {}): Promise<FoundModel> {
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
    return { dir };
  }
  const chains = await chainsOfRun(dir);
  const bestModel = (stage: string): string => join(dir, stage, 'best-model');
  const models = await Promise.all(chains.map(async (c) => ({ chain: c, model: await chainModel(dir, c) })));
  const finished = models.filter((m) => m.model?.finished);
  const list = (names: string[]): string => names.map((c) => `  ${shown(bestModel(c))}`).join('\n');
  const template = (c: RunChain | undefined, stage: string): string => {
    if (!c?.build) throw new PipelineError('PIPE_MODEL', `stage '${stage}' of run '${target}' did not finish, and no build-model stage of its chain is in the run's resolved.yaml to rebuild its model from`);
    return join(dir, c.build, 'model');
  };
  const fromCheckpoint = (stage: string, c: RunChain | undefined, why: string): FoundModel =>
    ({ dir: join(dir, stage, 'checkpoint'), checkpoint: { stage, template: template(c, stage), earlier: (c?.stages.slice(0, c.stages.indexOf(stage)) ?? []).reverse() }, note: why });
  if (opts.stage !== undefined) {
    if (await isFile(join(bestModel(opts.stage), 'model.json'))) return { dir: bestModel(opts.stage) };
    if (await isFile(join(dir, opts.stage, 'checkpoint', 'latest.json'))) {
      return fromCheckpoint(opts.stage, chains.find((c) => c.stages.includes(opts.stage!)), `stage '${opts.stage}' did not finish (the run was killed or failed): using the best weights of its last epoch checkpoint`);
    }
    throw new PipelineError('PIPE_USAGE', `--stage ${opts.stage}: no best model at ${shown(bestModel(opts.stage))} (not a training stage of that run, or it did not finish)${finished.length ? `; the run's chains have:\n${list(finished.map((m) => m.chain.name))}` : ''}`);
  }
  if (finished.length > 1) {
    throw new PipelineError('PIPE_USAGE', `run '${target}' has ${chains.length} training chains with a best model each; name one (the folder, or --stage <stage>):\n${list(finished.map((m) => m.chain.name))}`);
  }
  if (finished.length === 1) return { dir: finished[0]!.model!.dir };
  if (chains.length > 0) {
    const got = models.filter((m) => m.model !== undefined);
    if (got.length > 1) {
      throw new PipelineError('PIPE_USAGE', `run '${target}' finished none of its ${chains.length} training chains; name the stage whose model to use with --stage: ${got.map((m) => m.model!.stage).join(', ')}`);
    }
    if (got.length === 0) {
      throw new PipelineError('PIPE_FILE_NOT_FOUND', `no model at '${target}': its training stopped before the first epoch checkpoint (the run was killed or failed); continue it with \`pipe run <pipeline> --resume ${basename(dir)}\``);
    }
    const { chain, model } = got[0]!;
    const last = chain.name;
    if (model!.checkpoint) {
      return fromCheckpoint(model!.stage, chain, `run '${target}' did not finish: stage '${model!.stage}' stopped (killed or failed); using the best weights of its last epoch checkpoint`);
    }
    const next = chain.stages[chain.stages.indexOf(model!.stage) + 1] ?? last;
    return { dir: model!.dir, note: `run '${target}' did not finish: stage '${next}' stopped before its first epoch (killed or failed); using the best model of stage '${model!.stage}'` };
  }
  const found = await modelJsons(dir);
  if (found.length === 0) throw new PipelineError('PIPE_FILE_NOT_FOUND', `no model at '${target}': no model.json in it or in its subfolders (did a training stage of that run finish?)`);
  found.sort((a, b) => b.mtimeMs - a.mtimeMs || a.dir.localeCompare(b.dir));
  return { dir: found[0]!.dir };
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

/** model.json's userDefinedMetadata in `dir`. @throws PipelineError PIPE_MODEL naming the file when it is not JSON. */
async function readMeta(dir: string): Promise<Record<string, unknown>> {
  const file = join(dir, 'model.json');
  try {
    return (JSON.parse(await readFile(file, 'utf8')) as { userDefinedMetadata?: Record<string, unknown> }).userDefinedMetadata ?? {};
  } catch (e) {
    throw new PipelineError('PIPE_MODEL', `cannot read model '${file}': ${(e as Error).message}`);
  }
}

/**
 * Locates the model for `target` (and `opts.stage`; see {@link findModelDir}) and reads its metadata and
 * preprocessing. For a checkpoint: the build-model stage's metadata (arch, classes) with the
 * checkpoint's best epoch, and the preprocessing an earlier stage of the run stored in its
 * model.json, else the run's resolved.yaml.
 * @throws PipelineError PIPE_FILE_NOT_FOUND / PIPE_MODEL (exit 2) naming the file when
 *   model.json is missing or is not JSON, or a checkpoint's files cannot be read.
 */
export async function locateModel(target: string, opts: { stage?: string } = {}): Promise<ModelLocation> {
  const found = await findModelDir(target, opts);
  const { dir } = found;
  const note = found.note !== undefined ? { note: found.note } : {};
  if (found.checkpoint) {
    const { stage, template, earlier } = found.checkpoint;
    const run = dirname(dirname(dir));
    let state: { epoch: number; best?: { epoch?: number } };
    try {
      const latest = JSON.parse(await readFile(join(dir, 'latest.json'), 'utf8')) as { dir: string };
      state = JSON.parse(await readFile(join(dir, latest.dir, 'state.json'), 'utf8'));
    } catch (e) {
      throw new PipelineError('PIPE_MODEL', `cannot read the checkpoint in '${dir}': ${(e as Error).message}`);
    }
    const meta = { ...(await readMeta(template)), best_epoch: state.best?.epoch ?? state.epoch };
    const checkpoint: CheckpointSource = { dir, stage, template, epoch: state.epoch };
    // An earlier stage of the chain trained on the same data: its model stores the preprocessing.
    for (const e of earlier) {
      if (!(await isFile(join(run, e, 'best-model', 'model.json')))) continue;
      const p = (await readMeta(join(run, e, 'best-model')))['preprocess'] as PreprocessMeta | undefined;
      if (p && Array.isArray(p.test)) return { dir, meta, preprocess: { ...p, source: 'model.json' }, checkpoint, ...note };
    }
    const ops = await testOpsFromRun(join(run, stage, 'best-model'));
    return { dir, meta, preprocess: ops ? { test: ops, source: 'resolved.yaml' } : { test: [], source: 'none' }, checkpoint, ...note };
  }
  const meta = await readMeta(dir);
  const stored = meta['preprocess'] as PreprocessMeta | undefined;
  if (stored && Array.isArray(stored.test)) return { dir, meta, preprocess: { ...stored, source: 'model.json' }, ...note };
  const ops = await testOpsFromRun(dir);
  return { dir, meta, preprocess: ops ? { test: ops, source: 'resolved.yaml' } : { test: [], source: 'none' }, ...note };
}
