/**
 * The RestTracker against a real MLflow tracking server (test/real-mlflow.ts: `.ci/run` starts
 * one; by hand, `mlflow server --host 127.0.0.1 --port 5000` and
 * PIPE_REAL_MLFLOW_URI=http://127.0.0.1:5000); auth variables (MLFLOW_TRACKING_USERNAME ...) are
 * used as set. Creates one experiment per run of the test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MlflowClient } from '../../src/tracking/rest/client.js';
import { RestTracker } from '../../src/tracking/rest/tracker.js';
import { decodeValue } from '../../src/tracking/rest/types.js';
import { realMlflow } from '../real-mlflow.js';

const real = realMlflow();
const URI = real.skip === false ? real.uri : undefined;

test('a run logged to a real MLflow server reads back the same', { skip: real.skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pipe-real-'));
  const experiment = `pipe-test-${Date.now()}`;
  const warnings: string[] = [];
  const t = await RestTracker.start(URI!, { experiment, runName: 'real-run', user: 'pipe-test', tags: { 'mlflow.source.type': 'LOCAL' }, spoolDir: dir, onWarning: (m) => void warnings.push(m) });
  await t.logParams({ 'stages.head.with.optimizer.lr': '0.003', 'long': 'x'.repeat(6100), 'bad@key': '1' });
  for (let i = 0; i < 1200; i++) t.metric('batch_loss', 1 / (i + 1), i);
  t.metric('nan_metric', NaN, 0);
  writeFileSync(join(dir, 'report.json'), '{"ok": true}');
  await t.logArtifact(join(dir, 'report.json'), 'evaluation');
  await t.logInputs([{ name: 'tiny', digest: 'deadbeef', source: '/data/tiny', context: 'train', count: 10 }]);
  await t.end('FINISHED');
  assert.deepEqual(warnings, []);

  const c = new MlflowClient(URI!);
  try {
    const run = await c.getRun(t.runId);
    assert.equal(run.info.status, 'FINISHED');
    assert.ok(run.info.end_time);
    const params = Object.fromEntries((run.data.params ?? []).map((p) => [p.key, p.value]));
    assert.equal(params['stages.head.with.optimizer.lr'], '0.003');
    assert.equal(params['long']!.length, 6000);
    assert.equal(params['bad_key'], '1');
    const hist = await c.getMetricHistory(t.runId, 'batch_loss');
    assert.deepEqual(hist.map((p) => p.step).sort((a, b) => a - b), Array.from({ length: 1200 }, (_, i) => i));
    assert.ok(Number.isNaN(decodeValue((await c.getMetricHistory(t.runId, 'nan_metric'))[0]!.value)));
    const root = `${run.info.artifact_uri.replace(/^mlflow-artifacts:\/*/, '')}`;
    assert.equal((await c.downloadArtifact(`${root}/evaluation/report.json`)).toString(), '{"ok": true}');
    assert.equal(run.inputs?.dataset_inputs?.[0]?.dataset.name, 'tiny');
  } finally {
    await c.close();
  }
});
