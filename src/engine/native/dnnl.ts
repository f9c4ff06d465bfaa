/**
 * Loads pipe's optional native addon (native/*.cc at the repository root, built by binding.gyp
 * into build/Release/pipe_dnnl.node when `npm ci` / `npm install` finds g++ and oneDNN 2.x, see
 * native/install.mjs) and checks it before use: a start-up self-test compares its convolution
 * (forward, backward data, backward weights, including a strided 1x1 filter gradient), the fused
 * conv + BatchNorm + residual + ReLU and conv + residual + ReLU forwards, matMul,
 * element-wise ops, column sums, sqrt, BatchNorm, the max-pool gradient and the Adam step with
 * direct loops written out here (each op's definition), on small random inputs; an addon that disagrees (max
 * relative error > 1e-4) or fails to load is refused and the wasm kernels stay in charge.
 *
 * Before it is loaded, the file is checked (see {@link checkAddonFile}): against the size and
 * SHA-256 that native/install.mjs recorded next to it (`pipe_dnnl.node.json`), and, for an ELF
 * file, that every segment and section the header names lies inside the file (a truncated shared
 * object would otherwise be mapped by dlopen and kill the process with SIGBUS). After loading, its
 * exports are checked before any is called (another package's .node is refused). A refused file
 * gives one `pipe: warning:` line on stderr and the wasm kernels.
 *
 * Environment: PIPE_NATIVE=0 disables the addon; PIPE_NATIVE_PATH loads it from another path
 * (its record, if any, is `<path>.json`); PIPE_NATIVE_THREADS sets its thread count, a whole
 * number from 1 to 4 x `os.availableParallelism()` (else exit 2 naming the variable; default:
 * every core). OpenMP's idle threads are made to sleep
 * (OMP_WAIT_POLICY=passive unless set) so that they do not spin on cores the data workers need.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { PipelineError } from '../../errors.js';

/** The addon's functions (see native/pipe_dnnl.cc and native/native.h for the parameter layouts). */
export interface DnnlAddon {
  /** kind 0 forward, 1 backward data, 2 backward weights; p: Float64Array(26), or 27 for a forward conv that adds the residual at byte offset p[26] before its activation. */
  conv(kind: number, heap: ArrayBuffer, p: Float64Array): void;
  /** p: Float64Array(13). */
  matmul(heap: ArrayBuffer, p: Float64Array): void;
  /** p: [op, mode, aOff, bOff, outOff, outSize, inner]. */
  binary(heap: ArrayBuffer, p: Float64Array): void;
  /** p: [op, xOff, outOff, size]. */
  unary(heap: ArrayBuffer, p: Float64Array): void;
  /** p: [op (0 sum, 1 mean), xOff, outOff, rows, cols]. */
  reduceRows(heap: ArrayBuffer, p: Float64Array): void;
  /** p: [N, H, W, C, OH, OW, KH, KW, SH, SW, PT, PL, xOff, dyOff, dxOff]. */
  maxPoolGrad(heap: ArrayBuffer, p: Float64Array): void;
  /** p: [xOff, outOff, n, C, meanOff, varOff, offsetOff, scaleOff, eps, meanN, varN, offsetN, scaleN]. */
  batchNorm(heap: ArrayBuffer, p: Float64Array): void;
  /** p: [xOff, yOff, meanOff, varOff, gammaOff, betaOff, rows, C, eps]. */
  batchNormTrain(heap: ArrayBuffer, p: Float64Array): void;
  /** p: [xOff, dyOff, meanOff, varOff, gammaOff, dxOff, dgammaOff, dbetaOff, rows, C, eps]. */
  batchNormTrainGrad(heap: ArrayBuffer, p: Float64Array): void;
  /** Conv + training BatchNorm (+ residual) (+ ReLU) forward; p: Float64Array(34) (native.h conv_bn_train). */
  convBnTrain(heap: ArrayBuffer, p: Float64Array): void;
  /** Its backward but the input gradient; p: Float64Array(38) (native.h conv_bn_train_grad). */
  convBnTrainGrad(heap: ArrayBuffer, p: Float64Array): void;
  /** p: [wOff, gOff, mOff, vOff, newWOff, newMOff, newVOff, n, a1Off, a2Off, b1, c1, b2, c2, eps, nlr]. */
  adam(heap: ArrayBuffer, p: Float64Array): void;
  /** oneDNN's implementation name for a conv (kind 0-2) or matmul (kind 3) parameter set. */
  implInfo(kind: number, p: Float64Array): string;
  setThreads(n: number): void;
  threads(): number;
}

/** The functions every addon has (one without them is refused). */
const CORE_FUNCTIONS = ['conv', 'matmul', 'binary', 'unary', 'reduceRows', 'maxPoolGrad', 'batchNorm', 'batchNormTrain', 'batchNormTrainGrad', 'adam', 'implInfo', 'setThreads', 'threads'] satisfies Array<keyof DnnlAddon>;
/** The fused conv + BatchNorm kernels (native/conv_bn.cc): an addon built before them lacks them and is used without them. */
const FUSED_FUNCTIONS = ['convBnTrain', 'convBnTrainGrad'] satisfies Array<keyof DnnlAddon>;

/**
 * The addon, or why it is not used. `fused`: whether it has the fused conv + BatchNorm kernels
 * (else `stale` says so, for the engine line; the separate kernels are used).
 */
export type DnnlStatus = { addon: DnnlAddon; threads: number; path: string; fused: boolean; stale?: string } | { addon: undefined; reason: string };

const lacks = (addon: DnnlAddon, names: readonly string[]): string[] => names.filter((k) => typeof (addon as unknown as Record<string, unknown>)[k] !== 'function');

/** Where node-gyp puts the addon: build/Release/pipe_dnnl.node (this file runs from dist/src/engine/native/). */
export const ADDON_PATH = fileURLToPath(new URL('../../../../build/Release/pipe_dnnl.node', import.meta.url));

/** Where native/install.mjs says why it did not build the addon. */
const SKIPPED_PATH = fileURLToPath(new URL('../../../../build/pipe_dnnl.skipped', import.meta.url));

/** Why the addon at `path` is not there: the install's own reason when it recorded one. */
function notBuiltReason(path: string): string {
  if (path === ADDON_PATH && existsSync(SKIPPED_PATH)) return `native addon not built: ${readFileSync(SKIPPED_PATH, 'utf8').trim()}`;
  return `native addon not built (no ${path}; needs g++ and libdnnl-dev, then \`npm run build:native\`)`;
}

let status: DnnlStatus | undefined;

/** The fix named whenever the addon's file is refused. */
const REBUILD = 'rebuild it with `npm run build:native`';

/**
 * The addon's thread count from PIPE_NATIVE_THREADS: a whole number from 1 to
 * 4 x `os.availableParallelism()` (more threads than that only oversubscribe the cores, and very
 * large counts crash OpenMP); unset: `os.availableParallelism()`.
 * @throws PipelineError PIPE_BACKEND (exit 2) naming the variable when it is anything else.
 */
export function nativeThreads(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env['PIPE_NATIVE_THREADS'];
  if (raw === undefined || raw === '') return availableParallelism();
  const cap = 4 * availableParallelism();
  const n = /^\s*\d+\s*$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > cap) {
    throw new PipelineError('PIPE_BACKEND', `PIPE_NATIVE_THREADS='${raw}': expected a whole number of threads from 1 to ${cap} (4 x this machine's ${availableParallelism()} cores), or unset for every core`);
  }
  return n;
}

/**
 * Why the file at `path` must not be loaded, or undefined when it may be:
 * - `<path>.json`, written by native/install.mjs after a build ({ size, sha256 }), when present:
 *   the file must have that size and SHA-256 (a truncated, damaged or replaced file is refused);
 * - an ELF file (Linux): its program headers (the segments dlopen maps) and its section header
 *   table must lie inside the file. dlopen maps a truncated shared object without complaint and
 *   the process dies with SIGBUS on the first page past the end; this catches that without the
 *   record. Offsets per the ELF specification (System V gABI, "ELF Header", "Program Header").
 */
export function checkAddonFile(path: string): string | undefined {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    return `cannot read ${path}: ${(e as Error).message}`;
  }
  const recordPath = `${path}.json`;
  if (existsSync(recordPath)) {
    let record: { size?: unknown; sha256?: unknown };
    try {
      record = JSON.parse(readFileSync(recordPath, 'utf8')) as typeof record;
    } catch (e) {
      return `its build record ${recordPath} is unreadable (${(e as Error).message.split('\n')[0]})`;
    }
    if (record.size !== bytes.length) return `${path} is ${bytes.length} bytes, but was built as ${String(record.size)} bytes (truncated or replaced)`;
    const sha = createHash('sha256').update(bytes).digest('hex');
    if (record.sha256 !== sha) return `${path} does not match the SHA-256 recorded when it was built (damaged or replaced)`;
  }
  return elfDamage(bytes, path);
}

/** For an ELF file: why its headers point past its end (truncated), else undefined. Not ELF: undefined (dlopen refuses it cleanly). */
function elfDamage(b: Buffer, path: string): string | undefined {
  if (b.length < 4 || b[0] !== 0x7f || b[1] !== 0x45 || b[2] !== 0x4c || b[3] !== 0x46) return undefined;
  const truncated = (what: string): string => `${path} is truncated (${b.length} bytes; its ELF ${what} lies past the end)`;
  const is64 = b[4] === 2, le = b[5] === 1;
  if (b.length < (is64 ? 64 : 52)) return truncated('header');
  const u16 = (o: number): number => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (o: number): number => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const u64 = (o: number): number => Number(le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o));
  const word = is64 ? u64 : u32;
  const [phoff, shoff] = is64 ? [u64(0x20), u64(0x28)] : [u32(0x1c), u32(0x20)];
  const [phentsize, phnum, shentsize, shnum] = is64 ? [u16(0x36), u16(0x38), u16(0x3a), u16(0x3c)] : [u16(0x2a), u16(0x2c), u16(0x2e), u16(0x30)];
  if (phoff + phnum * phentsize > b.length) return truncated('program header table');
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    // p_offset and p_filesz: 64-bit at +8 and +32, 32-bit at +4 and +16.
    const [off, filesz] = is64 ? [word(ph + 8), word(ph + 32)] : [word(ph + 4), word(ph + 16)];
    if (off + filesz > b.length) return truncated(`segment ${i}`);
  }
  if (shnum > 0 && shoff + shnum * shentsize > b.length) return truncated('section header table');
  return undefined;
}

/** Refuses the addon's file: one warning line (it was built, so this is not the usual "not built" case) and the reason. */
function refuse(reason: string): DnnlStatus {
  process.stderr.write(`pipe: warning: ${reason}; the wasm kernels are used (slower)\n`);
  return (status = { addon: undefined, reason });
}

/**
 * Loads, configures and self-tests the addon once; later calls return the same status.
 * @throws PipelineError PIPE_BACKEND (exit 2) for a bad PIPE_NATIVE_THREADS ({@link nativeThreads}).
 */
export function loadDnnl(): DnnlStatus {
  if (status) return status;
  if (process.env['PIPE_NATIVE'] === '0') return (status = { addon: undefined, reason: 'disabled by PIPE_NATIVE=0' });
  const threads = nativeThreads();
  const path = process.env['PIPE_NATIVE_PATH'] || ADDON_PATH;
  if (!existsSync(path)) return (status = { addon: undefined, reason: notBuiltReason(path) });
  const damaged = checkAddonFile(path);
  if (damaged) return refuse(`native addon refused: ${damaged}; ${REBUILD}`);
  process.env['OMP_WAIT_POLICY'] ??= 'passive';
  let addon: DnnlAddon;
  try {
    addon = createRequire(import.meta.url)(path) as DnnlAddon;
  } catch (e) {
    return refuse(`native addon failed to load: ${(e as Error).message.split('\n')[0]}; ${REBUILD}`);
  }
  const missing = lacks(addon, CORE_FUNCTIONS);
  // Without the functions every build has had, it is another package's addon, not an old build of pipe's.
  if (missing.length && lacks(addon, ['conv', 'matmul', 'setThreads', 'threads']).length) return refuse(`native addon refused: ${path} is not pipe's native addon (no ${missing.join(', ')}); ${REBUILD}`);
  if (missing.length) return refuse(`native addon out of date (no ${missing.join(', ')}): ${REBUILD}`);
  addon.setThreads(threads);
  const bad = selfTest(addon);
  if (bad) return (status = { addon: undefined, reason: `native addon refused: its self-test failed (${bad})` });
  const noFused = lacks(addon, FUSED_FUNCTIONS);
  const stale = noFused.length ? `addon built before the fused conv + BatchNorm kernels: ${REBUILD}` : undefined;
  return (status = { addon, threads: addon.threads(), path, fused: !stale, ...(stale ? { stale } : {}) });
}

// ---------------------------------------------------------------------------------------------
// Self-test: direct loops over NHWC / HWIO, the definition of each op.

function rand(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  });
}

function relErr(a: Float32Array, b: Float32Array): number {
  let m = 0, d = 0;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(b[i]!));
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
  }
  return d / Math.max(m, 1e-12);
}

/**
 * Conv forward, backward data and backward weights of one shape (C input channels, a K x K
 * filter, stride 2, padding P) vs direct loops; a message on disagreement.
 */
function convSelfTest(addon: DnnlAddon, C: number, K = 3, P = 1): string | undefined {
  const [N, H, W, KH, KW, O, S] = [2, 8, 6, K, K, 4, 2];
  const OH = Math.floor((H + 2 * P - KH) / S) + 1, OW = Math.floor((W + 2 * P - KW) / S) + 1;
  const x = rand(N * H * W * C, 1), w = rand(KH * KW * C * O, 2), dy = rand(N * OH * OW * O, 3);
  const y = new Float32Array(N * OH * OW * O), dx = new Float32Array(x.length), dw = new Float32Array(w.length);
  for (let n = 0; n < N; n++) for (let i = 0; i < OH; i++) for (let j = 0; j < OW; j++) for (let a = 0; a < KH; a++) for (let b = 0; b < KW; b++) {
    const h = i * S + a - P, v = j * S + b - P;
    if (h < 0 || h >= H || v < 0 || v >= W) continue;
    for (let c = 0; c < C; c++) for (let o = 0; o < O; o++) {
      const xi = ((n * H + h) * W + v) * C + c, wi = ((a * KW + b) * C + c) * O + o, yi = ((n * OH + i) * OW + j) * O + o;
      y[yi]! += x[xi]! * w[wi]!;
      dx[xi]! += dy[yi]! * w[wi]!;
      dw[wi]! += x[xi]! * dy[yi]!;
    }
  }
  const heap = new ArrayBuffer(4 * (x.length + w.length + y.length) + 64);
  const f = new Float32Array(heap);
  const xOff = 16, wOff = xOff + 4 * x.length, yOff = wOff + 4 * w.length;
  const view = (off: number, len: number): Float32Array => f.subarray(off / 4, off / 4 + len);
  const p = new Float64Array([N, H, W, C, KH, KW, O, OH, OW, S, S, P, P, P, P, xOff, wOff, yOff, -1, 0, 0, KH, KW, 0, 0, -1]);
  view(xOff, x.length).set(x);
  view(wOff, w.length).set(w);
  addon.conv(0, heap, p);
  const e0 = relErr(view(yOff, y.length), y);
  const what = `${K}x${K} conv`;
  if (e0 > 1e-4) return `${what} forward (${C} channels), relative error ${e0.toExponential(2)}`;
  view(yOff, dy.length).set(dy);
  addon.conv(1, heap, p);
  const e1 = relErr(view(xOff, x.length), dx);
  if (e1 > 1e-4) return `${what} backward data (${C} channels), relative error ${e1.toExponential(2)}`;
  view(xOff, x.length).set(x);
  addon.conv(2, heap, p);
  const e2 = relErr(view(wOff, w.length), dw);
  if (e2 > 1e-4) return `${what} backward weights (${C} channels), relative error ${e2.toExponential(2)}`;
  return undefined;
}

/**
 * A bump allocator over `f` for the self-tests: each call copies `data` (or `n` zeros) after the
 * previous block (16-byte gaps) and returns its byte offset and a view of it.
 */
function heapWriter(f: Float32Array): (data: Float32Array | number) => [number, Float32Array] {
  let next = 16;
  return (data) => {
    const n = typeof data === 'number' ? data : data.length, off = next;
    next += 4 * n + 16;
    const view = f.subarray(off / 4, off / 4 + n);
    if (typeof data !== 'number') view.set(data);
    return [off, view];
  };
}

/** sqrt, BatchNorm with given statistics, the max-pool gradient and an Adam step vs their definitions (native/native.h). */
function pointwiseSelfTest(addon: DnnlAddon): string | undefined {
  const f = new Float32Array(4096);
  const heap = f.buffer as ArrayBuffer;
  const put = heapWriter(f);
  // sqrt of |x|.
  const xs = rand(50, 8).map(Math.abs);
  const [sqIn] = put(xs), [sqOut, sq] = put(xs.length);
  addon.unary(heap, new Float64Array([0, sqIn, sqOut, xs.length]));
  const e1 = relErr(sq, xs.map(Math.sqrt));
  if (e1 > 1e-6) return `sqrt, relative error ${e1.toExponential(2)}`;
  // BatchNorm over 6 channels: offset + (x - mean) * scale / sqrt(variance + eps).
  const C = 6, x = rand(10 * C, 9), mean = rand(C, 10), variance = rand(C, 11).map((v) => v + 1), offset = rand(C, 12), scale = rand(C, 13);
  const [xOff] = put(x), [outOff, out] = put(x.length), [mOff] = put(mean), [vOff] = put(variance), [oOff] = put(offset), [sOff] = put(scale);
  addon.batchNorm(heap, new Float64Array([xOff, outOff, x.length, C, mOff, vOff, oOff, sOff, 1e-3, C, C, C, C]));
  const e2 = relErr(out, x.map((v, k) => offset[k % C]! + ((v - mean[k % C]!) * scale[k % C]!) / Math.sqrt(variance[k % C]! + 1e-3)));
  if (e2 > 1e-5) return `batch norm, relative error ${e2.toExponential(2)}`;
  // Max-pool gradient, 3x3 windows, stride 2, padding 1, on a 5x5x2 map: dy goes to the first maximum.
  const [H, W, PC, K, S, P, O] = [5, 5, 2, 3, 2, 1, 3];
  const px = rand(H * W * PC, 14), pdy = rand(O * O * PC, 15), pdx = new Float32Array(px.length);
  for (let i = 0; i < O; i++) for (let j = 0; j < O; j++) for (let c = 0; c < PC; c++) {
    let best = -Infinity, at = -1;
    for (let a = 0; a < K; a++) for (let b = 0; b < K; b++) {
      const h = i * S + a - P, w = j * S + b - P;
      if (h < 0 || h >= H || w < 0 || w >= W) continue;
      const k = (h * W + w) * PC + c;
      if (px[k]! > best) [best, at] = [px[k]!, k];
    }
    pdx[at]! += pdy[(i * O + j) * PC + c]!;
  }
  const [pxOff] = put(px), [pdyOff] = put(pdy), [pdxOff, pdxGot] = put(px.length);
  addon.maxPoolGrad(heap, new Float64Array([1, H, W, PC, O, O, K, K, S, S, P, P, pxOff, pdyOff, pdxOff]));
  const e3 = relErr(pdxGot, pdx);
  if (e3 > 0) return `max-pool gradient, relative error ${e3.toExponential(2)}`;
  // One Adam step (lr 0.01, betas 0.9 / 0.999, eps 1e-7, step 1), in float32 as tfjs-core does it.
  const r = Math.fround, n = 20, w = rand(n, 16), g = rand(n, 17), m = rand(n, 18), v = rand(n, 19).map(Math.abs);
  const [b1, b2, eps, nlr] = [0.9, 0.999, 1e-7, -0.01], [c1, c2] = [r(1 - b1), r(1 - b2)], [a1, a2] = [r(1 - b1), r(1 - b2)];
  const want = w.map((wi, i) => {
    const mi = r(r(m[i]! * r(b1)) + r(g[i]! * c1)), vi = r(r(v[i]! * r(b2)) + r(r(g[i]! * g[i]!) * c2));
    return r(r(r(r(mi / a1) / r(r(Math.sqrt(r(vi / a2))) + r(eps))) * r(nlr)) + wi);
  });
  const [wOff] = put(w), [gOff] = put(g), [mOff2] = put(m), [vOff2] = put(v), [w1Off, w1] = put(n), [m1Off] = put(n), [v1Off] = put(n);
  const [a1Off] = put(Float32Array.of(a1)), [a2Off] = put(Float32Array.of(a2));
  addon.adam(heap, new Float64Array([wOff, gOff, mOff2, vOff2, w1Off, m1Off, v1Off, n, a1Off, a2Off, r(b1), c1, r(b2), c2, r(eps), r(nlr)]));
  const e4 = relErr(w1, want);
  if (e4 > 1e-6) return `Adam step, relative error ${e4.toExponential(2)}`;
  return undefined;
}

/**
 * The fused kernels' forward passes (native/conv_bn.cc, the residual conv of native/conv.cc) on a
 * 3x3 'same' conv of [2, 5, 5, 3] into 4 channels vs direct loops: relu(bn(conv(x, w)) + r) with
 * the batch's statistics, and relu(conv(x, w) + r).
 */
function fusedSelfTest(addon: DnnlAddon): string | undefined {
  const [N, H, W, C, K, O, P, eps] = [2, 5, 5, 3, 3, 4, 1, 1e-5];
  const x = rand(N * H * W * C, 20), w = rand(K * K * C * O, 21), r = rand(N * H * W * O, 22), gamma = rand(O, 23).map((v) => v + 1), beta = rand(O, 24);
  const z = new Float64Array(N * H * W * O);
  for (let n = 0; n < N; n++) for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) for (let a = 0; a < K; a++) for (let b = 0; b < K; b++) {
    const h = i + a - P, v = j + b - P;
    if (h < 0 || h >= H || v < 0 || v >= W) continue;
    for (let c = 0; c < C; c++) for (let o = 0; o < O; o++) z[((n * H + i) * W + j) * O + o]! += x[((n * H + h) * W + v) * C + c]! * w[((a * K + b) * C + c) * O + o]!;
  }
  const rows = N * H * W, mean = new Float64Array(O), variance = new Float64Array(O);
  z.forEach((v, k) => (mean[k % O]! += v / rows));
  z.forEach((v, k) => (variance[k % O]! += (v - mean[k % O]!) ** 2 / rows));
  const wantBn = Float32Array.from(z, (v, k) => Math.max(0, ((v - mean[k % O]!) / Math.sqrt(variance[k % O]! + eps)) * gamma[k % O]! + beta[k % O]! + r[k]!));
  const wantAdd = Float32Array.from(z, (v, k) => Math.max(0, v + r[k]!));
  const f = new Float32Array(4 * (x.length + w.length + 4 * r.length + 4 * O) + 256);
  const put = heapWriter(f);
  const [xOff] = put(x), [wOff] = put(w), [rOff] = put(r), [gOff] = put(gamma), [bOff] = put(beta);
  const [zOff] = put(r.length), [yOff, y] = put(r.length), [mOff] = put(O), [vOff] = put(O);
  const conv = [N, H, W, C, K, K, O, H, W, 1, 1, P, P, P, P, xOff, wOff];
  addon.convBnTrain(f.buffer, new Float64Array([...conv, zOff, -1, 0, 0, K, K, 0, 0, -1, yOff, mOff, vOff, gOff, bOff, rOff, 1, eps]));
  const e1 = relErr(y, wantBn);
  if (e1 > 1e-4) return `fused conv + batch norm + residual + ReLU, relative error ${e1.toExponential(2)}`;
  addon.conv(0, f.buffer, new Float64Array([...conv, yOff, -1, 1, 0, K, K, 0, 0, -1, rOff]));
  const e2 = relErr(y, wantAdd);
  if (e2 > 1e-4) return `conv + residual + ReLU, relative error ${e2.toExponential(2)}`;
  return undefined;
}

/** Returns a description of the first disagreement, or undefined when all agree. */
export function selfTest(addon: DnnlAddon): string | undefined {
  try {
    // 3 channels: the col2im backward-data path; 6: oneDNN's own; strided 1x1 with 4 channels:
    // the gather + matMul filter gradient (native/conv.cc).
    const fused = lacks(addon, FUSED_FUNCTIONS).length === 0;
    const conv = convSelfTest(addon, 3) ?? convSelfTest(addon, 6) ?? convSelfTest(addon, 4, 1, 0) ?? (fused ? fusedSelfTest(addon) : undefined);
    if (conv) return conv;
    const heap = new ArrayBuffer(4096);
    const f = new Float32Array(heap);
    const view = (off: number, len: number): Float32Array => f.subarray(off / 4, off / 4 + len);
    const [aOff, bOff, cOff] = [16, 1024, 2048];
    // matMul: a^T [K=5, M=3] (stored transposed) times b [K=5, N=4].
    const [M, K, NN] = [3, 5, 4];
    const a = rand(K * M, 4), b = rand(K * NN, 5), c = new Float32Array(M * NN);
    for (let i = 0; i < M; i++) for (let j = 0; j < NN; j++) for (let k = 0; k < K; k++) c[i * NN + j]! += a[k * M + i]! * b[k * NN + j]!;
    view(aOff, a.length).set(a);
    view(bOff, b.length).set(b);
    addon.matmul(heap, new Float64Array([1, 1, M, K, NN, 1, 0, aOff, bOff, cOff, -1, 0, 0]));
    const e3 = relErr(view(cOff, c.length), c);
    if (e3 > 1e-4) return `matMul, relative error ${e3.toExponential(2)}`;
    // x + v with v a per-channel vector, then the column sums of the result.
    const [R, C] = [40, 6];
    const x = rand(R * C, 6), v = rand(C, 7), sum = new Float32Array(R * C), colSums = new Float32Array(C);
    x.forEach((xv, k) => { sum[k] = xv + v[k % C]!; colSums[k % C]! += sum[k]!; });
    view(aOff, x.length).set(x);
    view(bOff, C).set(v);
    addon.binary(heap, new Float64Array([0, 3, aOff, bOff, cOff, x.length, C]));
    const e4 = relErr(view(cOff, x.length), sum);
    if (e4 > 1e-6) return `element-wise add, relative error ${e4.toExponential(2)}`;
    addon.reduceRows(heap, new Float64Array([0, cOff, aOff, R, C]));
    const e5 = relErr(view(aOff, C), colSums);
    if (e5 > 1e-4) return `column sums, relative error ${e5.toExponential(2)}`;
    return pointwiseSelfTest(addon);
  } catch (e) {
    return (e as Error).message;
  }
  return undefined;
}
