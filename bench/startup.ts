/**
 * Benchmark: the CPU time of a cold `pipe validate` and `pipe plan` of the reference pipelines
 * (pipelines/resnet50-cifar10.yaml and the quickstart, pipelines/fashion-mnist-quickstart.yaml),
 * each in a fresh `node bin/pipe.js` process (with an empty runs folder and download cache of its
 * own), and the npm packages each loads. CPU time (user + system, `process.cpuUsage()` at exit,
 * read by startup-probe.ts) rather than wall time: the machine is shared, and CPU time is what the
 * command itself costs. Goal (issue 21): validate <= 0.5 s, and neither command loads
 * TensorFlow.js (test/unit/startup.test.ts checks that part).
 *
 * Run: npx tsc -p . && node dist/bench/startup.js [--runs N]
 * Writes bench/results/startup.json. Median of N runs (default 7) after one untimed run, per
 * command and pipeline; the 1-minute load average before and after.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PIPELINES = ['pipelines/resnet50-cifar10.yaml', 'pipelines/fashion-mnist-quickstart.yaml'];
const GOAL_VALIDATE_S = 0.5;
const i = process.argv.indexOf('--runs');
const RUNS = i >= 0 ? Number(process.argv[i + 1]) : 7;
const probe = pathToFileURL(join(ROOT, 'dist', 'bench', 'startup-probe.js')).href;
const tmp = mkdtempSync(join(tmpdir(), 'pipe-startup-'));

/** One cold run of `pipe <args>`: CPU seconds, wall seconds, packages loaded. */
function once(args: string[]): { cpuS: number; wallS: number; packages: string[] } {
  const out = join(tmp, 'probe.json');
  const t = performance.now();
  const env = { ...process.env, PIPE_STARTUP_PROBE_OUT: out, PIPE_RUNS_DIR: join(tmp, 'runs'), PIPE_CACHE: join(tmp, 'cache') };
  const r = spawnSync(process.execPath, ['--import', probe, 'bin/pipe.js', ...args], { cwd: ROOT, encoding: 'utf8', env });
  const wallS = (performance.now() - t) / 1000;
  if (r.status !== 0) throw new Error(`pipe ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  const p = JSON.parse(readFileSync(out, 'utf8')) as { cpuMicros: number; packages: string[] };
  return { cpuS: p.cpuMicros / 1e6, wallS, packages: p.packages };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Result { cpuSeconds: number[]; medianCpuSeconds: number; medianWallSeconds: number; loadsTensorFlowJs: boolean; packages: string[] }
const results: Record<'validate' | 'plan', Record<string, Result>> = { validate: {}, plan: {} };
const load = [loadavg()[0]];
for (const cmd of ['validate', 'plan'] as const) {
  for (const pipeline of PIPELINES) {
    once([cmd, pipeline]);
    const runs = Array.from({ length: RUNS }, () => once([cmd, pipeline]));
    const cpu = runs.map((r) => r.cpuS), packages = runs[0]!.packages;
    const tfjs = packages.some((p) => p.startsWith('@tensorflow/'));
    results[cmd][pipeline] = {
      cpuSeconds: cpu.map((x) => Number(x.toFixed(3))),
      medianCpuSeconds: Number(median(cpu).toFixed(3)),
      medianWallSeconds: Number(median(runs.map((r) => r.wallS)).toFixed(3)),
      loadsTensorFlowJs: tfjs,
      packages,
    };
    process.stdout.write(`pipe ${cmd} ${pipeline}: median CPU ${median(cpu).toFixed(3)} s over ${RUNS} cold runs; TensorFlow.js loaded: ${tfjs}\n`);
  }
}
load.push(loadavg()[0]);
rmSync(tmp, { recursive: true, force: true });
const worstValidate = Math.max(...Object.values(results.validate).map((r) => r.medianCpuSeconds));
const report = {
  date: new Date().toISOString(),
  node: process.version,
  command: `node dist/bench/startup.js --runs ${RUNS}`,
  pipelines: PIPELINES,
  loadAverage1m: { before: load[0], after: load[1], note: 'shared 2-core machine: CPU times rise with load (cache and frequency contention)' },
  goal: { validateCpuSeconds: GOAL_VALIDATE_S, met: worstValidate <= GOAL_VALIDATE_S },
  ...results,
};
writeFileSync(join(ROOT, 'bench', 'results', 'startup.json'), `${JSON.stringify(report, null, 2)}\n`);
process.stdout.write(`validate goal <= ${GOAL_VALIDATE_S} s: ${report.goal.met ? 'met' : 'missed'}; wrote bench/results/startup.json\n`);
