/**
 * Tests for src/data/idx.ts (IDX parsing) and src/data/mnist-family.ts (loading the four files
 * of an MNIST-family dataset from a folder, with checksums). Every IDX buffer is written byte by
 * byte here (not with encodeIdx), every checksum computed here with node:crypto.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';

import { IdxFormatError, parseIdx } from '../../src/data/idx.js';
import { DatasetError, FASHION_MNIST, loadMnistFamily, type MnistFamilySpec } from '../../src/data/mnist-family.js';

/** IDX header bytes written out explicitly (big-endian uint32 per dimension). */
function idxHeader(type: number, dims: number[]): number[] {
  const out = [0x00, 0x00, type, dims.length];
  for (const d of dims) out.push((d >>> 24) & 0xff, (d >>> 16) & 0xff, (d >>> 8) & 0xff, d & 0xff);
  return out;
}

// Images [3, 2, 2]: header 00 00 08 03 | 00 00 00 03 | 00 00 00 02 | 00 00 00 02, then 12 bytes.
const IMAGES_BYTES = Uint8Array.from([
  0x00, 0x00, 0x08, 0x03,
  0x00, 0x00, 0x00, 0x03,
  0x00, 0x00, 0x00, 0x02,
  0x00, 0x00, 0x00, 0x02,
  0, 1, 2, 3,
  250, 251, 252, 253,
  7, 128, 255, 9,
]);
// Labels [3]: header 00 00 08 01 | 00 00 00 03, then 3 bytes.
const LABELS_BYTES = Uint8Array.from([0x00, 0x00, 0x08, 0x01, 0x00, 0x00, 0x00, 0x03, 4, 0, 9]);

describe('parseIdx', () => {
  it('parses raw image bytes [3, 2, 2]', () => {
    const a = parseIdx(IMAGES_BYTES, 'images.idx');
    assert.deepEqual(a.shape, [3, 2, 2]);
    assert.deepEqual(Array.from(a.data), [0, 1, 2, 3, 250, 251, 252, 253, 7, 128, 255, 9]);
  });

  it('parses raw label bytes [3]', () => {
    const a = parseIdx(LABELS_BYTES, 'labels.idx');
    assert.deepEqual(a.shape, [3]);
    assert.deepEqual(Array.from(a.data), [4, 0, 9]);
  });

  it('gunzips gzipped input and gives the same result', () => {
    const gzImages = gzipSync(IMAGES_BYTES);
    assert.equal(gzImages[0], 0x1f); // sanity: really gzipped
    const a = parseIdx(gzImages, 'images.idx.gz');
    assert.deepEqual(a.shape, [3, 2, 2]);
    assert.deepEqual(Array.from(a.data), Array.from(IMAGES_BYTES.subarray(16)));
    const b = parseIdx(gzipSync(LABELS_BYTES), 'labels.idx.gz');
    assert.deepEqual(b.shape, [3]);
    assert.deepEqual(Array.from(b.data), [4, 0, 9]);
  });

  it('handles dimensions above 255 (big-endian uint32)', () => {
    // 1 x 300 (0x0000012c) labels.
    const bytes = Uint8Array.from([0x00, 0x00, 0x08, 0x01, 0x00, 0x00, 0x01, 0x2c, ...new Array<number>(300).fill(5)]);
    const a = parseIdx(bytes, 'long.idx');
    assert.deepEqual(a.shape, [300]);
    assert.equal(a.data.length, 300);
    assert.ok(a.data.every((v) => v === 5));
  });

  it('works on a Buffer that is a slice of a larger ArrayBuffer', () => {
    const big = Buffer.alloc(100 + LABELS_BYTES.length, 0xee);
    big.set(LABELS_BYTES, 100);
    const a = parseIdx(big.subarray(100), 'offset.idx');
    assert.deepEqual(a.shape, [3]);
    assert.deepEqual(Array.from(a.data), [4, 0, 9]);
  });

  it('rejects a bad magic number, naming the file', () => {
    const bad = Uint8Array.from(LABELS_BYTES);
    bad[0] = 0x01;
    assert.throws(() => parseIdx(bad, '/data/bad-magic.idx'), (e: unknown) => {
      assert.ok(e instanceof IdxFormatError);
      assert.match(e.message, /\/data\/bad-magic\.idx/);
      assert.match(e.message, /magic/);
      return true;
    });
  });

  it('rejects a type byte other than 0x08, naming the file', () => {
    const bad = Uint8Array.from(LABELS_BYTES);
    bad[2] = 0x0d; // float
    assert.throws(() => parseIdx(bad, 'float-labels.idx'), (e: unknown) => {
      assert.ok(e instanceof IdxFormatError);
      assert.match(e.message, /float-labels\.idx/);
      assert.match(e.message, /0xd/);
      return true;
    });
  });

  it('rejects data shorter or longer than the header says, naming the file', () => {
    const short = IMAGES_BYTES.subarray(0, IMAGES_BYTES.length - 1);
    assert.throws(() => parseIdx(short, 'short-images.idx'), (e: unknown) => {
      assert.ok(e instanceof IdxFormatError);
      assert.match(e.message, /short-images\.idx/);
      assert.match(e.message, /3x2x2/);
      return true;
    });
    const long = Uint8Array.from([...LABELS_BYTES, 1]);
    assert.throws(() => parseIdx(long, 'long-labels.idx'), (e: unknown) => {
      assert.ok(e instanceof IdxFormatError);
      assert.match(e.message, /long-labels\.idx/);
      return true;
    });
    // Also through gzip: the name still shows up.
    assert.throws(() => parseIdx(gzipSync(short), 'short-images.idx.gz'), /short-images\.idx\.gz/);
  });

  it('rejects a truncated header', () => {
    assert.throws(() => parseIdx(Uint8Array.from([0, 0, 8, 3, 0, 0, 0, 3]), 'trunc.idx'), (e: unknown) => {
      assert.ok(e instanceof IdxFormatError);
      assert.match(e.message, /trunc\.idx/);
      return true;
    });
    assert.throws(() => parseIdx(Uint8Array.from([0, 0]), 'tiny.idx'), IdxFormatError);
  });
});

// ---------------------------------------------------------------------------------------------
// loadMnistFamily from a folder of hand-made .gz files.

const md5 = (b: Uint8Array): string => createHash('md5').update(b).digest('hex');

/** A tiny dataset: `count` images of h x w with pixel value (i * 7 + k) & 255, given labels. */
function makeSplit(count: number, h: number, w: number, labels: number[], seed: number): { images: Uint8Array; labels: Uint8Array } {
  const px = new Uint8Array(count * h * w);
  for (let k = 0; k < px.length; k++) px[k] = (seed * 31 + k * 7) & 0xff;
  const images = Uint8Array.from([...idxHeader(0x08, [count, h, w]), ...px]);
  const lab = Uint8Array.from([...idxHeader(0x08, [count]), ...labels]);
  return { images, labels: lab };
}

describe('loadMnistFamily from a folder', () => {
  let tmp = '';
  let dir = '';
  let cacheDir = '';
  const H = 4, W = 3;
  const trainLabels = [3, 1, 4, 1, 5];
  const testLabels = [9, 2];
  const train = makeSplit(5, H, W, trainLabels, 1);
  const test = makeSplit(2, H, W, testLabels, 2);
  const gz = {
    trainImages: gzipSync(train.images),
    trainLabels: gzipSync(train.labels),
    testImages: gzipSync(test.images),
    testLabels: gzipSync(test.labels),
  };
  const spec = (overrideMd5: Partial<Record<keyof typeof gz, string>> = {}): MnistFamilySpec => ({
    name: 'mnist',
    baseUrl: 'http://127.0.0.1:9/never-used/',
    classes: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
    shape: [H, W, 1],
    perClass: { train: [], test: [] }, // not read by the loader
    files: {
      trainImages: { name: 'train-images-idx3-ubyte.gz', gzMd5: overrideMd5.trainImages ?? md5(gz.trainImages) },
      trainLabels: { name: 'train-labels-idx1-ubyte.gz', gzMd5: overrideMd5.trainLabels ?? md5(gz.trainLabels) },
      testImages: { name: 't10k-images-idx3-ubyte.gz', gzMd5: overrideMd5.testImages ?? md5(gz.testImages) },
      testLabels: { name: 't10k-labels-idx1-ubyte.gz', gzMd5: overrideMd5.testLabels ?? md5(gz.testLabels) },
    },
    systemDirs: [],
    offlineHint: '',
  });

  before(async () => {
    tmp = await mkdtemp(path.join(tmpdir(), 'idx-test-'));
    dir = path.join(tmp, 'src');
    cacheDir = path.join(tmp, 'cache');
    await mkdir(dir);
    await writeFile(path.join(dir, 'train-images-idx3-ubyte.gz'), gz.trainImages);
    await writeFile(path.join(dir, 'train-labels-idx1-ubyte.gz'), gz.trainLabels);
    await writeFile(path.join(dir, 't10k-images-idx3-ubyte.gz'), gz.testImages);
    await writeFile(path.join(dir, 't10k-labels-idx1-ubyte.gz'), gz.testLabels);
  });
  after(async () => { await rm(tmp, { recursive: true, force: true }); });

  it('loads counts, sizes, pixels and labels', async () => {
    const ds = await loadMnistFamily(spec(), { cacheDir, source: dir });
    assert.equal(ds.name, 'mnist');
    assert.equal(ds.source, dir);
    assert.equal(ds.train.count, 5);
    assert.equal(ds.test.count, 2);
    for (const s of [ds.train, ds.test]) {
      assert.equal(s.height, H);
      assert.equal(s.width, W);
      assert.equal(s.channels, 1);
    }
    assert.deepEqual(Array.from(ds.train.labels), trainLabels);
    assert.deepEqual(Array.from(ds.test.labels), testLabels);
    assert.deepEqual(Array.from(ds.train.images), Array.from(train.images.subarray(16)));
    assert.deepEqual(Array.from(ds.test.images), Array.from(test.images.subarray(16)));
    // digest: sha256 over the four raw files' sha256 digests, in train-images, train-labels,
    // test-images, test-labels order.
    const d = createHash('sha256');
    for (const raw of [train.images, train.labels, test.images, test.labels]) d.update(createHash('sha256').update(raw).digest());
    assert.equal(ds.digest, d.digest('hex'));
    assert.equal(existsSync(cacheDir), false, 'a folder source must not touch the cache');
  });

  it('a wrong md5 gives a DatasetError naming the file', async () => {
    const wrong = '0123456789abcdef0123456789abcdef';
    await assert.rejects(loadMnistFamily(spec({ trainLabels: wrong }), { cacheDir, source: dir }), (e: unknown) => {
      assert.ok(e instanceof DatasetError, `expected DatasetError, got ${String(e)}`);
      assert.ok(e.message.includes(path.join(dir, 'train-labels-idx1-ubyte.gz')), e.message);
      assert.ok(e.message.includes(wrong), e.message);
      assert.ok(e.message.includes(md5(gz.trainLabels)), e.message);
      return true;
    });
  });

  it('a folder missing a file gives a DatasetError naming it', async () => {
    const partial = path.join(tmp, 'partial');
    await mkdir(partial);
    await writeFile(path.join(partial, 'train-images-idx3-ubyte.gz'), gz.trainImages);
    await writeFile(path.join(partial, 'train-labels-idx1-ubyte.gz'), gz.trainLabels);
    await writeFile(path.join(partial, 't10k-images-idx3-ubyte.gz'), gz.testImages);
    await assert.rejects(loadMnistFamily(spec(), { cacheDir, source: partial }), (e: unknown) => {
      assert.ok(e instanceof DatasetError);
      assert.match(e.message, /t10k-labels-idx1-ubyte\.gz/);
      return true;
    });
  });

  it('images and labels of different counts are rejected', async () => {
    const mism = path.join(tmp, 'mismatch');
    await mkdir(mism);
    const badLabels = gzipSync(Uint8Array.from([...idxHeader(0x08, [4]), 1, 2, 3, 4])); // 4 labels, 5 images
    await writeFile(path.join(mism, 'train-images-idx3-ubyte.gz'), gz.trainImages);
    await writeFile(path.join(mism, 'train-labels-idx1-ubyte.gz'), badLabels);
    await writeFile(path.join(mism, 't10k-images-idx3-ubyte.gz'), gz.testImages);
    await writeFile(path.join(mism, 't10k-labels-idx1-ubyte.gz'), gz.testLabels);
    const s = spec({ trainLabels: md5(badLabels) });
    await assert.rejects(loadMnistFamily(s, { cacheDir, source: mism }), DatasetError);
  });
});

const FASHION_DIR = '/usr/share/datasets/fashion-mnist';

describe('FASHION_MNIST from the Debian package folder', () => {
  it('loads 60000 train / 10000 test images of 28x28x1', async (t) => {
    if (!existsSync(FASHION_DIR)) {
      t.skip(`${FASHION_DIR} is absent (apt-get install dataset-fashion-mnist)`);
      return;
    }
    const tmp = await mkdtemp(path.join(tmpdir(), 'idx-fashion-'));
    try {
      const ds = await loadMnistFamily(FASHION_MNIST, { cacheDir: tmp, source: FASHION_DIR });
      assert.equal(ds.train.count, 60000);
      assert.equal(ds.test.count, 10000);
      for (const s of [ds.train, ds.test]) {
        assert.equal(s.height, 28);
        assert.equal(s.width, 28);
        assert.equal(s.channels, 1);
        assert.equal(s.images.length, s.count * 28 * 28);
        assert.equal(s.labels.length, s.count);
      }
      // Fashion-MNIST is balanced: 6000 per class in train, 1000 in test.
      for (const [s, per] of [[ds.train, 6000], [ds.test, 1000]] as const) {
        const counts = new Array<number>(10).fill(0);
        for (const l of s.labels) counts[l] = (counts[l] ?? 0) + 1;
        assert.deepEqual(counts, new Array<number>(10).fill(per));
      }
      assert.equal(ds.classes.length, 10);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
