/**
 * What planning needs of each stage kind (src/stage.ts StageMeta: version, summary, whether it is
 * cached, extra cache-key parts, the data and weights a run would download), apart from the implementations, so that `pipe plan` loads
 * neither TensorFlow.js nor the data stack (test/unit/startup.test.ts). Each definition in
 * stages/<kind>.ts spreads its row here, so a version lives in one place;
 * test/unit/catalogs.test.ts checks that the StageTable of stages/index.ts carries these rows.
 */
import type { BuildModelStageParameters } from '../src/config/generated/build-model.js';
import type { DownloadStageParameters } from '../src/config/generated/download.js';
import { compactKey, missingData, pathFingerprint, type DatasetRequest } from '../src/data/datasets.js';
import { IMAGENET_PINS } from '../src/models/pins.js';
import { missingWeights } from '../src/models/pretrained.js';
import { cacheDir } from '../src/paths.js';
import type { MissingInput, StageMetaTable } from '../src/stage.js';

/** What a download stage with params `p` loads (src/data/datasets.ts), the shared cache resolved. */
export function datasetRequest(p: DownloadStageParameters): DatasetRequest {
  const size = p.image_size;
  return { dataset: p.dataset, source: p.source, cacheDir: cacheDir(p.cache_dir), imageSize: typeof size === 'number' ? [size, size] : size, channels: p.channels };
}

/** One row per kind. */
export const stageMeta = {
  download: {
    kind: 'download',
    version: 2,
    summary: 'fetch and verify a dataset (cache, Debian package, mirror, official URL or image folder)',
    cacheable: true,
    // Local data can change under the same params: its fingerprint is part of the stage key.
    async cacheKey(p: DownloadStageParameters): Promise<unknown> {
      if (p.source === undefined || /^https?:\/\//.test(p.source)) return undefined;
      try {
        return p.dataset === 'imagefolder' ? { data: await compactKey(datasetRequest(p)) } : { source: await pathFingerprint(p.source) };
      } catch {
        return { source: 'unreadable' }; // run() reports what is wrong
      }
    },
    async missingInputs(p: DownloadStageParameters): Promise<MissingInput[]> {
      const note = await missingData(datasetRequest(p));
      return note === undefined ? [] : [{ what: 'data', note }];
    },
  },
  augment: { kind: 'augment', version: 2, summary: 'per-batch augmentation (train) and preprocessing (test), seeded, prefetched', cacheable: true },
  'build-model': {
    kind: 'build-model',
    version: 2,
    summary: 'build the network and a new head of num_classes logits',
    cacheable: true,
    async missingInputs(p: BuildModelStageParameters): Promise<MissingInput[]> {
      const pin = p.weights === 'imagenet' ? IMAGENET_PINS[p.arch] : undefined; // an arch without weights is refused by validation
      const note = pin && missingWeights(pin);
      return note === undefined ? [] : [{ what: 'weights', note }];
    },
  },
  'freeze-train': { kind: 'freeze-train', version: 2, summary: 'train the new head, backbone frozen', cacheable: true },
  'unfreeze-train': { kind: 'unfreeze-train', version: 2, summary: 'fine-tune backbone and head, usually at a lower learning rate', cacheable: true },
  evaluate: { kind: 'evaluate', version: 2, summary: 'loss, top-1/top-k accuracy, per-class metrics and confusion matrix of the best model', cacheable: true },
  plot: { kind: 'plot', version: 4, summary: 'charts of the training history and the evaluation, and report.html; with compare:, several training chains side by side', cacheable: true },
} as const satisfies StageMetaTable;
