/**
 * Tests for src/tracking/file/store.ts: the store we write must match, file for file and
 * byte for byte (ids, times and paths aside), the one MLflow 3.6's own client wrote in
 * test/fixtures/mlflow/filestore-example.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';

import { parse } from 'yaml';

import { fixture } from '../fixtures.js';
import { FileStore, formatMetricValue, parseMetricValue, toMlflowYaml } from '../../src/tracking/file/store.js';

/** test/fixtures/mlflow/filestore-example: a store written by MLflow 3.6's own Python client. */
const EXAMPLE = `${fixture('mlflow', 'filestore-example')}/`;
const EX_EXP = '492629224459846759';
const EX_CHILD = '223bb2b531fd43608667366170a81c8e';
const EX_PARENT = 'b94d4fcc9650429ca9df68d4ae95b16c';
const EX_ROOT_URI = 'file:///home/user/project/runs/mlruns';

let tmp = '';
before(async () => { tmp = await mkdtemp(path.join(tmpdir(), 'filestore-test-')); });
after(async () => { await rm(tmp, { recursive: true, force: true }); });

async function files(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.isDirectory()) out.push(...await files(path.join(dir, e.name), `${prefix}${e.name}/`));
    else out.push(prefix + e.name);
  }
  return out.sort();
}

const metaKeys = (text: string): string[] => Object.keys(parse(text) as object);

describe('FileStore layout matches MLflow 3.6 (filestore-example)', () => {
  it('writes the same tree, the same bytes', async () => {
    const root = path.join(tmp, 'layout', 'mlruns');
    const store = new FileStore(root);
    const exp = await store.getOrCreateExperiment('fashion-mnist-quickstart', { 'pipe.pipeline': 'fashion-mnist-quickstart' });
    assert.match(exp, /^[1-9]\d{17}$/);
    const parent = await store.createRun(exp, { runName: 'sweep-parent', user: 'alice', startTime: 1795949918000,
      tags: { 'mlflow.source.name': 'pipelines/q.yaml', 'mlflow.source.type': 'LOCAL' } });
    const child = await store.createRun(exp, { runName: 'arch=resnet18', startTime: 1795949919000, tags: {
      'mlflow.parentRunId': parent.runId, 'mlflow.source.type': 'LOCAL', 'pipe.backend': 'wasm', 'mlflow.note.content': 'quickstart run' } });
    assert.match(child.runId, /^[0-9a-f]{32}$/);
    assert.equal(child.artifactDir, path.join(root, exp, child.runId, 'artifacts'));
    const running = await readFile(path.join(root, exp, child.runId, 'meta.yaml'), 'utf8');
    assert.match(running, /^end_time: null$/m);
    assert.match(running, /^status: 1$/m);

    await store.logParams(child.runId, { 'stages.model.with.arch': 'resnet18', 'stages.finetune.with.optimizer.lr': '0.0001' });
    await store.logMetrics(child.runId, [
      { key: 'train_loss', value: 2.3, timestamp: 1795949920000, step: 0 },
      { key: 'train_loss', value: 2.3 - 0.1, timestamp: 1795949920001, step: 1 },
    ]);
    await store.logMetrics(child.runId, [
      { key: 'train_loss', value: 2.3 - 0.1 - 0.1, timestamp: 1795949920002, step: 2 },
      { key: 'test_accuracy', value: 0.81, timestamp: 1795949930000, step: 0 },
      { key: 'nan_metric', value: NaN, timestamp: 1795949930001, step: 0 },
    ]);
    const art = path.join(tmp, 'loss.txt');
    await writeFile(art, 'pretend this is a PNG\n');
    await store.logArtifact(child.runId, art, 'plots');
    await store.endRun(child.runId, 'FINISHED', 1795949990000);
    await store.endRun(parent.runId, 'FAILED', 1795949991000);

    // Same set of files (ids mapped), no temporaries left behind.
    const ids = (s: string): string => s.replaceAll(EX_EXP, exp).replaceAll(EX_CHILD, child.runId).replaceAll(EX_PARENT, parent.runId);
    const exampleFiles = await files(EXAMPLE);
    assert.deepEqual(await files(root), exampleFiles.map(ids).sort());
    // Same bytes, after replacing ids, the root path and experiment creation times.
    const norm = (s: string): string => s.replace(/^(creation_time|last_update_time): \d+$/gm, '$1: <ms>');
    const rootUri = pathToFileURL(root).href;
    for (const f of exampleFiles) {
      const want = norm(ids(await readFile(path.join(EXAMPLE, f), 'utf8')).replaceAll(EX_ROOT_URI, rootUri));
      const got = norm(await readFile(path.join(root, ids(f)), 'utf8'));
      assert.equal(got, want, `file ${f}`);
      if (f.endsWith('meta.yaml')) assert.deepEqual(metaKeys(got), metaKeys(want), `key order of ${f}`);
    }
    // Field formats the UI relies on.
    const def = await readFile(path.join(root, '0', 'meta.yaml'), 'utf8');
    assert.equal(norm(def), `artifact_location: ${rootUri}/0\ncreation_time: <ms>\nexperiment_id: '0'\nlast_update_time: <ms>\nlifecycle_stage: active\nname: Default\n`);
    const childMeta = await readFile(path.join(root, exp, child.runId, 'meta.yaml'), 'utf8');
    assert.match(childMeta, new RegExp(`^experiment_id: '${exp}'$`, 'm'));
    assert.match(childMeta, /^tags: \[\]$/m);
    assert.match(childMeta, /^source_type: 4$/m);
    for (const m of ['train_loss', 'test_accuracy', 'nan_metric']) {
      for (const line of (await readFile(path.join(root, exp, child.runId, 'metrics', m), 'utf8')).trimEnd().split('\n')) {
        assert.match(line, /^\d{13} (nan|-?inf|-?\d+(\.\d+)?(e[-+]\d+)?) \d+$/);
      }
    }

    // Reading back.
    const run = await new FileStore(root).readRun(child.runId);
    assert.equal(run.meta.status, 3);
    assert.equal(run.meta.end_time, 1795949990000);
    assert.equal(run.params['stages.finetune.with.optimizer.lr'], '0.0001');
    assert.equal(run.tags['mlflow.parentRunId'], parent.runId);
    assert.ok(Number.isNaN(run.metrics.nan_metric?.[0]?.value));
    assert.deepEqual(run.metrics.train_loss?.map((p) => [p.value, p.step]), [[2.3, 0], [2.3 - 0.1, 1], [2.3 - 0.1 - 0.1, 2]]);
  });
});

describe('FileStore semantics', () => {
  it('params are immutable: same value is a no-op, a different one throws', async () => {
    const store = new FileStore(path.join(tmp, 'params'));
    const exp = await store.getOrCreateExperiment('p');
    const { runId } = await store.createRun(exp, { runName: 'r' });
    await store.logParams(runId, { lr: '0.1', 'stage/opt': 'adam' });
    await store.logParams(runId, { lr: '0.1' });
    await assert.rejects(store.logParams(runId, { lr: '0.2' }), /Changing param values is not allowed.*'lr'/);
    const run = await store.readRun(runId);
    assert.deepEqual(run.params, { lr: '0.1', 'stage/opt': 'adam' });
    assert.equal(await readFile(path.join(store.root, exp, runId, 'params', 'stage', 'opt'), 'utf8'), 'adam');
  });

  it('getOrCreateExperiment returns the same id again, also from a new instance, and restores a deleted one', async () => {
    const root = path.join(tmp, 'exp');
    const store = new FileStore(root);
    const id = await store.getOrCreateExperiment('same', { team: 'a' });
    assert.equal(await store.getOrCreateExperiment('same'), id);
    assert.equal(await new FileStore(root).getOrCreateExperiment('same'), id);
    assert.notEqual(await store.getOrCreateExperiment('other'), id);
    assert.equal(await readFile(path.join(root, id, 'tags', 'team'), 'utf8'), 'a');
    // Delete it the way MLflow does (lifecycle_stage deleted, moved to .trash), then get it back.
    const meta = parse(await readFile(path.join(root, id, 'meta.yaml'), 'utf8')) as Record<string, unknown>;
    await writeFile(path.join(root, id, 'meta.yaml'), toMlflowYaml({ ...meta, lifecycle_stage: 'deleted' }));
    await rename(path.join(root, id), path.join(root, '.trash', id));
    assert.equal(await new FileStore(root).getOrCreateExperiment('same'), id);
    assert.match(await readFile(path.join(root, id, 'meta.yaml'), 'utf8'), /^lifecycle_stage: active$/m);
  });

  it('rejects bad keys with an error naming the key, accepts MLflow-valid ones', async () => {
    const store = new FileStore(path.join(tmp, 'keys'));
    const { runId } = await store.createRun(await store.getOrCreateExperiment('k'), { runName: 'r' });
    for (const bad of ['../x', '/abs', 'a//b', 'trailing/', 'a/./b', 'a@b', 'a,b', '', '..', 'x'.repeat(251)]) {
      await assert.rejects(store.logParams(runId, { [bad]: 'v' }), (e: Error) => e.message.includes(`'${bad}'`), `param ${bad}`);
      await assert.rejects(store.setTags(runId, { [bad]: 'v' }), /Invalid tag name/);
      await assert.rejects(store.logMetrics(runId, [{ key: bad, value: 1, timestamp: 1, step: 0 }]), /Invalid metric name/);
    }
    await store.logParams(runId, { 'a..b': '1', 'with space': '2', 'x:y': '3', 'val/loss': '4' });
    assert.deepEqual(Object.keys((await store.readRun(runId)).params).sort(), ['a..b', 'val/loss', 'with space', 'x:y']);
  });

  it('endRun FAILED stores status 4 and end_time', async () => {
    const store = new FileStore(path.join(tmp, 'end'));
    const { runId } = await store.createRun(await store.getOrCreateExperiment('e'), { runName: 'r', startTime: 1000 });
    const before = Date.now();
    await store.endRun(runId, 'FAILED');
    const { meta } = await store.readRun(runId);
    assert.equal(meta.status, 4);
    assert.equal(typeof meta.end_time, 'number');
    assert.ok((meta.end_time as number) >= before && (meta.end_time as number) <= Date.now());
    assert.equal(meta.start_time, 1000);
    await store.endRun(runId, 'KILLED', 5000);
    assert.equal((await store.readRun(runId)).meta.status, 5);
  });

  it('readRunHeader reads status, name, times and the named tags of a run; undefined for runs not in the store', async () => {
    const store = new FileStore(path.join(tmp, 'header'));
    const { runId } = await store.createRun(await store.getOrCreateExperiment('e'), { runName: 'r1', startTime: 1000, tags: { 'pipe.backend': 'wasm' } });
    assert.deepEqual(await store.readRunHeader(runId, ['pipe.backend', 'absent']), { status: 'RUNNING', runName: 'r1', startTime: 1000, tags: { 'pipe.backend': 'wasm' } });
    await store.endRun(runId, 'KILLED', 7000);
    // a second instance reads what the first wrote (pipe runs opens the store afresh)
    assert.deepEqual(await new FileStore(path.join(tmp, 'header')).readRunHeader(runId), { status: 'KILLED', runName: 'r1', startTime: 1000, endTime: 7000, tags: {} });
    assert.equal(await store.readRunHeader('0'.repeat(32)), undefined);
    assert.equal(await store.readRunHeader('../x'), undefined);
  });

  it('formats metric values like Python str(float) and scalars like PyYAML safe_dump', () => {
    const cases: Array<[number, string]> = [[NaN, 'nan'], [Infinity, 'inf'], [-Infinity, '-inf'], [1, '1.0'], [0.0001, '0.0001'],
      [0.00001, '1e-05'], [1e16, '1e+16'], [1e15, '1000000000000000.0'], [2.3 - 0.1, '2.1999999999999997'], [-2.5, '-2.5']];
    for (const [v, s] of cases) {
      assert.equal(formatMetricValue(v), s);
      assert.ok(Object.is(parseMetricValue(s), v));
    }
    // Expected strings produced by PyYAML 6 safe_dump(default_flow_style=False, allow_unicode=True).
    const yamlCases: Array<[string, string]> = [['123', "'123'"], ['=', "'='"], ["it's", "it's"], ["'q'", "'''q'''"], ['', "''"],
      ['yes', "'yes'"], ['a: b', "'a: b'"], ['#x', "'#x'"], ['2024-01-01', "'2024-01-01'"], ['tab\tx', '"tab\\tx"'],
      ['lr=0.001 bs=32', 'lr=0.001 bs=32'], ['ünïcode ☃', 'ünïcode ☃'],
      [`${'a'.repeat(70)} b c d e f g h i j k`, `${'a'.repeat(70)} b\n  c d e f g h i j k`]];
    for (const [v, s] of yamlCases) assert.equal(toMlflowYaml({ run_name: v }), `run_name: ${s}\n`, JSON.stringify(v));
    assert.equal(toMlflowYaml({ b: null, a: 1, c: [] }), 'a: 1\nb: null\nc: []\n');
  });
});
