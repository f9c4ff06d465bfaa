import { pathToFileURL } from 'node:url';
import type { DatasetInput } from './rest/types.js';
import type { TrackedDataset } from './tracker.js';

/**
 * How a pipe run is laid out in MLflow's web UI. The UI (MLflow 3.x run page, "Model metrics"
 * tab) groups metric charts into sections named by the part of the key before its last `/`, and
 * shows keys under `system/` in its own "System metrics" tab, as MLflow's system-metrics logging
 * does (mlflow/system_metrics, keys like `system/cpu_utilization_percentage`). Sections are
 * sorted by name (plain string order), the unsectioned "Model metrics" last (seen in MLflow
 * 3.6's UI; scripts/mlflow-screenshots.sh shows it), so the learning curves get the section
 * `curves`, which sorts first. So:
 *
 * | pipe's metric name                        | MLflow key                              | UI section           |
 * |-------------------------------------------|-----------------------------------------|----------------------|
 * | batch_loss, train_loss, test_loss, train_accuracy, test_accuracy, lr | curves/<name> | curves (first)      |
 * | eval_<split>_<figure>                     | eval/<split>_<figure>                   | eval                 |
 * | eval_<split>_<figure>.<class>             | eval/per_class/<split>_<figure>.<class> | eval/per_class       |
 * | eval_<split>_images_per_second            | system/eval_<split>_images_per_second   | System metrics       |
 * | total_params, learnable_params, trainable_params | model/<name>                     | model                |
 * | epoch_seconds, images_per_second, rss_bytes, tensor_bytes, stage_seconds.<stage> | system/<name> | System metrics |
 *
 * Stages keep their own names (report.json, state.json and the tests of the stages use them);
 * this table is applied once, where a stage's report becomes a run event
 * (src/runner/stage-task.ts, through RunLayout below), so the tracker and the JSON event stream
 * (`--log-format json`) name every metric alike.
 *
 * **Several training chains.** A training chain is a run of freeze-train/unfreeze-train stages
 * each continuing the one before (src/train/stage.ts `previousTraining`: the nearest upstream
 * training stage, unless a build-model stage is nearer, which starts a new chain), named by its
 * last stage (as a plot stage's `compare:` names it). With one chain (the recipe: head ->
 * finetune) the keys above are the run's keys, and the chain's steps continue across its stages,
 * so each learning curve is one line across freeze and unfreeze. With more than one chain the
 * stages of different chains would log the same key at the same steps (one history mixing
 * chains), so every key a chain's stages log gets the chain's name after its first segment:
 * `curves/<chain>/test_accuracy`, `eval/<chain>/test_accuracy`,
 * `eval/<chain>/per_class/test_f1.Sandal`, `model/<chain>/total_params`,
 * `system/<chain>/epoch_seconds` (`system/stage_seconds.<stage>` names its stage already and
 * stays). In the UI each chain's curves are then one section, `curves/<chain>`, and the
 * sections of all chains still sort first. What belongs to a chain: its training stages, the
 * evaluate stages of its models (their nearest upstream training stage is in the chain), the
 * build-model stage it starts from, and a plot stage drawing one chain (one without
 * `compare:`). A stage in several chains (a head two fine-tunings continue) logs under each.
 *
 * Artifacts follow the same rule: with several chains a chain's stage logging into a folder
 * (`best-model`, `evaluation`, `plots`) logs into `<folder>/<chain>` (`best-model/finetune_pre/
 * model.json`, `evaluation/finetune_pre/report.json`), and a file it logs at the root (a plot
 * stage's report.html) goes into `<chain>/`; with one chain, and for stages of no chain (a plot
 * stage comparing chains), the paths stay as the stages give them.
 *
 * Tags too: with several chains a chain's stage sets `pipe.<chain>.best_epoch`,
 * `pipe.<chain>.best_phase`, `pipe.<chain>.best_<monitor>`, `pipe.<chain>.unfreeze_epoch`,
 * `pipe.<chain>.freeze.trainable_params`, ... (`RunLayout.tags`); with one chain the keys stay
 * `pipe.best_epoch`, .... With several download stages each names its splits
 * (`pipe.data.<stage>.train`, and dataset inputs named `<dataset> (<stage>)`; `RunLayout.dataset`).
 * src/dag/store-limits.ts checks at validate time that the keys this makes fit MLflow's 250
 * characters.
 */

/** Metrics that describe the machine or the speed of the run, not the model: the UI's System metrics tab (a training stage logs each per epoch). */
export const SYSTEM: ReadonlySet<string> = new Set(['epoch_seconds', 'images_per_second', 'rss_bytes', 'tensor_bytes']);
/** The learning curves a training stage logs: per iteration (batch_loss) and per epoch. */
export const CURVES: ReadonlySet<string> = new Set(['batch_loss', 'train_loss', 'test_loss', 'train_accuracy', 'test_accuracy', 'lr']);
/** Sizes of the model (a build-model stage logs them). */
export const MODEL: ReadonlySet<string> = new Set(['total_params', 'learnable_params', 'trainable_params']);

/** The MLflow key of pipe's metric `name` (see the table above); unknown names stay as they are. */
export function mlflowMetricKey(name: string): string {
  if (name.includes('/')) return name;
  if (CURVES.has(name)) return `curves/${name}`;
  if (SYSTEM.has(name) || name.startsWith('stage_seconds.')) return `system/${name}`;
  if (MODEL.has(name)) return `model/${name}`;
  const ev = /^eval_(.*)$/.exec(name);
  if (ev) {
    const rest = ev[1]!;
    if (/_images_per_second$/.test(rest)) return `system/${name}`;
    // Per-class figures are `<split>_<figure>.<class>`: the first dot separates the class name.
    return rest.includes('.') ? `eval/per_class/${rest}` : `eval/${rest}`;
  }
  return name;
}

/** A training chain: its stages in training order; named by the last one. */
export interface TrainingChain {
  name: string;
  stages: string[];
}

/** A pipeline stage as the layout reads it: its kind, and its parameters (a plot stage's `compare`). */
export interface LayoutStage {
  kind: string;
  with?: unknown;
}

const isTraining = (kind: string | undefined): boolean => kind === 'freeze-train' || kind === 'unfreeze-train';

/** `key` with `chain` after its first segment (`curves/x` -> `curves/<chain>/x`); a key without `/` gets it as its section (`<chain>/x`). */
export function chainKey(key: string, chain: string): string {
  const i = key.indexOf('/');
  return i < 0 ? `${chain}/${key}` : `${key.slice(0, i)}/${chain}/${key.slice(i + 1)}`;
}

/** `pipe.x` with `chain` after its first dotted segment (`pipe.best_epoch` -> `pipe.<chain>.best_epoch`). */
export function chainTagKey(key: string, chain: string): string {
  const i = key.indexOf('.');
  return i < 0 ? `${chain}.${key}` : `${key.slice(0, i)}.${chain}.${key.slice(i + 1)}`;
}

/**
 * Where each stage's metrics and artifacts go in the run's MLflow layout: the table and the
 * chain rule above, decided once per run from the pipeline's stages.
 */
export class RunLayout {
  /** The training chains, in pipeline order of their last stage. */
  readonly chains: readonly TrainingChain[];
  /** The download stages, in pipeline order. */
  readonly downloads: readonly string[];
  private readonly belongs = new Map<string, string[]>();

  /**
   * @param stages the pipeline's stages by name (in pipeline order).
   * @param ancestorsOf every upstream stage of a stage, nearest first (src/dag/compile.ts `ancestors`).
   */
  constructor(stages: Readonly<Record<string, LayoutStage>>, ancestorsOf: (stage: string) => readonly string[]) {
    const kind = (n: string): string | undefined => stages[n]?.kind;
    const nearest = (n: string, kinds: (k: string | undefined) => boolean): string | undefined => ancestorsOf(n).find((a) => kinds(kind(a)));
    // The stage a training stage continues (src/train/stage.ts previousTraining), else undefined.
    const continues = (n: string): string | undefined => {
      const near = nearest(n, (k) => k === 'build-model' || isTraining(k));
      return near !== undefined && isTraining(kind(near)) ? near : undefined;
    };
    const names = Object.keys(stages);
    this.downloads = names.filter((n) => kind(n) === 'download');
    const training = names.filter((n) => isTraining(kind(n)));
    const continued = new Set(training.map(continues).filter((n): n is string => n !== undefined));
    this.chains = training.filter((n) => !continued.has(n)).map((end) => {
      const chain = [end];
      for (let p = continues(end); p !== undefined; p = continues(p)) chain.unshift(p);
      return { name: end, stages: chain };
    });
    const chainsWith = (n: string): string[] => this.chains.filter((c) => c.stages.includes(n)).map((c) => c.name);
    for (const n of names) {
      const k = kind(n)!;
      let of: string[] = [];
      if (isTraining(k)) of = chainsWith(n);
      else if (k === 'evaluate' || (k === 'plot' && (stages[n]!.with as { compare?: unknown } | undefined)?.compare === undefined)) {
        const t = nearest(n, isTraining);
        of = t === undefined ? [] : chainsWith(t);
      } else if (k === 'build-model') {
        of = this.chains.filter((c) => nearest(c.stages[0]!, (x) => x === 'build-model' || isTraining(x)) === n).map((c) => c.name);
      }
      this.belongs.set(n, of);
    }
  }

  /** True when the run has more than one training chain (keys and artifact paths then name the chain). */
  get scoped(): boolean {
    return this.chains.length > 1;
  }

  /**
   * The run tags `stage` sets, keyed as the run's layout names them: as given, or, when the run
   * has several chains and the stage belongs to some, each key once per chain with the chain's
   * name after `pipe.` (`pipe.best_epoch` -> `pipe.<chain>.best_epoch`,
   * `pipe.unfreeze.trainable_params` -> `pipe.<chain>.unfreeze.trainable_params`): the dotted
   * form of the metric rule, short enough for the UI's tag table. Keys naming their stage
   * already (`pipe.reused.<stage>`) stay.
   */
  tags(stage: string, tags: Readonly<Record<string, string>>): Record<string, string> {
    const chains = this.scoped ? this.chainsOf(stage) : [];
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(tags)) {
      if (!chains.length || k.startsWith('pipe.reused.')) out[k] = v;
      else for (const c of chains) out[chainTagKey(k, c)] = v;
    }
    return out;
  }

  /**
   * How the download stage `stage` names a split in the run: the run tag (`pipe.data.<context>`,
   * with several download stages `pipe.data.<stage>.<context>`) and the MLflow dataset input
   * (with several download stages the dataset's name gets ` (<stage>)`: MLflow keeps one input
   * per name and digest, so two stages loading the same data would otherwise show as one).
   */
  dataset(stage: string, d: TrackedDataset): { tag: string; dataset: TrackedDataset } {
    if (this.downloads.length <= 1) return { tag: `pipe.data.${d.context}`, dataset: d };
    return { tag: `pipe.data.${stage}.${d.context}`, dataset: { ...d, name: `${d.name} (${stage})` } };
  }

  /** The chains `stage` belongs to (see above); empty for a stage of none. */
  chainsOf(stage: string): string[] {
    return this.belongs.get(stage) ?? [];
  }

  /** The MLflow keys under which `stage` logs its metric `name`: one, or one per chain of the stage when the run has several chains. */
  metricKeys(stage: string, name: string): string[] {
    const key = mlflowMetricKey(name);
    const chains = this.scoped && !name.startsWith('stage_seconds.') ? this.chainsOf(stage) : [];
    return chains.length ? chains.map((c) => chainKey(key, c)) : [key];
  }

  /**
   * The artifact folders (undefined: the root) into which `stage` logs a file the stage puts in
   * `artifactPath`: that one, or one per chain of the stage when the run has several chains.
   */
  artifactPaths(stage: string, artifactPath: string | undefined): (string | undefined)[] {
    const chains = this.scoped ? this.chainsOf(stage) : [];
    if (!chains.length) return [artifactPath];
    return chains.map((c) => (artifactPath === undefined || artifactPath === '' ? c : artifactPath.includes('/') ? chainKey(artifactPath, c) : `${artifactPath}/${c}`));
  }
}

/**
 * Tags every experiment pipe creates gets. MLflow 3 asks the user to confirm an experiment's kind
 * on first visit unless the tag `mlflow.experimentKind` is set; pipe trains models, MLflow's
 * `custom_model_development` kind (mlflow/server/js `ExperimentKind.CUSTOM_MODEL_DEVELOPMENT`).
 */
export const EXPERIMENT_TAGS: Readonly<Record<string, string>> = { 'mlflow.experimentKind': 'custom_model_development' };

/** Longest `pipe.error` value: MLflow's UI shows tags in one table cell; the note has the rest. */
const ERROR_TAG_LENGTH = 500;

/**
 * The tags of a run that ended FAILED or KILLED: `pipe.error` (`stage: message`, cut to 500
 * characters) and the run's note (`mlflow.note.content`, the Description on the run page):
 * the pipeline's description, then the status and the full reason.
 */
export function failureTags(status: 'FAILED' | 'KILLED', reason: string, description?: string): Record<string, string> {
  const short = reason.length > ERROR_TAG_LENGTH ? `${reason.slice(0, ERROR_TAG_LENGTH - 3)}...` : reason;
  const note = `**${status}**: ${reason}`;
  return { 'pipe.error': short, 'mlflow.note.content': description ? `${description}\n\n${note}` : note };
}

/**
 * The one command that opens the local file store `store` (absolute path) in the MLflow a user
 * installs today: MLflow 3.x serves a file store with a deprecation warning, and from 3.13 only
 * with MLFLOW_ALLOW_FILE_STORE=true (older versions ignore the variable). README "Tracking" says
 * why the file store stays the local default and how to move to SQLite or a server.
 */
export function browseCommand(store: string): string {
  return `MLFLOW_ALLOW_FILE_STORE=true mlflow server --backend-store-uri ${pathToFileURL(store).href}`;
}

/**
 * A dataset as an MLflow run input, the same for both stores: name, digest, source type `local`
 * or `http`, source `{"uri": ...}`, the row count as profile `{"num_rows": n}`, and the input tag
 * `mlflow.data.context` (train/test), which the UI shows beside the dataset.
 */
export function datasetInput(d: TrackedDataset): DatasetInput {
  return {
    tags: [{ key: 'mlflow.data.context', value: d.context }],
    dataset: { name: d.name, digest: d.digest, source_type: /^https?:/.test(d.source) ? 'http' : 'local', source: JSON.stringify({ uri: d.source }), ...(d.count !== undefined ? { profile: JSON.stringify({ num_rows: d.count }) } : {}) },
  };
}
