/**
 * Dataset selections (stratified subset and validation split, hand-worked quotas), the compact
 * cache file (round trip, corruption caught), loading through the cache (the second load reads
 * the compact files; a corrupt one is rebuilt), progress lines, and the download stage on an
 * image folder (subset + val_fraction, then a cached reload from its dataset.json).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { CompactFileError, readCompact, writeCompact } from '../../src/data/compact.js';
import { splitValidation, stratifiedPick, subsetSplit, type Dataset, type ImageSplit } from '../../src/data/dataset.js';
import { compactPaths, loadCached } from '../../src/data/datasets.js';
import { formatProgress, formatSeconds } from '../../src/data/progress.js';
import { Rng } from '../../src/rng.js';
import type { StageContext } from '../../src/stage.js';
import download, { type DownloadParams } from '../../stages/download.js';

let tmp = '';
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'datasets-test-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** 10 images of 2x2x1 whose pixels encode their index; class counts 6, 3, 1. */
const LABELS = [0, 1, 0, 0, 2, 1, 0, 0, 1, 0];
function split10(labels: ArrayLike<number> = LABELS): ImageSplit {
  const n = labels.length;
  return { images: Uint8Array.from({ length: n * 4 }, (_, i) => Math.floor(i / 4) * 10 + (i % 4)), labels: Uint8Array.from(labels), count: n, height: 2, width: 2, channels: 1 };
}
const countBy = (labels: ArrayLike<number>, idx: ArrayLike<number>): number[] => {
  const c = [0, 0, 0];
  for (let i = 0; i < idx.length; i++) c[labels[idx[i]!]!]!++;
  return c;
};

describe('stratified selections', () => {
  it('largest-remainder quotas: 5 of (6, 3, 1) -> (3, 2, 0); ties go to the lower class', () => {
    // floor(5*6/10)=3, floor(5*3/10)=1, floor(5*1/10)=0; remainders 0, 5, 5 -> class 1 gets the 5th.
    const picked = stratifiedPick(LABELS, 5, new Rng(1));
    assert.deepEqual(countBy(LABELS, picked), [3, 2, 0]);
    assert.deepEqual([...picked], [...picked].sort((a, b) => a - b), 'ascending');
    assert.deepEqual([...stratifiedPick(LABELS, 5, new Rng(1))], [...picked], 'same seed, same pick');
    const seen = new Set(Array.from({ length: 20 }, (_, s) => [...stratifiedPick(LABELS, 5, new Rng(s))].join(',')));
    assert.ok(seen.size > 1, 'seeds choose different images within each class');
    assert.throws(() => stratifiedPick(LABELS, 11, new Rng(1)), RangeError);
  });

  it('subsetSplit copies the picked images with their labels; n = count keeps the split, n > count is refused', () => {
    const s = split10();
    assert.equal(subsetSplit(s, 10, new Rng(2)), s);
    assert.throws(() => subsetSplit(s, 11, new Rng(2)), { name: 'RangeError', message: '11 images asked for, but the split has 10' });
    assert.equal(subsetSplit(s, undefined, new Rng(2)), s);
    const sub = subsetSplit(s, 4, new Rng(2));
    assert.equal(sub.count, 4);
    for (let i = 0; i < 4; i++) {
      const src = sub.images[i * 4]! / 10; // the source index, from the pixel code
      assert.equal(sub.labels[i], LABELS[src]);
      assert.deepEqual([...sub.images.subarray(i * 4, i * 4 + 4)], [0, 1, 2, 3].map((k) => src * 10 + k));
    }
  });

  it('val_fraction 0.3 of (6, 3, 1): val gets (2, 1, 0) by largest remainder, train the rest, disjoint', () => {
    // 3 val: floors 1, 0, 0; remainders 18%10=8, 9, 3 -> class 1 then class 0 get one more.
    const { train, val } = splitValidation(split10(), 0.3, new Rng(3));
    assert.deepEqual(countBy(val.labels, [0, 1, 2].slice(0, val.count)), [2, 1, 0]);
    const ids = (s: ImageSplit): number[] => Array.from({ length: s.count }, (_, i) => s.images[i * 4]! / 10);
    assert.deepEqual([...ids(train), ...ids(val)].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.throws(() => splitValidation(split10(), 0.01, new Rng(3)), /val_fraction 0.01 of 10 images leaves 0 for validation/);
  });
});

describe('compact split files', () => {
  it('round trip (uint8 and uint16 labels), shared memory, header fields', async () => {
    for (const wide of [false, true]) {
      const s = split10();
      if (wide) s.labels = Uint16Array.from([300, 1, 0, 0, 2, 1, 0, 0, 1, 999]);
      const path = join(tmp, `c-${wide}.pipeds`);
      await writeCompact(path, s, { dataset: 'x', split: 'train', source: '/src', digest: 'd'.repeat(64), classes: ['a', 'b'] });
      const r = await readCompact(path);
      assert.ok(r);
      assert.deepEqual([...r.split.images], [...s.images]);
      assert.deepEqual([...r.split.labels], [...s.labels]);
      assert.equal(r.split.labels instanceof Uint16Array, wide);
      assert.ok(r.split.images.buffer instanceof SharedArrayBuffer);
      assert.deepEqual([r.header.count, r.header.height, r.header.width, r.header.channels, r.header.layout], [10, 2, 2, 1, 'NHWC']);
      assert.deepEqual(r.header.classes, ['a', 'b']);
      assert.equal(r.header.images.offset % 64, 0);
      assert.equal(existsSync(`${path}.tmp-${process.pid}`), false);
    }
    assert.equal(await readCompact(join(tmp, 'absent.pipeds')), undefined);
  });

  it('a flipped byte or a truncated file is a CompactFileError naming the file', async () => {
    const path = join(tmp, 'corrupt.pipeds');
    await writeCompact(path, split10(), { dataset: 'x', split: 'test', source: '/s', digest: 'e'.repeat(64), classes: ['a'] });
    const buf = await readFile(path);
    buf.writeUInt8(buf.readUInt8(buf.length - 3) ^ 1, buf.length - 3);
    await writeFile(path, buf);
    await assert.rejects(readCompact(path), (e: unknown) => e instanceof CompactFileError && e.message.includes(path) && /sha256/.test(e.message));
    await writeFile(path, buf.subarray(0, buf.length - 2));
    await assert.rejects(readCompact(path), /sizes do not add up/);
  });
});

describe('loading through the compact cache', () => {
  it('decodes once, then reads the compact files; a corrupt one is deleted and rebuilt', async () => {
    const cacheDir = join(tmp, 'cache');
    let loads = 0;
    const load = async (): Promise<Dataset> => {
      loads++;
      return { name: 'cifar10', classes: ['a', 'b', 'c'], train: split10(), test: split10([2, 2, 1]), source: 'made here', digest: 'f'.repeat(64) };
    };
    const req = { dataset: 'cifar10' as const, cacheDir };
    const first = await loadCached(req, {}, load);
    assert.equal(first.cached, false);
    const second = await loadCached(req, {}, load);
    assert.equal(second.cached, true);
    assert.equal(loads, 1);
    assert.deepEqual([...second.dataset.train.images], [...split10().images]);
    assert.deepEqual([...second.dataset.test.labels], [2, 2, 1]);
    assert.deepEqual([second.dataset.digest, second.dataset.source, second.dataset.classes], ['f'.repeat(64), 'made here', ['a', 'b', 'c']]);
    const paths = compactPaths(cacheDir, 'cifar10', 'unused');
    assert.ok(second.files?.train.path.startsWith(join(cacheDir, 'cifar10', 'compact')), second.files?.train.path);
    assert.ok(paths.train.endsWith('.train.pipeds'));
    const buf = await readFile(second.files!.test.path);
    buf.writeUInt8(buf.readUInt8(buf.length - 1) ^ 0xff, buf.length - 1);
    await writeFile(second.files!.test.path, buf);
    const notes: string[] = [];
    const third = await loadCached(req, { onNote: (l) => notes.push(l) }, load);
    assert.equal(third.cached, false);
    assert.equal(loads, 2);
    assert.match(notes.join('\n'), /corrupt cache file\): deleted, rebuilding it/);
    assert.equal((await loadCached(req, {}, load)).cached, true);
  });
});

describe('progress lines', () => {
  it('bytes, percentage, rate and ETA; a resumed transfer counts only the new bytes in the rate', () => {
    assert.equal(formatProgress('a.tar.gz', 50e6, 100e6, 10), 'a.tar.gz: 50.0 MB / 100.0 MB (50%) at 5.0 MB/s, ETA 10s');
    assert.equal(formatProgress('a.tar.gz', 60e6, 100e6, 10, 40e6), 'a.tar.gz: 60.0 MB / 100.0 MB (60%) at 2.0 MB/s, ETA 20s');
    assert.equal(formatProgress('b', 3e6, undefined, 2), 'b: 3.0 MB at 1.5 MB/s');
    assert.deepEqual([formatSeconds(9.2), formatSeconds(75), formatSeconds(4000)], ['10s', '1m15s', '1h06m']);
  });
});

describe('download stage on an image folder', () => {
  it('subset + val_fraction, dataset.json, and a cached reload giving the same data', async () => {
    const root = join(tmp, 'folder');
    const r = new Rng(4);
    for (const [split, cls, n] of [['train', 'a', 6], ['train', 'b', 4], ['test', 'a', 2], ['test', 'b', 2]] as const) {
      await mkdir(join(root, split, cls), { recursive: true });
      for (let i = 0; i < n; i++) {
        const px = Buffer.from(Uint8Array.from({ length: 4 * 4 * 3 }, () => r.int(256)));
        await sharp(px, { raw: { width: 4, height: 4, channels: 3 } }).png().toFile(join(root, split, cls, `${i}.png`));
      }
    }
    const outDir = join(tmp, 'run', 'data');
    await mkdir(outDir, { recursive: true });
    const lines: string[] = [];
    const ctx = {
      name: 'data', params: { dataset: 'imagefolder', source: root, cache_dir: join(tmp, 'stage-cache'), subset: { train: 8 }, val_fraction: 0.25 } satisfies DownloadParams,
      outDir, seed: 5, signal: new AbortController().signal,
      report: { progress: (l: string) => lines.push(l), batch() {}, epoch() {}, metric() {}, tags() {}, artifact() {}, dataset() {} },
    } as unknown as StageContext<DownloadParams>;
    const data = await download.run(ctx);
    // subset 8 of (6, 4): (5, 3) [floors 4, 3; remainders 8, 2]; val 2 of those: (1, 1) [floors 1, 0; rem 2, 6 -> b].
    assert.deepEqual([data.train.count, data.val?.count, data.test.count], [6, 2, 4]);
    assert.deepEqual(countBy(data.val!.labels, [0, 1]), [1, 1, 0]);
    assert.match(lines.at(-1)!, /imagefolder: 6 train \/ 2 val \/ 4 test images of 4x4x3 from /);
    const manifest = JSON.parse(await readFile(join(outDir, 'dataset.json'), 'utf8')) as { digest: string; counts: Record<string, number> };
    assert.deepEqual(manifest.counts, { train: 6, test: 4, val: 2 });
    assert.equal(manifest.digest, data.digest);
    const again = await download.load!(ctx, outDir);
    assert.equal(again.digest, data.digest);
    assert.deepEqual([...again.train.images], [...data.train.images]);
    assert.deepEqual([...again.val!.labels], [...data.val!.labels]);
    // More than the folder holds: refused, naming the field (never silently fewer images).
    const tooMany = { ...ctx, params: { ...ctx.params, subset: { train: 11 } } } as StageContext<DownloadParams>;
    await assert.rejects(download.run(tooMany), { message: 'stages.data.with: subset.train: 11 is more than the 10 train images of imagefolder; give at most 10, or leave subset.train out to keep them all' });
  });
});
