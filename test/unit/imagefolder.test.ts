/**
 * imagefolder on folders of PNG/JPEG files written here with sharp from known pixels: classes,
 * labels and pixels (PNG is lossless, so decoding must give the pixels back), grey and RGBA
 * images, resizing, and the errors: a corrupt image, mixed sizes, a bad layout.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { DatasetError } from '../../src/data/dataset.js';
import { imageFolderFingerprint, loadImageFolder } from '../../src/data/imagefolder.js';
import { Rng } from '../../src/rng.js';

let tmp = '';
const rng = new Rng(11);
const pixels = (h: number, w: number, c: number): Buffer => Buffer.from(Uint8Array.from({ length: h * w * c }, () => rng.int(256)));

async function png(path: string, data: Buffer, h: number, w: number, c: 1 | 3 | 4): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  await sharp(data, { raw: { width: w, height: h, channels: c } }).png().toFile(path);
}

/** root/train/{cat,dog}, root/test/{cat,dog}: 6x5 RGB PNGs; returns the pixels in load order. */
async function makeFolder(root: string): Promise<{ train: Buffer[]; test: Buffer[] }> {
  const train = [pixels(6, 5, 3), pixels(6, 5, 3), pixels(6, 5, 3)];
  const test = [pixels(6, 5, 3)];
  // Files are read in sorted name order within each class, classes in sorted order.
  await png(join(root, 'train', 'dog', 'b.png'), train[2]!, 6, 5, 3);
  await png(join(root, 'train', 'cat', 'a2.png'), train[1]!, 6, 5, 3);
  await png(join(root, 'train', 'cat', 'a1.PNG'), train[0]!, 6, 5, 3);
  await writeFile(join(root, 'train', 'cat', 'notes.txt'), 'not an image, skipped');
  await png(join(root, 'test', 'dog', 'x.png'), test[0]!, 6, 5, 3);
  return { train, test };
}

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'imagefolder-test-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('imagefolder', () => {
  it('classes are the sorted train subfolders; labels, order and pixels as written', async () => {
    const root = join(tmp, 'ok');
    const px = await makeFolder(root);
    const ds = await loadImageFolder({ source: root });
    assert.deepEqual(ds.classes, ['cat', 'dog']);
    assert.deepEqual(Array.from(ds.train.labels), [0, 0, 1]);
    assert.deepEqual(Array.from(ds.test.labels), [1]);
    assert.deepEqual([ds.train.count, ds.train.height, ds.train.width, ds.train.channels], [3, 6, 5, 3]);
    assert.ok(Buffer.from(ds.train.images).equals(Buffer.concat(px.train)));
    assert.ok(Buffer.from(ds.test.images).equals(Buffer.concat(px.test)));
    assert.match(ds.digest, /^[0-9a-f]{64}$/);
  });

  it('grey and RGBA images: grey is repeated to RGB (or kept with channels 1), alpha is dropped', async () => {
    const root = join(tmp, 'modes');
    const grey = pixels(4, 4, 1), rgba = pixels(4, 4, 4);
    await png(join(root, 'train', 'a', 'grey.png'), grey, 4, 4, 1);
    await png(join(root, 'train', 'a', 'rgba.png'), rgba, 4, 4, 4);
    await png(join(root, 'val', 'a', 'grey.png'), grey, 4, 4, 1);
    const rgb = await loadImageFolder({ source: root });
    const want = Buffer.alloc(16 * 3);
    for (let p = 0; p < 16; p++) want.fill(grey[p]!, p * 3, p * 3 + 3);
    assert.ok(Buffer.from(rgb.train.images.subarray(0, 48)).equals(want), 'grey -> R = G = B');
    const noAlpha = Buffer.from(Uint8Array.from({ length: 48 }, (_, i) => rgba[Math.floor(i / 3) * 4 + (i % 3)]!));
    assert.ok(Buffer.from(rgb.train.images.subarray(48)).equals(noAlpha), 'RGBA -> RGB');
    const one = await loadImageFolder({ source: root, channels: 1 });
    assert.equal(one.train.channels, 1);
    assert.ok(Buffer.from(one.test.images).equals(grey));
  });

  it('a corrupt image: a DatasetError naming the file', async () => {
    const root = join(tmp, 'corrupt');
    await makeFolder(root);
    const bad = join(root, 'train', 'dog', 'broken.jpg');
    await writeFile(bad, Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.from('garbage, not a JPEG body')]));
    await assert.rejects(loadImageFolder({ source: root }), (e: unknown) => {
      assert.ok(e instanceof DatasetError, String(e));
      assert.ok(e.message.startsWith(`imagefolder: cannot decode ${bad}: `), e.message);
      assert.match(e.message, /fix or remove the file$/);
      return true;
    });
  });

  it('mixed sizes are an error naming both files, unless image_size resizes them', async () => {
    const root = join(tmp, 'sizes');
    await makeFolder(root);
    const odd = join(root, 'train', 'dog', 'c.png');
    await png(odd, pixels(7, 7, 3), 7, 7, 3);
    await assert.rejects(loadImageFolder({ source: root }), new RegExp(`${odd.replace(/[/.]/g, '\\$&')} is 7x7 but .*a1\\.PNG is 5x6; set image_size`));
    const ds = await loadImageFolder({ source: root, imageSize: [8, 9] });
    assert.deepEqual([ds.train.count, ds.train.height, ds.train.width, ds.test.height, ds.test.width], [4, 8, 9, 8, 9]);
  });

  it('layout errors: no test folder, a test class that train lacks', async () => {
    const noTest = join(tmp, 'notest');
    await png(join(noTest, 'train', 'a', 'x.png'), pixels(2, 2, 3), 2, 2, 3);
    await assert.rejects(loadImageFolder({ source: noTest }), /imagefolder: .*notest must hold a train\/ and a test\/ \(or val\/\) folder/);
    await png(join(noTest, 'test', 'zebra', 'x.png'), pixels(2, 2, 3), 2, 2, 3);
    await assert.rejects(loadImageFolder({ source: noTest }), /test\/zebra is a class that .*train does not have \(classes: a\)/);
  });

  it('the fingerprint changes when an image changes, not otherwise', async () => {
    const root = join(tmp, 'fp');
    await makeFolder(root);
    const a = await imageFolderFingerprint({ source: root });
    assert.equal(await imageFolderFingerprint({ source: root }), a);
    assert.notEqual(await imageFolderFingerprint({ source: root, channels: 1 }), a);
    await png(join(root, 'train', 'dog', 'b.png'), pixels(6, 5, 3), 6, 5, 3);
    assert.notEqual(await imageFolderFingerprint({ source: root }), a);
  });
});
