/**
 * The compact cache form of one split: written once to the cache, read back with one read into a
 * SharedArrayBuffer (shared with the augmentation workers without a copy).
 *
 * File layout (little-endian), made to be memory-mappable (e.g. `numpy.memmap` at the offsets):
 *   0..7    ASCII "PIPEDS1\n"
 *   8..11   uint32 header length H
 *   12..    H bytes of JSON: CompactHeader
 *   images  at `images.offset` (a multiple of 64): count x height x width x channels uint8, NHWC
 *   labels  at `labels.offset` (a multiple of 64): count x uint8 or uint16
 * `sha256` covers the bytes from `images.offset` to the end of the file and is checked on read.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ImageSplit } from './dataset.js';

const MAGIC = 'PIPEDS1\n';
const ALIGN = 64;

/** The JSON header of a compact split file. */
export interface CompactHeader {
  format: 'pipe-compact-split';
  version: 1;
  dataset: string;
  split: string;
  /** Where the data came from (path or URL). */
  source: string;
  /** The dataset's digest (see Dataset.digest). */
  digest: string;
  classes: string[];
  count: number;
  height: number;
  width: number;
  channels: number;
  layout: 'NHWC';
  images: { offset: number; bytes: number; dtype: 'uint8' };
  labels: { offset: number; bytes: number; dtype: 'uint8' | 'uint16' };
  /** sha256 (hex) of everything from images.offset to the end. */
  sha256: string;
}

/** What a compact file holds besides the split's arrays. */
export type CompactMeta = Pick<CompactHeader, 'dataset' | 'split' | 'source' | 'digest' | 'classes'>;

/** A compact file is unreadable or fails its checksum; the message names the file. */
export class CompactFileError extends Error {}

const align = (n: number): number => Math.ceil(n / ALIGN) * ALIGN;

/**
 * Writes `split` to `path` (a temporary name, then an atomic rename).
 * @throws on file system errors (the temporary file is removed).
 */
export async function writeCompact(path: string, split: ImageSplit, meta: CompactMeta): Promise<void> {
  const wide = split.labels instanceof Uint16Array;
  const labelBytes = new Uint8Array(split.labels.buffer, split.labels.byteOffset, split.labels.byteLength);
  const header: CompactHeader = {
    format: 'pipe-compact-split', version: 1, ...meta,
    count: split.count, height: split.height, width: split.width, channels: split.channels, layout: 'NHWC',
    images: { offset: 1e15, bytes: split.images.byteLength, dtype: 'uint8' },
    labels: { offset: 1e15, bytes: labelBytes.byteLength, dtype: wide ? 'uint16' : 'uint8' },
    sha256: '0'.repeat(64),
  };
  // The placeholders are at least as long as the real values, so the header fits its slot.
  const imagesOffset = align(12 + Buffer.byteLength(JSON.stringify(header)));
  const labelsOffset = align(imagesOffset + split.images.byteLength);
  const gapA = new Uint8Array(labelsOffset - imagesOffset - split.images.byteLength);
  header.images.offset = imagesOffset;
  header.labels.offset = labelsOffset;
  header.sha256 = createHash('sha256').update(split.images).update(gapA).update(labelBytes).digest('hex');
  const json = Buffer.from(JSON.stringify(header));
  if (12 + json.length > imagesOffset) throw new Error(`compact header of ${path} is larger than its slot`);
  const head = Buffer.alloc(imagesOffset);
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32LE(json.length, 8);
  json.copy(head, 12);
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w');
  try {
    for (const part of [head, split.images, gapA, labelBytes]) await fh.write(part);
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw e;
  }
}

/**
 * Reads a compact split: undefined when `path` does not exist.
 * @throws CompactFileError when the file is truncated, malformed, or fails its sha256.
 */
export async function readCompact(path: string): Promise<{ split: ImageSplit; header: CompactHeader } | undefined> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let buf: Uint8Array;
  try {
    const size = (await fh.stat()).size;
    buf = new Uint8Array(new SharedArrayBuffer(size));
    for (let at = 0; at < size; ) {
      const { bytesRead } = await fh.read(buf, at, size - at, at);
      if (bytesRead === 0) throw new CompactFileError(`${path}: file shrank while reading`);
      at += bytesRead;
    }
  } finally {
    await fh.close();
  }
  const bad = (why: string): CompactFileError => new CompactFileError(`${path}: ${why} (a corrupt cache file)`);
  if (buf.length < 12 || Buffer.from(buf.subarray(0, 8)).toString('latin1') !== MAGIC) throw bad('not a pipe compact split file');
  const hlen = new DataView(buf.buffer, 8, 4).getUint32(0, true);
  let header: CompactHeader;
  try {
    header = JSON.parse(Buffer.from(buf.subarray(12, 12 + hlen)).toString('utf8')) as CompactHeader;
  } catch {
    throw bad('unreadable header');
  }
  const { images, labels, count } = header;
  const px = header.height * header.width * header.channels;
  if (images.bytes !== count * px || labels.bytes !== count * (labels.dtype === 'uint16' ? 2 : 1) || labels.offset + labels.bytes !== buf.length) {
    throw bad(`sizes do not add up (${buf.length} bytes for ${count} images of ${px} bytes)`);
  }
  const got = createHash('sha256').update(buf.subarray(images.offset)).digest('hex');
  if (got !== header.sha256) throw bad(`sha256 ${got} does not match the recorded ${header.sha256}`);
  const split: ImageSplit = {
    images: new Uint8Array(buf.buffer, images.offset, images.bytes),
    labels: labels.dtype === 'uint16' ? new Uint16Array(buf.buffer, labels.offset, count) : new Uint8Array(buf.buffer, labels.offset, count),
    count, height: header.height, width: header.width, channels: header.channels,
  };
  return { split, header };
}
