/** Queue URLs: redis:// and rediss:// parsed into ioredis options, passwords masked, job ids. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { PipelineError } from '../../src/errors.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { workerName } from '../../src/queue/admin.js';
import { formatTime, sha256, stoppedAnswering, trialJobId } from '../../src/queue/job.js';
import { connectOrFail, maskSecrets, parseQueueUrl, queueHint, queueUrl, requireTrackingServer } from '../../src/queue/url.js';

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

test('the queue URL comes from --queue, else PIPE_QUEUE_URL; neither is an exit-2 usage error', () => {
  assert.equal(queueUrl('redis://a:1/0', { PIPE_QUEUE_URL: 'redis://b:2/0' }), 'redis://a:1/0');
  assert.equal(queueUrl(true, { PIPE_QUEUE_URL: 'redis://b:2/0' }), 'redis://b:2/0');
  assert.equal(queueUrl(undefined, { PIPE_QUEUE_URL: 'redis://b:2/0' }), 'redis://b:2/0');
  assert.throws(() => queueUrl(undefined, {}), (e: unknown) => e instanceof PipelineError && e.exitCode === 2 && /set PIPE_QUEUE_URL/.test(e.message));
});

test('the password comes from the URL, else the first line of PIPE_QUEUE_PASSWORD_FILE, else PIPE_QUEUE_PASSWORD', () => {
  const file = join(mkdtempSync(join(tmpdir(), 'pipe-pw-')), 'redis-password');
  writeFileSync(file, 's3cret from a file\nsecond line ignored\n');
  assert.equal(parseQueueUrl('redis://h:1/0', { PIPE_QUEUE_PASSWORD_FILE: file, PIPE_QUEUE_PASSWORD: 'from env' }).connection.password, 's3cret from a file');
  assert.equal(parseQueueUrl('redis://h:1/0', { PIPE_QUEUE_PASSWORD: 'from env' }).connection.password, 'from env');
  assert.equal(parseQueueUrl('redis://:inurl@h:1/0', { PIPE_QUEUE_PASSWORD: 'from env' }).connection.password, 'inurl');
  assert.equal(parseQueueUrl('redis://h:1/0', {}).connection.password, undefined);
  assert.equal(parseQueueUrl('redis://h:1/0', { PIPE_QUEUE_PASSWORD: 'x' }).display, 'redis://h:1/0', 'nothing to mask: the password is not in the URL');
  assert.throws(() => parseQueueUrl('redis://h:1/0', { PIPE_QUEUE_PASSWORD_FILE: join(tmpdir(), 'no-such-pipe-pw') }), (e: unknown) => e instanceof PipelineError && e.exitCode === 2 && /PIPE_QUEUE_PASSWORD_FILE .*cannot read it \(ENOENT\)/.test(e.message));
});

test('suggested commands work as printed: no --queue when it came from the environment, never a masked password', () => {
  assert.equal(queueHint(undefined), '');
  assert.equal(queueHint(true), '');
  assert.equal(queueHint('redis://h:1/0'), ' --queue redis://h:1/0');
  assert.equal(queueHint('redis://:pw@h:1/0'), ' --queue <the same URL>');
});

test('a worker stopped answering after 3 missed heartbeats; times in UTC to the second; worker names from client names', () => {
  const p = { worker: 'w', runId: 'r', attempt: 1, setsHash: 'x', heartbeat: 1_000_000, heartbeatMs: 100 };
  assert.equal(stoppedAnswering(p, undefined, 1_000_300, false), undefined);
  assert.equal(stoppedAnswering(p, undefined, 1_000_301, false), 1_000_000);
  // A retried job just taken again still holds the previous attempt's heartbeat: silence counts from its activation.
  assert.equal(stoppedAnswering(p, 1_005_000, 1_005_300, false), undefined, 'an old heartbeat from before this activation is not silence');
  assert.equal(stoppedAnswering(p, 1_005_000, 1_005_301, false), 1_005_000);
  assert.equal(stoppedAnswering(p, 999_000, 1_000_301, false), 1_000_000, 'a heartbeat after the activation counts');
  // A worker descheduled for 1-3 s on a loaded machine (or a reader that reads the job late) leaves
  // the heartbeat 10-30 periods old while it still holds the job's lock: not silent until the lock expired.
  assert.equal(stoppedAnswering(p, undefined, 1_001_000, true), undefined, 'a worker that holds the lock still has the job');
  assert.equal(stoppedAnswering(p, undefined, 1_003_000, true), undefined);
  assert.equal(stoppedAnswering(p, undefined, 1_003_000, false), 1_000_000, 'lock expired: silent since its last heartbeat');
  assert.equal(stoppedAnswering({ worker: 'w' }, undefined, 9e12, false), undefined, 'no heartbeat recorded: unknown, not silent');
  assert.equal(stoppedAnswering(0, undefined, 9e12, false), undefined);
  assert.equal(formatTime(Date.UTC(2026, 11, 3, 10, 41, 7, 999)), '2026-12-03 10:41:07 UTC');
  assert.equal(workerName('bull:cGlwZS10cmlhbHM=:w:gpu-1:x'), 'gpu-1:x');
  assert.equal(workerName('bull:cGlwZS10cmlhbHM='), 'bull:cGlwZS10cmlhbHM=');
});

test('connectOrFail: an answer that came while the process was held up past the timeout decides, not the late timer', async () => {
  // Redis's refusal is on the socket when the process, descheduled past `ms`, runs again: its timer
  // is due at the same moment. A real socket pair on 127.0.0.1, the hold-up a busy loop.
  const server = createServer();
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = connect((server.address() as { port: number }).port, '127.0.0.1');
  const [[peer]] = await Promise.all([accepted, once(client, 'connect')]);
  let last = '';
  const ready = new Promise<void>((_, reject) => client.once('data', (d: Buffer) => reject(new Error((last = d.toString())))));
  ready.catch(() => undefined);
  try {
    peer.write('NOAUTH Authentication required.'); // in the client's socket buffer at once (loopback)
    const verdict = connectOrFail(ready, 'redis://127.0.0.1:1/0', () => last, 20);
    for (const end = Date.now() + 200; Date.now() < end; ); // held up for 10 times the timeout
    await assert.rejects(verdict, /cannot reach the queue redis:\/\/127\.0\.0\.1:1\/0: NOAUTH Authentication required\./);
  } finally {
    client.destroy();
    peer.destroy();
    server.close();
  }
});
