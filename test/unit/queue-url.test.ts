/** Queue URLs: redis:// and rediss:// parsed into ioredis options, passwords masked, job ids. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { PipelineError } from '../../src/errors.js';
import { sha256, trialJobId } from '../../src/queue/job.js';
import { maskSecrets, parseQueueUrl, requireTrackingServer } from '../../src/queue/url.js';

test('redis:// with user, password and db; defaults for port and db', () => {
  const t = parseQueueUrl('redis://alice:p%40ss@redis.example:6380/4');
  assert.deepEqual(t.connection, { host: 'redis.example', port: 6380, db: 4, username: 'alice', password: 'p@ss', maxRetriesPerRequest: null });
  assert.equal(t.display, 'redis://alice:***@redis.example:6380/4');
  assert.deepEqual(parseQueueUrl('redis://h').connection, { host: 'h', port: 6379, db: 0, maxRetriesPerRequest: null });
});

test('rediss:// turns TLS on; a password-only URL is masked too', () => {
  const t = parseQueueUrl('rediss://:topsecret@h:6390');
  assert.deepEqual(t.connection.tls, {});
  assert.equal(t.connection.password, 'topsecret');
  assert.equal(t.display, 'rediss://:***@h:6390');
});

test('bad URLs are exit-2 usage errors that never show the password', () => {
  for (const bad of ['http://u:hunter2@h/0', 'redis://u:hunter2@h/x', 'not a url hunter2']) {
    assert.throws(() => parseQueueUrl(bad), (e: unknown) => e instanceof PipelineError && e.exitCode === 2 && (!e.message.includes('hunter2') || bad.startsWith('not')));
  }
  assert.equal(maskSecrets('error at redis://u:hunter2@h:1/0 and https://x:y@m'), 'error at redis://u:***@h:1/0 and https://x:***@m');
});

test('queue mode needs an http(s) tracking server', () => {
  assert.throws(() => requireTrackingServer('pipe worker', {}), /needs a shared MLflow tracking server/);
  assert.throws(() => requireTrackingServer('pipe worker', { MLFLOW_TRACKING_URI: '/tmp/mlruns' }), /a local store/);
  assert.equal(requireTrackingServer('pipe worker', { MLFLOW_TRACKING_URI: 'https://m:5000' }), 'https://m:5000');
});

test('job ids: the sweep key prefix and the config hash; sha256 of the file text', () => {
  assert.equal(trialJobId('0123456789abcdef0123', 'feedface00000000'), '0123456789abcdef-feedface00000000');
  assert.equal(sha256('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'); // FIPS 180-2 example
  assert.equal(sha256('é'), createHash('sha256').update(Buffer.from([0xc3, 0xa9])).digest('hex'));
});
