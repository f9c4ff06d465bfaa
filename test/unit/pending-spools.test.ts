/**
 * An MLflow outage is healed by the next `pipe` command too: records a run spooled while the
 * server was down are replayed by `replayPendingSpools` (called when a later run starts), once.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pendingSpools, replayPendingSpools } from '../../src/runner/pending-spools.js';
import type { RetryPolicy } from '../../src/tracking/rest/retry.js';
import { RestTracker } from '../../src/tracking/rest/tracker.js';
import { FakeMlflow } from '../fake-mlflow.js';

let fake: FakeMlflow;
before(async () => (fake = await FakeMlflow.start()));
after(async () => fake.close());
const FAST: RetryPolicy = { maxRetries: 1, baseDelayMs: 5, maxDelayMs: 10, jitterMs: 1, maxRetryAfterMs: 10 };

test('spools left by earlier runs are replayed at the next run, once', async () => {
  const runs = mkdtempSync(join(tmpdir(), 'pipe-runs-'));
  const runDir = join(runs, '20261129T120000-abcdef');
  mkdirSync(runDir);
  fake.faults = [{ kind: 'drop' }];
  const t = await RestTracker.start(fake.uri, {
    experiment: 'later', runName: 'later-run', spoolDir: runDir, client: { retry: FAST, env: {}, timeoutMs: 1000 }, onWarning: () => {}, probeIntervalMs: 60_000,
  });
  await t.logParams({ seed: '7' });
  for (let i = 0; i < 20; i++) t.metric('batch_loss', 1 / (i + 1), i);
  await t.end('FINISHED');
  assert.deepEqual(await pendingSpools(runs), [runDir]);
  assert.equal(fake.store.runs.size, 0);

  fake.faults = [];
  const lines = await replayPendingSpools(runs);
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /^replayed \d+ spooled MLflow records of /);
  const [run] = [...fake.store.runs.values()];
  assert.equal(run!.info.status, 'FINISHED');
  assert.equal(run!.params.get('seed'), '7');
  assert.deepEqual(run!.points.filter((p) => p.key === 'batch_loss').map((p) => p.step), Array.from({ length: 20 }, (_, i) => i));
  assert.deepEqual(await pendingSpools(runs), [], 'nothing left');
  assert.deepEqual(await replayPendingSpools(runs), [], 'a second start sends nothing');
  assert.equal(fake.store.runs.size, 1);
});
