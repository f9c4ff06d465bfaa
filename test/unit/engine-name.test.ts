/**
 * engineName (src/engine/backend.ts): the one short name of the route the heavy work takes,
 * hand-worked for each backend and kernel route.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { engineName } from '../../src/engine/backend.js';

test('engineName: the oneDNN addon route, the wasm route, libtensorflow, pure JavaScript', () => {
  assert.equal(engineName('wasm', false, { route: 'native', threads: 2 }), 'native (oneDNN, 2 threads) + wasm SIMD');
  assert.equal(engineName('wasm', false, { route: 'native', threads: 1 }), 'native (oneDNN, 1 thread) + wasm SIMD');
  assert.equal(engineName('wasm', false, { route: 'wasm' }), 'wasm');
  assert.equal(engineName('wasm', false, undefined), 'wasm');
  assert.equal(engineName('tensorflow', false, undefined), 'tensorflow (libtensorflow CPU)');
  assert.equal(engineName('tensorflow', true, undefined), 'tensorflow (libtensorflow GPU)');
  assert.equal(engineName('cpu', false, undefined), 'cpu');
});
