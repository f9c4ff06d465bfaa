/** DAG ordering and cycle detection on small integer graphs. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findCycle, topoOrder } from '../../src/dag/compile.js';

//   1 ──> 2 ──> 4
//   └──> 3 ──┘        (edges point downstream; deps are the reverse)
const deps: Record<number, number[]> = { 1: [], 2: [1], 3: [1], 4: [2, 3] };

test('topological order: every node after its deps, ties in input order', () => {
  assert.deepEqual(topoOrder([4, 3, 2, 1], (n) => deps[n]!), [1, 2, 3, 4]);
  assert.deepEqual(topoOrder([1, 3, 2, 4], (n) => deps[n]!), [1, 3, 2, 4]);
});

test('no cycle in a DAG', () => {
  assert.equal(findCycle([1, 2, 3, 4], (n) => deps[n]!), undefined);
});

//   1 ──> 2 ──> 3 ──> 1,  4 standalone
test('a cycle is reported as a closed path in data-flow order', () => {
  const cyc: Record<number, number[]> = { 1: [3], 2: [1], 3: [2], 4: [] };
  assert.deepEqual(findCycle([4, 1, 2, 3], (n) => cyc[n]!), [1, 2, 3, 1]);
});

test('a self-loop is a cycle of one', () => {
  assert.deepEqual(findCycle([1], () => [1]), [1, 1]);
});
