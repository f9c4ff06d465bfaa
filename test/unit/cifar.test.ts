/**
 * CIFAR from tarballs built here (ustar written by hand, CIFAR binary records encoded from NHWC
 * images made here, three classes) and served by a node:http server on 127.0.0.1: md5 pass and
 * fail, resume after a dropped connection, a `../` entry refused, local sources, the no-network
 * message, and the record decoding (CHW planes -> NHWC, CIFAR-100's fine label).
 */
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { CIFAR10, CIFAR100, loadCifar, parseCifarRecords, type CifarSpec } from '../../src/data/cifar.js';
import { DatasetError } from '../../src/data/dataset.js';
import { Rng } from '../../src/rng.js';

/** One ustar entry (POSIX.1-1988 header, 512-byte blocks). */
function tarEntry(name: string, data: Uint8Array, type: '0' | '5' = '0'): Buffer {
  const h = Buffer.alloc(512);
  const put = (s: string, at: number, len: number): void => void h.write(s.slice(0, len), at, 'latin1');
  put(name, 0, 100);
  put('0000644\0', 100, 8);
  put('0000000\0', 108, 8);
  put('0000000\0', 116, 8);
  put(`${data.length.toString(8).padStart(11, '0')}\0`, 124, 12);
  put(`${Math.floor(Date.now() / 1000).toString(8).padStart(11, '0')}\0`, 136, 12);
  put('        ', 148, 8);
  put(type, 156, 1);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  let sum = 0;
  for (const b of h) sum += b;
  put(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  const body = Buffer.alloc(Math.ceil(data.length / 512) * 512);
  body.set(data);
  return Buffer.concat([h, body]);
}
const tarball = (entries: Array<[string, Uint8Array]>): Buffer => gzipSync(Buffer.concat([...entries.map(([n, d]) => tarEntry(n, d)), Buffer.alloc(1024)]));

/** `n` random 32x32x3 NHWC images and labels in 0..2. */
function images(n: number, seed: number): { nhwc: Uint8Array; labels: number[] } {
  const r = new Rng(seed);
  return { nhwc: Uint8Array.from({ length: n * 3072 }, () => r.int(256)), labels: Array.from({ length: n }, () => r.int(3)) };
}

/** CIFAR binary records: label byte(s), then the R, G and B planes (each 32x32 row-major). */
function records(nhwc: Uint8Array, labels: number[], coarse?: number[]): Uint8Array {
  const lb = coarse ? 2 : 1;
  const out = new Uint8Array(labels.length * (lb + 3072));
  labels.forEach((l, i) => {
    const o = i * (lb + 3072);
    if (coarse) out[o] = coarse[i]!;
    out[o + lb - 1] = l;
    for (let p = 0; p < 1024; p++) for (let c = 0; c < 3; c++) out[o + lb + c * 1024 + p] = nhwc[i * 3072 + p * 3 + c]!;
  });
  return out;
}

const md5 = (b: Uint8Array): string => createHash('md5').update(b).digest('hex');
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

const train = [1, 2, 3, 4, 5].map((k) => images(2, k));
const test = images(3, 9);
const members: Array<[string, Uint8Array]> = [
  ...train.map((t, k): [string, Uint8Array] => [`cifar-10-batches-bin/data_batch_${k + 1}.bin`, records(t.nhwc, t.labels)]),
  ['cifar-10-batches-bin/test_batch.bin', records(test.nhwc, test.labels)],
  ['cifar-10-batches-bin/batches.meta.txt', enc('cat\ndog\nfrog\n\n')],
];
const GOOD = tarball(members);
const EVIL = tarball([...members, ['cifar-10-batches-bin/../../evil.txt', enc('escaped')]]);
const CUT = 4000;

let server: Server;
let base = '';
let seen: Array<{ url: string; range?: string }> = [];
let dropped = false;
let tmp = '';

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'cifar-test-'));
  server = createServer((req, res) => {
    seen.push({ url: req.url ?? '', range: req.headers.range });
    const body = req.url === '/evil.tar.gz' ? EVIL : req.url === '/cifar.tar.gz' || req.url === '/drop.tar.gz' ? GOOD : undefined;
    if (!body) return void res.writeHead(404).end();
    if (req.url === '/drop.tar.gz' && !dropped) {
      dropped = true;
      res.writeHead(200, { 'content-length': String(body.length) });
      res.write(body.subarray(0, CUT), () => setTimeout(() => res.destroy(), 50));
      return;
    }
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = m ? Number(m[1]) : 0;
    res.writeHead(m ? 206 : 200, { 'content-length': String(body.length - start), ...(m ? { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}) });
    res.end(body.subarray(start));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await rm(tmp, { recursive: true, force: true });
});
beforeEach(() => {
  seen = [];
  dropped = false;
});

let n = 0;
const cacheDir = (): string => join(tmp, `cache-${++n}`);
const spec = (path: string, sum = md5(GOOD)): CifarSpec => ({ ...CIFAR10, url: `${base}${path}`, md5: sum });

/** The NHWC images and labels a split must hold. */
function expectSplit(s: { images: Uint8Array; labels: ArrayLike<number>; count: number }, parts: Array<{ nhwc: Uint8Array; labels: number[] }>): void {
  assert.equal(s.count, parts.reduce((a, p) => a + p.labels.length, 0));
  assert.deepEqual(Array.from(s.labels), parts.flatMap((p) => p.labels));
  assert.ok(Buffer.from(s.images).equals(Buffer.concat(parts.map((p) => p.nhwc))), 'pixels equal the NHWC images the records were made from');
}

describe('cifar', () => {
  it('downloads, checks the md5, unpacks and decodes; the tarball stays in the cache, nothing else', async () => {
    const cache = cacheDir();
    const ds = await loadCifar(spec('/cifar.tar.gz'), { cacheDir: cache });
    assert.deepEqual(ds.classes, ['cat', 'dog', 'frog']);
    expectSplit(ds.train, train);
    expectSplit(ds.test, [test]);
    assert.deepEqual([ds.train.height, ds.train.width, ds.train.channels], [32, 32, 3]);
    assert.deepEqual(readdirSync(join(cache, 'cifar10')), ['cifar-10-binary.tar.gz']);
    // digest: sha256 over the members' sha256, train batches then test.
    const d = createHash('sha256');
    for (const [, data] of members.slice(0, 6)) d.update(createHash('sha256').update(data).digest());
    assert.equal(ds.digest, d.digest('hex'));
  });

  it('an md5 mismatch: an error naming the dataset, URL and both sums; nothing kept', async () => {
    const cache = cacheDir();
    const wrong = '0'.repeat(32);
    await assert.rejects(loadCifar(spec('/cifar.tar.gz', wrong), { cacheDir: cache }), (e: unknown) => {
      assert.ok(e instanceof DatasetError, String(e));
      for (const s of ['cifar10', `${base}/cifar.tar.gz`, wrong, md5(GOOD)]) assert.ok(e.message.includes(s), `${e.message} lacks ${s}`);
      return true;
    });
    assert.deepEqual(existsSync(join(cache, 'cifar10')) ? readdirSync(join(cache, 'cifar10')) : [], []);
  });

  it('resumes with a Range request after a dropped connection', async () => {
    const ds = await loadCifar(spec('/drop.tar.gz'), { cacheDir: cacheDir() });
    expectSplit(ds.test, [test]);
    assert.equal(seen.length, 2);
    assert.equal(seen[0]!.range, undefined);
    assert.match(seen[1]!.range ?? '', /^bytes=[1-9]\d*-$/);
    assert.ok(Number(/\d+/.exec(seen[1]!.range!)![0]) <= CUT);
  });

  it("refuses a tarball with a '../' entry: error naming it, nothing written outside", async () => {
    const cache = cacheDir();
    await assert.rejects(loadCifar(spec('/evil.tar.gz', md5(EVIL)), { cacheDir: cache }), (e: unknown) => {
      assert.ok(e instanceof DatasetError, String(e));
      assert.match(e.message, /refusing to extract .*'cifar-10-batches-bin\/\.\.\/\.\.\/evil\.txt'/);
      return true;
    });
    assert.equal(existsSync(join(cache, 'evil.txt')), false);
    assert.equal(existsSync(join(cache, 'cifar10', 'evil.txt')), false);
    assert.deepEqual(readdirSync(join(cache, 'cifar10')), ['cifar-10-binary.tar.gz'], 'the extraction folder is gone');
  });

  it('reads a local tarball (md5 checked) and an unpacked folder; a damaged local tarball is reported, not deleted', async () => {
    const dir = join(tmp, 'local');
    await mkdir(join(dir, 'cifar-10-batches-bin'), { recursive: true });
    await writeFile(join(dir, 'cifar-10-binary.tar.gz'), GOOD);
    const fromFile = await loadCifar(spec('/unused'), { cacheDir: cacheDir(), source: join(dir, 'cifar-10-binary.tar.gz') });
    expectSplit(fromFile.train, train);
    const fromDir = await loadCifar(spec('/unused'), { cacheDir: cacheDir(), source: dir });
    expectSplit(fromDir.test, [test]);
    const unpacked = join(tmp, 'unpacked');
    await mkdir(unpacked);
    for (const [name, data] of members) await writeFile(join(unpacked, name.split('/')[1]!), data);
    const fromBins = await loadCifar(spec('/unused'), { cacheDir: cacheDir(), source: unpacked });
    expectSplit(fromBins.train, train);
    assert.deepEqual(fromBins.classes, ['cat', 'dog', 'frog']);
    const bad = join(tmp, 'bad.tar.gz');
    await writeFile(bad, GOOD.subarray(0, 100));
    await assert.rejects(loadCifar(spec('/unused'), { cacheDir: cacheDir(), source: bad }), /cifar10: .*bad\.tar\.gz has md5 [0-9a-f]{32}, expected [0-9a-f]{32}; .*replace it/);
    assert.ok(existsSync(bad));
  });

  it('without network, the error says which file to put where', async () => {
    const cache = cacheDir();
    const off: CifarSpec = { ...CIFAR10, url: 'http://127.0.0.1:9/cifar-10-binary.tar.gz' };
    await assert.rejects(loadCifar(off, { cacheDir: cache }), (e: unknown) => {
      assert.ok(e instanceof DatasetError, String(e));
      assert.ok(e.message.includes(`Without network: put cifar-10-binary.tar.gz (md5 ${CIFAR10.md5}`), e.message);
      assert.ok(e.message.includes(join(cache, 'cifar10')), e.message);
      return true;
    });
  });
});

describe('CIFAR records', () => {
  it('CIFAR-100 records: the second label byte (fine label) is the class', () => {
    const im = images(2, 4);
    const s = parseCifarRecords([records(im.nhwc, [57, 99], [3, 14])], 2, 'train.bin');
    assert.deepEqual(Array.from(s.labels), [57, 99]);
    assert.ok(Buffer.from(s.images).equals(Buffer.from(im.nhwc)));
  });

  it('a size that is not a whole number of records names the file', () => {
    assert.throws(() => parseCifarRecords([new Uint8Array(3073 + 5)], 1, 'data_batch_1.bin'), /data_batch_1\.bin: 3078 bytes is not a whole number of 3073-byte CIFAR records/);
  });

  it('the published class lists: 10 and 100 names, no duplicates', () => {
    assert.equal(CIFAR10.classes.length, 10);
    assert.equal(new Set(CIFAR100.classes).size, 100);
    assert.equal(CIFAR100.classes[0], 'apple');
    assert.equal(CIFAR100.classes[99], 'worm');
  });
});
