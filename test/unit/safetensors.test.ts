/**
 * The safetensors reader on files assembled byte by byte here (values and bit patterns worked out
 * by hand from IEEE 754 binary16 / bfloat16), on torch's own output (test/fixtures/torchvision), and its
 * errors; the writer's layout; and the torch -> tfjs layout conversions on hand-worked cases.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { fixture } from '../fixtures.js';
import { initEngine } from '../../src/engine/backend.js';
import { encodeSafetensors, Safetensors, SafetensorsError } from '../../src/models/safetensors.js';
import { tfToTorch, torchShapeOf, torchToTf } from '../../src/models/torch-weights.js';

before(async () => {
  await initEngine('cpu');
});

/** A file from a header object and a data section (both given literally). */
function file(header: Record<string, unknown>, data: Buffer, pad = 0): Uint8Array {
  const json = Buffer.from(JSON.stringify(header) + ' '.repeat(pad));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return new Uint8Array(Buffer.concat([len, json, data]));
}

describe('safetensors reader', () => {
  // F32 [2] = 1.5, -0.25 (8 bytes) | F16 [2,3] (12 bytes) | BF16 [3] (6 bytes) | I64 [2] (16 bytes)
  const data = Buffer.alloc(42);
  data.writeFloatLE(1.5, 0);
  data.writeFloatLE(-0.25, 4);
  [0x3c00, 0xc000, 0x3555, 0x0001, 0x7bff, 0x7c00].forEach((h, i) => data.writeUInt16LE(h, 8 + 2 * i));
  [0x3f80, 0xc040, 0x4049].forEach((b, i) => data.writeUInt16LE(b, 20 + 2 * i));
  data.writeBigInt64LE(2n, 26);
  data.writeBigInt64LE(-5n, 34);
  const header = {
    __metadata__: { format: 'pt' },
    a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
    h: { dtype: 'F16', shape: [2, 3], data_offsets: [8, 20] },
    b: { dtype: 'BF16', shape: [3], data_offsets: [20, 26] },
    n: { dtype: 'I64', shape: [2], data_offsets: [26, 42] },
  };

  it('reads F32, F16 (incl. subnormal, max, inf), BF16 and I64 values, shapes and metadata', () => {
    // pad = 1 puts the data section at an odd offset: F32 must not need alignment.
    const st = new Safetensors(file(header, data, 1), 'hand.safetensors');
    assert.deepEqual([...st.tensors.keys()], ['a', 'h', 'b', 'n']);
    assert.deepEqual(st.metadata, { format: 'pt' });
    assert.deepEqual(st.info('h').shape, [2, 3]);
    assert.deepEqual([...st.float32('a')], [1.5, -0.25]);
    assert.deepEqual([...st.float32('h')], [1, -2, Math.fround(0.333251953125), Math.fround(2 ** -24), 65504, Infinity]);
    assert.deepEqual([...st.float32('b')], [1, -3, 3.140625]);
    assert.deepEqual([...st.float32('n')], [2, -5]);
  });

  it('names the file and the tensor in every error', () => {
    const bad = (h: Record<string, unknown>, d: Buffer, re: RegExp): void => {
      assert.throws(() => new Safetensors(file(h, d), 'x.safetensors'), (e: unknown) => e instanceof SafetensorsError && re.test(e.message) && e.message.startsWith('x.safetensors'));
    };
    bad({ t: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, Buffer.alloc(8), /tensor 't' \(F32 \[3\]\) needs 12 bytes but data_offsets \[0,8\] hold 8/);
    bad({ t: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, Buffer.alloc(8), /tensor 't' ends at byte 16 of a 8-byte data section/);
    bad({ t: { dtype: 'Q4', shape: [1], data_offsets: [0, 1] } }, Buffer.alloc(1), /tensor 't' has unsupported dtype "Q4"/);
    bad({ t: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, Buffer.alloc(4), /tensor 't' has a bad shape/);
    assert.throws(() => new Safetensors(new Uint8Array(5), 'short'), /short: .*5 bytes, shorter than the 8-byte header length/);
    const huge = Buffer.alloc(16);
    huge.writeBigUInt64LE(1000n);
    assert.throws(() => new Safetensors(new Uint8Array(huge), 'h'), /header length 1000 runs past the end of the 16-byte file/);
    const notJson = Buffer.concat([Buffer.from([3, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{x}')]);
    assert.throws(() => new Safetensors(new Uint8Array(notJson), 'j'), /j: not a valid safetensors file: the header is not JSON/);
    const st = new Safetensors(file(header, data), 'hand.safetensors');
    assert.throws(() => st.float32('missing'), /hand.safetensors: no tensor 'missing'/);
  });

  it("reads torch's own file: the slim18 golden state_dict (names, shapes, dtypes as listed by Python)", (t) => {
    const goldens = fixture('torchvision');
    const meta = JSON.parse(readFileSync(join(goldens, 'slim18.json'), 'utf8')) as { state_dict: Record<string, { dtype: string; shape: number[] }> };
    const st = Safetensors.read(join(goldens, 'slim18.safetensors'));
    assert.deepEqual([...st.tensors.keys()].sort(), Object.keys(meta.state_dict).sort());
    for (const [k, v] of Object.entries(meta.state_dict)) {
      assert.deepEqual(st.info(k).shape, v.shape, k);
      assert.equal(st.info(k).dtype, v.dtype === 'float32' ? 'F32' : 'I64', k);
    }
    assert.deepEqual([...st.float32('bn1.num_batches_tracked')], [2]); // README: num_batches_tracked = 2
    t.diagnostic(`${st.tensors.size} tensors`);
  });
});

describe('safetensors writer', () => {
  it('lays out: u64 LE header length, JSON header padded to 8 bytes, sorted names, LE data', () => {
    const bytes = encodeSafetensors({ z: { dtype: 'F32', shape: [1], data: new Float32Array([2]) }, a: { dtype: 'I64', shape: [], data: new BigInt64Array([7n]) } });
    const buf = Buffer.from(bytes);
    const n = Number(buf.readBigUInt64LE(0));
    assert.equal((8 + n) % 8, 0);
    const header = JSON.parse(buf.subarray(8, 8 + n).toString());
    assert.deepEqual(header.a, { dtype: 'I64', shape: [], data_offsets: [0, 8] });
    assert.deepEqual(header.z, { dtype: 'F32', shape: [1], data_offsets: [8, 12] });
    assert.equal(buf.readBigInt64LE(8 + n), 7n);
    assert.equal(buf.readFloatLE(8 + n + 8), 2);
    assert.equal(buf.length, 8 + n + 12);
  });
});

describe('torch -> tfjs layouts', () => {
  it('conv OIHW [2,1,1,2] -> HWIO [1,2,1,2]', () => {
    // torch w[o][i][h][w]: o0 = [a b], o1 = [c d]; HWIO k[h][w][i][o]: (w0) [a c], (w1) [b d]
    const t = torchToTf('conv', new Float32Array([1, 2, 3, 4]), [2, 1, 1, 2]);
    assert.deepEqual(t.shape, [1, 2, 1, 2]);
    assert.deepEqual([...t.dataSync()], [1, 3, 2, 4]);
    assert.deepEqual(torchShapeOf('conv', [1, 2, 1, 2]), [2, 1, 1, 2]);
    assert.deepEqual([...tfToTorch('conv', t)], [1, 2, 3, 4]);
  });

  it('depthwise [C=2,1,1,2] -> [1,2,C=2,1]', () => {
    const t = torchToTf('dwconv', new Float32Array([1, 2, 3, 4]), [2, 1, 1, 2]);
    assert.deepEqual(t.shape, [1, 2, 2, 1]);
    assert.deepEqual([...t.dataSync()], [1, 3, 2, 4]);
    assert.deepEqual(torchShapeOf('dwconv', [1, 2, 2, 1]), [2, 1, 1, 2]);
    assert.deepEqual([...tfToTorch('dwconv', t)], [1, 2, 3, 4]);
  });

  it('linear [out=2,in=3] -> [in=3,out=2]; BatchNorm vectors unchanged', () => {
    const t = torchToTf('dense', new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
    assert.deepEqual(t.shape, [3, 2]);
    assert.deepEqual([...t.dataSync()], [1, 4, 2, 5, 3, 6]);
    assert.deepEqual([...torchToTf('bn', new Float32Array([7, 8]), [2]).dataSync()], [7, 8]);
  });
});
