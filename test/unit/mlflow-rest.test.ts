/**
 * The MLflow REST client against the fake server: errors (JSON, HTML, text), retry and backoff
 * (status faults, dropped connections, Retry-After, timeouts), runs/create and log-batch never
 * applied twice after an ambiguous failure, paged metric history, artifacts, auth and TLS settings.
 */
import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PipelineError } from '../../src/errors.js';
import { applyRecord, ensureExperiment } from '../../src/tracking/rest/apply.js';
import { connectionFromEnv } from '../../src/tracking/rest/auth.js';
import { artifactRoot, MlflowClient, type ClientOptions } from '../../src/tracking/rest/client.js';
import { MlflowError, parseErrorBody } from '../../src/tracking/rest/errors.js';
import { KeyMapper, sanitizeKey, truncateValue } from '../../src/tracking/rest/keys.js';
import { backoffDelay, DEFAULT_RETRY, parseRetryAfter, type RetryPolicy } from '../../src/tracking/rest/retry.js';
import { FakeMlflow } from '../fake-mlflow.js';
import { checkKey } from '../fake-mlflow-store.js';

let fake: FakeMlflow;
before(async () => (fake = await FakeMlflow.start()));
after(async () => fake.close());
beforeEach(() => {
  fake.faults = [];
  fake.latencyMs = 0;
  fake.auth = undefined;
  fake.hostCheck = false;
});

const FAST: RetryPolicy = { maxRetries: 3, baseDelayMs: 5, maxDelayMs: 20, jitterMs: 0, maxRetryAfterMs: 50 };
const clients: MlflowClient[] = [];
after(async () => Promise.all(clients.map((c) => c.close())));
function client(opts: ClientOptions = {}, delays: number[] = []): MlflowClient {
  const c = new MlflowClient(fake.uri, { retry: FAST, env: {}, hooks: { onRetry: (_e, _n, d) => void delays.push(d), sleep: () => Promise.resolve() }, ...opts });
  clients.push(c);
  return c;
}
const count = (path: string): number => fake.requests.filter((r) => r.path.endsWith(path)).length;

test('error bodies: JSON, the HTML 404 page, the host check, auth', () => {
  assert.deepEqual(parseErrorBody(404, '{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Run with id=x not found"}'), { errorCode: 'RESOURCE_DOES_NOT_EXIST', message: 'Run with id=x not found' });
  const html = '<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n<p>The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.</p>\n';
  assert.deepEqual(parseErrorBody(404, html), { errorCode: 'HTTP_404', message: 'Not Found: The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.' });
  const host = new MlflowError(403, 'HTTP_403', 'Invalid Host header - possible DNS rebinding attack detected', 'GET experiments/get-by-name');
  assert.match(host.message, /--allowed-hosts/);
  assert.equal(host.exitCode, 2);
  assert.match(new MlflowError(401, 'HTTP_401', 'x', 'GET a').message, /MLFLOW_TRACKING_USERNAME/);
  // Retry classes, as MLflow's Python client: 408, 429, 5xx and network errors; other 4xx final.
  const cls = (status: number, sent = true): [boolean, boolean] => { const e = new MlflowError(status, 'X', 'm', 'GET a', sent); return [e.retryable, e.ambiguous]; };
  assert.deepEqual([cls(400), cls(404), cls(408), cls(429), cls(500), cls(503), cls(504), cls(0, true), cls(0, false)],
    [[false, false], [false, false], [true, false], [true, false], [true, true], [true, false], [true, true], [true, true], [true, false]]);
});

test('backoff: doubling from the base, capped, jitter added, Retry-After honoured up to its cap', () => {
  const p: RetryPolicy = { maxRetries: 9, baseDelayMs: 500, maxDelayMs: 3000, jitterMs: 200, maxRetryAfterMs: 10_000 };
  const zero = (): number => 0;
  assert.deepEqual([1, 2, 3, 4, 5].map((n) => backoffDelay(p, n, zero)), [500, 1000, 2000, 3000, 3000]);
  assert.equal(backoffDelay(p, 2, () => 0.5), 1100);
  assert.equal(backoffDelay(p, 1, zero, 7000), 7000);
  assert.equal(backoffDelay(p, 1, zero, 60_000), 10_000);
  assert.equal(backoffDelay(p, 3, zero, 100), 2000, 'a short Retry-After never shortens the backoff');
  assert.equal(parseRetryAfter('7'), 7000);
  assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:05 GMT', Date.parse('Wed, 21 Oct 2015 07:28:00 GMT')), 5000);
  assert.equal(parseRetryAfter('soon'), undefined);
  // The default policy spends 0.5+1+2+4+8 s (+ jitter) before giving up.
  assert.equal([1, 2, 3, 4, 5].reduce((s, n) => s + backoffDelay(DEFAULT_RETRY, n, zero), 0), 15_500);
});

test('retries 503 and dropped connections, honours Retry-After, stops after maxRetries, never retries a 400', async () => {
  const delays: number[] = [];
  const c = client({}, delays);
  fake.faults = [{ kind: 503, count: 1, retryAfter: 1 }, { kind: 'drop', count: 1 }];
  const before = count('experiments/create');
  const id = await c.createExperiment('retry-me');
  assert.equal(count('experiments/create') - before, 3);
  assert.equal(fake.store.experiments.get(id)?.name, 'retry-me');
  assert.deepEqual(delays, [50, 10], 'Retry-After 1 s capped at 50 ms, then the 2nd backoff step (5*2)');

  fake.faults = [{ kind: 500 }];
  const n0 = count('experiments/get-by-name');
  await assert.rejects(c.getExperimentByName('retry-me'), (e: MlflowError) => e.status === 500 && e.errorCode === 'INTERNAL_ERROR');
  assert.equal(count('experiments/get-by-name') - n0, 1 + FAST.maxRetries);

  fake.faults = [];
  const n1 = count('experiments/create');
  await assert.rejects(c.createExperiment('retry-me'), (e: MlflowError) => e.status === 400 && e.errorCode === 'RESOURCE_ALREADY_EXISTS' && !e.retryable);
  assert.equal(count('experiments/create') - n1, 1, 'a 400 is final');
});

test('a timeout is a retryable TIMEOUT error', async () => {
  // undici's header timer ticks about every 0.5 s, so a 200 ms timeout fires within ~1.5 s.
  const c = client({ timeoutMs: 200, retry: { ...FAST, maxRetries: 0 } });
  fake.latencyMs = 2000;
  await assert.rejects(c.getExperimentByName('slow'), (e: MlflowError) => e.status === 0 && e.errorCode === 'TIMEOUT' && e.retryable);
});

test('runs/create after an ambiguous failure: one run (searched by client tag), where a blind retry makes two', async () => {
  const c = client();
  const exp = await ensureExperiment(c, 'create-once');
  const start = (id: string) => ({ op: 'start' as const, experiment: 'create-once', runName: `r-${id}`, tags: [{ key: 'pipe.client_run_id', value: id }], startTime: 1000, clientRunId: id });
  const runsIn = (): number => [...fake.store.runs.values()].filter((r) => r.info.experiment_id === exp).length;
  fake.faults = [{ kind: 'drop-after', path: 'runs/create', count: 1 }];
  const ref = await applyRecord(c, undefined, start('aaa'), { baseDir: '.' });
  assert.equal(runsIn(), 1);
  assert.equal(fake.store.runs.get(ref!.runId)?.tags.get('pipe.client_run_id'), 'aaa');
  assert.equal(fake.requests.filter((r) => r.path.endsWith('runs/search')).length >= 1, true);
  // Control: the same fault with a plain retried create duplicates the run.
  fake.faults = [{ kind: 'drop-after', path: 'runs/create', count: 1 }];
  await c.createRun({ experimentId: exp, runName: 'blind', startTime: 1000, tags: [] });
  assert.equal(runsIn(), 3, 'the blind retry created a duplicate');
});

test('log-batch after a connection dropped once the batch was stored: every point exactly once', async () => {
  const c = client();
  const exp = await ensureExperiment(c, 'batch-once');
  const ref = await applyRecord(c, undefined, { op: 'start', experiment: 'batch-once', runName: 'b', tags: [], startTime: 1, clientRunId: 'b1' }, { baseDir: '.' });
  const metrics = Array.from({ length: 10 }, (_, i) => ({ key: 'loss', value: i / 10, timestamp: 1000 + i, step: i }));
  fake.faults = [{ kind: 'drop-after', path: 'runs/log-batch', count: 1 }];
  await applyRecord(c, ref, { op: 'batch', metrics }, { baseDir: '.' });
  assert.deepEqual(fake.store.runs.get(ref!.runId)!.points.map((p) => p.step), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  // Dropped before it was applied: the check finds nothing, the batch is sent again.
  fake.faults = [{ kind: 'drop', path: 'runs/log-batch', count: 1 }];
  await applyRecord(c, ref, { op: 'batch', metrics: [{ key: 'loss', value: 'NaN', timestamp: 2000, step: 10 }] }, { baseDir: '.' });
  const pts = fake.store.runs.get(ref!.runId)!.points;
  assert.equal(pts.length, 11);
  assert.ok(Number.isNaN(pts[10]!.value));
  assert.equal(exp, ref!.experimentId);
});

test('metric history is read page by page, max_results always sent', async () => {
  const c = client({ historyPageSize: 5 });
  const exp = await ensureExperiment(c, 'history');
  const run = await c.createRun({ experimentId: exp, runName: 'h', startTime: 1, tags: [] });
  await c.logBatch(run.run_id, { metrics: Array.from({ length: 12 }, (_, i) => ({ key: 'm', value: i === 3 ? 'NaN' as const : i * 2, timestamp: 50 + i, step: i })) });
  const n0 = fake.requests.length;
  const h = await c.getMetricHistory(run.run_id, 'm');
  const reqs = fake.requests.slice(n0);
  assert.equal(reqs.length, 3);
  assert.ok(reqs.every((r) => r.query.get('max_results') === '5'));
  assert.deepEqual(h.map((p) => p.step), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  assert.equal(h[3]!.value, 'NaN');
  assert.equal(h[11]!.value, 22);
});

test('experiments: restored when deleted; concurrent get-or-create makes one', async () => {
  const c = client();
  const ids = await Promise.all([ensureExperiment(c, 'race'), ensureExperiment(c, 'race'), ensureExperiment(c, 'race')]);
  assert.equal(new Set(ids).size, 1);
  assert.equal([...fake.store.experiments.values()].filter((e) => e.name === 'race').length, 1);
  fake.store.experiments.get(ids[0]!)!.lifecycle_stage = 'deleted';
  assert.equal(await ensureExperiment(c, 'race'), ids[0]);
  assert.equal(fake.store.experiments.get(ids[0]!)!.lifecycle_stage, 'active');
});

test('artifacts: upload, list, download through the proxy; other stores are refused clearly', async () => {
  const c = client();
  const dir = mkdtempSync(join(tmpdir(), 'pipe-art-'));
  const bytes = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7) % 256));
  writeFileSync(join(dir, 'w.bin'), bytes);
  await c.uploadArtifact('5/r1/artifacts/best model/w.bin', join(dir, 'w.bin'));
  assert.deepEqual(await c.listArtifacts('5/r1/artifacts'), [{ path: 'best model', is_dir: true }]);
  assert.deepEqual(await c.listArtifacts('5/r1/artifacts/best model'), [{ path: 'w.bin', is_dir: false, file_size: 70_000 }]);
  assert.ok((await c.downloadArtifact('5/r1/artifacts/best model/w.bin')).equals(bytes));
  assert.equal(artifactRoot('mlflow-artifacts:/4/abc/artifacts'), '4/abc/artifacts');
  assert.equal(artifactRoot('mlflow-artifacts://host:5000/4/abc/artifacts'), '4/abc/artifacts');
  assert.throws(() => artifactRoot('s3://bucket/4/abc/artifacts'), (e: PipelineError) => e.code === 'PIPE_TRACKING' && /--serve-artifacts/.test(e.message));
});

test('auth and TLS from the environment; secrets never in messages', async () => {
  const basic = `Basic ${Buffer.from('alice:s3cret-pw').toString('base64')}`;
  fake.auth = basic;
  const ok = client({ env: { MLFLOW_TRACKING_USERNAME: 'alice', MLFLOW_TRACKING_PASSWORD: 's3cret-pw' } });
  assert.equal(await ok.getExperimentByName('nope'), undefined);
  const bad = client({ env: { MLFLOW_TRACKING_USERNAME: 'alice', MLFLOW_TRACKING_PASSWORD: 'wrong-pw' } });
  await assert.rejects(bad.getExperimentByName('nope'), (e: MlflowError) => e.status === 401 && /MLFLOW_TRACKING_PASSWORD/.test(e.message) && !e.message.includes('wrong-pw'));
  fake.auth = 'Bearer tok-12345';
  assert.equal(await client({ env: { MLFLOW_TRACKING_TOKEN: 'tok-12345' } }).getExperimentByName('nope'), undefined);
  const inUri = connectionFromEnv('https://bob:pa55word@mlflow.example.com:8443/prefix/', {});
  assert.equal(inUri.baseUrl, 'https://mlflow.example.com:8443/prefix');
  assert.equal(inUri.headers['authorization'], `Basic ${Buffer.from('bob:pa55word').toString('base64')}`);
  assert.equal(inUri.redact('echo pa55word here'), 'echo *** here');
  assert.deepEqual(connectionFromEnv('https://h', { MLFLOW_TRACKING_INSECURE_TLS: 'true' }).tls, { rejectUnauthorized: false });
  const dir = mkdtempSync(join(tmpdir(), 'pipe-ca-'));
  writeFileSync(join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\n');
  assert.equal(connectionFromEnv('https://h', { MLFLOW_TRACKING_SERVER_CERT_PATH: join(dir, 'ca.pem') }).tls.ca, '-----BEGIN CERTIFICATE-----\n');
  assert.throws(() => connectionFromEnv('https://h', { MLFLOW_TRACKING_INSECURE_TLS: 'true', MLFLOW_TRACKING_SERVER_CERT_PATH: join(dir, 'ca.pem') }), (e: PipelineError) => e.code === 'PIPE_TRACKING' && /both set/.test(e.message));
});

test('the host check (403 text) names --allowed-hosts', async () => {
  fake.hostCheck = true;
  await assert.rejects(client().getExperimentByName('x'), (e: MlflowError) => e.status === 403 && /Invalid Host header/.test(e.message) && /--allowed-hosts/.test(e.message) && !e.retryable);
});

test('keys are sanitised to names the server accepts, one MLflow key per caller key', () => {
  const cases: [string, string][] = [['loss@1', 'loss_1'], ['has,comma', 'has_comma'], ['../x', '__/x'], ['/abs', 'abs'], ['a//b', 'a/b'], ['x/', 'x'],
    ['', '_'], ['..x', '_.x'], ['a/./b', 'a/_/b'], ['ünï', 'ünï'], ['a..b', 'a..b'], ['stages.head.with.optimizer.lr', 'stages.head.with.optimizer.lr']];
  for (const [key, want] of cases) {
    assert.equal(sanitizeKey(key), want, key);
    assert.doesNotThrow(() => checkKey(want, 'Param key'), want); // the fake server's own rules
  }
  assert.equal(sanitizeKey('k'.repeat(300)), 'k'.repeat(250));
  const m = new KeyMapper();
  assert.equal(m.map('a@b'), 'a_b');
  assert.equal(m.map('a#b'), `a_b_${createHash('sha256').update('a#b').digest('hex').slice(0, 8)}`);
  assert.equal(m.map('a@b'), 'a_b', 'stable');
  assert.deepEqual([...m.renamed.keys()], ['a@b', 'a#b']);
  assert.deepEqual(truncateValue('ab\u{1F600}', 3), { value: 'ab', truncated: true }, 'never half a surrogate pair');
});
