/**
 * `pipe validate` and `pipe plan` load neither TensorFlow.js nor the data stack (sharp/libvips,
 * undici, tar): model facts come from src/models/catalog.ts, dataset facts from the dataset
 * definitions, stage versions and cache-key parts from stages/meta.ts, and the heavy packages are
 * loaded when data is first downloaded or decoded. Checked in a fresh process through the CLI's
 * `main`, listing what the CommonJS loader loaded (these packages are CommonJS). Their CPU time is
 * measured in bench/startup.ts, not here.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/**
 * The npm packages a fresh process loads running `pipe <args>`, and the exit code; with an empty
 * runs folder and download cache of its own.
 */
function packagesLoadedBy(args: string[]): { code: number; packages: string[] } {
  const tmp = mkdtempSync(join(tmpdir(), 'pipe-startup-'));
  const main = pathToFileURL(join(ROOT, 'dist', 'src', 'cli', 'main.js')).href;
  const script = `
    import { createRequire } from 'node:module';
    const { main } = await import(${JSON.stringify(main)});
    const code = await main(${JSON.stringify(args)});
    const cache = createRequire(import.meta.url).cache;
    const pk = new Set(Object.keys(cache).map((k) => /node_modules\\/((@[^/]+\\/)?[^/]+)/.exec(k)?.[1]).filter(Boolean));
    process.stderr.write('\\n' + JSON.stringify({ code, packages: [...pk] }) + '\\n');`;
  const env = { ...process.env, PIPE_RUNS_DIR: join(tmp, 'runs'), PIPE_CACHE: join(tmp, 'cache') };
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', env });
  rmSync(tmp, { recursive: true, force: true });
  const last = r.stderr.trim().split('\n').pop() ?? '';
  return JSON.parse(last) as { code: number; packages: string[] };
}

describe('start-up', () => {
  it('pipe validate of the reference pipeline loads no TensorFlow.js, sharp, undici or tar', () => {
    const { code, packages } = packagesLoadedBy(['validate', 'pipelines/fashion-mnist-quickstart.yaml']);
    assert.equal(code, 0);
    assert.ok(packages.includes('ajv') && packages.includes('yaml'), `the check itself ran (${packages.join(', ')})`);
    for (const heavy of ['@tensorflow/tfjs', '@tensorflow/tfjs-core', 'sharp', 'undici', 'tar']) assert.ok(!packages.includes(heavy), `${heavy} is not loaded (loaded: ${packages.join(', ')})`);
  });

  it('pipe plan of the reference pipelines loads no TensorFlow.js, sharp, undici or tar', () => {
    for (const file of ['pipelines/fashion-mnist-quickstart.yaml', 'pipelines/resnet50-cifar10.yaml']) {
      const { code, packages } = packagesLoadedBy(['plan', file]);
      assert.equal(code, 0, file);
      assert.ok(packages.includes('yaml'), `the plan itself ran (${packages.join(', ')})`);
      for (const heavy of ['@tensorflow/tfjs', '@tensorflow/tfjs-core', 'sharp', 'undici', 'tar']) assert.ok(!packages.includes(heavy), `${file}: ${heavy} is not loaded (loaded: ${packages.join(', ')})`);
    }
  });

  it('and still finds a model-dependent error (input smaller than the architecture takes)', () => {
    // inception_v3 takes >= 75 px (src/models/catalog.ts), Fashion-MNIST is 28 px: refused without building the net.
    const { code, packages } = packagesLoadedBy(['validate', 'pipelines/fashion-mnist-quickstart.yaml', '--set', 'stages.model.with.arch=inception_v3']);
    assert.equal(code, 2);
    assert.ok(!packages.includes('@tensorflow/tfjs'));
  });
});
