/**
 * Two training chains side by side in one run (src/tracking/layout.ts, "Several training
 * chains"), end to end through the CLI on a tiny imagefolder (3 classes, 8 train / 4 test images
 * of 12x12 px; 2 steps per epoch): chain tune_a (head_a -> tune_a, 1 + 1 epochs, eval_a) and
 * chain tune_b (head_b -> tune_b, 1 + 2 epochs, eval_b), one plot stage comparing them. Each
 * chain's metric history, read back from the local file store and from the fake MLflow server,
 * equals that chain's own training history (its state.json) under keys naming the chain; each
 * chain's best model and evaluation are artifacts of their own; the run ends with one line per
 * chain naming its evaluate stage. What is read back is compared with what the run left on disk.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileStore } from '../../src/tracking/file/store.js';
import type { RunEvent } from '../../src/runner/events.js';
import type { DatasetInput } from '../../src/tracking/rest/types.js';
import { FakeMlflow } from '../fake-mlflow.js';
import { makeTree, runCliIn } from '../utils.js';
import { writeImageFolder } from './image-folder.js';

const PIPELINE = `name: chains
experiment: chains
seed: 4
stages:
  data: { kind: download, with: { dataset: imagefolder, source: images } }
  aug: { kind: augment, needs: [data], with: { batch_size: 6, workers: 0 } }
  data_b: { kind: download, with: { dataset: imagefolder, source: images, subset: { train: 6 } } }
  aug_b: { kind: augment, needs: [data_b], with: { batch_size: 6, workers: 0 } }
  model_a: { kind: build-model, needs: [data], with: { arch: mini_resnet } }
  head_a: { kind: freeze-train, needs: [aug, model_a], with: { epochs: 1, max_steps_per_epoch: 2, optimizer: { lr: 0.01 } } }
  tune_a: { kind: unfreeze-train, needs: [head_a], with: { epochs: 1, max_steps_per_epoch: 2, optimizer: { lr: 0.003 } } }
  eval_a: { kind: evaluate, needs: [tune_a] }
  model_b: { kind: build-model, needs: [data_b], with: { arch: mini_resnet } }
  head_b: { kind: freeze-train, needs: [aug_b, model_b], with: { epochs: 1, max_steps_per_epoch: 2, optimizer: { lr: 0.02 } } }
  tune_b: { kind: unfreeze-train, needs: [head_b], with: { epochs: 2, max_steps_per_epoch: 2, optimizer: { lr: 0.005 } } }
  eval_b: { kind: evaluate, needs: [tune_b] }
  plots: { kind: plot, needs: [eval_a, eval_b], with: { compare: [tune_a, tune_b], misclassified: 0 } }
`;

/** chain -> its evaluate stage. */
const CHAINS = { tune_a: 'eval_a', tune_b: 'eval_b' } as const;
const CURVES = ['train_loss', 'test_loss', 'train_accuracy', 'test_accuracy', 'lr'];

let fake: FakeMlflow;
before(async () => (fake = await FakeMlflow.start()));
after(async () => fake.close());

async function project(): Promise<string> {
  const root = makeTree({ 'p.yaml': PIPELINE });
  await writeImageFolder(join(root, 'images'), 9, { classes: 3, train: 8, test: 4 });
  return root;
}

interface StateJson { epochs: Record<string, number | string>[]; iterationLosses: number[]; lastEpoch: number; unfreezeEpoch: number; best: { monitor: string; value: number; epoch: number; phase: string } }
interface EvalJson { test_accuracy: number; test_loss: number; images: number; best_epoch?: number }
const json = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T;
const lockOf = (runDir: string): { runId: string; mlflowRunId: string } => json(join(runDir, 'lock.json'));

/** The metric histories a chain's stages must have logged, from the chain's last state.json: key -> [step, value][]. */
function expectedOf(runDir: string, chain: keyof typeof CHAINS): Record<string, [number, number][]> {
  const s = json<StateJson>(join(runDir, chain, 'state.json'));
  const report = json<EvalJson>(join(runDir, CHAINS[chain], 'report.json'));
  const out: Record<string, [number, number][]> = { [`curves/${chain}/batch_loss`]: s.iterationLosses.map((v, i) => [i, v]) };
  for (const k of CURVES) out[`curves/${chain}/${k}`] = s.epochs.map((e) => [Number(e['epoch']), Number(e[k])]);
  out[`eval/${chain}/test_accuracy`] = [[s.lastEpoch, report.test_accuracy]];
  return out;
}

/**
 * The run tags the chains' stages set, from their state.json files: `pipe.<chain>.best_epoch`,
 * ... (src/tracking/layout.ts `RunLayout.tags`); the two download stages' splits under
 * `pipe.data.<stage>.<split>`, their values ending with the split's digest.
 */
function expectedTags(runDir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const chain of Object.keys(CHAINS)) {
    const s = json<StateJson>(join(runDir, chain, 'state.json'));
    Object.assign(out, {
      [`pipe.${chain}.best_epoch`]: String(s.best.epoch), [`pipe.${chain}.best_phase`]: s.best.phase, [`pipe.${chain}.best_${s.best.monitor}`]: String(s.best.value),
      [`pipe.${chain}.unfreeze_epoch`]: String(s.unfreezeEpoch),
    });
  }
  return out;
}
const SHARED_TAGS = ['pipe.best_epoch', 'pipe.best_phase', 'pipe.unfreeze_epoch', 'pipe.freeze.trainable_params', 'pipe.unfreeze.trainable_params', 'pipe.data.train', 'pipe.data.test'];

/** Checks the tags and dataset inputs of a run of PIPELINE: per chain, per download stage, four distinct inputs. */
function checkTagsAndInputs(runDir: string, tags: Record<string, string>, inputs: { name: string; digest: string; context: string }[]): void {
  for (const [k, v] of Object.entries(expectedTags(runDir))) assert.equal(tags[k], v, k);
  for (const chain of Object.keys(CHAINS)) {
    for (const phase of ['freeze', 'unfreeze']) assert.match(tags[`pipe.${chain}.${phase}.trainable_params`] ?? '', /^\d+$/, `pipe.${chain}.${phase}.trainable_params`);
  }
  for (const k of SHARED_TAGS) assert.equal(tags[k], undefined, `no tag shared by the chains or the download stages: ${k}`);
  // data and data_b load the same test images (one digest) and different training subsets.
  assert.deepEqual(inputs.map((i) => `${i.name} ${i.context}`).sort(), ['imagefolder (data) test', 'imagefolder (data) train', 'imagefolder (data_b) test', 'imagefolder (data_b) train']);
  const byName = (name: string, context: string) => inputs.find((i) => i.name === name && i.context === context)!;
  assert.equal(byName('imagefolder (data)', 'test').digest, byName('imagefolder (data_b)', 'test').digest, 'the same test data');
  for (const stage of ['data', 'data_b']) {
    for (const context of ['train', 'test']) {
      const i = byName(`imagefolder (${stage})`, context);
      assert.match(tags[`pipe.data.${stage}.${context}`] ?? '', new RegExp(`^imagefolder \\(${stage}\\), ${context === 'test' ? 12 : stage === 'data' ? 24 : 6} images, ${i.digest}$`), `pipe.data.${stage}.${context}`);
    }
  }
}

const sorted = (pts: { step: number; value: number }[]): [number, number][] => pts.map((p) => [p.step, p.value] as [number, number]).sort((a, b) => a[0] - b[0]);

/** The run folder of the one run under `root`. */
function onlyRunDir(root: string, stdout: string): string {
  const m = /^run: (\S+) {2}outputs: (\S+)$/m.exec(stdout);
  if (m) return m[2]!.replace('<root>', root);
  const end = stdout.trim().split('\n').map((l) => JSON.parse(l) as RunEvent).find((e) => e.type === 'run-end');
  assert.ok(end?.type === 'run-end', stdout);
  return end.runDir.replace('<root>', root);
}

test('two chains, local file store: each chain\'s curves under curves/<chain>/ equal its training history; its own best model and evaluation artifacts; one end line per chain', async () => {
  const root = await project();
  const r = await runCliIn(root, ['run', 'p.yaml', '--plain'], { PIPE_CACHE: join(root, 'cache') });
  assert.equal(r.exitCode, 0, r.stderr + r.stdout);
  const runDir = onlyRunDir(root, r.stdout);
  const store = new FileStore(join(root, 'runs', 'mlruns'));
  const run = await store.readRun(lockOf(runDir).mlflowRunId);
  for (const chain of ['tune_a', 'tune_b'] as const) {
    const want = expectedOf(runDir, chain);
    for (const [key, pts] of Object.entries(want)) assert.deepEqual(sorted(run.metrics[key] ?? []), pts, key);
    assert.equal(run.metrics[`model/${chain}/total_params`]?.length, 1, `model/${chain}/total_params`);
  }
  // One chain's curve runs on across its freeze and unfreeze stages: epochs 1..2 and 1..3.
  assert.deepEqual(sorted(run.metrics['curves/tune_b/test_accuracy']!).map(([step]) => step), [1, 2, 3]);
  assert.deepEqual(sorted(run.metrics['curves/tune_a/batch_loss']!).map(([step]) => step), [0, 1, 2, 3]);
  for (const k of ['batch_loss', ...CURVES]) assert.equal(run.metrics[`curves/${k}`], undefined, `no history mixing the chains: curves/${k}`);
  assert.equal(run.metrics['eval/test_accuracy'], undefined);

  // Artifacts: each chain's best model and evaluation in a folder of its own, the same bytes as on disk.
  const artifactsDir = readArtifactsDir(store.root, lockOf(runDir).mlflowRunId);
  for (const chain of ['tune_a', 'tune_b'] as const) {
    for (const f of ['model.json', 'weights.bin']) {
      assert.deepEqual(readFileSync(join(artifactsDir, 'best-model', chain, f)), readFileSync(join(runDir, chain, 'best-model', f)), `best-model/${chain}/${f}`);
    }
    assert.deepEqual(readFileSync(join(artifactsDir, 'evaluation', chain, 'report.json')), readFileSync(join(runDir, CHAINS[chain], 'report.json')), `evaluation/${chain}/report.json`);
  }
  assert.ok(!existsSync(join(artifactsDir, 'best-model', 'model.json')) && !existsSync(join(artifactsDir, 'evaluation', 'report.json')), 'nothing left at the shared paths');
  assert.ok(existsSync(join(artifactsDir, 'report.html')), 'the comparing plot stage\'s report at the root');

  // The end: one line per chain, naming its evaluate stage, with that stage's figures and the chain's best model.
  for (const [chain, ev] of Object.entries(CHAINS)) {
    const rep = json<EvalJson>(join(runDir, ev, 'report.json'));
    const line = `${chain}: test accuracy ${(100 * rep.test_accuracy).toFixed(2)}% (${ev}: loss ${rep.test_loss.toFixed(4)}, ${rep.images} images, best epoch ${rep.best_epoch}), best model ${join(runDir, chain, 'best-model').replace(root, '<root>')}`;
    assert.ok(r.stdout.split('\n').includes(line), `line '${line}' in:\n${r.stdout}`);
  }
  assert.doesNotMatch(r.stdout, /^(test accuracy|best model):/m, 'no single-chain lines');

  // Tags per chain and per download stage; every split an input of its own.
  const inputs = (await store.readInputs(lockOf(runDir).mlflowRunId)).map((i) => ({ name: i.dataset.name, digest: i.dataset.digest, context: i.tags?.find((t) => t.key === 'mlflow.data.context')?.value ?? '' }));
  checkTagsAndInputs(runDir, run.tags, inputs);
});

/** The artifacts folder of run `runId` in the file store at `root` (<experiment>/<run>/artifacts). */
function readArtifactsDir(root: string, runId: string): string {
  for (const exp of readdirSync(root)) {
    const dir = join(root, exp, runId, 'artifacts');
    if (existsSync(dir)) return dir;
  }
  throw new Error(`run ${runId} not in ${root}`);
}

test('two chains, MLflow server (fake): the server\'s keys are the JSON stream\'s, each chain\'s curves its own epochs; artifacts per chain; run-end lists the chains', async () => {
  const root = await project();
  const r = await runCliIn(root, ['run', 'p.yaml', '--log-format', 'json'], { PIPE_CACHE: join(root, 'cache'), MLFLOW_TRACKING_URI: fake.uri });
  assert.equal(r.exitCode, 0, r.stderr + r.stdout);
  const evs = r.stdout.trim().split('\n').map((l) => JSON.parse(l.split('<root>').join(root)) as RunEvent);
  const runDir = onlyRunDir(root, r.stdout);
  const run = fake.store.runs.get(lockOf(runDir).mlflowRunId)!;
  assert.equal(run.info.status, 'FINISHED');

  // The JSON stream names every metric as the server has it.
  const streamed = new Set(evs.flatMap((e) => (e.type === 'stage-metric' ? [e.key] : [])));
  assert.deepEqual([...new Set(run.points.map((p) => p.key))].sort(), [...streamed].sort());
  for (const chain of ['tune_a', 'tune_b'] as const) {
    for (const [key, pts] of Object.entries(expectedOf(runDir, chain))) assert.deepEqual(sorted(run.points.filter((p) => p.key === key)), pts, key);
  }
  // Each chain's curve is the test accuracy its own stages reported per epoch (stage-epoch events).
  const epochsOf = (stages: string[]): [number, number][] => evs.flatMap((e) => (e.type === 'stage-epoch' && stages.includes(e.stage) ? [[e.epoch, e.test_accuracy] as [number, number]] : [])).sort((a, b) => a[0] - b[0]);
  assert.deepEqual(sorted(run.points.filter((p) => p.key === 'curves/tune_a/test_accuracy')), epochsOf(['head_a', 'tune_a']));
  assert.deepEqual(sorted(run.points.filter((p) => p.key === 'curves/tune_b/test_accuracy')), epochsOf(['head_b', 'tune_b']));

  const art = `${run.info.experiment_id}/${run.info.run_id}/artifacts`;
  for (const chain of ['tune_a', 'tune_b'] as const) {
    assert.deepEqual(fake.store.artifacts.get(`${art}/best-model/${chain}/weights.bin`), readFileSync(join(runDir, chain, 'best-model', 'weights.bin')), `best-model/${chain}/weights.bin`);
    assert.deepEqual(fake.store.artifacts.get(`${art}/evaluation/${chain}/report.json`), readFileSync(join(runDir, CHAINS[chain], 'report.json')), `evaluation/${chain}/report.json`);
  }
  assert.ok(!fake.store.artifacts.has(`${art}/best-model/model.json`) && !fake.store.artifacts.has(`${art}/evaluation/report.json`));
  const streamedArtifacts = evs.flatMap((e) => (e.type === 'stage-artifact' && e.stage === 'eval_b' ? [e.artifactPath] : []));
  assert.ok(streamedArtifacts.length > 0 && streamedArtifacts.every((p) => p === 'evaluation/tune_b'), streamedArtifacts.join(', '));

  // Tags per chain and per download stage, as the JSON stream names them.
  const serverTags = Object.fromEntries(run.tags) as Record<string, string>;
  const streamedTags = Object.assign({}, ...evs.flatMap((e) => (e.type === 'stage-tags' ? [e.tags] : []))) as Record<string, string>;
  for (const [k, v] of Object.entries(streamedTags)) assert.equal(serverTags[k], v, k);
  const datasetTags = evs.flatMap((e) => (e.type === 'stage-dataset' ? [e.tag] : [])).sort();
  assert.deepEqual(datasetTags, ['pipe.data.data.test', 'pipe.data.data.train', 'pipe.data.data_b.test', 'pipe.data.data_b.train']);
  const inputs = (run.inputs as DatasetInput[]).map((i) => ({ name: i.dataset.name, digest: i.dataset.digest, context: i.tags?.find((t) => t.key === 'mlflow.data.context')?.value ?? '' }));
  checkTagsAndInputs(runDir, serverTags, inputs);

  const end = evs.at(-1)!;
  assert.ok(end.type === 'run-end');
  assert.deepEqual(end.chains.map((c) => [c.chain, c.stages, c.bestModel, c.evaluations.map((e) => [e.stage, e.test_accuracy])]), Object.entries(CHAINS).map(([chain, ev]) => [
    chain, [chain.replace('tune', 'head'), chain], join(runDir, chain, 'best-model'), [[ev, json<EvalJson>(join(runDir, ev, 'report.json')).test_accuracy]],
  ]));
});
