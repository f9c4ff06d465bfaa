/**
 * A plot stage comparing two training chains, end to end through the CLI: two chains of real
 * Fashion-MNIST training (different lengths), one evaluate stage, one plot stage with
 * `compare:`. The comparison chart in the run's MLflow artifacts draws, for each chain, the test
 * accuracy and loss of every epoch its stages reported (the `stage-epoch` events of the JSON
 * stream), read back through the chart's own axes; the report is the run's, with both chains.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunEvent } from '../../src/runner/events.js';
import { MARK_NAMES, markClass } from '../../src/plot/charts.js';
import { CHAIN_COLORS } from '../../src/plot/compare.js';
import { groupContent, linesByColor, yScale } from '../unit/svg-helpers.js';
import { FASHION_MNIST_DIR, runCli } from '../utils.js';

const skip = !existsSync(FASHION_MNIST_DIR) && `${FASHION_MNIST_DIR} is missing (apt-get install dataset-fashion-mnist)`;

const PIPELINE = `name: compare
experiment: compare
seed: 3
stages:
  data: { kind: download, with: { dataset: fashion-mnist, source: ${FASHION_MNIST_DIR}, subset: { train: 128, test: 64 } } }
  aug: { kind: augment, needs: [data], with: { batch_size: 32, test: [ { normalize: { mean: [0.3], std: [0.3] } } ], train: [ { normalize: { mean: [0.3], std: [0.3] } } ] } }
  model_a: { kind: build-model, needs: [data], with: { arch: mini_resnet } }
  head_a: { kind: freeze-train, needs: [aug, model_a], with: { epochs: 1, max_steps_per_epoch: 2, optimizer: { lr: 0.003 } } }
  tune_a: { kind: unfreeze-train, needs: [head_a], with: { epochs: 1, max_steps_per_epoch: 2, optimizer: { lr: 0.002 } } }
  eval_a: { kind: evaluate, needs: [tune_a] }
  model_b: { kind: build-model, needs: [data], with: { arch: mini_resnet } }
  head_b: { kind: freeze-train, needs: [aug, model_b], with: { epochs: 1, max_steps_per_epoch: 2, optimizer: { lr: 0.01 } } }
  tune_b: { kind: unfreeze-train, needs: [head_b], with: { epochs: 2, max_steps_per_epoch: 2, optimizer: { lr: 0.005 } } }
  plots: { kind: plot, needs: [eval_a, tune_b], with: { compare: [ { stage: tune_a, label: chain A }, tune_b ] } }
`;

test('compare: the chart in the MLflow artifacts draws each chain\'s reported test accuracy and loss per epoch; the run\'s report has both chains', { skip }, async () => {
  const r = await runCli({ 'p.yaml': PIPELINE }, ['run', 'p.yaml', '--log-format', 'json']);
  assert.equal(r.exitCode, 0, r.stderr + r.stdout);
  const evs = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as RunEvent);
  const epochs = evs.filter((e): e is Extract<RunEvent, { type: 'stage-epoch' }> => e.type === 'stage-epoch');
  // Each chain: its freeze stage's epoch, then its unfreeze stage's.
  const chain = (stages: string[]) => epochs.filter((e) => stages.includes(e.stage)).sort((a, b) => a.epoch - b.epoch);
  const a = chain(['head_a', 'tune_a']);
  const b = chain(['head_b', 'tune_b']);
  assert.deepEqual([a.map((e) => e.epoch), b.map((e) => e.epoch)], [[1, 2], [1, 2, 3]]);

  const store = join(r.root, 'runs', 'mlruns');
  const exp = readdirSync(store).find((d) => d !== '0' && d !== '.trash')!;
  const runId = readdirSync(join(store, exp)).find((d) => /^[0-9a-f]{32}$/.test(d))!;
  const art = join(store, exp, runId, 'artifacts');
  for (const f of ['report.html', 'plots/compare-per-epoch.png', 'plots/tune_a-confusion-matrix.svg', 'plots/tune_b-metrics-per-epoch.svg']) {
    assert.ok(existsSync(join(art, f)), `artifact ${f}`);
  }
  assert.ok(!existsSync(join(art, 'plots/tune_b-confusion-matrix.svg')), 'no evaluate stage of chain tune_b: no confusion matrix');

  const svg = readFileSync(join(art, 'plots/compare-per-epoch.svg'), 'utf8');
  const width = Math.round(640 * 0.66); // the plot stage's default width, 2/3 per panel
  for (const [panel, mark, title, field] of [
    ['concat_0_group', MARK_NAMES.compareAccuracyLine, 'test accuracy', 'test_accuracy'],
    ['concat_1_group', MARK_NAMES.compareLossLine, 'test loss', 'test_loss'],
  ] as const) {
    const g = groupContent(svg, panel)!;
    const lines = linesByColor(g, markClass(mark));
    const y = yScale(g, title);
    for (const [i, events] of [a, b].entries()) {
      const verts = lines.get(CHAIN_COLORS[i]!);
      assert.ok(verts, `${title}: a line for chain ${i}`);
      assert.equal(verts.length, events.length);
      events.forEach((e, k) => {
        assert.ok(Math.abs(verts[k]![0] - (width * (e.epoch - 1)) / 2) < 0.01, `${title} chain ${i} epoch ${e.epoch}: x`);
        assert.ok(Math.abs(verts[k]![1] - y(e[field])) < 0.01, `${title} chain ${i} epoch ${e.epoch}: y ${verts[k]![1]}, ${e[field]} is at ${y(e[field])}`);
      });
    }
  }
  assert.ok(svg.includes('>chain A</text>') && svg.includes('>tune_b</text>'), 'legend labels');

  const end = evs.at(-1)!;
  assert.equal(end.type === 'run-end' && end.reportHtml, `${end.type === 'run-end' && end.runDir}/plots/report.html`);
  const html = readFileSync(join(art, 'report.html'), 'utf8');
  assert.match(html, /<section id="chain-tune_a"><h2>chain A \(tune_a\)<\/h2>/);
  assert.match(html, /<section id="chain-tune_b"><h2>tune_b<\/h2>/);
  assert.match(html, /<section id="tune_a-eval-test">/);
  assert.doesNotMatch(html, /<section id="tune_b-eval-test">/);
});
