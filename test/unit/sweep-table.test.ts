/**
 * The comparison: figures summarised from a run folder (lock.json, state.json, model.json),
 * hand-worked; the sort order; CSV, markdown and text forms; the charts' data and files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { accuracyBarSpec, curvesSpec, plotComparison, runLabels, SWEEP_MARKS, timeBarSpec } from '../../src/sweep/charts.js';
import { summarizeRun, type RunSummary } from '../../src/sweep/collect.js';
import { bestRow, formatTable, sortRows, toCsv, toMarkdown } from '../../src/sweep/table.js';
import { makeTree } from '../utils.js';

const epoch = (e: number, phase: string, acc: number, secs: number, ips: number, rss: number): object => ({
  epoch: e, phase, train_loss: 1, train_accuracy: 0.5, test_loss: 1, test_accuracy: acc, lr: 0.001,
  epoch_seconds: secs, images_per_second: ips, rss_bytes: rss, tensor_bytes: 0, trainable_params: 10,
});

/** A finished two-phase run: head (epoch 1) reused from elsewhere, finetune (epochs 2-3) here. */
function runTree(): string {
  const root = makeTree({});
  const d = (s: string): string => join(root, 'runs', 'R', s);
  const files: Record<string, string> = {
    'runs/R/lock.json': JSON.stringify({
      pipeline: 'p', file: 'p.yaml', runId: '20250101T000000-abcdef', createdAt: 1000, stages: {
        model: { kind: 'build-model', key: 'k1', parts: {}, outDir: d('model'), status: 'done' },
        head: { kind: 'freeze-train', key: 'k2', parts: {}, outDir: join(root, 'runs', 'OTHER', 'head'), status: 'done', reusedFrom: 'x' },
        finetune: { kind: 'unfreeze-train', key: 'k3', parts: {}, outDir: d('finetune'), status: 'done' },
      },
    }),
    // Weights: 3x3x1x16 + 16 + 16x10 + 10 = 144 + 16 + 160 + 10 = 330.
    'runs/R/model/model/model.json': JSON.stringify({ weightsManifest: [{ paths: ['weights.bin'], weights: [{ name: 'a', shape: [3, 3, 1, 16] }, { name: 'b', shape: [16] }] }, { paths: [], weights: [{ name: 'c', shape: [16, 10] }, { name: 'd', shape: [10] }] }] }),
    'runs/OTHER/head/state.json': JSON.stringify({ epochs: [epoch(1, 'freeze', 0.6, 2, 100, 5e8)], lastEpoch: 1, iterationLosses: [], lastStep: 2, best: {} }),
    'runs/R/finetune/state.json': JSON.stringify({
      epochs: [epoch(1, 'freeze', 0.6, 2, 100, 5e8), epoch(2, 'unfreeze', 0.75, 4, 50, 7e8), epoch(3, 'unfreeze', 0.75, 6, 40, 6e8)],
      lastEpoch: 3, iterationLosses: [], lastStep: 6, best: {},
    }),
  };
  for (const [p, t] of Object.entries(files)) {
    mkdirSync(dirname(join(root, p)), { recursive: true });
    writeFileSync(join(root, p), t);
  }
  return root;
}

test('a run folder summarised: best epoch, summed time, weighted images/s, peak RSS, weights', async () => {
  const root = runTree();
  const s = await summarizeRun(join(root, 'runs', 'R'));
  assert.ok(s);
  assert.equal(s.bestTestAccuracy, 0.75);
  assert.equal(s.bestEpoch, 2, 'the first epoch reaching the best accuracy');
  assert.equal(s.trainSeconds, 12);
  // (100*2 + 50*4 + 40*6) / 12 = 640 / 12 images/s.
  assert.equal(s.imagesPerSecond, 640 / 12);
  assert.equal(s.peakRssBytes, 7e8);
  assert.equal(s.params, 330);
  assert.equal(s.status, 'FINISHED');
  assert.equal(s.name, 'p-20250101T000000-abcdef');
  assert.deepEqual(s.curve, [{ epoch: 1, testAccuracy: 0.6 }, { epoch: 2, testAccuracy: 0.75 }, { epoch: 3, testAccuracy: 0.75 }]);
  assert.equal(await summarizeRun(join(root, 'runs', 'OTHER')), undefined, 'no lock.json: not a run');
});

const row = (name: string, acc: number | undefined, extra: Partial<RunSummary> = {}): RunSummary => ({
  runId: `id-${name}`, runDir: '/x', pipeline: 'p', name, status: acc === undefined ? 'FAILED' : 'FINISHED', curve: [], startedAt: 0,
  ...(acc !== undefined ? { bestTestAccuracy: acc, bestEpoch: 3, trainSeconds: 12.34, imagesPerSecond: 1234.5, peakRssBytes: 512_300_000, params: 78_138, backend: 'wasm' } : {}),
  ...extra,
});

test('rows sort by best test accuracy, finished runs first, runs without one last, ties by name', () => {
  const rows = [row('c', 0.5), row('f', undefined), row('b', 0.9), row('a', 0.5), row('k', 0.95, { status: 'KILLED' }), row('x', 0.4, { status: 'FAILED' })];
  assert.deepEqual(sortRows(rows).map((r) => r.name), ['b', 'a', 'c', 'k', 'x', 'f']);
  assert.equal(bestRow(rows)?.name, 'b');
  assert.equal(bestRow([row('k', 0.95, { status: 'KILLED' })]), undefined);
});

test('CSV: raw values in base units, RFC 4180 quoting, CRLF', () => {
  const csv = toCsv([row('lr=1e-3', 0.8125, { mlflowRunId: 'm1' }), row('x,"y"', undefined)]);
  assert.equal(csv, [
    'trial,status,best_test_accuracy,best_epoch,train_seconds,images_per_second,peak_rss_bytes,params,backend,run_id,mlflow_run_id',
    'lr=1e-3,FINISHED,0.8125,3,12.34,1234.5,512300000,78138,wasm,id-lr=1e-3,m1',
    '"x,""y""",FAILED,,,,,,,,"id-x,""y""",',
    '',
  ].join('\r\n'));
});

test('markdown and text tables: people units, alignment', () => {
  const rows = [row('a', 0.8125), row('bb', undefined)];
  assert.equal(toMarkdown(rows), [
    '| trial | status | best test acc | epoch | train time (s) | images/s | peak RSS (MB) | params | backend | run |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |',
    '| a | FINISHED | 81.25% | 3 | 12.3 | 1235 | 512.3 | 78,138 | wasm | id-a |',
    '| bb | FAILED | - | - | - | - | - | - | - | id-bb |',
    '',
  ].join('\n'));
  const lines = formatTable(rows).split('\n');
  assert.equal(lines.length, 3);
  assert.equal(lines[1], 'a      FINISHED         81.25%      3            12.3      1235          512.3  78,138  wasm     id-a');
  assert.equal(new Set(lines.map((l) => l.indexOf('FAILED') >= 0 ? l.indexOf('FAILED') : l.indexOf('FINISHED') >= 0 ? l.indexOf('FINISHED') : l.indexOf('status'))).size, 1, 'status column aligned');
});

test('chart specs carry the rows, sorted; the files are written', async () => {
  const rows = [row('a', 0.5, { trainSeconds: 3, curve: [{ epoch: 1, testAccuracy: 0.4 }, { epoch: 2, testAccuracy: 0.5 }] }), row('b', 0.75, { trainSeconds: 7, curve: [{ epoch: 1, testAccuracy: 0.75 }] }), row('f', undefined)];
  const data = (spec: object): unknown => (spec as { data: { values: unknown } }).data.values;
  assert.deepEqual(data(accuracyBarSpec(rows)), [{ trial: 'b', label: 'b', accuracy: 0.75 }, { trial: 'a', label: 'a', accuracy: 0.5 }]);
  assert.deepEqual(data(timeBarSpec(rows)), [{ trial: 'b', label: 'b', seconds: 7 }, { trial: 'a', label: 'a', seconds: 3 }]);
  assert.deepEqual(data(curvesSpec(rows)), [{ trial: 'b', label: 'b', epoch: 1, accuracy: 0.75 }, { trial: 'a', label: 'a', epoch: 1, accuracy: 0.4 }, { trial: 'a', label: 'a', epoch: 2, accuracy: 0.5 }]);
  const dir = makeTree({});
  const files = await plotComparison(rows, dir);
  assert.equal(files.length, 3);
  for (const f of files) assert.ok(existsSync(f.png) && existsSync(f.svg));
  const curves = readFileSync(files[2]!.svg, 'utf8');
  // Vega draws one line-mark group per series: one per trial with a curve (a and b).
  assert.equal((curves.match(new RegExp(`class="mark-line role-mark ${SWEEP_MARKS.curveLine}_marks"`, 'g')) ?? []).length, 2);
  assert.match(readFileSync(files[0]!.svg, 'utf8'), /accuracy_bar_marks/);
});

test('run labels tell trials apart: swept values under the keys, a long common prefix dropped, short names whole', () => {
  assert.deepEqual(runLabels(['arch=test_resnet18,lr=1e-3', 'arch=test_resnet50,lr=1e-3', 'arch=test_resnet18,lr=3e-3']),
    { labels: ['test_resnet18, 1e-3', 'test_resnet50, 1e-3', 'test_resnet18, 3e-3'], title: 'trial (arch, lr)' });
  // commas inside a flow value or a quoted string do not split it; the #n of names that print alike is kept
  assert.deepEqual(runLabels(['ops={a: 1, b: 2},tag="x,y"', 'ops={a: 1, b: 3},tag="x,y"']), { labels: ['{a: 1, b: 2}, "x,y"', '{a: 1, b: 3}, "x,y"'], title: 'trial (ops, tag)' });
  assert.deepEqual(runLabels(['n=1#1', 'n=1#2']), { labels: ['1#1', '1#2'], title: 'trial (n)' });
  assert.deepEqual(runLabels(['fashion-mnist-quickstart-20250101T000000-abcdef', 'fashion-mnist-quickstart-20250101T000100-123456']),
    { labels: ['20250101T000000-abcdef', '20250101T000100-123456'], title: 'trial (fashion-mnist-quickstart-…)' });
  assert.deepEqual(runLabels(['trial-1', 'trial-2']), { labels: ['trial-1', 'trial-2'], title: 'trial' });
  assert.deepEqual(runLabels(['lr=1e-3', 'arch=x']), { labels: ['lr=1e-3', 'arch=x'], title: 'trial' }, 'different keys: whole names');
});

test('the curves legend and the bar axes show every trial distinguishable, nothing cut with "…"', async () => {
  const names = ['arch=test_resnet18,lr=1e-3,optimizer=adamw', 'arch=test_resnet50,lr=1e-3,optimizer=adamw', 'arch=test_resnet18,lr=3e-3,optimizer=sgd'];
  const rows = names.map((n, i) => row(n, 0.5 + i / 10, { curve: [{ epoch: 1, testAccuracy: 0.4 + i / 10 }, { epoch: 2, testAccuracy: 0.5 + i / 10 }] }));
  const files = await plotComparison(rows, makeTree({}));
  const texts = (svg: string, role: string): string[] =>
    [...svg.matchAll(new RegExp(`<g class="mark-text role-${role}"[^>]*>((?:<text[^>]*>[^<]*</text>)+)</g>`, 'g'))].flatMap((m) => [...m[1]!.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((t) => t[1]!));
  const expected = ['test_resnet18, 3e-3, sgd', 'test_resnet50, 1e-3, adamw', 'test_resnet18, 1e-3, adamw']; // best accuracy first
  const curves = readFileSync(files[2]!.svg, 'utf8');
  assert.deepEqual(texts(curves, 'legend-label'), expected);
  assert.deepEqual(texts(curves, 'legend-title'), ['trial (arch, lr, optimizer)']);
  for (const f of files.slice(0, 2)) assert.deepEqual(texts(readFileSync(f.svg, 'utf8'), 'axis-label').filter((t) => t.includes(',')), expected, f.svg);
  for (const f of files) assert.doesNotMatch(readFileSync(f.svg, 'utf8'), /…/, f.svg);
});
