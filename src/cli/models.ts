/**
 * `pipe models`: the zoo as a table: name, learnable parameters with a 1000-class head (the
 * header and a note say so),
 * native and minimum input size, where the ImageNet weights come from, and whether they are in
 * the shared cache already.
 */
import * as tf from '@tensorflow/tfjs';
import { listModels, MODELS } from '../models/registry.js';
import { cachedWeightsFile, type PretrainedConfig } from '../models/pretrained.js';
import { cacheDir } from '../paths.js';

/** Learnable parameters of `name` with a 1000-class head: the published count, else built and counted. */
function paramsOf(name: string): number {
  const e = MODELS[name]!;
  if (e.publishedParams !== undefined) return e.publishedParams; // checked against the built nets in test/unit/models.test.ts
  const side = Math.max(e.minInputSize, 32);
  const bb = e.build({ height: side, width: side, channels: 3 }, 'zeros');
  const n = bb.model.trainableWeights.reduce((s, w) => s + (w.shape as number[]).reduce((a, b) => a * b, 1), 0) + bb.features * 1000 + 1000;
  bb.model.dispose();
  return n;
}

/** The `cached` column: yes, no, or the size of a cached file that differs from the published one. */
function cachedColumn(w: PretrainedConfig): string {
  const f = cachedWeightsFile(w);
  return f.ok ? 'yes' : f.bytes === undefined ? 'no' : `no (${f.bytes} bytes, not ${w.sizeBytes})`;
}

/**
 * One row per model, columns padded. `params` counts the learnable parameters with ImageNet's
 * 1000-class head, as torchvision and timm publish them (the header says so); a pipeline's
 * build-model stage puts a head of `num_classes` logits instead.
 */
export function modelsTable(): string {
  const rows = [['name', 'params (1000-class head)', 'input', 'min', 'weights (imagenet)', 'cached']];
  for (const name of listModels()) {
    const e = MODELS[name]!;
    const w = e.imagenet;
    rows.push([
      name,
      paramsOf(name).toLocaleString('en'),
      w ? `${w.inputSize[1]}x${w.inputSize[2]}` : '-',
      String(e.minInputSize),
      w ? `${w.hubId}@${w.commit ? w.commit.slice(0, 7) : 'main'} (${w.license}${w.sha256 ? '' : ', unverified'})` : '- (none: weights: none or a local file)',
      w ? cachedColumn(w) : '-',
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const right = new Set([1, 3]);
  return rows.map((r) => r.map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

/** Prints the zoo table and the cache folder; resolves to exit code 0. */
export async function cmdModels(): Promise<number> {
  tf.env().set('PROD', true); // silences tfjs's "install tfjs-node" banner (the small nets are built to be counted)
  const note = 'params: with a 1000-class (ImageNet) head, as torchvision and timm count them; a pipeline\'s head has num_classes outputs';
  process.stdout.write(`${modelsTable()}\n\n${note}\nweights cache: ${cacheDir()}/weights (set PIPE_CACHE to move it; HF_ENDPOINT for a Hub mirror)\n`);
  return 0;
}
