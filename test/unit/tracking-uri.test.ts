/**
 * Tests for src/tracking/uri.ts: the one reader of MLFLOW_TRACKING_URI (server or local store).
 */
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import { isServerUri, resolveStore } from '../../src/tracking/uri.js';

describe('tracking URI', () => {
  it('isServerUri: http(s):// in any case is a server; paths, file: URIs and unset are not', () => {
    for (const u of ['http://localhost:5000', 'https://mlflow.example.com/', 'HTTPS://x']) assert.equal(isServerUri(u), true, u);
    for (const u of [undefined, '', 'runs/mlruns', '/abs/mlruns', 'file:///tmp/mlruns', 'http:relative']) assert.equal(isServerUri(u), false, String(u));
  });

  it('resolveStore: unset -> <runs>/mlruns, file: and paths -> absolute folders, servers without credentials, databases refused', () => {
    assert.equal(resolveStore(undefined, 'runs'), resolve('runs', 'mlruns'));
    assert.equal(resolveStore('file:///tmp/m', 'runs'), '/tmp/m');
    assert.equal(resolveStore('store', 'runs'), resolve('store'));
    assert.equal(resolveStore('http://u:p@host:5000', 'runs'), 'http://host:5000');
    assert.equal(isServerUri(resolveStore('http://u:p@host:5000', 'runs')), true);
    assert.throws(() => resolveStore('sqlite:///mlflow.db', 'runs'), /is a database/);
    assert.throws(() => resolveStore('s3://bucket', 'runs'), /not supported/);
  });
});
