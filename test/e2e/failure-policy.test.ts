/**
 * The failure policy on a pipeline of two independent branches (DVC `_reproduce` /
 * `handle_error`), end to end on tiny local imagefolders:
 *
 *   broken ──> broken_aug                      (its source folder has class folders but no images)
 *   data ──> aug ──┐
 *     └───> model ─┴─> head
 *
 * fail-fast (the default) stops every stage after the failure and names them; --keep-going
 * finishes the independent branch (the MLflow run still ends FAILED); --jobs 2 runs both
 * branches to the end when neither fails.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileStore } from '../../src/tracking/file/store.js';
import { makeTree, runCliIn, type CliResult } from '../utils.js';
import { writeImageFolder } from './image-folder.js';

const pipeline = (brokenSource: string): string => `name: branches
seed: 2
stages:
  broken: { kind: download, with: { dataset: imagefolder, source: ${brokenSource} } }
  broken_aug: { kind: augment, needs: [broken], with: { workers: 0 } }
  data: { kind: download, with: { dataset: imagefolder, source: images } }
  aug: { kind: augment, needs: [data], with: { batch_size: 4, workers: 0 } }
  model: { kind: build-model, needs: [data], with: { arch: mini_resnet } }
  head: { kind: freeze-train, needs: [aug, model], with: { epochs: 1, max_steps_per_epoch: 2 } }
`;

interface Outcome { r: CliResult; runDir: string; statuses: Record<string, string>; mlflowStatus: unknown }

/** Runs the pipeline in a fresh folder holding images/ (and other-images/) and reads what it left. */
async function run(brokenSource: string, args: string[]): Promise<Outcome> {
  // missing-images: the layout validate checks (train/, test/), but no images: only the run sees it.
  const root = makeTree({ 'p.yaml': pipeline(brokenSource), 'missing-images/train/cat/.keep': '', 'missing-images/test/cat/.keep': '' });
  await writeImageFolder(join(root, 'images'), 3);
  await writeImageFolder(join(root, 'other-images'), 4, { classes: 2, train: 2, test: 1 });
  const r = await runCliIn(root, ['run', 'p.yaml', '--plain', ...args], { PIPE_CACHE: join(root, 'cache') });
  const runs = join(root, 'runs');
  const runId = readdirSync(runs).find((d) => /^\d{8}T/.test(d))!;
  const lock = JSON.parse(readFileSync(join(runs, runId, 'lock.json'), 'utf8')) as { mlflowRunId: string; stages: Record<string, { status: string }> };
  const statuses = Object.fromEntries(Object.entries(lock.stages).map(([n, s]) => [n, s.status]));
  const mlflowStatus = (await new FileStore(join(runs, 'mlruns')).readRun(lock.mlflowRunId)).meta['status'];
  return { r, runDir: join(runs, runId), statuses, mlflowStatus };
}

const FAILED = 4; // MLflow RunStatus
const FINISHED = 3;
const FAILURE = /^pipe: stage 'broken' failed: imagefolder: \S*missing-images\/train holds no images \(\.png \.jpg \.jpeg \.webp \.tif \.tiff\)$/m;

test('fail-fast (default): exit 1, the failed stage shown, every later stage skipped and named', async () => {
  const { r, statuses, mlflowStatus } = await run('missing-images', []);
  assert.equal(r.exitCode, 1, r.stderr + r.stdout);
  assert.match(r.stderr, /^✖ broken \(download\) \[FAILED/m);
  assert.match(r.stderr, FAILURE);
  assert.match(r.stderr, /^Stages broken_aug, data, aug, model, head were skipped due to this failure\.$/m);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  assert.deepEqual(statuses, { broken: 'failed', broken_aug: 'skipped', data: 'skipped', aug: 'skipped', model: 'skipped', head: 'skipped' });
  assert.equal(mlflowStatus, FAILED);
});

test('--keep-going: the independent branch finishes, only the failed stage\'s descendants are skipped', async () => {
  const { r, runDir, statuses, mlflowStatus } = await run('missing-images', ['--keep-going']);
  assert.equal(r.exitCode, 1, r.stderr + r.stdout);
  assert.match(r.stderr, FAILURE);
  assert.match(r.stderr, /^Stage broken_aug was skipped due to this failure\.$/m);
  assert.deepEqual(statuses, { broken: 'failed', broken_aug: 'skipped', data: 'done', aug: 'done', model: 'done', head: 'done' });
  for (const s of ['data', 'aug', 'model', 'head']) assert.ok(existsSync(join(runDir, s, '.done')), `${s} outputs`);
  assert.equal(existsSync(join(runDir, 'broken_aug')), false);
  assert.equal(mlflowStatus, FAILED, 'a stage failed, so the run is FAILED');
});

test('--jobs 2: both branches run to the end when neither fails', async () => {
  const { r, runDir, statuses, mlflowStatus } = await run('other-images', ['--jobs', '2']);
  assert.equal(r.exitCode, 0, r.stderr + r.stdout);
  assert.deepEqual(statuses, { broken: 'done', broken_aug: 'done', data: 'done', aug: 'done', model: 'done', head: 'done' });
  for (const s of Object.keys(statuses)) assert.ok(existsSync(join(runDir, s, '.done')), `${s} outputs`);
  assert.equal(mlflowStatus, FINISHED);
});
