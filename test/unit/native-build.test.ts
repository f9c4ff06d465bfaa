/**
 * The native addon's build as npm runs it (package.json `install` -> native/install.mjs ->
 * node-gyp with binding.gyp): what a missing compiler or oneDNN, or oneDNN 3.x, says (one line,
 * the install not failed), the compile-time refusal of oneDNN 3.x in native/native.h, what the
 * published package carries, and the exact @tensorflow/* pins the native kernels rely on.
 * install.mjs runs on a copy of the build files in a temporary folder, so that the repository's
 * own build/ is left alone. The addon itself is built by `npm ci` (CI) or `npm run build:native`;
 * kernels-native.test.ts tests what it computes.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import * as tf from '@tensorflow/tfjs';

import { TFJS_VERSION } from '../../src/engine/native/wasm-heap.js';

/** The repository root (this file runs as dist/test/unit/native-build.test.js). */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const tmp = mkdtempSync(join(tmpdir(), 'pipe-native-build-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A copy of what the build needs (binding.gyp, native/) in a fresh folder. */
function copyBuildFiles(name: string): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  cpSync(join(ROOT, 'binding.gyp'), join(dir, 'binding.gyp'));
  cpSync(join(ROOT, 'native'), join(dir, 'native'), { recursive: true });
  return dir;
}

/** Runs the copy's native/install.mjs with `env` added; its exit code and stderr. */
function install(dir: string, env: Record<string, string>, args = ['--optional']): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [join(dir, 'native', 'install.mjs'), ...args], { encoding: 'utf8', env: { ...process.env, npm_config_node_gyp: '', ...env } });
  return { status: r.status, stderr: r.stderr };
}

/** A stand-in compiler that answers --version and fails everything else (as without oneDNN's headers). */
function fakeCompiler(): string {
  const p = join(tmp, 'fake-cxx');
  writeFileSync(p, '#!/bin/sh\n[ "$1" = --version ] && { echo "fake c++ 1.0"; exit 0; }\necho "fatal error: oneapi/dnnl/dnnl_version.h: No such file or directory" >&2\nexit 1\n');
  chmodSync(p, 0o755);
  return p;
}

/** An include folder holding a oneDNN 3.1.0 version header (only the header; enough for the checks). */
function oneDnn3Headers(): string {
  const inc = join(tmp, 'onednn3-include');
  mkdirSync(join(inc, 'oneapi', 'dnnl'), { recursive: true });
  writeFileSync(join(inc, 'oneapi', 'dnnl', 'dnnl_version.h'), '#define DNNL_VERSION_MAJOR 3\n#define DNNL_VERSION_MINOR 1\n#define DNNL_VERSION_PATCH 0\n');
  return inc;
}

const gxx = spawnSync('g++', ['--version']);
/** g++ is needed to read a oneDNN header through it; CI installs it (and may not skip). */
const gxxSkip = gxx.status === 0 || process.env['CI'] === 'true' ? false : 'g++ is not installed (apt-get install g++)';

describe('native/install.mjs, the install script npm runs', () => {
  it('without a compiler: one line (what is missing, the apt command, wasm is used), exit 0, the reason kept for the engine line', () => {
    const dir = copyBuildFiles('no-compiler');
    const r = install(dir, { CXX: join(tmp, 'no-such-compiler') });
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^pipe: native addon not built: no C\+\+ compiler \(.*no-such-compiler\); install it and oneDNN: sudo apt-get install -y g\+\+ libdnnl-dev, then `npm run build:native`\. Training uses the wasm kernels/);
    assert.match(readFileSync(join(dir, 'build', 'pipe_dnnl.skipped'), 'utf8'), /no C\+\+ compiler/);
  });

  it('without oneDNN: one line naming it and the apt command, exit 0; without --optional (npm run build:native) exit 1', () => {
    const dir = copyBuildFiles('no-onednn');
    const r = install(dir, { CXX: fakeCompiler() });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^pipe: native addon not built: oneDNN is missing \(no oneapi\/dnnl\/dnnl_version\.h\); install it: sudo apt-get install -y g\+\+ libdnnl-dev.*wasm kernels/);
    assert.equal(install(dir, { CXX: fakeCompiler() }, []).status, 1);
  });

  it('with oneDNN 3.x: refused before building (the addon uses the v2 op-descriptor API), exit 0', { skip: gxxSkip }, () => {
    const dir = copyBuildFiles('onednn3');
    const r = install(dir, { CXX: 'g++', CPATH: oneDnn3Headers() });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^pipe: native addon not built: oneDNN 3\.1\.0 found, but the addon needs oneDNN 2\.x \(it uses the v2 op-descriptor API, which oneDNN 3\.0 removed\)/);
    assert.equal(existsSync(join(dir, 'build', 'Release', 'pipe_dnnl.node')), false);
  });

  it('a built addon: its size and SHA-256 recorded beside it (build/Release/pipe_dnnl.node.json), which dnnl.ts checks before loading', () => {
    const dir = copyBuildFiles('recorded');
    // Stand-ins: a compiler that reports oneDNN 2.6.3, and a node-gyp that "builds" a real N-API addon (resvg's, a dependency).
    const cxx = join(tmp, 'fake-cxx-2');
    writeFileSync(cxx, '#!/bin/sh\n[ "$1" = --version ] && { echo "fake c++ 1.0"; exit 0; }\necho "pipe_dnnl_version 2 6 3"\n');
    chmodSync(cxx, 0o755);
    const addon = createRequire(join(ROOT, 'package.json')).resolve('@resvg/resvg-js-linux-x64-gnu/resvgjs.linux-x64-gnu.node');
    const gyp = join(tmp, 'fake-node-gyp.cjs');
    writeFileSync(gyp, `const fs = require('node:fs');\nfs.mkdirSync('build/Release', { recursive: true });\nfs.copyFileSync(${JSON.stringify(addon)}, 'build/Release/pipe_dnnl.node');\n`);
    const r = install(dir, { CXX: cxx, npm_config_node_gyp: gyp }, []);
    assert.equal(r.status, 0, r.stderr);
    const bytes = readFileSync(join(dir, 'build', 'Release', 'pipe_dnnl.node'));
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'build', 'Release', 'pipe_dnnl.node.json'), 'utf8')), { size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') });
    // A failed rebuild removes the addon and its record together.
    assert.equal(install(dir, { CXX: join(tmp, 'no-such-compiler') }, ['--optional']).status, 0);
    assert.equal(existsSync(join(dir, 'build', 'Release', 'pipe_dnnl.node.json')), false);
  });

  it('PIPE_NATIVE=0 skips the build with one line', () => {
    const dir = copyBuildFiles('disabled');
    const r = install(dir, { PIPE_NATIVE: '0' });
    assert.equal(r.status, 0);
    assert.match(r.stderr, /^pipe: native addon not built: skipped \(PIPE_NATIVE=0\)/);
  });
});

describe('native/native.h', () => {
  it('stops a compile against oneDNN 3.x with a clear message', { skip: gxxSkip }, () => {
    const r = spawnSync('g++', ['-fsyntax-only', '-x', 'c++', '-I', oneDnn3Headers(), join(ROOT, 'native', 'native.h')], { encoding: 'utf8' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /#error "pipe's native addon needs oneDNN 2\.x \(its v2 op-descriptor API; oneDNN 3\.0 removed it\)/);
  });
});

describe('package.json', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>; files: string[]; dependencies: Record<string, string>; optionalDependencies: Record<string, string>;
  };

  it('npm ci / npm install build the addon through native/install.mjs, never failing the install', () => {
    assert.equal(pkg.scripts['install'], 'node native/install.mjs --optional');
    assert.equal(pkg.scripts['build:native'], 'node native/install.mjs');
  });

  it('the published package carries what the build needs (npm pack)', () => {
    const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const files = (JSON.parse(r.stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path);
    for (const f of ['binding.gyp', 'native/install.mjs', 'native/native.h', 'native/pipe_dnnl.cc', 'native/conv.cc', 'native/pointwise.cc', 'native/batch_norm_train.cc', 'native/conv_bn.cc']) {
      assert.ok(files.includes(f), `${f} is in the package`);
    }
    assert.ok(!files.some((f) => f.startsWith('build/')), 'no local build output is published');
  });

  it('pins every @tensorflow/* package to exactly the tfjs whose internals the native kernels use', () => {
    const tfjs = Object.entries({ ...pkg.dependencies, ...pkg.optionalDependencies }).filter(([name]) => name.startsWith('@tensorflow/'));
    assert.ok(tfjs.length >= 2);
    for (const [name, range] of tfjs) assert.equal(range, TFJS_VERSION, `${name} is pinned to ${TFJS_VERSION}`);
    assert.equal(tf.version_core, TFJS_VERSION, 'the installed tfjs is the pinned one');
  });
});
