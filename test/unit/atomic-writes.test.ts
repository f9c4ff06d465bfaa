/**
 * The run's small state files (lock.json, the stage-cache index) are written through the one
 * writeDurable (src/fs-durable.ts, on the write-file-atomic package: a unique temporary name,
 * fsync, rename), so
 * writers that overlap never trip over each other's temporary file, a reader sees one whole
 * version, and nothing is left beside the file.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { readLock, StageIndex, writeLock, type Lock } from '../../src/runner/cache.js';

const dirs: string[] = [];
after(async () => { for (const d of dirs) await rm(d, { recursive: true, force: true }); });
const tmp = async (): Promise<string> => { const d = await mkdtemp(join(tmpdir(), 'pipe-atomic-')); dirs.push(d); return d; };

describe('atomic writes of run state', () => {
  it('overlapping writeLock calls all succeed; the file holds one whole lock; no temporary file is left', async () => {
    const dir = await tmp();
    const lock = (i: number): Lock => ({ pipeline: 'p', file: 'p.yaml', runId: `r${i}`, createdAt: i, stages: {} });
    // A fixed `<file>.tmp` name fails here: the first rename takes the shared temporary, the others find none (ENOENT).
    await Promise.all(Array.from({ length: 16 }, (_, i) => writeLock(dir, lock(i))));
    const read = await readLock(dir);
    assert.ok(read !== undefined && /^r\d+$/.test(read.runId));
    assert.deepEqual(await readdir(dir), ['lock.json']);
  });

  it('overlapping StageIndex.record calls for one key all succeed and leave only the index entry', async () => {
    const runs = await tmp();
    const index = new StageIndex(runs);
    const outs = await Promise.all(Array.from({ length: 8 }, async (_, i) => { const d = await mkdtemp(join(runs, `out${i}-`)); return d; }));
    await Promise.all(outs.map((d) => index.record('ab'.repeat(32), d)));
    const got = await index.lookup('ab'.repeat(32));
    assert.ok(got !== undefined && outs.includes(got));
    assert.equal(await readFile(join(got, '.done'), 'utf8'), 'ab'.repeat(32));
  });
});
