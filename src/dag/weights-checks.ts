/**
 * Checks of a build-model stage's `weights:` made before any stage runs (`validate`, `plan` and
 * `run` alike), from the model catalog (src/models/catalog.ts) and the pins (src/models/pins.ts),
 * without loading TensorFlow.js:
 * - `imagenet`: the architecture has pinned ImageNet weights;
 * - `upstream`: a freeze-train or unfreeze-train stage is upstream of the stage (transitively, as
 *   the run looks for it), and the model that stage trains has a PyTorch counterpart (only those
 *   save the best model as a torch state_dict);
 * - a path: the file exists (relative paths from the working folder, as the run opens them), and
 *   the architecture has a PyTorch counterpart to load it into.
 * What the file holds (its tensors and shapes) is left to the stage.
 */
import { existsSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { issueAt, type ConfigIssue } from '../config/load.js';
import type { SourceFile } from '../config/source.js';
import type { PipelineConfig } from '../config/types.js';
import { MODEL_CATALOG as MODELS } from '../models/catalog.js';
import { IMAGENET_PINS, noImageNetWeights } from '../models/pins.js';

/** The run-time refusal of `weights: upstream` without a training stage upstream (stages/build-model.ts), after `stages.<name>.with.weights: `. */
export const UPSTREAM_NEEDS_TRAINING = "upstream needs a freeze-train or unfreeze-train stage among this stage's needs";

/** The weights issues of a compiled pipeline (empty when fine). */
export function weightsIssues(config: PipelineConfig, ancestorsOf: (name: string) => string[], source?: SourceFile): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const kindOf = (n: string): string => config.stages[n]!.kind;
  for (const [name, stage] of Object.entries(config.stages)) {
    if (stage.kind !== 'build-model') continue;
    const weights = stage.with['weights'];
    const arch = String(stage.with['arch']);
    const entry = MODELS[arch];
    if (typeof weights !== 'string' || weights === 'none' || entry === undefined) continue;
    const at = (message: string): void => void issues.push(issueAt(source, ['stages', name, 'with', 'weights'], message));
    if (weights === 'imagenet') {
      if (IMAGENET_PINS[arch] === undefined) at(noImageNetWeights(arch));
    } else if (weights === 'upstream') {
      const trained = ancestorsOf(name).find((a) => kindOf(a) === 'freeze-train' || kindOf(a) === 'unfreeze-train');
      if (trained === undefined) {
        at(UPSTREAM_NEEDS_TRAINING);
        continue;
      }
      const model = ancestorsOf(trained).find((a) => kindOf(a) === 'build-model');
      const from = model === undefined ? undefined : String(config.stages[model]!.with['arch']);
      if (from !== undefined && MODELS[from]?.torch === false) {
        at(`stage '${trained}' trains ${from} (stage '${model}'), which has no PyTorch counterpart, so it saves no torch state_dict to start from; use weights: none, or a torch-layout model upstream`);
      } else if (!entry.torch) {
        at(`${arch} has no PyTorch counterpart, so it cannot load the model of stage '${trained}'; use weights: none`);
      }
    } else if (!existsSync(weights)) {
      at(`no such file '${weights}'${isAbsolute(weights) ? '' : ' (relative to the working folder)'}; give none, imagenet, upstream, or the path of a .safetensors file`);
    } else if (!entry.torch) {
      at(`${arch} has no PyTorch counterpart, so it cannot load '${weights}'; use weights: none`);
    }
  }
  return issues;
}
