/**
 * What pipe does with a native addon file it must not load (src/engine/native/dnnl.ts), in real
 * child processes: a truncated shared object (dlopen maps it and the process used to die with
 * SIGBUS, exit 135, no message), another package's .node in its place (used to end in
 * "addon.setThreads is not a function"), a file that no longer matches the size and SHA-256
 * native/install.mjs recorded; and PIPE_NATIVE_THREADS values that used to crash (100000: SIGSEGV)
 * or silently become 1 (abc, 0, -1). The stand-in .node files are copies of @resvg/resvg-js's
 * prebuilt addon (a dependency), so these run whether or not pipe's own addon is built.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { checkAddonFile, nativeThreads } from '../../src/engine/native/dnnl.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const tmp = mkdtempSync(join(tmpdir(), 'pipe-native-load-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A real N-API addon that is not pipe's: resvg's prebuilt linux-x64 binary (an installed dependency). */
function foreignAddon(): string {
  const pkg = createRequire(join(ROOT, 'package.json')).resolve('@resvg/resvg-js-linux-x64-gnu/package.json');
  const main = (JSON.parse(readFileSync(pkg, 'utf8')) as { main: string }).main;
  return join(dirname(pkg), main);
}
const foreignSkip = process.platform === 'linux' && process.arch === 'x64' ? false : 'the stand-in addon is resvg\'s linux-x64 build';

/**
 * Starts the wasm engine in a fresh process with `env` (as `pipe run` and `pipe predict` do):
 * its exit status, signal, stderr and the engine line it printed on stdout.
 */
function engineIn(env: Record<string, string>): { status: number | null; signal: string | null; stderr: string; engine: string } {
  const backend = pathToFileURL(join(ROOT, 'dist', 'src', 'engine', 'backend.js')).href;
  const script = `const { initEngine } = await import(${JSON.stringify(backend)}); console.log((await initEngine('wasm')).description);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { status: r.status, signal: r.signal, stderr: r.stderr, engine: r.stdout.trim() };
}

describe('a native addon file that cannot be pipe\'s', { skip: foreignSkip }, () => {
  it('truncated (head -c 50000): refused before dlopen with one warning line; the wasm route runs, exit 0', () => {
    const path = join(tmp, 'truncated.node');
    writeFileSync(path, readFileSync(foreignAddon()).subarray(0, 50000));
    const r = engineIn({ PIPE_NATIVE_PATH: path });
    assert.equal(r.signal, null, `killed by ${r.signal}`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, `pipe: warning: native addon refused: ${path} is truncated (50000 bytes; its ELF segment 0 lies past the end); rebuild it with \`npm run build:native\`; the wasm kernels are used (slower)\n`);
    assert.match(r.engine, /^wasm \[CPU, wasm route: WebAssembly SIMD, 1 thread \(native addon refused: .* is truncated/);
  });

  it('another package\'s .node: refused before any of its functions is called, naming what it lacks', () => {
    const path = foreignAddon();
    const r = engineIn({ PIPE_NATIVE_PATH: path });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.split('\n').length, 2, r.stderr);
    assert.match(r.stderr, /^pipe: warning: native addon refused: .*resvgjs\.linux-x64-gnu\.node is not pipe's native addon \(no conv, matmul, .*setThreads, threads\); rebuild it with `npm run build:native`; the wasm kernels are used/);
    assert.match(r.engine, /^wasm \[CPU, wasm route: .*is not pipe's native addon/);
  });

  it('a file that differs from its build record (pipe_dnnl.node.json: size and SHA-256) is refused', () => {
    const path = join(tmp, 'recorded.node');
    const bytes = readFileSync(foreignAddon());
    writeFileSync(path, bytes);
    writeFileSync(`${path}.json`, JSON.stringify({ size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') }));
    assert.equal(checkAddonFile(path), undefined, 'the recorded file itself passes');
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 1]! ^= 1;
    writeFileSync(path, flipped);
    assert.equal(checkAddonFile(path), `${path} does not match the SHA-256 recorded when it was built (damaged or replaced)`);
    writeFileSync(path, bytes.subarray(0, 1000));
    assert.equal(checkAddonFile(path), `${path} is 1000 bytes, but was built as ${bytes.length} bytes (truncated or replaced)`);
    const r = engineIn({ PIPE_NATIVE_PATH: path });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /^pipe: warning: native addon refused: .* is 1000 bytes, but was built as \d+ bytes/);
  });
});

describe('the ELF extent check (hand-built headers)', () => {
  /** A 64-bit little-endian ELF header (64 bytes) and one program header (56 bytes) with p_offset, p_filesz. */
  const elf64 = (offset: number, filesz: number, length: number): string => {
    const b = Buffer.alloc(Math.max(length, 120));
    b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
    b.writeBigUInt64LE(64n, 0x20); // e_phoff
    b.writeUInt16LE(56, 0x36); // e_phentsize
    b.writeUInt16LE(1, 0x38); // e_phnum
    b.writeBigUInt64LE(BigInt(offset), 64 + 8);
    b.writeBigUInt64LE(BigInt(filesz), 64 + 32);
    const p = join(tmp, `elf-${offset}-${filesz}-${length}`);
    writeFileSync(p, b.subarray(0, length));
    return p;
  };

  it('a segment ending at the file\'s end passes; one byte further is truncation; a non-ELF file is left to dlopen', () => {
    assert.equal(checkAddonFile(elf64(0, 200, 200)), undefined);
    assert.match(checkAddonFile(elf64(0, 201, 200)) ?? '', /is truncated \(200 bytes; its ELF segment 0 lies past the end\)$/);
    assert.match(checkAddonFile(elf64(0, 0, 100)) ?? '', /is truncated \(100 bytes; its ELF program header table lies past the end\)$/);
    const short = join(tmp, 'short.node');
    writeFileSync(short, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1]));
    assert.match(checkAddonFile(short) ?? '', /is truncated \(6 bytes; its ELF header lies past the end\)$/);
    const text = join(tmp, 'text.node');
    writeFileSync(text, 'not a shared object');
    assert.equal(checkAddonFile(text), undefined);
  });
});

describe('PIPE_NATIVE_THREADS', () => {
  const cap = 4 * availableParallelism();

  it('a whole number from 1 to 4 x the cores; unset or empty: every core', () => {
    assert.equal(nativeThreads({}), availableParallelism());
    assert.equal(nativeThreads({ PIPE_NATIVE_THREADS: '' }), availableParallelism());
    assert.equal(nativeThreads({ PIPE_NATIVE_THREADS: '1' }), 1);
    assert.equal(nativeThreads({ PIPE_NATIVE_THREADS: String(cap) }), cap);
    for (const bad of ['abc', '0', '-1', '1.5', '2x', String(cap + 1), '100000']) {
      assert.throws(() => nativeThreads({ PIPE_NATIVE_THREADS: bad }), { name: 'PipelineError', exitCode: 2, message: `PIPE_NATIVE_THREADS='${bad}': expected a whole number of threads from 1 to ${cap} (4 x this machine's ${availableParallelism()} cores), or unset for every core` });
    }
  });

  it('pipe run with a bad value: exit 2 naming the variable, one line, nothing written (no crash, no silent 1)', () => {
    for (const bad of ['100000', 'abc', '0', '-1']) {
      const runs = join(tmp, `runs-${bad}`);
      const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'pipe.js'), 'run', join(ROOT, 'pipelines', 'fashion-mnist-quickstart.yaml')], {
        encoding: 'utf8', env: { ...process.env, PIPE_NATIVE_THREADS: bad, PIPE_RUNS_DIR: runs, MLFLOW_TRACKING_URI: '', PIPE_CACHE: join(tmp, 'cache') },
      });
      assert.equal(r.signal, null, `${bad}: killed by ${r.signal}`);
      assert.equal(r.status, 2, `${bad}: ${r.stderr}`);
      assert.equal(r.stderr, `pipe: PIPE_NATIVE_THREADS='${bad}': expected a whole number of threads from 1 to ${cap} (4 x this machine's ${availableParallelism()} cores), or unset for every core\n`);
      assert.equal(existsSync(runs), false, 'no runs folder');
    }
  });
});
