#!/usr/bin/env node
/**
 * Builds pipe's optional native addon (binding.gyp -> build/Release/pipe_dnnl.node) with
 * node-gyp, after checking what the build needs, so that a missing piece gives one clear line
 * instead of a page of compiler errors:
 *   - a C++17 compiler with OpenMP (g++, or $CXX);
 *   - oneDNN 2.x, headers and library. Debian 12 ships 2.6.3 (libdnnl-dev). 3.x is refused: the
 *     addon uses oneDNN's v2 op-descriptor API, which 3.0 removed (native/native.h refuses it too);
 *   - Node's headers: taken from this Node's own prefix (`<prefix>/include/node`) when they are
 *     there, so that nothing is downloaded; otherwise node-gyp fetches them.
 *
 *   node native/install.mjs [--optional]
 *
 * `npm ci` and `npm install` run it as this package's install script, with --optional: it never
 * fails the install; when the addon is not built it prints one line (what is missing, the apt
 * command, and that training uses the wasm kernels) and exits 0. `npm run build:native` runs it
 * without --optional: the same line, exit 1. PIPE_NATIVE=0 skips the build.
 * Why the last install did not build the addon is kept in build/pipe_dnnl.skipped (the engine
 * line quotes it, see src/engine/native/dnnl.ts); the full node-gyp output of a failed build in
 * build/pipe_dnnl.build.log. A built addon's size and SHA-256 go to
 * build/Release/pipe_dnnl.node.json: src/engine/native/dnnl.ts checks the file against them before
 * loading it (a truncated or replaced .node is refused with one line instead of crashing the process).
 *
 * Plain JavaScript, not TypeScript: npm runs install scripts before `prepare` compiles dist/.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const ADDON = join(ROOT, 'build', 'Release', 'pipe_dnnl.node');
const SKIPPED = join(ROOT, 'build', 'pipe_dnnl.skipped');
const LOG = join(ROOT, 'build', 'pipe_dnnl.build.log');
const RECORD = `${ADDON}.json`;
const APT = 'sudo apt-get install -y g++ libdnnl-dev';
const optional = process.argv.includes('--optional');

/** Records and prints why the addon is not built, then exits (0 with --optional, else 1). */
function notBuilt(what, fix) {
  const why = `${what}; ${fix}, then \`npm run build:native\``;
  mkdirSync(dirname(SKIPPED), { recursive: true });
  rmSync(ADDON, { force: true });
  rmSync(RECORD, { force: true });
  writeFileSync(SKIPPED, `${why}\n`);
  process.stderr.write(`pipe: native addon not built: ${why}. Training uses the wasm kernels (slower).\n`);
  process.exit(optional ? 0 : 1);
}

if (process.env.PIPE_NATIVE === '0') notBuilt('skipped (PIPE_NATIVE=0)', 'unset PIPE_NATIVE');

// 1. A compiler.
const cxx = process.env.CXX || 'g++';
const version = spawnSync(cxx, ['--version'], { encoding: 'utf8' });
if (version.error || version.status !== 0) notBuilt(`no C++ compiler (${cxx})`, `install it and oneDNN: ${APT}`);

// 2. oneDNN's version, read through the compiler's own include path (CPATH etc. count).
const probe = spawnSync(cxx, ['-E', '-P', '-x', 'c++', '-'], {
  encoding: 'utf8',
  input: '#include <oneapi/dnnl/dnnl_version.h>\npipe_dnnl_version DNNL_VERSION_MAJOR DNNL_VERSION_MINOR DNNL_VERSION_PATCH\n',
});
const m = /pipe_dnnl_version (\d+) (\d+) (\d+)/.exec(probe.stdout ?? '');
if (!m) notBuilt('oneDNN is missing (no oneapi/dnnl/dnnl_version.h)', `install it: ${APT}`);
const dnnl = `${m[1]}.${m[2]}.${m[3]}`;
if (m[1] !== '2') {
  notBuilt(`oneDNN ${dnnl} found, but the addon needs oneDNN 2.x (it uses the v2 op-descriptor API, which oneDNN 3.0 removed)`,
    'install oneDNN 2.x (Debian 12: apt-get install libdnnl-dev, 2.6.3) ahead of it');
}

// 3. node-gyp: npm's own (npm passes its path to install scripts), a local one, or the one
// bundled with this Node's npm.
const prefix = dirname(dirname(process.execPath));
let gyp = process.env.npm_config_node_gyp;
if (!gyp) {
  try {
    gyp = createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    gyp = join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  }
}
if (!existsSync(gyp)) notBuilt(`node-gyp not found (${gyp})`, 'install npm, which brings it');

// 4. Build. Node's headers from its prefix when present (no download needed).
const args = [gyp, 'rebuild'];
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
process.stderr.write(`pipe: building the native addon (oneDNN ${dnnl}, ${cxx}; about a minute)\n`);
const build = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20 });
if (build.error || build.status !== 0) {
  const out = `${build.stdout ?? ''}${build.stderr ?? ''}${build.error ? String(build.error) : ''}`;
  mkdirSync(dirname(LOG), { recursive: true });
  writeFileSync(LOG, out);
  const first = out.split('\n').find((l) => /error/i.test(l) && !/^gyp (ERR|info)/.test(l)) ?? out.split('\n').find((l) => /ERR!/.test(l)) ?? 'see the log';
  const lib = /cannot find -ldnnl/.test(out) ? ' (oneDNN\'s library libdnnl.so is missing)' : '';
  notBuilt(`the build failed${lib}: ${first.trim()} (full output: build/pipe_dnnl.build.log)`, `check g++ and oneDNN 2.x (${APT})`);
}

// 5. It loads (libdnnl.so and libgomp found at run time).
try {
  createRequire(import.meta.url)(ADDON);
} catch (e) {
  notBuilt(`the built addon does not load: ${String(e.message).split('\n')[0]}`, `check oneDNN's library (${APT})`);
}
// 6. Its size and SHA-256, checked before every load (src/engine/native/dnnl.ts checkAddonFile).
const built = readFileSync(ADDON);
writeFileSync(RECORD, `${JSON.stringify({ size: built.length, sha256: createHash('sha256').update(built).digest('hex') })}\n`);
rmSync(SKIPPED, { force: true });
process.stderr.write(`pipe: built the native addon (oneDNN ${dnnl}): build/Release/pipe_dnnl.node\n`);
