/**
 * Pipeline loading: accept/reject cases with the exact expected report (golden table, in the
 * style of DVC's tests/func/utils/test_strict_yaml.py).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadPipeline } from '../../src/config/load.js';
import { compileDag } from '../../src/dag/compile.js';
import { PipelineError } from '../../src/errors.js';
import { corruptFashionMnist, corruptFashionMnistWhy, makeTree, REPO, runCliIn } from '../utils.js';

async function errorOf(yaml: string): Promise<string> {
  const root = makeTree({ 'p.yaml': yaml });
  const path = join(root, 'p.yaml');
  try {
    const { config, source } = await loadPipeline(path);
    compileDag(config, source);
  } catch (e) {
    assert.ok(e instanceof PipelineError, `expected a PipelineError, got ${String(e)}`);
    assert.equal(e.exitCode, 2);
    return e.message.split(root).join('<root>');
  }
  assert.fail('expected the pipeline to be rejected');
}

test('the shipped pipelines validate and compile in dependency order', async () => {
  for (const f of ['fashion-mnist-quickstart.yaml', 'resnet50-cifar10.yaml']) {
    const { config, source } = await loadPipeline(join(REPO, 'pipelines', f));
    assert.deepEqual(compileDag(config, source).order, ['data', 'aug', 'model', 'head', 'finetune', 'eval', 'plots']);
  }
});

test('defaults are filled in, values are not coerced', async () => {
  const root = makeTree({ 'p.yaml': 'name: a\nstages:\n  e: { kind: evaluate }\n  t: { kind: freeze-train, with: { optimizer: { lr: 0.5 } } }\n' });
  const { config } = await loadPipeline(join(root, 'p.yaml'));
  assert.equal(config.seed, 0);
  assert.deepEqual(config.engine, { backend: 'auto' });
  assert.deepEqual(config.stages['e'], { kind: 'evaluate', needs: [], with: { batch_size: 256, splits: ['test'], top_k: 5, max_misclassified: 64 } });
  assert.deepEqual(config.stages['t']!.with, { epochs: 1, optimizer: { name: 'adam', lr: 0.5, weight_decay: 0, momentum: 0, nesterov: false } });
});

const GOLDEN: [string, string, string][] = [
  [
    'quoted number',
    'name: a\nseed: "3"\nstages: { e: { kind: evaluate } }\n',
    `'<root>/p.yaml' validation failed: 1 error
<root>/p.yaml:2:7: seed: expected integer, found string "3" (quoted numbers are strings: remove the quotes)
  2 | seed: "3"
    |       ^`,
  ],
  [
    'unknown key with suggestion',
    'name: a\nstages:\n  t:\n    kind: freeze-train\n    with:\n      optimiser: { lr: 1 }\n',
    `'<root>/p.yaml' validation failed: 1 error
<root>/p.yaml:6:7: stages.t.with.optimiser: unknown key 'optimiser'; expected one of: epochs, optimizer, max_steps_per_epoch, reduce_lr_on_plateau, lr_schedule, early_stopping. Did you mean 'optimizer'?
  6 |       optimiser: { lr: 1 }
    |       ^`,
  ],
  [
    'unknown stage kind',
    'name: a\nstages:\n  m: { kind: build-modl }\n',
    `'<root>/p.yaml' validation failed: 1 error
<root>/p.yaml:3:14: stages.m.kind: expected one of download, augment, build-model, freeze-train, unfreeze-train, evaluate, plot; found string "build-modl". Did you mean 'build-model'?
  3 |   m: { kind: build-modl }
    |              ^`,
  ],
  [
    'several errors at once, in line order',
    'name: a\nstages:\n  d: { kind: download, with: { dataset: fashion-mnst } }\n  p: { kind: plot, with: { width: 10 } }\n',
    `'<root>/p.yaml' validation failed: 2 errors
<root>/p.yaml:3:41: stages.d.with.dataset: expected one of fashion-mnist, mnist, cifar10, cifar100, imagefolder; found string "fashion-mnst". Did you mean 'fashion-mnist'?
  3 |   d: { kind: download, with: { dataset: fashion-mnst } }
    |                                         ^
<root>/p.yaml:4:35: stages.p.with.width: must be >= 100; found number 10
  4 |   p: { kind: plot, with: { width: 10 } }
    |                                   ^`,
  ],
  [
    'missing required key points at the parent',
    'name: a\nstages:\n  d:\n    with: {}\n',
    `'<root>/p.yaml' validation failed: 1 error
<root>/p.yaml:4:5: stages.d: missing required key 'kind' (one of download, augment, build-model, freeze-train, unfreeze-train, evaluate, plot)
  4 |     with: {}
    |     ^`,
  ],
  [
    'YAML 1.2 yes is a string',
    'name: a\nstages:\n  t: { kind: unfreeze-train, with: { optimizer: { lr: 1, nesterov: yes } } }\n',
    `'<root>/p.yaml' validation failed: 1 error
<root>/p.yaml:3:68: stages.t.with.optimizer.nesterov: expected boolean, found string "yes" (YAML 1.2 reads 'yes' as a string: use true/false)
  3 |   t: { kind: unfreeze-train, with: { optimizer: { lr: 1, nesterov: yes } } }
    |                                                                    ^`,
  ],
  [
    'duplicate key names both lines',
    'name: a\nname: b\nstages: { e: { kind: evaluate } }\n',
    `'<root>/p.yaml' YAML syntax error: 1 error
<root>/p.yaml:2:1: duplicate key 'name' (first defined on line 1); remove one of them
  2 | name: b
    | ^`,
  ],
  [
    'needs naming no stage',
    'name: a\nstages:\n  data: { kind: download, with: { dataset: mnist } }\n  e: { kind: evaluate, needs: [dta] }\n',
    `'<root>/p.yaml' validation failed: 1 error
<root>/p.yaml:4:32: stages.e.needs.0: stage 'e' needs 'dta', which is not a stage of this pipeline. Did you mean 'data'?
  4 |   e: { kind: evaluate, needs: [dta] }
    |                                ^`,
  ],
  [
    'cycle lists every stage',
    'name: a\nstages:\n  a: { kind: evaluate, needs: [c] }\n  b: { kind: evaluate, needs: [a] }\n  c: { kind: evaluate, needs: [b] }\n',
    `'<root>/p.yaml' validation failed: 1 error
<root>/p.yaml:3:32: stages.a.needs.0: cycle between stages: a -> b -> c -> a (each stage needs the one before it); remove one of these needs
  3 |   a: { kind: evaluate, needs: [c] }
    |                                ^`,
  ],
  [
    'a stage depending on itself',
    'name: a\nstages:\n  a: { kind: evaluate, needs: [a] }\n',
    `'<root>/p.yaml' validation failed: 1 error
<root>/p.yaml:3:32: stages.a.needs.0: stage 'a' needs itself; remove 'a' from its needs
  3 |   a: { kind: evaluate, needs: [a] }
    |                                ^`,
  ],
];

for (const [name, yaml, expected] of GOLDEN) {
  test(`rejects: ${name}`, async () => {
    assert.equal(await errorOf(yaml), expected);
  });
}

test('a missing file is a usage error naming the file', async () => {
  await assert.rejects(loadPipeline('/nonexistent/p.yaml'), (e: unknown) => e instanceof PipelineError && e.exitCode === 2 && e.message === "cannot read pipeline file '/nonexistent/p.yaml': no such file");
});

test('overrides are plain data: reserved keys are refused and no prototype changes', async () => {
  const { applyOverrides, parseOverride } = await import('../../src/config/overrides.js');
  const usage = (re: RegExp) => (e: unknown) => e instanceof PipelineError && e.exitCode === 2 && re.test(e.message);
  assert.throws(() => parseOverride('__proto__.polluted=1'), usage(/^--set __proto__\.polluted=1: '__proto__' cannot be a config key/));
  assert.throws(() => parseOverride('stages.prototype.kind=evaluate'), usage(/'prototype' cannot be a config key/));
  assert.throws(() => parseOverride('stages.a.with=[{"constructor": 1}]'), usage(/'constructor' cannot be a config key/));
  // Overrides made in code (a sweep's trials) do not pass parseOverride: applyOverrides refuses them too.
  const data: Record<string, unknown> = {};
  assert.throws(() => applyOverrides(data, [{ expr: '__proto__.polluted=1', path: ['__proto__', 'polluted'], value: 1 }]), usage(/'__proto__'/));
  // An own `__proto__` key made by YAML is data: applying over it defines own properties only.
  const root = makeTree({ 'p.yaml': 'name: a\nstages: { e: { kind: evaluate } }\n' });
  await assert.rejects(loadPipeline(join(root, 'p.yaml'), [{ expr: 'x', path: ['constructor', 'prototype', 'polluted'], value: 1 }]), usage(/'constructor'/));
  const plain = JSON.parse('{"__proto__": {"a": 1}}') as Record<string, unknown>;
  applyOverrides(plain, [{ expr: 'x', path: ['toString', 'y'], value: 2 }]);
  assert.deepEqual(Object.keys(plain), ['__proto__', 'toString']);
  assert.equal(Object.getPrototypeOf(plain), Object.prototype);
  assert.equal((Object.prototype as Record<string, unknown>)['polluted'], undefined);
  assert.equal(({} as Record<string, unknown>)['a'], undefined);
});

test('a file over 1 MB is refused unread, naming its size', async () => {
  const root = makeTree({});
  const path = join(root, 'big.yaml');
  writeFileSync(path, 'name: a\n');
  truncateSync(path, 55 * 1024 * 1024); // sparse: nothing is written, stat says 55 MB
  await assert.rejects(loadPipeline(path), (e: unknown) => e instanceof PipelineError && e.exitCode === 2 && e.message === `'${path}' is 55.0 MB; a pipeline file is at most 1 MB (is it the right file?)`);
});

test('nesting that exhausts the parser is one located error, its quoted line cut to ~200 characters', async () => {
  // 5,000 flow levels: the parser runs out of stack; the report points at the 65th bracket.
  const flow = `name: a\nstages: ${'['.repeat(5000)}${']'.repeat(5000)}\n`;
  const msg = await errorOf(flow);
  const lines = msg.split('\n');
  assert.equal(lines[0], "'<root>/p.yaml' YAML syntax error: 1 error");
  assert.equal(lines[1], '<root>/p.yaml:2:72: nesting deeper than 64 levels of mappings and lists; a pipeline file needs far fewer');
  assert.equal(lines[2], `  2 | stages: ${'['.repeat(192)}...`);
  assert.equal(lines[3], `    | ${' '.repeat(71)}^`);
  assert.ok(lines.every((l) => l.length < 220), 'no line is quoted whole');
  // Block nesting 1,000 levels deep, one space each (~500 kB).
  let block = 'name: a\nstages:\n';
  for (let i = 1; i < 1000; i++) block += `${' '.repeat(i)}k:\n`;
  const msg2 = await errorOf(block);
  assert.match(msg2, /nesting deeper than 64 levels of mappings and lists/);
  assert.ok(msg2.split('\n').every((l) => l.length < 220));
});

test('dataset facts for the static checks come from the dataset definitions (and the imagefolder listing)', async () => {
  const { datasetFacts } = await import('../../src/data/datasets.js');
  // Published facts: Fashion-MNIST/MNIST 10 classes of 28x28 grey; CIFAR-10/100 10/100 classes of 32x32 RGB.
  // Fashion-MNIST's label names as Zalando's README lists them (https://github.com/zalandoresearch/fashion-mnist).
  // Images per class: Fashion-MNIST 6,000/1,000 (Xiao et al. 2017), CIFAR-10 5,000/1,000 and CIFAR-100 500/100 (Krizhevsky's
  // page), MNIST torch.bincount of torchvision's MNIST targets (train: its docstring; test: the same count of t10k).
  const each = (n: number, k: number): number[] => Array<number>(k).fill(n);
  assert.deepEqual(datasetFacts({ dataset: 'fashion-mnist' }), { classes: 10, classNames: ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'], shape: [28, 28, 1], channels: 1, perClass: { train: each(6000, 10), test: each(1000, 10) } });
  const mnistCounts = { train: [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949], test: [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009] };
  assert.deepEqual({ ...datasetFacts({ dataset: 'mnist' }), classNames: undefined }, { ...{ classes: 10, shape: [28, 28, 1], channels: 1, perClass: mnistCounts }, classNames: undefined });
  assert.deepEqual({ ...datasetFacts({ dataset: 'cifar10' }), classNames: undefined }, { ...{ classes: 10, shape: [32, 32, 3], channels: 3, perClass: { train: each(5000, 10), test: each(1000, 10) } }, classNames: undefined });
  assert.deepEqual({ ...datasetFacts({ dataset: 'cifar100' }), classNames: undefined }, { ...{ classes: 100, shape: [32, 32, 3], channels: 3, perClass: { train: each(500, 100), test: each(100, 100) } }, classNames: undefined });
  // A folder of unpacked CIFAR batches is read as it is: its counts are not the published ones.
  const unpacked = makeTree(Object.fromEntries(['1', '2', '3', '4', '5'].map((k) => [`cifar-10-batches-bin/data_batch_${k}.bin`, ''])));
  assert.equal(datasetFacts({ dataset: 'cifar10', source: unpacked }).perClass, undefined);
  const root = makeTree({ 'train/a/x.png': '', 'train/b/x.png': '', 'train/.hidden/x.png': '', 'train/notes.txt': '' });
  assert.deepEqual(datasetFacts({ dataset: 'imagefolder', source: root, image_size: [20, 30] }), { classes: 2, shape: [20, 30, 3], channels: 3 });
  assert.deepEqual(datasetFacts({ dataset: 'imagefolder', source: join(root, 'missing'), channels: 1 }), { channels: 1 });
  // An imagefolder's images per class, as its loader lists them (image files only; classes from train/, sorted).
  const { imageFolderCounts } = await import('../../src/data/imagefolder.js');
  const folder = makeTree({ 'train/b/1.png': '', 'train/b/2.JPG': '', 'train/b/n.txt': '', 'train/a/1.png': '', 'val/a/1.webp': '', 'val/a/2.png': '' });
  assert.deepEqual(imageFolderCounts(folder), { classes: ['a', 'b'], train: [1, 2], test: [2, 0] });
  assert.equal(imageFolderCounts(root), undefined, 'no test/ or val/');
});

test('a run or sweep the tracking store refuses at start leaves nothing under runs/ (exit 2, no stack trace)', async () => {
  const stages = 'stages:\n  data: { kind: download, with: { dataset: fashion-mnist, source: ./d } }\n';
  const root = makeTree({
    ...corruptFashionMnist('d'),
    'p.yaml': `name: refused\n${stages}`,
    's.yaml': `name: refused\n${stages}sweep:\n  stages.data.with.subset.train: [10, 20]\n`,
    blocker: 'a file, not a folder\n',
  });
  for (const f of ['p.yaml', 's.yaml']) {
    const r = await runCliIn(root, ['run', f], { MLFLOW_TRACKING_URI: `file://${join(root, 'blocker', 'store')}` });
    assert.equal(r.exitCode, 2, r.stderr);
    assert.match(r.stderr, /^pipe: cannot mkdir <root>\/blocker/m);
    assert.doesNotMatch(r.stderr, /internal error|\n\s+at /);
    const runs = join(root, 'runs');
    assert.deepEqual(existsSync(runs) ? readdirSync(runs) : [], [], f);
  }
});

test('a pipeline read from a pipe (`<(cat f)`, /dev/stdin): validated and its errors located as for a file; over 1 MB refused; a sweep\'s trials read what was read', async () => {
  const { execFile } = await import('node:child_process');
  const pipe = join(REPO, 'bin', 'pipe.js');
  const bash = (root: string, script: string): Promise<{ code: number; stdout: string; stderr: string }> => new Promise((res) => {
    execFile('bash', ['-c', script], { cwd: root, env: { ...process.env, PIPE_RUNS_DIR: join(root, 'runs'), MLFLOW_TRACKING_URI: '' }, maxBuffer: 1 << 20 }, (e, stdout, stderr) =>
      res({ code: e ? Number((e as { code?: number }).code) : 0, stdout, stderr }));
  });
  const good = 'name: piped\nstages:\n  data: { kind: download, with: { dataset: fashion-mnist, source: ./d } }\n  aug: { kind: augment, needs: [data] }\n';
  const root = makeTree({ 'p.yaml': good, 'bad.yaml': 'name: piped\nstages:\n  data: { kind: downlod }\n', ...corruptFashionMnist('d') });
  const v = await bash(root, `node ${pipe} validate <(cat p.yaml)`);
  assert.equal(v.code, 0, v.stderr);
  assert.match(v.stdout, /^'\/dev\/fd\/\d+' is valid: 2 stages, in order:\n {2}1\. data \[download\]\n {2}2\. aug \[augment\] <- data\n$/);
  const s = await bash(root, `cat p.yaml | node ${pipe} validate /dev/stdin`);
  assert.equal(s.code, 0, s.stderr);
  assert.equal(s.stdout, "'/dev/stdin' is valid: 2 stages, in order:\n  1. data [download]\n  2. aug [augment] <- data\n");
  const b = await bash(root, `node ${pipe} validate <(cat bad.yaml)`);
  assert.equal(b.code, 2);
  assert.match(b.stderr, /^\/dev\/fd\/\d+:3:17: stages\.data\.kind: expected one of download, .*Did you mean .download.\?$/m);
  assert.match(b.stderr, / {2}3 \| {3}data: \{ kind: downlod \}$/m);
  const big = await bash(root, `node ${pipe} validate <(head -c 2000000 /dev/zero | tr '\\0' '#')`);
  assert.equal(big.code, 2);
  assert.match(big.stderr, /^pipe: '\/dev\/fd\/\d+' is more than 1 MB; a pipeline file is at most 1 MB \(is it the right file\?\)$/m);
  // A sweep's trials (child processes) read the text the sweep read, not the drained pipe: the trial fails at run time, in stage data.
  const sweep = `${good}sweep:\n  stages.data.with.subset.train: [10, 20]\n`; // ./d holds corrupt files: a run-time failure
  writeFileSync(join(root, 's.yaml'), sweep);
  const sw = await bash(root, `node ${pipe} run <(cat s.yaml)`);
  assert.equal(sw.code, 1, sw.stderr);
  assert.match(sw.stdout, new RegExp(`^✗ trial 1/2 train=10: FAILED after [\\d.]+ s: stage 'data' failed: ${corruptFashionMnistWhy('d')}$`, 'm'));
  const copy = /^sweep: (\S+) {2}comparison: /m.exec(sw.stdout)?.[1];
  assert.ok(copy, sw.stdout);
  assert.equal(readFileSync(join(root, 'runs', copy, 'pipeline.yaml'), 'utf8'), sweep);
});
