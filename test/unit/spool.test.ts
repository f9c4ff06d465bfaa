/**
 * The spool's log (one JSON record per line, fsynced): a torn last line, left by a crash in the
 * middle of an append, was never acknowledged and is dropped, and the next append starts on a line
 * of its own; a damaged line with records after it is an error naming the file and line, never a
 * silent end of the log (which made `pipe sync` drop everything after it and say "nothing left").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Spool } from '../../src/tracking/rest/spool.js';

const batch = (i: number) => ({ op: 'batch' as const, metrics: [{ key: 'loss', value: i, timestamp: 1, step: i }] });

test('a torn last line is dropped, and the next record starts on its own line', async () => {
  const s = new Spool(mkdtempSync(join(tmpdir(), 'spool-')));
  await s.append(batch(0));
  await s.append(batch(1));
  appendFileSync(s.paths.log, '{"seq":2,"op":"ba'); // the crash
  assert.deepEqual((await s.records()).map((r) => r.op === 'batch' && r.metrics?.[0]?.step), [0, 1]);
  await new Spool(s.dir).append(batch(2));
  assert.deepEqual((await new Spool(s.dir).records()).map((r) => r.op === 'batch' && r.metrics?.[0]?.step), [0, 1, 2]);
});

test('a damaged line in the middle: an error naming the file and the line, nothing after it lost', async () => {
  const s = new Spool(mkdtempSync(join(tmpdir(), 'spool-')));
  for (let i = 0; i < 4; i++) await s.append(batch(i));
  const lines = readFileSync(s.paths.log, 'utf8').split('\n');
  lines[1] = lines[1]!.slice(0, 20);
  writeFileSync(s.paths.log, lines.join('\n'));
  await assert.rejects(s.records(), (e: Error) => e.message.startsWith(`${s.paths.log}:2: not a tracking record`) && /the 2 line\(s\) after it are kept/.test(e.message));
  assert.equal(readFileSync(s.paths.log, 'utf8').split('\n').length, 5, 'the file is left as it was');
});
