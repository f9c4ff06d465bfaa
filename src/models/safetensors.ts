/**
 * The safetensors format, read and written directly (no dependency): an 8-byte little-endian
 * unsigned header length N, N bytes of JSON mapping each tensor name to
 * `{ dtype, shape, data_offsets: [begin, end] }` (offsets relative to the end of the header),
 * an optional `__metadata__` map of strings, then the raw little-endian tensor data.
 * Reference: https://github.com/huggingface/safetensors (README "Format").
 */
import { readFileSync } from 'node:fs';

/** Element types read here (float ones are widened to float32, integer ones to JS numbers). */
export type SafeDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

const BYTES: Record<SafeDtype, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

/** One tensor's header entry. */
export interface SafeTensorInfo {
  dtype: SafeDtype;
  /** Torch shape, row-major (e.g. conv OIHW). `[]` for a scalar. */
  shape: number[];
  /** Byte range in the data section, `[begin, end)`. */
  offsets: [number, number];
}

/** A bad safetensors file; the message names the file and, where it applies, the tensor. */
export class SafetensorsError extends Error {}

/** A parsed file: the header, and typed views of the data on request. */
export class Safetensors {
  /** Tensors by name, in header order. */
  readonly tensors: Map<string, SafeTensorInfo>;
  /** The `__metadata__` strings (e.g. `{ format: 'pt' }`). */
  readonly metadata: Record<string, string>;
  private readonly data: Uint8Array;

  /**
   * @param bytes the whole file.
   * @param source the file's name for messages. @defaultValue 'safetensors data'
   * @throws SafetensorsError for a truncated file, bad JSON, an unknown dtype, or offsets that
   *   disagree with the shape or run past the end.
   */
  constructor(bytes: Uint8Array, readonly source = 'safetensors data') {
    const fail: (why: string) => never = (why) => {
      throw new SafetensorsError(`${source}: not a valid safetensors file: ${why}`);
    };
    if (bytes.byteLength < 8) fail(`${bytes.byteLength} bytes, shorter than the 8-byte header length`);
    const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
    if (n > BigInt(bytes.byteLength - 8)) fail(`header length ${n} runs past the end of the ${bytes.byteLength}-byte file`);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + Number(n)))) as Record<string, unknown>;
    } catch (e) {
      header = fail(`the header is not JSON (${(e as Error).message})`);
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('the header is not a JSON object');
    this.data = bytes.subarray(8 + Number(n));
    this.metadata = (header['__metadata__'] ?? {}) as Record<string, string>;
    this.tensors = new Map();
    for (const [name, v] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      const dtype = e.dtype as SafeDtype;
      if (!(typeof dtype === 'string' && dtype in BYTES)) fail(`tensor '${name}' has unsupported dtype ${JSON.stringify(e.dtype)} (supported: ${Object.keys(BYTES).join(', ')})`);
      const shape = e.shape as number[];
      const off = e.data_offsets as [number, number];
      if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) fail(`tensor '${name}' has a bad shape ${JSON.stringify(e.shape)}`);
      if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isInteger(d) && d >= 0)) fail(`tensor '${name}' has bad data_offsets ${JSON.stringify(e.data_offsets)}`);
      const want = shape.reduce((a, b) => a * b, 1) * BYTES[dtype];
      if (off[1] - off[0] !== want) fail(`tensor '${name}' (${dtype} [${shape.join(',')}]) needs ${want} bytes but data_offsets [${off.join(',')}] hold ${off[1] - off[0]}`);
      if (off[1] > this.data.byteLength) fail(`tensor '${name}' ends at byte ${off[1]} of a ${this.data.byteLength}-byte data section (truncated file?)`);
      this.tensors.set(name, { dtype, shape: [...shape], offsets: [off[0], off[1]] });
    }
  }

  /** Reads and parses `path`. @throws SafetensorsError; Error (ENOENT...) when unreadable. */
  static read(path: string): Safetensors {
    return new Safetensors(readFileSync(path), path);
  }

  /** The raw little-endian bytes of `name`. @throws SafetensorsError when absent. */
  bytes(name: string): Uint8Array {
    const t = this.info(name);
    return this.data.subarray(t.offsets[0], t.offsets[1]);
  }

  /** Header entry of `name`. @throws SafetensorsError naming the tensor when absent. */
  info(name: string): SafeTensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new SafetensorsError(`${this.source}: no tensor '${name}'`);
    return t;
  }

  /**
   * The values of `name` as float32, row-major in the torch shape. F16 and BF16 are widened
   * exactly; F64 and integers are rounded to the nearest float32.
   */
  float32(name: string): Float32Array {
    const { dtype } = this.info(name);
    const b = this.bytes(name);
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const n = b.byteLength / BYTES[dtype];
    if (dtype === 'F32') {
      const out = new Float32Array(n);
      new Uint8Array(out.buffer).set(b); // copy: the data section is not 4-byte aligned in general
      if (!LITTLE_ENDIAN) for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
      return out;
    }
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = readScalar(dv, dtype, i);
    return out;
  }
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function readScalar(dv: DataView, dtype: SafeDtype, i: number): number {
  switch (dtype) {
    case 'F64': return dv.getFloat64(8 * i, true);
    case 'F32': return dv.getFloat32(4 * i, true);
    case 'F16': return halfToFloat(dv.getUint16(2 * i, true));
    case 'BF16': return bf16ToFloat(dv.getUint16(2 * i, true));
    case 'I64': return Number(dv.getBigInt64(8 * i, true));
    case 'I32': return dv.getInt32(4 * i, true);
    case 'I16': return dv.getInt16(2 * i, true);
    case 'I8': return dv.getInt8(i);
    case 'U8': case 'BOOL': return dv.getUint8(i);
  }
}

/** IEEE 754 binary16 bits -> number (subnormals, infinities and NaN included). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** bfloat16 bits -> number: the upper 16 bits of a float32. */
export function bf16ToFloat(b: number): number {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setUint32(0, (b & 0xffff) << 16, false);
  return dv.getFloat32(0, false);
}

/** A tensor to write: float32 (or int64 for counters such as num_batches_tracked). */
export interface TensorToWrite {
  dtype: 'F32' | 'I64';
  shape: number[];
  data: Float32Array | BigInt64Array;
}

/**
 * Encodes tensors as a safetensors file (names sorted, as the reference writer does; header
 * padded with spaces to a multiple of 8 bytes so the data is aligned).
 * @throws Error when a tensor's data length disagrees with its shape.
 */
export function encodeSafetensors(tensors: Record<string, TensorToWrite>, metadata: Record<string, string> = { format: 'pt' }): Uint8Array {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const name of names) {
    const t = tensors[name]!;
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== n) throw new Error(`encodeSafetensors: '${name}' has ${t.data.length} values for shape [${t.shape.join(',')}]`);
    const size = n * BYTES[t.dtype];
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((Buffer.byteLength(json) + 8) % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.byteLength + offset);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt(head.byteLength), true);
  out.set(head, 8);
  let p = 8 + head.byteLength;
  for (const name of names) {
    const t = tensors[name]!;
    for (let i = 0; i < t.data.length; i++) {
      if (t.dtype === 'F32') dv.setFloat32(p + 4 * i, (t.data as Float32Array)[i]!, true);
      else dv.setBigInt64(p + 8 * i, (t.data as BigInt64Array)[i]!, true);
    }
    p += t.data.length * BYTES[t.dtype];
  }
  return out;
}
