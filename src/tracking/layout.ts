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
 * (src/runner/stage-task.ts), so the tracker and the JSON event stream (`--log-format json`)
 * name every metric alike.
 */

/** Metrics that describe the machine or the speed of the run, not the model: the UI's System metrics tab. */
const SYSTEM = new Set(['epoch_seconds', 'images_per_second', 'rss_bytes', 'tensor_bytes']);
/** The learning curves: per iteration (batch_loss) and per epoch. */
const CURVES = new Set(['batch_loss', 'train_loss', 'test_loss', 'train_accuracy', 'test_accuracy', 'lr']);
/** Sizes of the model. */
const MODEL = new Set(['total_params', 'learnable_params', 'trainable_params']);

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
