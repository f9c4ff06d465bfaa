/**
 * The plot stage's `compare:`: training chains side by side. The comparison chart's vertices are
 * read back from the SVG and mapped through the chart's own axes: every point must be the
 * test accuracy / test loss of its chain's epoch as the training stage recorded it (hand-made
 * chains here, with distinct values). Also: the unfreeze markers, the legend labels, each
 * chain's own charts found through its own freeze stage, and the report's table of chains.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import plot, { type PlotParams } from '../../stages/plot.js';
import { MARK_NAMES, markClass } from '../../src/plot/charts.js';
import { CHAIN_COLORS, chainComparisonSpec, unfreezeMarkers } from '../../src/plot/compare.js';
import type { PipelineConfig } from '../../src/config/types.js';
import type { StageContext } from '../../src/stage.js';
import { BestModel } from '../../src/train/best.js';
import type { EpochRecord } from '../../src/train/loop.js';
import type { TrainState } from '../../src/train/stage.js';
import { groupContent, linesByColor, pngSize, svgSize, yScale } from './svg-helpers.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'plot-compare-test-'));
process.on('exit', () => fs.rmSync(root, { recursive: true, force: true }));

/** Epoch records 1..n, unfrozen from `unfreeze` on, with the given test accuracies and losses. */
function records(acc: number[], loss: number[], unfreeze: number | undefined): EpochRecord[] {
  return acc.map((a, i) => ({
    epoch: i + 1, phase: unfreeze !== undefined && i + 1 >= unfreeze ? 'unfreeze' : 'freeze',
    train_loss: loss[i]! * 0.8, train_accuracy: Math.min(1, a + 0.03), test_loss: loss[i]!, test_accuracy: a,
    lr: unfreeze !== undefined && i + 1 >= unfreeze ? 1e-3 : 3e-3, epoch_seconds: 1, images_per_second: 100, rss_bytes: 1, tensor_bytes: 1, trainable_params: 10,
  }));
}

/** A training stage's state as the plot stage reads it (no evaluate stage, so no model or data is touched). */
function state(epochs: EpochRecord[], lastStep: number, unfreezeEpoch?: number): TrainState {
  const best = Object.assign(new BestModel('test_loss'), { epoch: 1, phase: 'freeze' as const, value: epochs[0]!.test_loss });
  return {
    classifier: { arch: 'test_resnet18' }, data: {}, best, epochs, iterationLosses: Array.from({ length: lastStep }, (_, i) => 2 / (i + 1)),
    lastEpoch: epochs.length, lastStep, ...(unfreezeEpoch !== undefined ? { unfreezeEpoch } : {}),
  } as unknown as TrainState;
}

// Two chains: 3 frozen epochs then unfrozen from epoch 4; the scratch chain stopped early (6 epochs).
const PRE_ACC = [0.441, 0.587, 0.609, 0.811, 0.857, 0.873, 0.902];
const PRE_LOSS = [1.32, 1.05, 0.97, 0.55, 0.42, 0.38, 0.3];
const SCRATCH_ACC = [0.201, 0.232, 0.409, 0.595, 0.813, 0.842];
const SCRATCH_LOSS = [1.61, 1.58, 1.43, 1.12, 0.61, 0.48];
const STATES: Record<string, TrainState> = {
  head_pre: state(records(PRE_ACC.slice(0, 3), PRE_LOSS.slice(0, 3), undefined), 48),
  finetune_pre: state(records(PRE_ACC, PRE_LOSS, 4), 112, 4),
  head_scratch: state(records(SCRATCH_ACC.slice(0, 3), SCRATCH_LOSS.slice(0, 3), undefined), 47),
  finetune_scratch: state(records(SCRATCH_ACC, SCRATCH_LOSS, 4), 94, 4),
};

const PIPELINE = {
  name: 'transfer', seed: 1, engine: { backend: 'wasm' },
  stages: {
    head_pre: { kind: 'freeze-train', needs: [], with: {} },
    finetune_pre: { kind: 'unfreeze-train', needs: ['head_pre'], with: {} },
    head_scratch: { kind: 'freeze-train', needs: [], with: {} },
    finetune_scratch: { kind: 'unfreeze-train', needs: ['head_scratch'], with: {} },
    plots: { kind: 'plot', needs: ['finetune_pre', 'finetune_scratch'], with: {} },
  },
} as unknown as PipelineConfig;

/** Breadth-first over needs, nearest first (as the runner's `ancestors`). */
function ancestors(stage: string): string[] {
  const out: string[] = [];
  const queue = [...PIPELINE.stages[stage]!.needs];
  while (queue.length) {
    const n = queue.shift()!;
    if (out.includes(n)) continue;
    out.push(n);
    queue.push(...PIPELINE.stages[n]!.needs);
  }
  return out;
}

function context(params: PlotParams): StageContext<PlotParams> & { artifacts: Array<[string, string | undefined]> } {
  const artifacts: Array<[string, string | undefined]> = [];
  const outDir = path.join(root, 'run', 'plots');
  return {
    name: 'plots', key: 'k', params, pipeline: PIPELINE, outDir, seed: 1, signal: new AbortController().signal,
    engine: { backend: 'wasm', requested: 'wasm', name: 'wasm', description: 'wasm' },
    report: { progress: () => {}, batch: () => {}, epoch: () => {}, metric: () => {}, tags: () => {}, artifact: (p, a) => void artifacts.push([p, a]), dataset: () => {} },
    upstream: () => { throw new Error('compare reads stages by name'); },
    maybeUpstream: () => undefined,
    upstreamNamed: <T>(stage: string) => {
      assert.ok(ancestors('plots').includes(stage), `${stage} is upstream of plots`);
      return STATES[stage] as T;
    },
    ancestors: (stage = 'plots') => ancestors(stage),
    artifacts,
  };
}

/**
 * Asserts each chain's line has one vertex per epoch, at its epoch's x, and at the y the
 * panel's own axis gives its value.
 */
function assertLines(panel: string, mark: string, axisTitle: string, series: number[][], width: number, lastEpoch: number): void {
  const lines = linesByColor(panel, markClass(mark));
  assert.equal(lines.size, series.length, 'one line per chain');
  const y = yScale(panel, axisTitle);
  series.forEach((vs, c) => {
    const verts = lines.get(CHAIN_COLORS[c]!)!;
    assert.equal(verts.length, vs.length, `chain ${c}: one vertex per epoch`);
    vs.forEach((v, i) => {
      const [px, py] = verts[i]!;
      assert.ok(Math.abs(px - (width * i) / (lastEpoch - 1)) < 0.01, `chain ${c} epoch ${i + 1}: x ${px}`);
      assert.ok(Math.abs(py - y(v)) < 0.01, `chain ${c} epoch ${i + 1}: y ${py}, but ${v} is at ${y(v)}`);
    });
  });
}

test('compare: the chart draws each chain\'s own test accuracy and loss per epoch, labelled, unfreeze marked; report has a table and a section per chain', async () => {
  const params: PlotParams = { width: 300, height: 150, misclassified: 0, columns: 8, compare: [{ stage: 'finetune_pre', label: 'pretrained backbone' }, 'finetune_scratch'] };
  const ctx = context(params);
  const out = await plot.run(ctx);

  const own = ['loss-per-iteration', 'metrics-per-epoch', 'lr-per-epoch'];
  const names = ['compare-per-epoch', ...['finetune_pre', 'finetune_scratch'].flatMap((s) => own.map((n) => `${s}-${n}`))];
  assert.deepEqual(out.files.map((f) => path.basename(f)).sort(), names.flatMap((n) => [`${n}.png`, `${n}.svg`]).sort());
  assert.equal(ctx.artifacts.filter(([, a]) => a === 'plots').length, names.length * 2);
  assert.deepEqual(ctx.artifacts.filter(([p]) => p.endsWith('report.html')), [[path.join(ctx.outDir, 'report.html'), undefined]]);

  const svg = fs.readFileSync(path.join(ctx.outDir, 'compare-per-epoch.svg'), 'utf8');
  const width = Math.round(300 * 0.66); // each panel: 2/3 of the plot stage's width
  const acc = groupContent(svg, 'concat_0_group')!;
  const loss = groupContent(svg, 'concat_1_group')!;
  assertLines(acc, MARK_NAMES.compareAccuracyLine, 'test accuracy', [PRE_ACC, SCRATCH_ACC], width, 7);
  assertLines(loss, MARK_NAMES.compareLossLine, 'test loss', [PRE_LOSS, SCRATCH_LOSS], width, 7);
  for (const [panel, rule] of [[acc, MARK_NAMES.compareAccuracyUnfreezeRule], [loss, MARK_NAMES.compareLossUnfreezeRule]] as const) {
    const lines = [...groupContent(panel, markClass(rule))!.matchAll(/<line [^>]*>/g)];
    assert.equal(lines.length, 1, 'both chains unfreeze at epoch 4: one rule');
    assert.match(lines[0]![0], new RegExp(`translate\\(${width / 2},0\\)`), 'at epoch 4 of 1..7');
  }
  assert.equal(svg.split('>unfreeze (epoch 4)</text>').length - 1, 2);
  for (const t of ['pretrained backbone', 'finetune_scratch', 'chain', 'Test accuracy per epoch', 'Test loss per epoch', 'epoch', 'test accuracy', 'test loss']) {
    assert.ok(svg.includes(`>${t}</text>`), `text "${t}" in the SVG`);
  }
  assert.deepEqual(pngSize(path.join(ctx.outDir, 'compare-per-epoch.png')), svgSize(svg));

  const html = fs.readFileSync(out.report, 'utf8');
  assert.equal([...html.matchAll(/<img alt="[^"]*" src="data:image\/svg\+xml;base64,/g)].length, 7);
  const row = (cells: string[]) => `<tr>${cells.map((c, i) => (i >= 2 ? `<td class="n">${c}</td>` : `<td>${c}</td>`)).join('')}</tr>`;
  assert.ok(html.includes(row(['pretrained backbone', 'finetune_pre', '7', '4', '90.20% (epoch 7)', '90.20%', '-', '-', '-'])), 'pretrained row');
  assert.ok(html.includes(row(['finetune_scratch', 'finetune_scratch', '6', '4', '84.20% (epoch 6)', '84.20%', '-', '-', '-'])), 'scratch row');
  assert.match(html, /Best test accuracy: pretrained backbone 90\.20% \(epoch 7\); finetune_scratch 84\.20% \(epoch 6\)\./);
  const at = (s: string) => html.indexOf(s);
  assert.ok(at('<section id="chains">') < at('alt="Test accuracy and loss per epoch, by training chain"') && at('alt="Test accuracy and loss per epoch, by training chain"') < at('<section id="chain-'), 'the table, the comparison, then the chains');
  assert.match(html, /<section id="chain-finetune_pre"><h2>pretrained backbone \(finetune_pre\)<\/h2>/);
  assert.match(html, /<section id="chain-finetune_scratch"><h2>finetune_scratch<\/h2>/);
  // each chain's iteration chart marks its own frozen phase: head_pre's 48 steps, head_scratch's 47
  assert.match(html, /112 iterations: 48 with the backbone frozen, then 64 fine-tuning it/);
  assert.match(html, /94 iterations: 47 with the backbone frozen, then 47 fine-tuning it/);
  assert.equal(html.split('<section id="finetune_pre-history">').length - 1, 1);
  assert.doesNotMatch(html, /class="headline"/);
});

test('unfreeze markers: one per distinct epoch, chains named unless all share it', () => {
  const chain = (label: string, unfreeze: number | undefined) => ({ label, epochs: records([0.5, 0.6, 0.7], [1, 0.9, 0.8], unfreeze).map((e) => ({ epoch: e.epoch, phase: e.phase, testAccuracy: e.test_accuracy, testLoss: e.test_loss })) });
  assert.deepEqual(unfreezeMarkers([chain('a', 2), chain('b', 2)]), [{ epoch: 2, label: 'unfreeze (epoch 2)' }]);
  assert.deepEqual(unfreezeMarkers([chain('a', 3), chain('b', 2), chain('c', 3)]), [{ epoch: 2, label: 'unfreeze b (epoch 2)' }, { epoch: 3, label: 'unfreeze a, c (epoch 3)' }]);
  assert.deepEqual(unfreezeMarkers([chain('a', 2), chain('frozen', undefined)]), [{ epoch: 2, label: 'unfreeze a (epoch 2)' }]);
  assert.deepEqual(unfreezeMarkers([chain('a', undefined), chain('b', undefined)]), []);
  assert.throws(() => chainComparisonSpec([chain('a', 2), chain('a', 3)]), /two chains are labelled "a"/);
});
