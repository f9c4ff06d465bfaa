/**
 * Whole pipelines against a real MLflow (3.6) tracking server and MLflow's own Python client
 * (test/real-mlflow.ts says where they come from; `.ci/run` starts the server). Every run is the
 * seven-stage pipeline on a tiny imagefolder the test writes (3 classes, 8 train / 4 test images
 * each, 12x12 px; 3 steps per epoch, 2 freeze + 1 unfreeze epochs), so a run takes seconds.
 * What is read back is compared with what the run left on disk (state.json, report.json, the
 * stage folders), not with what pipe meant to send.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse } from 'yaml';
import { FileStore } from '../../src/tracking/file/store.js';
import { MlflowClient } from '../../src/tracking/rest/client.js';
import type { Run, WireMetric } from '../../src/tracking/rest/types.js';
import { flattenParams } from '../../src/tracking/params.js';
import { realMlflow } from '../real-mlflow.js';
import { makeTree, runCliIn, type CliResult } from '../utils.js';
import { writeImageFolder } from './image-folder.js';

const real = realMlflow();
const skip = real.skip;
const URI = real.skip === false ? real.uri : '';

/** A fresh experiment name per test and per run of the suite (the CI server is shared). */
const experimentName = (what: string): string => `pipe-e2e-${what}-${Date.now()}-${process.pid}`;

const pipeline = (experiment: string, extra = ''): string => `name: realtiny
description: tiny real-server run
experiment: ${experiment}
seed: 5
stages:
  data: { kind: download, with: { dataset: imagefolder, source: images } }
  aug: { kind: augment, needs: [data], with: { batch_size: 6, workers: 0, train: [ { random_crop: { size: 12, padding: 1 } } ] } }
  model: { kind: build-model, needs: [data], with: { arch: mini_resnet } }
  head: { kind: freeze-train, needs: [aug, model], with: { epochs: 2, max_steps_per_epoch: 3, optimizer: { lr: 0.01 } } }
  finetune: { kind: unfreeze-train, needs: [head], with: { epochs: 1, max_steps_per_epoch: 3, optimizer: { lr: 0.003 } } }
  eval: { kind: evaluate, needs: [finetune] }
  plots: { kind: plot, needs: [finetune, eval] }
${extra}`;

/** A folder with p.yaml and the images; PIPE_CACHE inside it. */
async function project(experiment: string, extra = ''): Promise<string> {
  const root = makeTree({ 'p.yaml': pipeline(experiment, extra) });
  await writeImageFolder(join(root, 'images'), 5, { classes: 3, train: 8, test: 4 });
  return root;
}

const env = (root: string, uri = URI): Record<string, string> => ({ MLFLOW_TRACKING_URI: uri, PIPE_CACHE: join(root, 'cache') });

/** The run folders (runs/<id> holding lock.json) under `root`, oldest first. */
function runDirs(root: string): string[] {
  const runs = join(root, 'runs');
  return readdirSync(runs).filter((d) => /^\d{8}T\d{6}-[0-9a-f]+$/.test(d) && existsSync(join(runs, d, 'lock.json'))).sort().map((d) => join(runs, d));
}

interface StateJson { epochs: Record<string, number | string>[]; iterationLosses: number[]; best: { epoch: number } }
const json = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T;
/** The finished training state of the run's last training stage (wherever the stage's folder is). */
function finalState(runDir: string): StateJson {
  const lock = json<{ stages: Record<string, { outDir: string }> }>(join(runDir, 'lock.json'));
  return json<StateJson>(join(lock.stages['finetune']!.outDir, 'state.json'));
}

const points = (h: WireMetric[]): [number, number][] => h.map((p) => [p.step, Number(p.value)] as [number, number]).sort((a, b) => a[0] - b[0]);
const tagsOf = (r: Run): Record<string, string> => Object.fromEntries((r.data.tags ?? []).map((t) => [t.key, t.value]));
const paramsOf = (r: Run): Record<string, string> => Object.fromEntries((r.data.params ?? []).map((t) => [t.key, t.value]));

/** Every artifact file of a run through the proxy: relative path -> bytes. */
async function artifacts(c: MlflowClient, run: Run): Promise<Map<string, Buffer>> {
  const root = run.info.artifact_uri.replace(/^mlflow-artifacts:(\/\/[^/]*)?\/*/, '');
  const out = new Map<string, Buffer>();
  const walk = async (rel: string): Promise<void> => {
    for (const f of await c.listArtifacts(rel ? `${root}/${rel}` : root)) {
      const path = rel ? `${rel}/${f.path.split('/').pop()}` : f.path.split('/').pop()!;
      if (f.is_dir) await walk(path);
      else out.set(path, await c.downloadArtifact(`${root}/${path}`));
    }
  };
  await walk('');
  return out;
}

/** The runs of experiment `name` on the server, oldest first. */
async function serverRuns(c: MlflowClient, name: string): Promise<Run[]> {
  const exp = await c.getExperimentByName(name);
  assert.ok(exp, `experiment ${name} on the server`);
  return (await c.searchRuns({ experimentIds: [exp.experiment_id], orderBy: ['attributes.start_time ASC'] })).runs;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function ok(r: CliResult): void {
  assert.equal(r.exitCode, 0, r.stderr + r.stdout);
  assert.doesNotMatch(r.stderr, /warning/i, 'no tracking warnings with a healthy server');
}

/** The learning curves a run's state.json holds, as the server should have them: key -> [step, value][]. */
function expectedCurves(s: StateJson): Record<string, [number, number][]> {
  const out: Record<string, [number, number][]> = { 'curves/batch_loss': s.iterationLosses.map((v, i) => [i, v]) };
  for (const k of ['train_loss', 'test_loss', 'train_accuracy', 'test_accuracy', 'lr']) out[`curves/${k}`] = s.epochs.map((e) => [Number(e['epoch']), Number(e[k])]);
  return out;
}

test('a seven-stage run on a real MLflow server reads back complete over REST', { skip }, async () => {
  const name = experimentName('run');
  const root = await project(name);
  const r = await runCliIn(root, ['run', 'p.yaml', '--plain'], env(root));
  ok(r);
  const [runDir] = runDirs(root);
  const c = new MlflowClient(URI);
  try {
    const runs = await serverRuns(c, name);
    assert.equal(runs.length, 1);
    const run = (await c.getRun(runs[0]!.info.run_id));
    assert.equal(run.info.status, 'FINISHED');
    assert.ok(run.info.end_time! >= run.info.start_time!);

    // Params: exactly the resolved config the run wrote, flattened.
    assert.deepEqual(paramsOf(run), flattenParams(parse(readFileSync(join(runDir!, 'resolved.yaml'), 'utf8'))));

    // Every batch_loss step and the per-epoch curves equal the run's own training history.
    const s = finalState(runDir!);
    assert.equal(s.iterationLosses.length, 9, '3 epochs of 3 steps');
    for (const [key, want] of Object.entries(expectedCurves(s))) assert.deepEqual(points(await c.getMetricHistory(run.info.run_id, key)), want, key);
    assert.deepEqual(points(await c.getMetricHistory(run.info.run_id, 'system/epoch_seconds')).map(([step]) => step), [1, 2, 3]);
    const report = json<{ test_accuracy: number; images: number }>(join(runDir!, 'eval', 'report.json'));
    assert.deepEqual(points(await c.getMetricHistory(run.info.run_id, 'eval/test_accuracy')), [[3, report.test_accuracy]]);

    // Tags.
    const tags = tagsOf(run);
    assert.equal(tags['mlflow.runName'], run.info.run_name);
    assert.equal(tags['mlflow.note.content'], 'tiny real-server run');
    assert.equal(tags['mlflow.source.name'], 'p.yaml');
    assert.equal(tags['pipe.best_epoch'], String(s.best.epoch));
    assert.equal(tags['pipe.unfreeze_epoch'], '3');
    assert.equal(tags['pipe.model.arch'], 'mini_resnet');
    assert.equal(tags['pipe.error'], undefined);

    // Both dataset inputs: one per split, each with its own digest and row count.
    const inputs = (run.inputs?.dataset_inputs ?? []).map((d) => ({ context: d.tags?.find((t) => t.key === 'mlflow.data.context')?.value, name: d.dataset.name, digest: d.dataset.digest, rows: JSON.parse(d.dataset.profile ?? '{}').num_rows }));
    inputs.sort((a, b) => String(a.context).localeCompare(String(b.context)));
    assert.deepEqual(inputs.map(({ context, name: n, rows }) => [context, n, rows]), [['test', 'imagefolder', 12], ['train', 'imagefolder', 24]]);
    assert.notEqual(inputs[0]!.digest, inputs[1]!.digest);
    assert.equal(tags['pipe.data.train'], `imagefolder, 24 images, ${inputs[1]!.digest}`);
    assert.equal(tags['pipe.data.test'], `imagefolder, 12 images, ${inputs[0]!.digest}`);

    // Artifacts through the proxy: the same bytes as the files on disk.
    const got = await artifacts(c, run);
    const want: Record<string, string> = {
      'pipeline/p.yaml': join(root, 'p.yaml'),
      'pipeline/resolved.yaml': join(runDir!, 'resolved.yaml'),
      'evaluation/report.json': join(runDir!, 'eval', 'report.json'),
      'evaluation/confusion-matrix-test.csv': join(runDir!, 'eval', 'confusion-matrix-test.csv'),
      'best-model/model.json': join(runDir!, 'finetune', 'best-model', 'model.json'),
      'best-model/weights.bin': join(runDir!, 'finetune', 'best-model', 'weights.bin'),
      'report.html': join(runDir!, 'plots', 'report.html'),
    };
    for (const f of readdirSync(join(runDir!, 'plots')).filter((x) => /\.(png|svg)$/.test(x))) want[`plots/${f}`] = join(runDir!, 'plots', f);
    assert.ok(Object.keys(want).some((k) => k.endsWith('.png')));
    for (const [path, file] of Object.entries(want)) {
      assert.ok(got.has(path), `artifact ${path} (have: ${[...got.keys()].join(', ')})`);
      assert.equal(sha(got.get(path)!), sha(readFileSync(file)), `bytes of ${path}`);
    }
  } finally {
    await c.close();
  }
});

test('two training chains on a real MLflow server: each chain\'s curves, evaluation and best model under its own name', { skip }, async () => {
  const name = experimentName('chains');
  // A second chain beside head -> finetune: head_b, from a model and data of its own (the same
  // test images, 6 of the training images), with its evaluation.
  const root = await project(name, `  data_b: { kind: download, with: { dataset: imagefolder, source: images, subset: { train: 6 } } }
  aug_b: { kind: augment, needs: [data_b], with: { batch_size: 6, workers: 0 } }
  model_b: { kind: build-model, needs: [data_b], with: { arch: mini_resnet } }
  head_b: { kind: freeze-train, needs: [aug_b, model_b], with: { epochs: 1, max_steps_per_epoch: 3, optimizer: { lr: 0.02 } } }
  eval_b: { kind: evaluate, needs: [head_b] }
`);
  const r = await runCliIn(root, ['run', 'p.yaml', '--plain'], env(root));
  ok(r);
  const [runDir] = runDirs(root);
  const c = new MlflowClient(URI);
  try {
    const [only] = await serverRuns(c, name);
    const run = await c.getRun(only!.info.run_id);
    const history = async (key: string): Promise<[number, number][]> => points(await c.getMetricHistory(run.info.run_id, key));
    for (const [chain, state, evalStage] of [['finetune', finalState(runDir!), 'eval'], ['head_b', json<StateJson>(join(runDir!, 'head_b', 'state.json')), 'eval_b']] as const) {
      for (const [key, want] of Object.entries(expectedCurves(state))) {
        const chainKey = key.replace('curves/', `curves/${chain}/`);
        assert.deepEqual(await history(chainKey), want, chainKey);
      }
      const report = json<{ test_accuracy: number }>(join(runDir!, evalStage, 'report.json'));
      assert.deepEqual(await history(`eval/${chain}/test_accuracy`), [[state.epochs.length, report.test_accuracy]]);
    }
    assert.deepEqual(await history('curves/test_accuracy'), [], 'no history mixing the chains');

    // Tags per chain (pipe.<chain>.best_epoch) and per download stage; four dataset inputs, the two stages' test splits apart though equal.
    const tags = tagsOf(run);
    assert.equal(tags['pipe.finetune.best_epoch'], String(finalState(runDir!).best.epoch));
    assert.equal(tags['pipe.head_b.best_epoch'], String(json<StateJson>(join(runDir!, 'head_b', 'state.json')).best.epoch));
    assert.equal(tags['pipe.finetune.unfreeze_epoch'], '3');
    for (const k of ['pipe.best_epoch', 'pipe.unfreeze_epoch', 'pipe.freeze.trainable_params', 'pipe.data.train', 'pipe.data.test']) assert.equal(tags[k], undefined, k);
    const inputs = (run.inputs?.dataset_inputs ?? []).map((d) => ({ context: d.tags?.find((t) => t.key === 'mlflow.data.context')?.value, name: d.dataset.name, digest: d.dataset.digest, rows: JSON.parse(d.dataset.profile ?? '{}').num_rows }));
    const order = (i: { name: string; context?: string }): string => `${i.name} ${i.context}`;
    inputs.sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0));
    assert.deepEqual(inputs.map((i) => [i.name, i.context, i.rows]), [['imagefolder (data)', 'test', 12], ['imagefolder (data)', 'train', 24], ['imagefolder (data_b)', 'test', 12], ['imagefolder (data_b)', 'train', 6]]);
    assert.equal(inputs[0]!.digest, inputs[2]!.digest, 'the same test images');
    for (const i of inputs) assert.equal(tags[`pipe.data.${i.name.slice('imagefolder ('.length, -1)}.${i.context}`], `${i.name}, ${i.rows} images, ${i.digest}`);
    const got = await artifacts(c, run);
    const want: Record<string, string> = {
      'best-model/finetune/weights.bin': join(runDir!, 'finetune', 'best-model', 'weights.bin'),
      'best-model/head_b/weights.bin': join(runDir!, 'head_b', 'best-model', 'weights.bin'),
      'evaluation/finetune/report.json': join(runDir!, 'eval', 'report.json'),
      'evaluation/head_b/report.json': join(runDir!, 'eval_b', 'report.json'),
      // The plot stage draws the chain finetune (no compare): its report goes into that chain's folder.
      'finetune/report.html': join(runDir!, 'plots', 'report.html'),
    };
    for (const [path, file] of Object.entries(want)) {
      assert.ok(got.has(path), `artifact ${path} (have: ${[...got.keys()].join(', ')})`);
      assert.equal(sha(got.get(path)!), sha(readFileSync(file)), `bytes of ${path}`);
    }
    assert.ok(!got.has('best-model/weights.bin') && !got.has('evaluation/report.json'), 'nothing at the shared paths');
  } finally {
    await c.close();
  }
});

test('a sweep on a real MLflow server: a parent run and its children, shared stages reused', { skip }, async () => {
  const name = experimentName('sweep');
  const root = await project(name, 'sweep:\n  stages.finetune.with.optimizer.lr: [0.003, 0.001]\n');
  const r = await runCliIn(root, ['run', 'p.yaml'], env(root));
  ok(r);
  const sweepDir = readdirSync(join(root, 'runs')).find((d) => existsSync(join(root, 'runs', d, 'sweep.json')))!;
  const state = json<{ mlflowRunId: string; trials: { runId: string; mlflowRunId: string; name: string }[] }>(join(root, 'runs', sweepDir, 'sweep.json'));
  const c = new MlflowClient(URI);
  try {
    const runs = await serverRuns(c, name);
    assert.equal(runs.length, 3, 'the parent and two children');
    const parent = runs.find((x) => x.info.run_id === state.mlflowRunId)!;
    assert.equal(parent.info.status, 'FINISHED');
    assert.equal(tagsOf(parent)['pipe.sweep'], 'true');
    const children = state.trials.map((t) => runs.find((x) => x.info.run_id === t.mlflowRunId)!);
    children.forEach((child, i) => {
      assert.equal(child.info.status, 'FINISHED');
      assert.equal(tagsOf(child)['mlflow.parentRunId'], parent.info.run_id);
      assert.equal(child.info.run_name, state.trials[i]!.name);
      assert.equal(paramsOf(child)['stages.finetune.with.optimizer.lr'], ['0.003', '0.001'][i]);
    });
    // The second child reused data..head from the first: it is as complete as the first.
    for (const [i, child] of children.entries()) {
      const s = finalState(join(root, 'runs', state.trials[i]!.runId));
      for (const [key, want] of Object.entries(expectedCurves(s))) assert.deepEqual(points(await c.getMetricHistory(child.info.run_id, key)), want, `${state.trials[i]!.name} ${key}`);
      assert.equal(tagsOf(child)['pipe.best_epoch'], String(s.best.epoch));
      assert.equal((child.inputs?.dataset_inputs ?? []).length, 2);
    }
  } finally {
    await c.close();
  }
});

/** MLflow's own Python client reading a local file store: every run of experiment `name` with its histories and artifacts. */
const READ_STORE = `
import json, sys, warnings
warnings.simplefilter("ignore")
from mlflow import MlflowClient
c = MlflowClient(sys.argv[1])
exp = c.get_experiment_by_name(sys.argv[2])
out = {"experiment_tags": dict(exp.tags), "runs": []}
def walk(run_id, path=None):
    files = []
    for f in c.list_artifacts(run_id, path):
        files += walk(run_id, f.path) if f.is_dir else [[f.path, f.file_size]]
    return files
for r in c.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"]):
    rid = r.info.run_id
    out["runs"].append({
        "run_id": rid, "status": r.info.status, "end_time": r.info.end_time, "start_time": r.info.start_time,
        "params": r.data.params, "tags": r.data.tags,
        "metrics": {k: [[m.step, m.value] for m in c.get_metric_history(rid, k)] for k in r.data.metrics},
        "artifacts": sorted(walk(rid)),
        "inputs": sorted([[d.dataset.name, d.dataset.digest, d.dataset.profile, [t.value for t in d.tags if t.key == "mlflow.data.context"]] for d in r.inputs.dataset_inputs]),
    })
print(json.dumps(out))
`;

interface PyRun { inputs: [string, string, string, string[]][]; run_id: string; status: string; end_time: number | null; start_time: number; params: Record<string, string>; tags: Record<string, string>; metrics: Record<string, [number, number][]>; artifacts: [string, number][] }

/** Runs READ_STORE with the real MLflow's Python on the file store `store`. */
function readStoreWithPython(store: string, experiment: string): { experiment_tags: Record<string, string>; runs: PyRun[] } {
  if (real.skip !== false) throw new Error('unreachable');
  const p = spawnSync(real.python, ['-c', READ_STORE, pathToFileURL(store).href, experiment], {
    env: { ...process.env, PYTHONPATH: real.pythonPath, MLFLOW_TRACKING_URI: '' }, encoding: 'utf8', maxBuffer: 64 << 20,
  });
  assert.equal(p.status, 0, p.stderr);
  return JSON.parse(p.stdout) as { experiment_tags: Record<string, string>; runs: PyRun[] };
}

test('the local file store, written with no server, reads back with MlflowClient(file://...)', { skip }, async () => {
  const name = experimentName('file');
  const root = await project(name);
  const r = await runCliIn(root, ['run', 'p.yaml', '--plain'], env(root, ''));
  ok(r);
  const [runDir] = runDirs(root);
  // The end-of-run line names the store URI MLflow opens; MLflow's own client reads it from there.
  const hint = /^MLflow store: \S+ {2}\(browse: MLFLOW_ALLOW_FILE_STORE=true mlflow server --backend-store-uri (file:\S+)\)$/m.exec(r.stdout);
  assert.ok(hint, r.stdout);
  assert.equal(hint[1]!.replace('<root>', root), pathToFileURL(join(root, 'runs', 'mlruns')).href);
  const got = readStoreWithPython(join(root, 'runs', 'mlruns'), name);
  assert.equal(got.runs.length, 1);
  const run = got.runs[0]!;
  assert.equal(run.run_id, json<{ mlflowRunId: string }>(join(runDir!, 'lock.json')).mlflowRunId);
  assert.equal(run.status, 'FINISHED');
  assert.ok(run.end_time !== null && run.end_time >= run.start_time);
  assert.deepEqual(run.params, flattenParams(parse(readFileSync(join(runDir!, 'resolved.yaml'), 'utf8'))));
  const s = finalState(runDir!);
  for (const [key, want] of Object.entries(expectedCurves(s))) assert.deepEqual([...run.metrics[key]!].sort((a, b) => a[0] - b[0]), want, key);
  assert.equal(run.tags['pipe.best_epoch'], String(s.best.epoch));
  assert.equal(run.tags['mlflow.note.content'], 'tiny real-server run');
  assert.equal(got.experiment_tags['mlflow.experimentKind'], 'custom_model_development');
  // Both dataset inputs, each with its split's digest (the same ones a server gets: see the tags).
  assert.deepEqual(run.inputs.map(([n, , profile, ctx]) => [n, profile, ctx]).sort((a, b) => String(a[2]).localeCompare(String(b[2]))),
    [['imagefolder', '{"num_rows":12}', ['test']], ['imagefolder', '{"num_rows":24}', ['train']]]);
  assert.equal(run.inputs.find((i) => i[3][0] === 'train')![1], run.tags['pipe.data.train']!.split(', ').pop());
  assert.equal(run.inputs.find((i) => i[3][0] === 'test')![1], run.tags['pipe.data.test']!.split(', ').pop());
  const sizes = Object.fromEntries(run.artifacts);
  const expectFile = (path: string, file: string): void => assert.equal(sizes[path], readFileSync(file).length, path);
  expectFile('pipeline/p.yaml', join(root, 'p.yaml'));
  expectFile('evaluation/report.json', join(runDir!, 'eval', 'report.json'));
  expectFile('best-model/weights.bin', join(runDir!, 'finetune', 'best-model', 'weights.bin'));
  expectFile('report.html', join(runDir!, 'plots', 'report.html'));
  assert.ok(run.artifacts.some(([p]) => /^plots\/.*\.png$/.test(p)));
});

test('a FAILED run says why: pipe.error and the note on the server, and `pipe runs`', { skip }, async () => {
  const name = experimentName('failed');
  const root = await project(name);
  // A file that is no image: the download stage fails while decoding (no check can see it earlier).
  writeFileSync(join(root, 'images', 'train', 'class0', 'bad.png'), 'not a png');
  const r = await runCliIn(root, ['run', 'p.yaml', '--plain'], env(root));
  assert.equal(r.exitCode, 1, r.stderr + r.stdout);
  const reason = 'data: imagefolder: cannot decode images/train/class0/bad.png: Input buffer contains unsupported image format; fix or remove the file';
  const c = new MlflowClient(URI);
  try {
    const [run] = await serverRuns(c, name);
    assert.equal(run!.info.status, 'FAILED');
    assert.equal(tagsOf(run!)['pipe.error'], reason);
    assert.equal(tagsOf(run!)['mlflow.note.content'], `tiny real-server run\n\n**FAILED**: ${reason}`);
  } finally {
    await c.close();
  }
  const listed = await runCliIn(root, ['runs'], env(root));
  assert.equal(listed.exitCode, 0, listed.stderr);
  const lines = listed.stdout.trimEnd().split('\n');
  assert.match(lines[1]!, /^\d{8}T\d{6}-[0-9a-f]+\s+realtiny-\S+\s+FAILED\s/);
  assert.equal(lines[2], `  -> ${reason.slice(0, 117)}...`, 'the reason, cut to 120 characters');
  const listedJson = await runCliIn(root, ['runs', '--json'], env(root));
  assert.equal((JSON.parse(listedJson.stdout) as { run: { failure: string } }[])[0]!.run.failure, reason);
});

test('a cached rerun is a complete run: the reused stages\' metrics, tags, inputs and artifacts, and a model to predict with', { skip }, async () => {
  const name = experimentName('cached');
  const root = await project(name);
  ok(await runCliIn(root, ['run', 'p.yaml', '--plain'], env(root)));
  const again = await runCliIn(root, ['run', 'p.yaml', '--plain'], env(root));
  ok(again);
  assert.match(again.stdout, /reused from the stage cache: data, aug, model, head, finetune, eval, plots/);
  const [firstDir, secondDir] = runDirs(root);
  const c = new MlflowClient(URI);
  try {
    const [first, second] = await Promise.all((await serverRuns(c, name)).map((r) => c.getRun(r.info.run_id)));
    assert.equal(second!.info.status, 'FINISHED');
    // Every metric key with the same steps and values (the resource figures are the first run's, as measured then).
    const keys = (r: Run): string[] => [...new Set((r.data.metrics ?? []).map((m) => m.key))].sort();
    assert.deepEqual(keys(second!), keys(first!));
    for (const key of keys(first!)) {
      assert.deepEqual(points(await c.getMetricHistory(second!.info.run_id, key)), points(await c.getMetricHistory(first!.info.run_id, key)), key);
    }
    // Tags: the same, but for the run's own identity and the reuse notes.
    const own = /^(mlflow\.runName|pipe\.client_run_id|pipe\.run_dir|pipe\.reused\..*)$/;
    const strip = (t: Record<string, string>): Record<string, string> => Object.fromEntries(Object.entries(t).filter(([k]) => !own.test(k)));
    assert.deepEqual(strip(tagsOf(second!)), strip(tagsOf(first!)));
    assert.equal(tagsOf(second!)['pipe.reused.finetune'], join(firstDir!, 'finetune'));
    assert.equal((second!.inputs?.dataset_inputs ?? []).length, 2);
    // Artifacts: the same files, byte for byte (pipeline/resolved.yaml is the one thing each run writes itself).
    const a1 = await artifacts(c, first!), a2 = await artifacts(c, second!);
    assert.deepEqual([...a2.keys()].sort(), [...a1.keys()].sort());
    for (const [path, bytes] of a1) assert.equal(sha(a2.get(path)!), sha(bytes), path);
  } finally {
    await c.close();
  }
  // The second run's folder links each reused stage to the first run's, so predict finds the model there.
  assert.equal(realpathSync(join(secondDir!, 'finetune')), realpathSync(join(firstDir!, 'finetune')));
  const image = join(root, 'images', 'test', 'class1', '0.png');
  const [p1, p2] = await Promise.all([firstDir, secondDir].map((d) => runCliIn(root, ['predict', d!, image, '--json'], env(root))));
  assert.equal(p2!.exitCode, 0, p2!.stderr);
  const { model: m2, ...rest2 } = JSON.parse(p2!.stdout) as { model: string };
  const { model: m1, ...rest1 } = JSON.parse(p1!.stdout) as { model: string };
  assert.equal(m2, join(secondDir!, 'finetune', 'best-model').replace(root, '<root>'));
  assert.equal(m1, join(firstDir!, 'finetune', 'best-model').replace(root, '<root>'));
  assert.deepEqual(rest2, rest1);
});

test('pipe sync --all --to URL copies the local store (runs, a sweep, artifacts) to a real server, idempotently', { skip }, async () => {
  const name = experimentName('sync');
  const root = await project(name);
  writeFileSync(join(root, 's.yaml'), pipeline(name, 'sweep:\n  stages.finetune.with.optimizer.lr: [0.003, 0.001]\n'));
  // One plain run and a two-trial sweep, all in the local file store (no server).
  ok(await runCliIn(root, ['run', 'p.yaml', '--plain'], env(root, '')));
  ok(await runCliIn(root, ['run', 's.yaml'], env(root, '')));
  const store = new FileStore(join(root, 'runs', 'mlruns'));
  const local = (await store.listRuns()).filter((r) => r.experimentName === name);
  assert.equal(local.length, 4, 'a run, a sweep parent and two children');

  const sync = await runCliIn(root, ['sync', '--all', '--to', URI], env(root, ''));
  assert.equal(sync.exitCode, 0, sync.stderr + sync.stdout);
  assert.match(sync.stdout, /^pipe: sync: 4 runs copied, 0 already there, \d+ artifact files uploaded/m);
  const c = new MlflowClient(URI);
  try {
    const remote = await serverRuns(c, name);
    assert.equal(remote.length, 4);
    const byLocal = new Map(remote.map((r) => [tagsOf(r)['pipe.sync.from']!, r]));
    for (const l of local) {
      const src = await store.readRun(l.runId);
      const dst = await c.getRun(byLocal.get(l.runId)!.info.run_id);
      assert.equal(dst.info.status, 'FINISHED');
      assert.equal(dst.info.start_time, src.meta['start_time']);
      assert.equal(dst.info.end_time, src.meta['end_time']);
      assert.deepEqual(paramsOf(dst), src.params);
      const want: Record<string, string> = { ...src.tags, 'pipe.sync.from': l.runId, 'pipe.sync.done': 'true' };
      if (src.tags['mlflow.parentRunId']) want['mlflow.parentRunId'] = byLocal.get(src.tags['mlflow.parentRunId'])!.info.run_id;
      assert.deepEqual(tagsOf(dst), want);
      for (const [key, pts] of Object.entries(src.metrics)) {
        const got = (await c.getMetricHistory(dst.info.run_id, key)).map((p) => [p.step, p.timestamp, Number(p.value)]);
        assert.deepEqual(got.sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]!), pts.map((p) => [p.step, p.timestamp, p.value]).sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]!), key);
      }
      const inputs = await store.readInputs(l.runId);
      assert.equal(inputs.length, src.tags['pipe.sweep'] === 'true' ? 0 : 2);
      assert.deepEqual((dst.inputs?.dataset_inputs ?? []).map((d) => d.dataset.digest).sort(), inputs.map((d) => d.dataset.digest).sort());
      const files = await artifacts(c, dst);
      const want2 = await FileStore.artifactFiles(l.artifactDir!);
      assert.deepEqual([...files.keys()].sort(), want2);
      for (const f of want2) assert.equal(sha(files.get(f)!), sha(readFileSync(join(l.artifactDir!, f))), f);
    }
    const children = remote.filter((r) => tagsOf(r)['mlflow.parentRunId']);
    assert.equal(children.length, 2);
    assert.equal(new Set(children.map((r) => tagsOf(r)['mlflow.parentRunId'])).size, 1);

    // Again: nothing new. A copy cut short (no pipe.sync.done) is made again, not doubled.
    const again = await runCliIn(root, ['sync', '--all', '--to', URI], env(root, ''));
    assert.equal(again.exitCode, 0, again.stderr);
    assert.match(again.stdout, /^pipe: sync: 0 runs copied, 4 already there, 0 artifact files uploaded/m);
    const cut = children[0]!;
    await c.deleteTag(cut.info.run_id, 'pipe.sync.done');
    const third = await runCliIn(root, ['sync', '--all', '--to', URI], env(root, ''));
    assert.equal(third.exitCode, 0, third.stderr);
    assert.match(third.stdout, /^pipe: sync: 1 runs copied \(1 cut-short copies made again\), 3 already there/m);
    const after = await serverRuns(c, name);
    assert.equal(after.length, 4);
    assert.ok(!after.some((r) => r.info.run_id === cut.info.run_id), 'the cut-short copy is deleted');
  } finally {
    await c.close();
  }
  const bad = await runCliIn(root, ['sync', '--all', '--to', 'ftp://x'], env(root, ''));
  assert.equal(bad.exitCode, 2);
  assert.match(bad.stderr, /^pipe: sync --all: --to ftp:\/\/x: give the MLflow server's http\(s\) address/m);
});
