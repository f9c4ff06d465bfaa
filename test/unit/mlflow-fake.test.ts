/**
 * The fake MLflow server answers like the real one: each expected status, error_code and
 * message below is copied from test/fixtures/mlflow/transcript-3.6.txt (MLflow 3.6.1.dev0, SQLite
 * backend, artifact proxy on), with the transcript's case name.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { request } from 'undici';
import { FakeMlflow } from '../fake-mlflow.js';

let fake: FakeMlflow;
before(async () => (fake = await FakeMlflow.start()));
after(async () => fake.close());

async function call(method: string, endpoint: string, body?: unknown, raw?: string): Promise<{ status: number; json: Record<string, any>; text: string }> {
  const url = endpoint.startsWith('/') ? `${fake.uri}${endpoint}` : `${fake.uri}/api/2.0/mlflow/${endpoint}`;
  const res = await request(url, { method: method as 'GET', ...(body !== undefined || raw !== undefined ? { body: raw ?? JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}) });
  const text = await res.body.text();
  let json: Record<string, any> = {};
  try {
    json = JSON.parse(text);
  } catch { /* HTML */ }
  return { status: res.statusCode, json, text };
}
const docs = 'See the API docs for more information about request parameters.';
const now = 1795949918123;

async function newRun(name = 'child'): Promise<{ exp: string; run: string }> {
  const exp = (await call('POST', 'experiments/create', { name: `probe-${Math.random()}` })).json['experiment_id'] as string;
  const r = await call('POST', 'runs/create', { experiment_id: Number(exp), run_name: name, start_time: now, tags: [] });
  return { exp, run: r.json['run'].info.run_id };
}
const logMetric = (run: string, key: string, value: unknown = 1): ReturnType<typeof call> => call('POST', 'runs/log-metric', { run_id: run, key, value, timestamp: now, step: 0 });

test('experiments/create and runs/create as in the transcript', async () => {
  // "create exp numeric name field wrong type"
  assert.deepEqual((await call('POST', 'experiments/create', { name: 123 })).json, { error_code: 'INVALID_PARAMETER_VALUE', message: `Invalid value 123 for parameter 'name' supplied: Hint: Value was of type 'int'. ${docs}` });
  const exp = (await call('POST', 'experiments/create', { name: 'probe-create' })).json['experiment_id'];
  assert.equal(typeof exp, 'string', 'experiment_id is a string');
  // "runs/create experiment_id as number"
  const r = await call('POST', 'runs/create', { experiment_id: Number(exp), start_time: now });
  assert.equal(r.status, 200);
  const info = r.json['run'].info;
  assert.equal(info.experiment_id, exp);
  assert.equal(info.status, 'RUNNING');
  assert.equal(info.lifecycle_stage, 'active');
  assert.equal(info.run_uuid, info.run_id);
  assert.equal(info.artifact_uri, `mlflow-artifacts:/${exp}/${info.run_id}/artifacts`);
  // "runs/create no start_time": stored as 0
  assert.equal((await call('POST', 'runs/create', { experiment_id: exp })).json['run'].info.start_time, 0);
  // "runs/create run_name vs mlflow.runName tag conflict"
  const conflict = await call('POST', 'runs/create', { experiment_id: exp, run_name: 'a', tags: [{ key: 'mlflow.runName', value: 'b' }] });
  assert.equal(conflict.status, 400);
  assert.equal(conflict.json['message'], "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with different values (run_name='a', mlflow.runName='b').");
  // "runs/create user_id field"
  assert.equal((await call('POST', 'runs/create', { experiment_id: exp, user_id: 'alice', start_time: now })).json['run'].info.user_id, 'alice');
});

test('params: immutable, duplicate keys, silent truncation at 6000, key length 250', async () => {
  const { run } = await newRun();
  assert.equal((await call('POST', 'runs/log-parameter', { run_id: run, key: 'p', value: '1' })).status, 200);
  assert.equal((await call('POST', 'runs/log-parameter', { run_id: run, key: 'p', value: '1' })).status, 200);
  assert.equal((await call('POST', 'runs/log-parameter', { run_id: run, key: 'p', value: '2' })).json['message'],
    `Changing param values is not allowed. Param with key='p' was already logged with value='1' for run ID='${run}'. Attempted logging new value '2'.`);
  assert.equal((await call('POST', 'runs/log-batch', { run_id: run, params: [{ key: 'p', value: '3' }] })).json['message'],
    `Changing param values is not allowed. Params were already logged='[{'key': 'p', 'old_value': '1', 'new_value': '3'}]' for run ID='${run}'.`);
  assert.equal((await call('POST', 'runs/log-batch', { run_id: run, params: [{ key: 'q', value: '1' }, { key: 'q', value: '2' }] })).json['message'],
    "Duplicate parameter keys have been submitted: ['q']. Please ensure the request contains only one param value per param key.");
  assert.equal((await call('POST', 'runs/log-batch', { run_id: run, params: [{ key: 'long6001', value: 'x'.repeat(6001) }] })).status, 200);
  assert.equal((await call('POST', 'runs/log-batch', { run_id: run, params: [{ key: 'k'.repeat(250), value: '1' }] })).status, 200);
  assert.equal((await call('POST', 'runs/log-batch', { run_id: run, params: [{ key: 'k'.repeat(251), value: '1' }] })).json['message'], "'Param key' exceeds the maximum length of 250 characters");
  assert.equal((await call('POST', 'runs/log-batch', { run_id: run, tags: [{ key: 't', value: 'x'.repeat(8001) }] })).status, 200);
  const got = (await call('GET', `runs/get?run_id=${run}`)).json['run'].data;
  assert.equal(got.params.find((p: { key: string }) => p.key === 'long6001').value.length, 6000);
  assert.equal(got.tags.find((p: { key: string }) => p.key === 't').value.length, 8000);
});

test('metric key rules', async () => {
  const { run } = await newRun();
  const chars = 'Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colon(:) and slashes (/).';
  const path = 'Names may be treated as files in certain cases, and must not resolve to other names when treated as such.';
  const cases: [string, number, string?][] = [
    ['a/b.c-d_e f:g', 200], ['a..b', 200], ['ünï', 200],
    ['loss@1', 400, `Invalid value "loss@1" for parameter 'name' supplied: ${chars}`],
    ['has,comma', 400, `Invalid value "has,comma" for parameter 'name' supplied: ${chars}`],
    ['../x', 400, `Invalid value "../x" for parameter 'name' supplied: ${path} This name would resolve to '../x'`],
    ['/abs', 400, `Invalid value "/abs" for parameter 'name' supplied: ${path} This name would resolve to '/abs'`],
    ['a//b', 400, `Invalid value "a//b" for parameter 'name' supplied: ${path} This name would resolve to 'a/b'`],
    ['x/', 400, `Invalid value "x/" for parameter 'name' supplied: ${path} This name would resolve to 'x'`],
    ['', 400, `Missing value for required parameter 'key'. ${docs}`],
  ];
  for (const [key, status, message] of cases) {
    const r = await logMetric(run, key);
    assert.equal(r.status, status, key);
    if (message) assert.deepEqual(r.json, { error_code: 'INVALID_PARAMETER_VALUE', message }, key);
  }
});

test('log-batch limits and metric fields', async () => {
  const { run } = await newRun();
  const m = (n: number): unknown[] => Array.from({ length: n }, (_, i) => ({ key: 'm', value: i, timestamp: now, step: i }));
  const kv = (n: number, p: string): unknown[] => Array.from({ length: n }, (_, i) => ({ key: `${p}${i}`, value: '1' }));
  const msg = async (b: Record<string, unknown>): Promise<unknown> => (await call('POST', 'runs/log-batch', { run_id: run, ...b })).json['message'];
  assert.equal((await call('POST', 'runs/log-batch', { run_id: run, params: kv(100, 'a') })).status, 200);
  assert.equal(await msg({ params: kv(101, 'b') }), 'A batch logging request can contain at most 100 params. Got 101 params. Please split up params across multiple requests and try again.');
  assert.equal(await msg({ tags: kv(101, 't') }), 'A batch logging request can contain at most 100 tags. Got 101 tags. Please split up tags across multiple requests and try again.');
  assert.equal((await call('POST', 'runs/log-batch', { run_id: run, metrics: m(1000) })).status, 200);
  assert.equal(await msg({ metrics: m(1001) }), 'A batch logging request can contain at most 1000 metrics. Got 1001 metrics. Please split up metrics across multiple requests and try again.');
  assert.equal(await msg({ metrics: m(900), params: kv(100, 'c'), tags: kv(1, 'u') }),
    'A batch logging request can contain at most 1000 metrics, params, and tags. Got 1001 metrics, params, and tags. Please split up metrics, params, and tags across multiple requests and try again.');
  assert.equal(await msg({ metrics: [{ key: 'x', value: 1, step: 0 }] }), `Missing value for required parameter 'metrics[0].timestamp'. ${docs}`);
  assert.equal((await call('POST', 'runs/log-batch', { run_id: run, metrics: [{ key: 'nostep', value: 1, timestamp: now }] })).status, 200);
  for (const [key, value] of [['nan', 'NaN'], ['inf', 'Infinity'], ['half', '0.5']]) assert.equal((await logMetric(run, key!, value)).status, 200);
  await logMetric(run, 'dup', 1);
  await logMetric(run, 'dup', 2);
  const hist = async (key: string, max = '&max_results=10'): Promise<Record<string, any>> => (await call('GET', `metrics/get-history?run_id=${run}&metric_key=${key}${max}`)).json;
  assert.deepEqual(await hist('nan'), { metrics: [{ key: 'nan', value: 'NaN', timestamp: now, step: 0 }] });
  assert.deepEqual(await hist('dup'), { metrics: [{ key: 'dup', value: 1, timestamp: now, step: 0 }, { key: 'dup', value: 2, timestamp: now, step: 0 }] });
  assert.equal((await hist('inf')).metrics[0].value, 1.7976931348623157e308);
  assert.equal((await hist('half')).metrics[0].value, 0.5);
  assert.equal((await hist('nostep')).metrics[0].step, 0);
  // "get-history m (no max_results)": no metrics, a token that never advances.
  assert.deepEqual(await hist('m', ''), { next_page_token: 'eyJvZmZzZXQiOiAwfQ==' });
  const page = await hist('m', '&max_results=5');
  assert.deepEqual(page.metrics.map((p: { step: number }) => p.step), [0, 1, 2, 3, 4]);
  assert.equal(Buffer.from(page.next_page_token, 'base64').toString(), '{"offset": 5}');
});

test('runs: update, get, delete, search', async () => {
  const { exp, run } = await newRun();
  const upd = async (status: string): Promise<string> => (await call('POST', 'runs/update', { run_id: run, status, end_time: now + 1000 })).json['run_info'].status;
  assert.equal(await upd('BOGUS'), 'RUNNING', 'an unknown status is ignored with 200');
  for (const s of ['SCHEDULED', 'FAILED', 'KILLED', 'RUNNING', 'FINISHED']) assert.equal(await upd(s), s);
  assert.equal((await logMetric(run, 'after_finished')).status, 200);
  assert.equal((await call('POST', 'runs/update', { run_id: run, run_name: 'child-renamed' })).json['run_info'].run_name, 'child-renamed');
  const missingRun = '0123456789abcdef0123456789abcdef';
  assert.deepEqual((await call('GET', `runs/get?run_id=${missingRun}`)).json, { error_code: 'RESOURCE_DOES_NOT_EXIST', message: `Run with id=${missingRun} not found` });
  assert.equal((await logMetric(missingRun, 'x')).status, 404);
  assert.equal((await call('POST', 'runs/delete', { run_id: run })).status, 200);
  assert.deepEqual((await logMetric(run, 'x')).json, { error_code: 'INVALID_PARAMETER_VALUE', message: `The run ${run} must be in the 'active' state. Current state is deleted.` });
  await call('POST', 'runs/restore', { run_id: run });
  const child = await call('POST', 'runs/create', { experiment_id: exp, run_name: 'kid', start_time: now, tags: [{ key: 'mlflow.parentRunId', value: run }] });
  const found = await call('POST', 'runs/search', { experiment_ids: [exp], filter: `tags.\`mlflow.parentRunId\` = '${run}'` });
  assert.deepEqual(found.json['runs'].map((r: { info: { run_id: string } }) => r.info.run_id), [child.json['run'].info.run_id]);
  assert.equal((await call('POST', 'runs/search', { experiment_ids: [exp], max_results: 50001 })).json['message'], `Invalid value 50001 for parameter 'max_results' supplied: Hint: Value was of type 'int'. ${docs}`);
  assert.equal((await call('POST', 'runs/search', { experiment_ids: [exp], filter: "attributes.status <<< 'x'" })).json['message'], "Invalid comparator '<<<' not one of '{'<', '=', '>', '>=', '<=', '!='}");
  const p1 = await call('POST', 'runs/search', { experiment_ids: [exp], max_results: 1 });
  assert.equal(p1.json['runs'].length, 1);
  assert.ok(p1.json['next_page_token']);
});

test('experiments: deleted ones are returned, block names and runs until restored', async () => {
  const name = 'probe-deleted';
  const exp = (await call('POST', 'experiments/create', { name })).json['experiment_id'];
  await call('POST', 'experiments/delete', { experiment_id: exp });
  assert.equal((await call('GET', `experiments/get-by-name?experiment_name=${name}`)).json['experiment'].lifecycle_stage, 'deleted');
  const again = await call('POST', 'experiments/create', { name });
  assert.equal(again.status, 400);
  assert.equal(again.json['error_code'], 'RESOURCE_ALREADY_EXISTS');
  assert.equal((await call('POST', 'runs/create', { experiment_id: exp, start_time: now })).json['message'], `The experiment ${exp} must be in the 'active' state. Current state is deleted.`);
  assert.equal((await call('POST', 'experiments/restore', { experiment_id: exp })).status, 200);
  assert.equal((await call('GET', 'experiments/get-by-name')).json['message'], `Missing value for required parameter 'experiment_name'. ${docs}`);
});

test('HTML answers, malformed JSON, artifact proxy', async () => {
  const unknown = await call('GET', 'no/such/endpoint');
  assert.equal(unknown.status, 404);
  assert.match(unknown.text, /<title>404 Not Found<\/title>/);
  const wrong = await call('GET', 'runs/create');
  assert.equal(wrong.status, 405);
  assert.match(wrong.text, /<title>405 Method Not Allowed<\/title>/);
  assert.equal((await call('POST', 'runs/log-batch', undefined, '{not json')).json['message'], `Missing value for required parameter 'run_id'. ${docs}`);
  const put = await request(`${fake.uri}/api/2.0/mlflow-artifacts/artifacts/4/r/artifacts/plots/a.txt`, { method: 'PUT', body: 'hello' });
  assert.equal(put.statusCode, 200);
  await put.body.text();
  const get = await request(`${fake.uri}/api/2.0/mlflow-artifacts/artifacts/4/r/artifacts/plots/a.txt`);
  assert.equal(await get.body.text(), 'hello');
  assert.deepEqual((await call('GET', '/api/2.0/mlflow-artifacts/artifacts?path=4/r/artifacts')).json, { files: [{ path: 'plots', is_dir: true }] });
  // Raw paths (node:http does not normalise `..` away as URL parsing would).
  for (const p of ['4/r/artifacts/../../x', '4/r/artifacts/%2e%2e/x']) {
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = httpRequest(`${fake.uri}/`, { method: 'PUT', path: `/api/2.0/mlflow-artifacts/artifacts/${p}` }, (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on('error', reject);
      req.end('x');
    });
    assert.equal(status, 404, p);
  }
});
