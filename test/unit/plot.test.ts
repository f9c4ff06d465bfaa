import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import {
  MARK_NAMES,
  emaSmooth,
  markClass,
  plotEpochMetrics,
  plotIterationLoss,
  unfreezeEpoch,
  type EpochPoint,
  type IterationPoint,
} from '../../src/plot/charts.js';
import { groupContent, noTempLeft, pngSize, svgSize, translate, vertices } from './svg-helpers.js';

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'plot-test-'));
process.on('exit', () => fs.rmSync(tmpRoot, { recursive: true, force: true }));

function freshDir(name: string): string {
  return path.join(tmpRoot, name, 'nested'); // not created: the plot functions must create it
}

function epochs(n: number, firstUnfreeze: number | undefined): EpochPoint[] {
  return Array.from({ length: n }, (_, i) => {
    const epoch = i + 1;
    return {
      epoch,
      phase: firstUnfreeze !== undefined && epoch >= firstUnfreeze ? 'unfreeze' : 'freeze',
      trainLoss: 2 / epoch,
      testLoss: 2.3 / epoch,
      trainAccuracy: 0.5 + 0.1 * epoch,
      testAccuracy: 0.45 + 0.09 * epoch,
    };
  });
}

test('emaSmooth is the debiased TensorBoard EMA and skips non-finite values', () => {
  // debiasing: a constant series stays constant from the first point on
  assert.ok(emaSmooth([3, 3, 3], 0.9).every((v) => Math.abs(v - 3) < 1e-12));
  const [a, b, c] = emaSmooth([1, 2, Number.NaN, 4], 0.5);
  assert.equal(a, 1);
  assert.ok(Math.abs((b ?? 0) - (0.5 * 0.5 + 0.5 * 2) / 0.75) < 1e-12); // (0.25 + 1) / (1 - 0.25)
  assert.ok(Number.isNaN(c));
  assert.deepEqual(emaSmooth([5, 1, 7], 0), [5, 1, 7]);
  assert.throws(() => emaSmooth([1], 1), RangeError);
});

test('unfreezeEpoch is the smallest epoch whose phase is unfreeze', () => {
  assert.equal(unfreezeEpoch(epochs(4, 3)), 3);
  assert.equal(unfreezeEpoch([...epochs(5, 2)].reverse()), 2);
  assert.equal(unfreezeEpoch(epochs(4, undefined)), undefined);
  assert.equal(unfreezeEpoch([]), undefined);
});

test('iteration chart: files, one raw-line vertex per iteration, titled axes, PNG size', async () => {
  const n = 37;
  const points: IterationPoint[] = Array.from({ length: n }, (_, step) => ({ step, loss: 2 * Math.exp(-step / 10) + 0.05 * (step % 3) }));
  const dir = freshDir('iter');
  const files = await plotIterationLoss(points, dir);

  assert.equal(files.svg, path.join(path.resolve(dir), 'loss-per-iteration.svg'));
  assert.equal(files.png, path.join(path.resolve(dir), 'loss-per-iteration.png'));
  assert.ok(path.isAbsolute(files.svg) && path.isAbsolute(files.png));
  noTempLeft(dir);

  const svg = fs.readFileSync(files.svg, 'utf8');
  const raw = groupContent(svg, markClass(MARK_NAMES.rawLoss));
  assert.ok(raw, 'raw-loss mark group present');
  const paths = [...raw.matchAll(/<path [^>]*\sd="([^"]*)"/g)];
  assert.equal(paths.length, 1, 'one raw line');
  const rawVerts = vertices(paths[0]![1]!);
  assert.equal(rawVerts.length, n);
  // x strictly increasing; first at the left edge of the plot area, last at the right edge (default 640 px)
  assert.ok(rawVerts.every((v, i) => i === 0 || v[0] > rawVerts[i - 1]![0]));
  assert.equal(rawVerts[0]![0], 0);
  assert.equal(rawVerts[n - 1]![0], 640);

  const smooth = groupContent(svg, markClass(MARK_NAMES.smoothedLoss));
  assert.ok(smooth, 'smoothed-loss mark group present');
  assert.equal(vertices(/\sd="([^"]*)"/.exec(smooth)![1]!).length, n);

  assert.match(svg, /aria-label="X-axis titled 'iteration'/);
  assert.match(svg, /aria-label="Y-axis titled 'loss'/);
  assert.match(svg, />iteration<\/text>/);
  assert.match(svg, />loss<\/text>/);
  assert.match(svg, />Training loss per iteration<\/text>/);
  assert.match(svg, />raw<\/text>/); // legend entries
  assert.match(svg, />smoothed \(EMA 0\.9\)<\/text>/);
  assert.match(svg, /font-family="DejaVu Sans"/);

  const size = svgSize(svg);
  assert.ok(size.width > 640 && size.height > 320, `image ${size.width}x${size.height} contains the 640x320 plot area`);
  // resvg renders at scale 1: PNG pixels = SVG CSS pixels
  assert.deepEqual(pngSize(files.png), size);
});

test('iteration chart: NaN losses are dropped from the lines but keep the step axis truthful', async () => {
  const points: IterationPoint[] = Array.from({ length: 10 }, (_, step) => ({ step, loss: 1 / (step + 1) }));
  points[4]!.loss = Number.NaN;
  points[9]!.loss = Number.NaN; // last step not drawn, but the axis still reaches it
  const dir = freshDir('iter-nan');
  const files = await plotIterationLoss(points, dir, { basename: 'nan', width: 300, height: 150, smoothing: 0.5 });
  assert.equal(path.basename(files.svg), 'nan.svg');
  const svg = fs.readFileSync(files.svg, 'utf8');
  const verts = vertices(/\sd="([^"]*)"/.exec(groupContent(svg, markClass(MARK_NAMES.rawLoss))!)![1]!);
  assert.equal(verts.length, 8);
  assert.ok(verts.every(([x, y]) => Number.isFinite(x) && Number.isFinite(y)));
  // x scale spans steps 0..9 over 300 px: step 8 (last drawn) sits at 8/9 of the width
  assert.ok(Math.abs(verts[7]![0] - (300 * 8) / 9) < 0.01);
  assert.match(svg, />smoothed \(EMA 0\.5\)<\/text>/);
  assert.deepEqual(pngSize(files.png), svgSize(svg));
});

test('epoch chart: unfreeze rule sits at the x of epoch 3', async () => {
  const dir = freshDir('epoch');
  const files = await plotEpochMetrics(epochs(4, 3), dir, { width: 300, height: 200 });
  assert.equal(files.svg, path.join(path.resolve(dir), 'metrics-per-epoch.svg'));
  assert.equal(files.png, path.join(path.resolve(dir), 'metrics-per-epoch.png'));
  noTempLeft(dir);
  const svg = fs.readFileSync(files.svg, 'utf8');

  for (const [lineName, ruleName, panelGroup] of [
    [MARK_NAMES.accuracyLine, MARK_NAMES.accuracyUnfreezeRule, 'concat_0_group'],
    [MARK_NAMES.lossLine, MARK_NAMES.lossUnfreezeRule, 'concat_1_group'],
  ] as const) {
    const panel = groupContent(svg, panelGroup);
    assert.ok(panel, `${panelGroup} present`);

    const rule = groupContent(panel, markClass(ruleName));
    assert.ok(rule, `${ruleName} present`);
    const lines = [...rule.matchAll(/<line [^>]*>/g)];
    assert.equal(lines.length, 1, 'exactly one rule');
    const [ruleX, ruleY] = translate(lines[0]![0]);
    assert.equal(ruleY, 0);
    assert.match(lines[0]![0], /\sy2="200"/, 'rule spans the plot height');

    // x of epoch 3 on the train and test lines (vertex index 2 of epochs 1..4), same coordinate frame
    const ds = [...panel.matchAll(new RegExp(`class="[^"]*${markClass(lineName)}"[^>]*><path [^>]*\\sd="([^"]*)"`, 'g'))];
    assert.equal(ds.length, 2, 'train and test lines');
    for (const d of ds) {
      const v = vertices(d[1]!);
      assert.equal(v.length, 4);
      assert.ok(Math.abs(v[2]![0] - ruleX) <= 0.5, `rule x ${ruleX} vs epoch-3 vertex x ${v[2]![0]}`);
    }
    // epochs 1..4 over 300 px: epoch 3 at 200 px
    assert.equal(ruleX, 200);

    // the same position read off the x axis: tick label "3" (axis group is offset by its own translate)
    const axisStart = panel.search(/aria-label="X-axis titled 'epoch'/);
    assert.ok(axisStart >= 0, 'x axis titled epoch');
    const axis = panel.slice(axisStart);
    const [axisDx] = translate(/<g transform="[^"]*"/.exec(axis)![0]);
    const labels = groupContent(axis, 'role-axis-label');
    assert.ok(labels);
    const label3 = /<text [^>]*transform="translate\(([-\d.e]+),[-\d.e]+\)"[^>]*>3<\/text>/.exec(labels);
    assert.ok(label3, 'tick label 3');
    assert.ok(Math.abs(Number(label3[1]) + axisDx - ruleX) <= 0.5, `tick 3 at ${Number(label3[1]) + axisDx}, rule at ${ruleX}`);
  }
  assert.match(svg, />unfreeze \(epoch 3\)<\/text>/);

  assert.match(svg, /aria-label="X-axis titled 'epoch'/);
  assert.match(svg, /aria-label="Y-axis titled 'accuracy'/);
  assert.match(svg, /aria-label="Y-axis titled 'loss'/);
  for (const t of ['epoch', 'accuracy', 'loss', 'Metrics per epoch', 'Accuracy per epoch', 'Loss per epoch', 'train', 'test']) {
    assert.ok(svg.includes(`>${t}</text>`), `text "${t}" in SVG`);
  }

  const size = svgSize(svg);
  assert.ok(size.width > 600 && size.height > 200);
  assert.deepEqual(pngSize(files.png), size);
});

test('epoch chart: no rule when no epoch is unfreeze', async () => {
  const dir = freshDir('epoch-none');
  const files = await plotEpochMetrics(epochs(4, undefined), dir, { basename: 'frozen' });
  assert.equal(path.basename(files.png), 'frozen.png');
  const svg = fs.readFileSync(files.svg, 'utf8');
  assert.ok(groupContent(svg, markClass(MARK_NAMES.accuracyLine)), 'lines still drawn');
  assert.doesNotMatch(svg, /role-mark [a-z_]*unfreeze/);
  assert.doesNotMatch(svg, /mark-rule role-mark/);
  assert.doesNotMatch(svg, /unfreeze/);
  assert.deepEqual(pngSize(files.png), svgSize(svg));
});

test('degenerate inputs render without throwing', async () => {
  const dir = freshDir('degenerate');
  await plotIterationLoss([], dir, { basename: 'empty-iter' });
  await plotIterationLoss([{ step: 0, loss: Number.NaN }, { step: 1, loss: Number.POSITIVE_INFINITY }], dir, { basename: 'all-nan' });
  await plotEpochMetrics([], dir, { basename: 'empty-epoch' });
  const one = epochs(1, 1);
  one[0]!.testLoss = Number.NaN;
  const files = await plotEpochMetrics(one, dir, { basename: 'one-epoch' });
  assert.match(fs.readFileSync(files.svg, 'utf8'), />unfreeze \(epoch 1\)<\/text>/);
  await assert.rejects(plotIterationLoss([], dir, { basename: '../escape' }));
  await assert.rejects(plotIterationLoss([], dir, { width: 0 }), RangeError);
  noTempLeft(dir);
});

test('iteration chart: the unfreeze iteration is marked by a dashed rule at its x, labelled', async () => {
  const points: IterationPoint[] = Array.from({ length: 10 }, (_, step) => ({ step, loss: 1 / (step + 1) }));
  const dir = freshDir('iter-unfreeze');
  const svg = fs.readFileSync((await plotIterationLoss(points, dir, { width: 300, height: 150, unfreezeStep: 6 })).svg, 'utf8');
  const rule = groupContent(svg, markClass(MARK_NAMES.iterationUnfreezeRule));
  assert.ok(rule, 'rule present');
  const lines = [...rule.matchAll(/<line [^>]*>/g)];
  assert.equal(lines.length, 1);
  // steps 0..9 over 300 px: step 6 at 200 px, where the raw line's 7th vertex is
  assert.equal(translate(lines[0]![0])[0], 200);
  const raw = vertices(/\sd="([^"]*)"/.exec(groupContent(svg, markClass(MARK_NAMES.rawLoss))!)![1]!);
  assert.ok(Math.abs(raw[6]![0] - 200) < 0.01);
  assert.match(svg, />unfreeze \(iteration 6\)<\/text>/);
  const plain = fs.readFileSync((await plotIterationLoss(points, freshDir('iter-no-unfreeze'), { width: 300, height: 150 })).svg, 'utf8');
  assert.doesNotMatch(plain, /unfreeze/);
});
