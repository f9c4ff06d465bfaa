/**
 * What makes parallel trials safe and shared stages run once: the stage index with one file per
 * key (two writers that each loaded the index before the other wrote lose nothing), the
 * scheduler's wait rule on small hand-drawn cases, and the identities used to resume a sweep.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { StageIndex } from '../../src/runner/cache.js';
import type { PipelineConfig } from '../../src/config/types.js';
import { waitsFor, trialEcho } from '../../src/sweep/scheduler.js';
import { configHash, sweepKey } from '../../src/sweep/state.js';
import { makeTree } from '../utils.js';

const key = (s: string): string => createHash('sha256').update(s).digest('hex');

function stageDir(root: string, name: string): string {
  const d = join(root, name);
  mkdirSync(d, { recursive: true });
  return d;
}

test('two processes recording different keys: both entries survive', async () => {
  const root = makeTree({});
  const a = new StageIndex(join(root, 'runs'));
  const b = new StageIndex(join(root, 'runs'));
  // Both look up first, as each run's planner does (a single index.json would now be cached in memory by both).
  assert.equal(await a.lookup(key('x')), undefined);
  assert.equal(await b.lookup(key('y')), undefined);
  const dx = stageDir(root, 'x');
  const dy = stageDir(root, 'y');
  await Promise.all([a.record(key('x'), dx), b.record(key('y'), dy)]);
  const fresh = new StageIndex(join(root, 'runs'));
  assert.equal(await fresh.lookup(key('x')), dx);
  assert.equal(await fresh.lookup(key('y')), dy);
  // The writer that recorded x sees y too (no stale in-memory copy).
  assert.equal(await a.lookup(key('y')), dy);
});

test('an entry whose folder lost its .done marker is a miss; malformed keys are refused', async () => {
  const root = makeTree({});
  const runs = join(root, 'runs');
  const idx = new StageIndex(runs);
  const kept = stageDir(root, 'kept');
  const lost = stageDir(root, 'lost');
  await idx.record(key('k'), kept);
  await idx.record(key('l'), lost);
  rmSync(join(lost, '.done'));
  assert.equal(await idx.lookup(key('k')), kept);
  assert.equal(await idx.lookup(key('l')), undefined);
  assert.equal(await idx.lookup(key('never')), undefined);
  await assert.rejects(idx.lookup('../../etc/passwd'), /malformed key/);
});

test('waitsFor: a trial waits for earlier unfinished trials that produce a stage it needs', () => {
  //   trial 1: data(A) aug(B) model(C) train(D1)
  //   trial 2: data(A) aug(B) model(C) train(D2)      shares A, B, C with 1
  //   trial 3: data(A) aug(B) model(E) train(D3)      shares A, B with 1 and 2
  const t1 = { index: 1, runKeys: ['A', 'B', 'C', 'D1'] };
  const t2 = { index: 2, runKeys: ['A', 'B', 'C', 'D2'] };
  const t3 = { index: 3, runKeys: ['A', 'B', 'E', 'D3'] };
  const all = [t1, t2, t3];
  assert.deepEqual(waitsFor(t1, all, new Set()), []);
  assert.deepEqual(waitsFor(t2, all, new Set()), [1]);
  assert.deepEqual(waitsFor(t3, all, new Set()), [1, 2]);
  // Once A and B are cached, trial 3 only needs E (its own) and starts; trial 2 still waits for C.
  assert.deepEqual(waitsFor(t3, all, new Set(['A', 'B'])), []);
  assert.deepEqual(waitsFor(t2, all, new Set(['A', 'B'])), [1]);
  // Trial 1 ended (failed) without producing C: trial 2 no longer waits and runs C itself.
  assert.deepEqual(waitsFor(t2, [t2, t3], new Set(['A', 'B'])), []);
});

test('config hash ignores the sweep block; the sweep key ignores trial order', () => {
  const base = { name: 'p', seed: 1, engine: { backend: 'wasm' }, stages: {} } as unknown as PipelineConfig;
  assert.equal(configHash({ ...base, sweep: { seed: [1, 2] } }), configHash(base));
  assert.notEqual(configHash({ ...base, seed: 2 }), configHash(base));
  assert.equal(sweepKey('p', ['a', 'b']), sweepKey('p', ['b', 'a']));
  assert.notEqual(sweepKey('p', ['a', 'b']), sweepKey('q', ['a', 'b']));
  assert.notEqual(sweepKey('p', ['a', 'b']), sweepKey('p', ['a', 'b', 'c']));
});

test('trialEcho: each trial line prefixed by its trial; the engine line once per sweep, again only when it changes', () => {
  let text = '';
  const echo = trialEcho({ write: (s: string) => ((text += s), true) } as unknown as NodeJS.WritableStream);
  for (const t of ['lr=1e-3', 'lr=3e-3']) {
    echo(t, 'pipe: engine wasm (SIMD, 1 thread)');
    echo(t, '✔ data (download)');
  }
  echo('backend=native', 'pipe: engine native (oneDNN)');
  echo('backend=native', 'pipe: engine native (oneDNN)');
  assert.equal(text, [
    '    [lr=1e-3] pipe: engine wasm (SIMD, 1 thread)',
    '    [lr=1e-3] ✔ data (download)',
    '    [lr=3e-3] ✔ data (download)',
    '    [backend=native] pipe: engine native (oneDNN)',
    '',
  ].join('\n'));
});
