/**
 * IDX files (the MNIST format, http://yann.lecun.com/exdb/mnist/ "FILE FORMATS"): a big-endian
 * header (two zero bytes, a type code, the number of dimensions, then each dimension as a
 * uint32) followed by the data. MNIST and Fashion-MNIST use type 0x08 (unsigned byte).
 */
import { gunzipSync } from 'node:zlib';

/** A parsed IDX array. */
export interface IdxArray {
  /** Dimensions, e.g. [60000, 28, 28] for images, [60000] for labels. */
  shape: number[];
  /** The raw uint8 data, row-major, length = product of shape. */
  data: Uint8Array;
}

/** Thrown for a malformed file; the message names the file. */
export class IdxFormatError extends Error {}

/** Gunzips when the buffer starts with the gzip magic (1f 8b), else returns it as it is. */
export function maybeGunzip(buf: Uint8Array): Uint8Array {
  return buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b ? gunzipSync(buf) : buf;
}

/**
 * Parses an IDX buffer (raw or gzipped) of unsigned bytes.
 * @param name shown in errors (the file path)
 * @throws IdxFormatError on a bad magic, a type other than 0x08, or a size mismatch.
 */
export function parseIdx(buf: Uint8Array, name: string): IdxArray {
  const raw = maybeGunzip(buf);
  if (raw.length < 4 || raw[0] !== 0 || raw[1] !== 0) throw new IdxFormatError(`${name}: not an IDX file (bad magic number)`);
  if (raw[2] !== 0x08) throw new IdxFormatError(`${name}: IDX type 0x${raw[2]!.toString(16)} is not supported (only 0x08, unsigned byte)`);
  const ndim = raw[3]!;
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  if (raw.length < 4 + 4 * ndim) throw new IdxFormatError(`${name}: truncated header`);
  const shape = Array.from({ length: ndim }, (_, i) => view.getUint32(4 + 4 * i, false));
  const size = shape.reduce((a, b) => a * b, 1);
  const offset = 4 + 4 * ndim;
  if (raw.length - offset !== size) {
    throw new IdxFormatError(`${name}: header says ${shape.join('x')} = ${size} bytes of data, file has ${raw.length - offset}`);
  }
  return { shape, data: raw.subarray(offset, offset + size) };
}

/** Builds an IDX buffer (type 0x08); used by tests and fixtures. */
export function encodeIdx(shape: number[], data: Uint8Array): Uint8Array {
  const head = new Uint8Array(4 + 4 * shape.length);
  const view = new DataView(head.buffer);
  head[2] = 0x08;
  head[3] = shape.length;
  shape.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  const out = new Uint8Array(head.length + data.length);
  out.set(head);
  out.set(data, head.length);
  return out;
}
