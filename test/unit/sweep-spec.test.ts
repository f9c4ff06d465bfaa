/**
 * Sweep specs: the `sweep:` block (grid and long form) and its schema errors, `--sweep` parsing
 * (Hydra-style commas, YAML scalars), merging, grid/random expansion and trial names.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadPipeline } from '../../src/config/load.js';
import { parseOverride } from '../../src/config/overrides.js';
import { PipelineError } from '../../src/errors.js';
import { Rng } from '../../src/rng.js';
import { expandSweep, formatValue, pathLabels, sampleWithoutReplacement, yamlValue } from '../../src/sweep/expand.js';
import { mergeSweep, parseSweepArg, splitTopLevel, sweepFromConfig, type SweepSpec } from '../../src/sweep/spec.js';
import { makeTree } from '../utils.js';

const STAGES = 'stages:\n  m: { kind: build-model, with: { arch: mini_resnet } }\n';

async function load(sweep: string): Promise<ReturnType<typeof sweepFromConfig>> {
  const root = makeTree({ 'p.yaml': `name: s\n${STAGES}sweep:\n${sweep}` });
  return sweepFromConfig((await loadPipeline(join(root, 'p.yaml'))).config);
}

async function loadError(sweep: string): Promise<string> {
  const root = makeTree({ 'p.yaml': `name: s\n${STAGES}sweep:\n${sweep}` });
  try {
    await loadPipeline(join(root, 'p.yaml'));
  } catch (e) {
    assert.ok(e instanceof PipelineError);
    return e.message.split(root).join('<root>');
  }
  return assert.fail('expected a validation error');
}

test('the sweep: block: grid form and long form (grid, random)', async () => {
  assert.deepEqual(await load('  stages.m.with.arch: [mini_resnet, resnet18]\n  seed: [1, 2]\n'), {
    mode: 'grid', seed: 0, params: [
      { path: 'stages.m.with.arch', values: ['mini_resnet', 'resnet18'], source: 'file' },
      { path: 'seed', values: [1, 2], source: 'file' },
    ],
  });
  assert.deepEqual(await load('  mode: random\n  trials: 3\n  seed: 9\n  params: { stages.m.with.arch: [a, b] }\n'), {
    mode: 'random', trials: 3, seed: 9, params: [{ path: 'stages.m.with.arch', values: ['a', 'b'], source: 'file' }],
  });
  assert.equal((await load('  mode: grid\n  params: { seed: [1] }\n'))?.mode, 'grid');
});

test('schema errors in the sweep: block name the field', async () => {
  assert.match(await loadError('  mode: random\n  params: { seed: [1, 2] }\n'), /p\.yaml:5:3: sweep: missing required key 'trials'/);
  assert.match(await loadError('  mode: best\n  trials: 2\n  params: { seed: [1] }\n'), /sweep\.mode: expected one of grid, random; found string "best"/);
  assert.match(await loadError('  stages.m.with.arch: resnet18\n'), /p\.yaml:5:23: sweep\.stages\.m\.with\.arch: expected (array|a list), found string "resnet18"/);
  assert.match(await loadError('  mode: grid\n  trails: 2\n  params: { seed: [1] }\n'), /unknown key 'trails'.*Did you mean 'trials'\?/);
});

test('--sweep values: YAML 1.2 scalars split at top-level commas', () => {
  assert.deepEqual(parseSweepArg('stages.head.with.optimizer.lr=1e-3,1e-4'), { path: 'stages.head.with.optimizer.lr', values: [0.001, 0.0001], source: 'cli' });
  assert.deepEqual(parseSweepArg('a.b="1e-3",yes,null,true').values, ['1e-3', 'yes', null, true]);
  assert.deepEqual(parseSweepArg('a.b={from: layer3},all').values, [{ from: 'layer3' }, 'all']);
  assert.deepEqual(parseSweepArg('a.b=[1, 2],[3]').values, [[1, 2], [3]]);
  assert.deepEqual(splitTopLevel(`"a,b",'c,d',[1,{x: 2}],e`), [`"a,b"`, `'c,d'`, '[1,{x: 2}]', 'e']);
});

test('--sweep mistakes are usage errors that say what to do', () => {
  const msg = (expr: string): string => {
    try {
      parseSweepArg(expr);
    } catch (e) {
      assert.ok(e instanceof PipelineError && e.exitCode === 2);
      return e.message;
    }
    return assert.fail(`accepted ${expr}`);
  };
  assert.match(msg('stages.m.with.arch'), /expected <dotted.path>=<value>,<value>/);
  assert.match(msg('a.b=1,,2'), /empty value/);
  assert.match(msg('name=a,b'), /'name' cannot be swept/);
  assert.match(msg('a..b=1'), /not a dotted config path/);
  assert.match(msg('a.b=[1,'), /is not valid YAML/);
});

test('--sweep replaces a path of the file in place and appends new ones', () => {
  const file: SweepSpec = { mode: 'grid', seed: 0, params: [{ path: 'a', values: [1, 2], source: 'file' }, { path: 'b', values: [3], source: 'file' }] };
  const merged = mergeSweep(file, [parseSweepArg('b=4,5'), parseSweepArg('c=x')]);
  assert.deepEqual(merged?.params.map((p) => [p.path, p.values]), [['a', [1, 2]], ['b', [4, 5]], ['c', ['x']]]);
  assert.equal(mergeSweep(undefined, []), undefined);
});

test('one path given to --sweep twice is refused, not silently narrowed to the last list', () => {
  assert.throws(() => mergeSweep(undefined, [parseSweepArg('stages.head.with.epochs=1,2'), parseSweepArg('stages.head.with.epochs=3,4')]), (e: Error & { exitCode?: number }) =>
    e.message === '--sweep stages.head.with.epochs is given twice; list all its values in one --sweep (stages.head.with.epochs=a,b,c)' && e.exitCode === 2);
});

test('grid: every combination, first param slowest, named by what differs', () => {
  const spec: SweepSpec = { mode: 'grid', seed: 0, params: [
    { path: 'stages.model.with.arch', values: ['resnet18', 'resnet50'], source: 'file' },
    { path: 'stages.head.with.epochs', values: [2], source: 'file' },
    { path: 'stages.head.with.optimizer.lr', values: [0.001, 0.0001, 0.0003], source: 'cli' },
  ] };
  const trials = expandSweep(spec);
  assert.deepEqual(trials.map((t) => t.name), [
    'arch=resnet18,lr=1e-3', 'arch=resnet18,lr=1e-4', 'arch=resnet18,lr=3e-4',
    'arch=resnet50,lr=1e-3', 'arch=resnet50,lr=1e-4', 'arch=resnet50,lr=3e-4',
  ]);
  assert.deepEqual(trials.map((t) => t.index), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(trials[4]!.overrides.map((o) => o.expr), ['stages.model.with.arch=resnet50', 'stages.head.with.epochs=2', 'stages.head.with.optimizer.lr=0.0001']);
  assert.deepEqual(expandSweep({ mode: 'grid', seed: 0, params: [{ path: 'seed', values: [5], source: 'cli' }] }).map((t) => t.name), ['trial-1']);
});

test('labels: the shortest unambiguous suffix, without stages/with', () => {
  assert.deepEqual(pathLabels(['stages.head.with.optimizer.lr', 'stages.finetune.with.optimizer.lr', 'stages.model.with.arch']), ['head.optimizer.lr', 'finetune.optimizer.lr', 'arch']);
  assert.deepEqual(pathLabels(['seed', 'stages.data.with.seed']), ['seed', 'data.seed']);
});

test('trial-name values: the shorter of decimal and exponent form; strings and mappings readable', () => {
  assert.deepEqual([0.0001, 0.001, 0.0003, 100, 0.5, 1e21, 2].map(formatValue), ['1e-4', '1e-3', '3e-4', '100', '0.5', '1e21', '2']);
  assert.equal(formatValue('resnet50'), 'resnet50');
  assert.equal(formatValue('a,b'), '"a,b"');
  assert.equal(formatValue({ from: 'layer3' }), '{ from: layer3 }');
});

test('--set expressions of trial values parse back to the same values', () => {
  for (const v of [0.0001, 3, 'resnet50', '1e-3', 'yes', 'true', '', null, true, { from: 'layer3' }, [1, 'a b'], 'a: b', 'line\nbreak', '#x']) {
    assert.deepEqual(parseOverride(`a.b=${yamlValue(v)}`).value, v, `value ${JSON.stringify(v)} -> ${yamlValue(v)}`);
  }
});

test('random: distinct combinations of the grid, reproducible by seed; the whole grid when trials >= its size', () => {
  const params = [
    { path: 'a', values: [1, 2, 3, 4], source: 'file' as const },
    { path: 'b', values: ['x', 'y', 'z'], source: 'file' as const },
  ];
  const key = (t: { assignments: { value: unknown }[] }): string => JSON.stringify(t.assignments.map((a) => a.value));
  const grid = new Set(expandSweep({ mode: 'grid', seed: 0, params }).map(key));
  const r = expandSweep({ mode: 'random', trials: 5, seed: 11, params }).map(key);
  assert.equal(r.length, 5);
  assert.equal(new Set(r).size, 5);
  assert.ok(r.every((k) => grid.has(k)));
  assert.deepEqual(expandSweep({ mode: 'random', trials: 5, seed: 11, params }).map(key), r);
  const all = expandSweep({ mode: 'random', trials: 50, seed: 3, params }).map(key);
  assert.deepEqual([...all].sort(), [...grid].sort());
});

test('sampling without replacement: uniform over the first draw (chi-square, 12 cells)', () => {
  const rng = new Rng(1);
  const counts = new Array<number>(12).fill(0);
  const n = 6000;
  for (let i = 0; i < n; i++) counts[sampleWithoutReplacement(12, 3, rng)[0]!]!++;
  const expected = n / 12;
  const chi2 = counts.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
  // 11 degrees of freedom: P(chi2 > 31.26) = 0.001.
  assert.ok(chi2 < 31.26, `chi2 ${chi2.toFixed(1)}, counts ${counts.join(',')}`);
});

test('a grid over MAX_TRIALS combinations is refused with a hint', () => {
  const big = Array.from({ length: 101 }, (_, i) => i);
  assert.throws(() => expandSweep({ mode: 'grid', seed: 0, params: [{ path: 'a', values: big, source: 'cli' }, { path: 'b', values: big, source: 'cli' }] }), /10201 combinations \(101 x 101\); at most 10000: use mode: random/);
});
