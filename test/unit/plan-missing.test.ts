/**
 * `pipe plan` marks the data and weights a run would download (issue 20 point 6): with an empty
 * download cache of the test's own (PIPE_CACHE), the download stage of CIFAR-10 / MNIST and a
 * build-model stage with `weights: imagenet` are marked, naming the exact file (the weights' URL,
 * sha256 and size from test/fixtures/weights/weights.json, the independent record of the pins)
 * and where it goes; once the files are in place, nothing is marked. A `source:` is at hand when
 * it exists. Through the CLI's report functions (text and `--format json`), in this process.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { planReport, type PlanJson } from '../../src/cli/validate.js';
import { PipelineError } from '../../src/errors.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fixtures');
const PINS = JSON.parse(readFileSync(join(FIXTURES, 'weights', 'weights.json'), 'utf8')) as Array<{ arch: string; url: string; sha256: string; size_bytes: number; hub_id: string }>;
const pin = PINS.find((w) => w.arch === 'resnet18')!;

let tmp = '';
let cache = '';
const saved: Record<string, string | undefined> = {};

/** A pipeline file: a download stage with `data` (its `with:` as flow YAML) and resnet18 with `weights`. */
function pipeline(name: string, data: string, weights: string): string {
  const file = join(tmp, `${name}.yaml`);
  writeFileSync(file, `name: ${name}
stages:
  data: { kind: download, with: ${data} }
  model: { kind: build-model, needs: [data], with: { arch: resnet18, weights: ${weights} } }
`);
  return file;
}

const planJson = async (file: string): Promise<PlanJson> => JSON.parse(await planReport(file, { format: 'json' })) as PlanJson;
const missingOf = (p: PlanJson, stage: string): string[] => p.stages.find((s) => s.name === stage)!.missing.map((m) => `${m.what}: ${m.note}`);

describe('pipe plan: data and weights not cached yet', () => {
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'pipe-plan-missing-'));
    cache = join(tmp, 'cache');
    for (const k of ['PIPE_CACHE', 'PIPE_RUNS_DIR', 'HF_ENDPOINT']) saved[k] = process.env[k];
    process.env['PIPE_CACHE'] = cache;
    process.env['PIPE_RUNS_DIR'] = join(tmp, 'runs');
    delete process.env['HF_ENDPOINT'];
  });
  after(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    rmSync(tmp, { recursive: true, force: true });
  });

  it('an empty cache: the CIFAR-10 tarball and the ImageNet weights are marked, with the exact file and place', async () => {
    const file = pipeline('cifar', '{ dataset: cifar10 }', 'imagenet');
    const p = await planJson(file);
    const weightsPath = join(cache, 'weights', 'timm--resnet18.tv_in1k', pin.sha256.slice(0, 16), 'model.safetensors');
    assert.deepEqual(missingOf(p, 'model'), [
      `weights: ${pin.hub_id}: the run downloads it; offline: download ${pin.url} (sha256 ${pin.sha256}, ${pin.size_bytes} bytes) where the network reaches it and put it at ${weightsPath}; or set HF_ENDPOINT to a Hugging Face Hub mirror`,
    ]);
    const cifarDir = join(cache, 'cifar10');
    assert.deepEqual(missingOf(p, 'data'), [
      `data: cifar10: the run downloads it into ${cifarDir}; without network: put cifar-10-binary.tar.gz (md5 c32a1d4ab5d03f1284b67883e8d87530, from https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz) in ${cifarDir}/, or set the download stage's \`source\` to its path`,
    ]);
    // The text form: one line per missing input under its stage.
    const text = (await planReport(file, {})).split('\n');
    const at = text.findIndex((l) => l.startsWith('  2. model [build-model]'));
    assert.ok(at > 0, text.join('\n'));
    assert.equal(text[at + 1], `     ${missingOf(p, 'model')[0]!.replace(/^weights: /, 'weights not cached yet: ')}`);
    assert.equal(text[at - 1], `     ${missingOf(p, 'data')[0]!.replace(/^data: /, 'data not cached yet: ')}`);
    // The graph forms say which inputs, in one line of the stage's node.
    const mermaid = await planReport(file, { format: 'mermaid' });
    assert.ok(mermaid.includes('  s2["model (build-model)<br/>run<br/>weights not cached yet"]'), mermaid);
    assert.ok(mermaid.includes('  s1["data (download)<br/>run<br/>data not cached yet"]'), mermaid);
    assert.ok((await planReport(file, { format: 'dot' })).includes('  "model" [label="model\\nbuild-model\\nrun\\nweights not cached yet"];'));

    // A junk file of another size is no cached file: marked, its size named.
    mkdirSync(dirname(weightsPath), { recursive: true });
    writeFileSync(weightsPath, 'junk\n');
    mkdirSync(cifarDir, { recursive: true });
    writeFileSync(join(cifarDir, 'cifar-10-binary.tar.gz'), 'junk\n');
    const junk = await planJson(file);
    assert.deepEqual(missingOf(junk, 'model'), [missingOf(p, 'model')[0]!.replace(`${pin.hub_id}:`, `${pin.hub_id} (the cached file is 5 bytes, not the published ${pin.size_bytes}: a partial download or another file):`)]);
    assert.deepEqual(missingOf(junk, 'data'), [missingOf(p, 'data')[0]!.replace('cifar10:', 'cifar10 (the cached cifar-10-binary.tar.gz is 5 bytes, not 170052171: a partial download or another file):')]);
    // With files of the published sizes in place (sparse: only the size is read), nothing is marked.
    truncateSync(weightsPath, pin.size_bytes);
    truncateSync(join(cifarDir, 'cifar-10-binary.tar.gz'), 170_052_171); // CIFAR-10's size as its server sends it (TensorFlow's cifar10 tutorial log)
    const q = await planJson(file);
    assert.deepEqual(q.stages.map((s) => [s.name, s.missing]), [['data', []], ['model', []]]);
    for (const format of ['text', 'mermaid', 'dot']) assert.ok(!(await planReport(file, { format })).includes('not cached yet'), format);
  });

  it('weights from a Hub mirror (HF_ENDPOINT) name the mirror URL', async () => {
    rmSync(join(cache, 'weights'), { recursive: true, force: true });
    process.env['HF_ENDPOINT'] = 'http://hub.example:8080/';
    try {
      const [note] = missingOf(await planJson(pipeline('mirror', '{ dataset: cifar10 }', 'imagenet')), 'model');
      assert.ok(note!.startsWith(`weights: ${pin.hub_id}: the run downloads it from ${pin.url.replace('https://huggingface.co', 'http://hub.example:8080')}; offline: download ${pin.url} `), note);
    } finally {
      delete process.env['HF_ENDPOINT'];
    }
  });

  it('MNIST: marked until its four files are in the cache; weights: none is never marked', async () => {
    const file = pipeline('mnist', '{ dataset: mnist }', 'none');
    const dir = join(cache, 'mnist');
    const names = ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz', 't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'];
    const expected = `data: mnist: the run downloads it from https://ossci-datasets.s3.amazonaws.com/mnist/ into ${dir}; without network: put ${names.join(', ')} in ${dir}`;
    assert.deepEqual(missingOf(await planJson(file), 'data'), [expected]);
    assert.deepEqual(missingOf(await planJson(file), 'model'), []);
    mkdirSync(dir, { recursive: true });
    for (const n of names.slice(0, 3)) writeFileSync(join(dir, n), 'x');
    assert.deepEqual(missingOf(await planJson(file), 'data'), [expected], 'three of four is not enough');
    writeFileSync(join(dir, names[3]!.replace(/\.gz$/, '')), 'x'); // decompressed names count too
    assert.deepEqual(missingOf(await planJson(file), 'data'), []);
  });

  it('a sweep: the weights only some trials would download are named with those trials', async () => {
    rmSync(join(cache, 'weights'), { recursive: true, force: true });
    const file = pipeline('sweep', '{ dataset: cifar10 }', 'imagenet');
    const p = JSON.parse(await planReport(file, { format: 'json', sweep: ['stages.model.with.arch=resnet18,resnet34'] })) as PlanJson;
    assert.deepEqual(p.sweep, ['arch=resnet18', 'arch=resnet34']);
    // resnet18 is the base plan's (marked on its stage); resnet34 only the second trial's.
    assert.equal(missingOf(p, 'model').length, 1);
    const pin34 = PINS.find((w) => w.arch === 'resnet34')!;
    const r34 = join(cache, 'weights', 'timm--resnet34.tv_in1k', pin34.sha256.slice(0, 16), 'model.safetensors');
    assert.equal(p.sweepMissing?.length, 1, JSON.stringify(p.sweepMissing));
    const [m] = p.sweepMissing!;
    assert.deepEqual([m!.what, m!.trials], ['weights', ['arch=resnet34']]);
    assert.equal(m!.note, `${pin34.hub_id}: the run downloads it; offline: download ${pin34.url} (sha256 ${pin34.sha256}, ${pin34.size_bytes} bytes) where the network reaches it and put it at ${r34}; or set HF_ENDPOINT to a Hugging Face Hub mirror`);
    const text = await planReport(file, { sweep: ['stages.model.with.arch=resnet18,resnet34'] });
    assert.ok(text.includes(`\n     weights not cached yet for trial arch=resnet34: ${m!.note}\n`), text);
    // The graph forms mark it on the stage's node too, with the trial.
    const sweep = ['stages.model.with.arch=resnet18,resnet34'];
    const mermaid = await planReport(file, { format: 'mermaid', sweep });
    assert.ok(mermaid.includes('  s2["model (build-model)<br/>run<br/>weights not cached yet<br/>weights not cached yet for trial arch=resnet34"]'), mermaid);
    const dot = await planReport(file, { format: 'dot', sweep });
    assert.ok(dot.includes('  "model" [label="model\\nbuild-model\\nrun\\nweights not cached yet\\nweights not cached yet for trial arch=resnet34"];'), dot);
  });

  it('a local source: at hand when it holds the files; refused (exit 2, naming the field) when it does not exist or lacks them', async () => {
    const src = join(tmp, 'mnist-files');
    const file = pipeline('local', `{ dataset: mnist, source: ${src} }`, 'none');
    const names = ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz', 't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'];
    const refused = (why: string) => (e: unknown): boolean => e instanceof PipelineError && e.exitCode === 2 && e.message.includes(`stages.data.with.source: ${why}`);
    await assert.rejects(planJson(file), refused(`${src} does not exist; point it at a folder holding ${names.join(', ')}`));
    mkdirSync(src);
    for (const n of names.slice(1)) writeFileSync(join(src, n), 'x');
    await assert.rejects(planJson(file), refused(`${src} lacks ${names[0]} (the mnist files, .gz or decompressed)`));
    writeFileSync(join(src, names[0]!), 'x');
    assert.deepEqual(missingOf(await planJson(file), 'data'), []);
  });
});
