/**
 * The model zoo: a name fully determines the architecture, its pretrained weights and their
 * preprocessing. `buildClassifier` is timm's `create_model(name, pretrained, num_classes)`:
 * backbone + a new head, weights loaded from a torch state_dict in safetensors, the classifier
 * kept when the class count matches and re-initialised otherwise.
 * Anchors: timm `_registry.py` (list_models), `_builder.py` (load_pretrained, classifier reset).
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import { PipelineError } from '../errors.js';
import type { Rng } from '../rng.js';
import { DENSENETS } from './densenet.js';
import { EFFICIENTNETS } from './efficientnet.js';
import type { ModelEntry } from './model-entry.js';
import { INCEPTIONS } from './inception.js';
import type { Backbone, BackboneInput } from './torch-net.js';
import type { DownloadProgress } from '../data/download.js';
import { cachedWeightsPath, fetchPretrained, type FetchedWeights, type Preprocessing } from './pretrained.js';
import { noImageNetWeights } from './pins.js';
import { RESNETS } from './resnet.js';
import { encodeSafetensors, Safetensors, SafetensorsError } from './safetensors.js';
import { exportTorchWeights, loadTorchWeights, WeightsMismatchError, type BoundModel } from './torch-weights.js';
import { VGGS } from './vgg.js';

export type { ModelEntry } from './model-entry.js';
export type { Backbone, BackboneInput } from './torch-net.js';

/** Every architecture by name (one literal table per family file). */
export const MODELS: Record<string, ModelEntry> = { ...RESNETS, ...VGGS, ...EFFICIENTNETS, ...INCEPTIONS, ...DENSENETS };

/** Names matching a glob-like `pattern` (`*` wildcard), optionally only those with pretrained weights. Anchor: timm `list_models`. */
export function listModels(pattern = '*', opts: { pretrained?: boolean } = {}): string[] {
  const re = new RegExp(`^${pattern.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return Object.keys(MODELS).filter((n) => re.test(n) && (!opts.pretrained || MODELS[n]!.imagenet !== undefined));
}

/** Where a classifier's weights came from. */
export interface WeightsInfo {
  /** 'none', 'imagenet' or the local file given. */
  source: string;
  /** The safetensors file read, when any. */
  file?: string;
  /** Torch tensors loaded. */
  loaded: number;
  /** Torch keys in the file not loaded (the replaced classifier). */
  skipped: string[];
}

/** A classifier: backbone (features) + head (logits), trained as one or with the backbone frozen. */
export interface Classifier {
  arch: string;
  backbone: Backbone;
  /** Dense layer on the pooled features: [n, features] -> logits [n, numClasses]. */
  head: tf.LayersModel;
  numClasses: number;
  /** Layer names re-initialised for this task (the head, unless pretrained and same class count). */
  reinitialized: string[];
  /** What was loaded. */
  weights?: WeightsInfo;
  /** The input statistics the pretrained weights expect; undefined for random init. */
  preprocessing?: Preprocessing;
}

function entryOf(arch: string): ModelEntry {
  const entry = MODELS[arch];
  if (entry) return entry;
  const near = Object.keys(MODELS).filter((n) => n.startsWith(arch.slice(0, 3)));
  throw new PipelineError('PIPE_MODEL', `unknown model '${arch}'${near.length ? `; did you mean ${near.map((n) => `'${n}'`).join(' or ')}?` : ''} known: ${Object.keys(MODELS).join(', ')}`);
}

/**
 * The safetensors file `weights` names for `arch` ('imagenet': the cached download; otherwise
 * a path), or undefined for 'none'. Does not download: see `ensureWeights` below.
 * @throws PipelineError PIPE_MODEL when the arch has no such weights or the file is absent.
 */
export function weightsPath(arch: string, weights: string): string | undefined {
  const entry = entryOf(arch);
  if (weights === 'none') return undefined;
  if (weights === 'imagenet') {
    if (!entry.imagenet) throw new PipelineError('PIPE_MODEL', noImageNetWeights(arch));
    const path = cachedWeightsPath(entry.imagenet);
    if (!existsSync(path)) throw new PipelineError('PIPE_MODEL', `the ImageNet weights of ${arch} are not downloaded yet (${path}); the build-model stage downloads them`);
    return path;
  }
  if (!existsSync(weights)) throw new PipelineError('PIPE_MODEL', `weights '${weights}': no such file; give none, imagenet, or the path of a .safetensors file`);
  return weights;
}

/**
 * Makes `weights` available for `arch` before `buildClassifier`: downloads the ImageNet file into
 * the shared cache once ('imagenet'); nothing for 'none' or a local path.
 * @returns the fetched file for 'imagenet', else undefined.
 * @throws PipelineError PIPE_MODEL when the arch has no ImageNet weights; DownloadError when the
 *   download fails or its checksum does not match.
 */
export async function ensureWeights(
  arch: string,
  weights: string,
  opts: { signal?: AbortSignal; onProgress?: (p: DownloadProgress) => void; root?: string } = {},
): Promise<FetchedWeights | undefined> {
  const entry = entryOf(arch);
  if (weights !== 'imagenet') return undefined;
  if (!entry.imagenet) throw new PipelineError('PIPE_MODEL', noImageNetWeights(arch));
  return fetchPretrained(entry.imagenet, opts);
}

/** Preprocessing defaults for `arch` with `weights` (undefined for random init or a local file). */
export function preprocessingFor(arch: string, weights: string): (Preprocessing & { minInputSize: number }) | undefined {
  const entry = entryOf(arch);
  if (weights !== 'imagenet' || !entry.imagenet) return undefined;
  const { mean, std, inputSize, interpolation, cropPct } = entry.imagenet;
  return { mean, std, inputSize, interpolation, cropPct, minInputSize: entry.minInputSize };
}

/**
 * Builds `arch` with a head of `numClasses` logits and loads `weights` ('none', 'imagenet' once
 * downloaded, or a path to a torch state_dict in safetensors). The file's classifier is kept when
 * it has `numClasses` outputs and re-initialised otherwise (always with `opts.newHead`).
 * @throws PipelineError PIPE_MODEL for an unknown name, a too-small input, unavailable weights,
 *   or a weights file that does not fit (each missing/unexpected/mis-shaped tensor named).
 */
export function buildClassifier(arch: string, inp: BackboneInput, numClasses: number, weights: string, rng: Rng, opts: { newHead?: boolean } = {}): Classifier {
  const entry = entryOf(arch);
  if (Math.min(inp.height, inp.width) < entry.minInputSize) {
    throw new PipelineError('PIPE_MODEL', `${arch} needs inputs of at least ${entry.minInputSize}x${entry.minInputSize} px; the data is ${inp.height}x${inp.width} (add a resize op to the augment stage)`);
  }
  const file = weightsPath(arch, weights);
  const backbone = entry.build(inp, file ? 'zeros' : rng);
  if (file && backbone.bindings.length === 0) throw new PipelineError('PIPE_MODEL', `${arch} has no PyTorch counterpart, so it cannot load '${weights}'; use weights: none`);
  const featIn = tf.input({ shape: [backbone.features], name: 'features' });
  const bound = 1 / Math.sqrt(backbone.features); // PyTorch nn.Linear default init range
  const logits = tf.layers
    .dense({ units: numClasses, name: 'head_fc', kernelInitializer: tf.initializers.randomUniform({ minval: -bound, maxval: bound, seed: rng.seed() }), biasInitializer: tf.initializers.randomUniform({ minval: -bound, maxval: bound, seed: rng.seed() }) })
    .apply(featIn) as tf.SymbolicTensor;
  const head = tf.model({ inputs: featIn, outputs: logits, name: 'head' });
  const c: Classifier = { arch, backbone, head, numClasses, reinitialized: ['head_fc'], weights: { source: weights, loaded: 0, skipped: [] } };
  if (file) {
    c.weights = { source: weights, file, ...loadFile(c, entry, file, opts.newHead ?? false) };
    if (c.weights.skipped.length === 0) c.reinitialized = [];
  }
  c.preprocessing = preprocessingFor(arch, weights);
  return c;
}

/** The classifier's weights bound to torch modules: the backbone's bindings and the head as `entry.classifier`. */
function torchGroups(c: Classifier, entry: ModelEntry): BoundModel[] {
  return [{ model: c.backbone.model, bindings: c.backbone.bindings }, { model: c.head, bindings: [{ layer: 'head_fc', torch: entry.classifier, kind: 'dense' as const }] }];
}

/**
 * The classifier as a PyTorch state_dict in safetensors (torchvision's key names and layouts,
 * BN counters included), loadable by `buildClassifier(arch, ..., path)` and by torch.
 * @throws PipelineError PIPE_MODEL when the architecture has no PyTorch counterpart.
 */
export function torchStateDict(c: Classifier): Uint8Array {
  const entry = entryOf(c.arch);
  if (c.backbone.bindings.length === 0) throw new PipelineError('PIPE_MODEL', `${c.arch} has no PyTorch counterpart, so it cannot be exported as a torch state_dict`);
  return encodeSafetensors(exportTorchWeights(torchGroups(c, entry)));
}

function loadFile(c: Classifier, entry: ModelEntry, file: string, newHead: boolean): { loaded: number; skipped: string[] } {
  try {
    const st = Safetensors.read(file);
    const fc = st.tensors.get(`${entry.classifier}.weight`);
    const keepHead = !newHead && fc !== undefined && fc.shape[0] === c.numClasses;
    return loadTorchWeights(st, torchGroups(c, entry), keepHead ? [] : [entry.classifier]);
  } catch (e) {
    if (e instanceof WeightsMismatchError || e instanceof SafetensorsError) throw new PipelineError('PIPE_MODEL', `${c.arch}: ${e.message}`);
    if ((e as NodeJS.ErrnoException).code) throw new PipelineError('PIPE_MODEL', `${c.arch}: cannot read weights file '${file}': ${(e as Error).message}`);
    throw e;
  }
}

/**
 * Parameter counts. `total`: every weight (tfjs `countParams`, BatchNorm moving statistics
 * included); `head`: the head's; `learnable`: trainable weights when nothing is frozen (the
 * PyTorch `sum(p.numel() for p in model.parameters())` convention).
 */
export function paramCounts(c: Classifier): { total: number; head: number; learnable: number } {
  const size = (ws: tf.LayerVariable[]): number => ws.reduce((n, w) => n + (w.shape as number[]).reduce((a, b) => a * b, 1), 0);
  const learnable = size([...c.backbone.model.weights, ...c.head.weights].filter((w) => !/moving_(mean|variance)$/.test(w.originalName)));
  return { total: c.backbone.model.countParams() + c.head.countParams(), head: c.head.countParams(), learnable };
}
