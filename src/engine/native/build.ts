/**
 * Builds pipe's optional native addon (pipe_dnnl.cc, conv.cc, pointwise.cc in this folder) into
 * dist/native/pipe_dnnl.node, where dnnl.ts looks for it.
 *
 *   node dist/src/engine/native/build.js [--out PATH] [--optional]
 *
 * Needs g++ (C++17, OpenMP), Node's headers (node_api.h; `<node prefix>/include/node`) and oneDNN
 * (Debian: `apt-get install -y g++ libdnnl-dev`). Exits 0 when built; otherwise prints the reason
 * and exits 1, or 0 with `--optional` (an install step that must not fail: pipe then keeps using
 * the wasm kernels). The addon is plain x86-64: no
 * -march flags, so a build runs on any x86-64 machine; oneDNN picks AVX2/AVX-512 code at run time.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ADDON_PATH } from './dnnl.js';

/** Where the C++ sources are: src/engine/native/ of the repository (this file runs from dist/). */
export const SOURCE_DIR = fileURLToPath(new URL('../../../../src/engine/native/', import.meta.url));
const SOURCES = ['pipe_dnnl.cc', 'conv.cc', 'pointwise.cc'];

/** The g++ command line that builds the addon at `out`. */
export function buildCommand(out: string): string[] {
  const nodeInclude = join(dirname(dirname(process.execPath)), 'include', 'node');
  return [
    'g++', '-O3', '-std=c++17', '-shared', '-fPIC', '-fopenmp', '-DNODE_GYP_MODULE_NAME=pipe_dnnl',
    `-I${nodeInclude}`, ...SOURCES.map((s) => join(SOURCE_DIR, s)), '-o', out, '-ldnnl',
  ];
}

/**
 * Builds the addon. @returns undefined on success, else why it could not be built.
 */
export function buildAddon(out = ADDON_PATH): string | undefined {
  const cmd = buildCommand(out);
  const include = cmd.find((a) => a.startsWith('-I'))!.slice(2);
  if (!existsSync(join(include, 'node_api.h'))) return `Node's headers are not at ${include} (install them with Node, e.g. Debian's libnode-dev)`;
  if (!SOURCES.every((s) => existsSync(join(SOURCE_DIR, s)))) return `the C++ sources are not in ${SOURCE_DIR}`;
  mkdirSync(dirname(out), { recursive: true });
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8' });
  if (r.error) return `${cmd[0]} could not run (${r.error.message}); install g++`;
  if (r.status !== 0) {
    const dnnl = /dnnl\.hpp|-ldnnl/.test(r.stderr) ? ' (oneDNN missing? apt-get install -y libdnnl-dev)' : '';
    return `g++ failed${dnnl}:\n${r.stderr.split('\n').slice(0, 12).join('\n')}`;
  }
  return undefined;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--out');
  const out = i >= 0 ? resolve(process.argv[i + 1]!) : ADDON_PATH;
  const why = buildAddon(out);
  if (why) {
    process.stderr.write(`pipe: native addon not built (training stays on the wasm kernels): ${why}\n`);
    process.exit(process.argv.includes('--optional') ? 0 : 1);
  }
  process.stderr.write(`pipe: built ${out}\n`);
}
