/**
 * Damaged dataset files are named: a .gz that does not decompress (a flipped byte, a truncated
 * file) gives the file, its expected digest and what to do; and a local source that changed
 * after the compact cache was written is read (and verified) again, never served from the cache.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { loadCached } from '../../src/data/datasets.js';
import { encodeIdx } from '../../src/data/idx.js';
import { loadMnistFamily, MNIST, type MnistFamilySpec } from '../../src/data/mnist-family.js';

/** A tiny MNIST-shaped dataset (6 train / 4 test images of 2x2) in `dir`, and a spec pinning its .gz md5s. */
function tinyMnist(dir: string): MnistFamilySpec {
  mkdirSync(dir, { recursive: true });
  const files = {
    trainImages: encodeIdx([6, 2, 2], Uint8Array.from({ length: 24 }, (_, i) => i * 7)),
    trainLabels: encodeIdx([6], Uint8Array.from([0, 1, 2, 3, 4, 5])),
    testImages: encodeIdx([4, 2, 2], Uint8Array.from({ length: 16 }, (_, i) => 255 - i)),
    testLabels: encodeIdx([4], Uint8Array.from([9, 8, 7, 6])),
  };
  const names = { trainImages: 'train-images-idx3-ubyte.gz', trainLabels: 'train-labels-idx1-ubyte.gz', testImages: 't10k-images-idx3-ubyte.gz', testLabels: 't10k-labels-idx1-ubyte.gz' };
  const spec = { ...MNIST, files: {} as MnistFamilySpec['files'] };
  for (const [role, raw] of Object.entries(files) as [keyof typeof files, Uint8Array][]) {
    const gz = gzipSync(raw);
    writeFileSync(join(dir, names[role]), gz);
    spec.files[role] = { name: names[role], gzMd5: createHash('md5').update(gz).digest('hex') };
  }
  return spec;
}

/** Flips the byte at `at` from the end of `path` (inside the deflate data or the gzip trailer's CRC). */
function flipByte(path: string, at: number): void {
  const b = readFileSync(path);
  b[b.length - at]! ^= 0xff;
  writeFileSync(path, b);
}

test('a .gz with a flipped byte: the error names the file, its expected md5 and what to do', async () => {
  const src = join(mkdtempSync(join(tmpdir(), 'pipe-gz-')), 'src');
  const spec = tinyMnist(src);
  await loadMnistFamily(spec, { cacheDir: join(src, '..', 'cache'), source: src }); // intact: loads
  const file = join(src, 'train-labels-idx1-ubyte.gz');
  flipByte(file, 6); // in the CRC32 of the trailer: "incorrect data check"
  await assert.rejects(loadMnistFamily(spec, { cacheDir: join(src, '..', 'cache'), source: src }), (e: Error) => {
    assert.equal(e.message, `mnist: ${file} does not decompress (incorrect data check): the file is damaged or cut short (expected md5 ${spec.files.trainLabels.gzMd5}); replace it with a good copy (${MNIST.baseUrl}train-labels-idx1-ubyte.gz)`);
    return true;
  });
});

test('a truncated .gz: the error names the file and says it is cut short', async () => {
  const src = join(mkdtempSync(join(tmpdir(), 'pipe-gz-')), 'src');
  const spec = tinyMnist(src);
  const file = join(src, 't10k-images-idx3-ubyte.gz');
  writeFileSync(file, readFileSync(file).subarray(0, 20));
  await assert.rejects(loadMnistFamily(spec, { cacheDir: join(src, '..', 'cache'), source: src }), new RegExp(`^Error: mnist: ${file.replace(/[/.]/g, '\\$&')} does not decompress \\(unexpected end of file\\): the file is damaged or cut short \\(expected md5 ${spec.files.testImages.gzMd5}\\)`));
});

test('warm compact cache: a source file damaged after the cache was written is verified again, not served', async () => {
  const base = mkdtempSync(join(tmpdir(), 'pipe-gz-'));
  const src = join(base, 'src');
  const spec = tinyMnist(src);
  const req = { dataset: 'mnist' as const, source: src, cacheDir: join(base, 'cache') };
  const load = () => loadMnistFamily(spec, { cacheDir: req.cacheDir, source: src });
  const first = await loadCached(req, {}, load);
  assert.equal(first.cached, false);
  assert.equal((await loadCached(req, {}, load)).cached, true, 'unchanged source: served from the cache');
  const file = join(src, 'train-images-idx3-ubyte.gz');
  flipByte(file, 6);
  await assert.rejects(loadCached(req, {}, load), new RegExp(`${file.replace(/[/.]/g, '\\$&')} does not decompress`));
});
