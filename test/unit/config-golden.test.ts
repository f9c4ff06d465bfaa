/**
 * The golden table of bad pipeline files (DVC's tests/func/utils/test_strict_yaml.py style):
 * each test/fixtures/config-errors/<case>.yaml is checked through the CLI entry point,
 * `pipe validate <case>.yaml [args]` with the fixtures folder as working directory, which must
 * return exit code 2 and print exactly <case>.expected.txt on stderr (nothing on stdout). A first
 * line `# args: ...` adds command-line arguments (the `--set` and `--sweep` cases).
 *
 * The table runs in this process (`main(argv)` with stdout and stderr captured): the same code
 * path as bin/pipe.js minus the process start. One case also runs as a real child process, for
 * the wiring of bin/pipe.js (exit status 2, the report on stderr).
 *
 * After a deliberate change of wording, regenerate the expectations and read the diff:
 *   UPDATE_GOLDENS=1 node --test dist/test/unit/config-golden.test.js
 * CI never sets UPDATE_GOLDENS: a missing or different expectation fails the test.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import { parseOverride } from '../../src/config/overrides.js';
import { PipelineError } from '../../src/errors.js';
import { prepareSweep } from '../../src/sweep/prepare.js';
import { stageKinds } from '../../stages/index.js';
import { makeTree, REPO, runCliIn } from '../utils.js';

const DIR = join(REPO, 'test', 'fixtures', 'config-errors');
const UPDATE = process.env['UPDATE_GOLDENS'] === '1';
const cases = readdirSync(DIR).filter((f) => f.endsWith('.yaml')).map((f) => f.slice(0, -'.yaml'.length)).sort();

/** Arguments after `pipe validate <file>`, from a first line `# args: ...`. */
function argsOf(yaml: string): string[] {
  const m = /^# args: (.*)$/m.exec(yaml.split('\n')[0] ?? '');
  return m ? m[1]!.trim().split(/\s+/) : [];
}

const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

/** The capture of the runInProcess call this code runs under, if any. */
const capturing = new AsyncLocalStorage<{ stdout: string; stderr: string }>();

/** Routes writes made under runInProcess into its capture; every other write (the test reporter's) goes out. */
function route(key: 'stdout' | 'stderr'): void {
  const stream = process[key];
  const original = stream.write.bind(stream);
  stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
    const out = capturing.getStore();
    if (!out) return (original as (...a: unknown[]) => boolean)(chunk, ...rest);
    out[key] += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    (rest.find((r) => typeof r === 'function') as (() => void) | undefined)?.();
    return true;
  }) as typeof stream.write;
}
route('stdout');
route('stderr');

/**
 * `pipe <args>` in this process with `cwd` as the working directory and the environment a child
 * would get from runCliIn (no tracking URI, no runs folder override): the exit code and what
 * went to stdout and stderr. One call at a time (it changes the process's folder).
 */
async function runInProcess(cwd: string, args: string[]): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  const out = { stdout: '', stderr: '' };
  const env = { MLFLOW_TRACKING_URI: process.env['MLFLOW_TRACKING_URI'], PIPE_RUNS_DIR: process.env['PIPE_RUNS_DIR'] };
  const before = process.cwd();
  process.env['MLFLOW_TRACKING_URI'] = '';
  process.env['PIPE_RUNS_DIR'] = '';
  process.chdir(cwd);
  try {
    const exitCode = await capturing.run(out, () => main(args));
    return { stdout: out.stdout.replace(ANSI, ''), stderr: out.stderr.replace(ANSI, ''), exitCode };
  } finally {
    process.chdir(before);
    for (const [k, v] of Object.entries(env)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

it('the table has at least 30 cases and no expectation without its case', () => {
  assert.ok(cases.length >= 30, `${cases.length} cases`);
  const orphans = readdirSync(DIR).filter((f) => f.endsWith('.expected.txt') && !cases.includes(f.slice(0, -'.expected.txt'.length)));
  assert.deepEqual(orphans, []);
});

describe('pipe validate on bad input: exit 2 and the exact report', () => {
  for (const name of cases) {
    it(name, async () => {
      const yaml = readFileSync(join(DIR, `${name}.yaml`), 'utf8');
      const r = await runInProcess(DIR, ['validate', `${name}.yaml`, ...argsOf(yaml)]);
      const expectedPath = join(DIR, `${name}.expected.txt`);
      if (UPDATE) writeFileSync(expectedPath, r.stderr);
      assert.ok(existsSync(expectedPath), `${expectedPath} is missing (UPDATE_GOLDENS=1 writes it; then review it)`);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr, readFileSync(expectedPath, 'utf8'));
      assert.equal(r.exitCode, 2);
    });
  }
});

it('the real CLI process: exit status 2 and the same report on stderr (bin/pipe.js wiring)', async () => {
  const name = 'set-and-file-errors';
  const yaml = readFileSync(join(DIR, `${name}.yaml`), 'utf8');
  const r = await runCliIn(DIR, ['validate', `${name}.yaml`, ...argsOf(yaml)]);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, readFileSync(join(DIR, `${name}.expected.txt`), 'utf8'));
  assert.equal(r.exitCode, 2);
});

describe('a sweep that validate refuses, plan and run refuse with the same report', () => {
  const sweepCases = cases.filter((c) => /sweep/.test(c));
  it('there are sweep cases', () => assert.ok(sweepCases.length >= 5, sweepCases.join(', ')));
  for (const name of sweepCases) {
    it(name, async () => {
      const yaml = readFileSync(join(DIR, `${name}.yaml`), 'utf8');
      const expected = readFileSync(join(DIR, `${name}.expected.txt`), 'utf8');
      const plan = await runInProcess(DIR, ['plan', `${name}.yaml`, ...argsOf(yaml)]);
      assert.deepEqual(plan, { stdout: '', stderr: expected, exitCode: 2 });
      // What `pipe run` does first for a sweep (src/sweep/run.ts), against an empty runs folder.
      const args = argsOf(yaml);
      const opt = (flag: string): string[] => args.flatMap((a, i) => (args[i - 1] === flag ? [a] : []));
      const runs = makeTree({});
      const before = { cwd: process.cwd(), runs: process.env['PIPE_RUNS_DIR'] };
      process.chdir(DIR);
      process.env['PIPE_RUNS_DIR'] = runs;
      try {
        await assert.rejects(
          prepareSweep(`${name}.yaml`, { stages: stageKinds, overrides: opt('--set').map(parseOverride), sweep: opt('--sweep') }),
          (e: unknown) => e instanceof PipelineError && e.exitCode === 2 && `pipe: ${e.message}\n` === expected,
        );
      } finally {
        process.chdir(before.cwd);
        if (before.runs === undefined) delete process.env['PIPE_RUNS_DIR'];
        else process.env['PIPE_RUNS_DIR'] = before.runs;
      }
      assert.deepEqual(readdirSync(runs), [], 'nothing written under runs/');
    });
  }
});

it('validate and plan of a valid sweep: every trial checked, exit 0', async () => {
  const stages = 'stages:\n  data: { kind: download, with: { dataset: mnist } }\n  aug: { kind: augment, needs: [data] }\n  model: { kind: build-model, needs: [data], with: { arch: mini_resnet } }\n  head: { kind: freeze-train, needs: [aug, model] }\n';
  const root = makeTree({ 'p.yaml': `name: ok\n${stages}sweep:\n  stages.head.with.optimizer.lr: [0.1, 0.01]\n` });
  const v = await runInProcess(root, ['validate', 'p.yaml', '--sweep', 'stages.head.with.epochs=1,2']);
  assert.deepEqual(v, { stdout: "'p.yaml' is valid: 4 stages, in order:\n  1. data [download]\n  2. aug [augment] <- data\n  3. model [build-model] <- data\n  4. head [freeze-train] <- aug, model\nsweep: 4 trials, each valid (lr=0.1,epochs=1, lr=0.1,epochs=2, lr=0.01,epochs=1, lr=0.01,epochs=2)\n", stderr: '', exitCode: 0 });
  const p = await runInProcess(root, ['plan', 'p.yaml', '--format', 'mermaid']);
  assert.equal(p.exitCode, 0, p.stderr);
  assert.match(p.stdout, /^flowchart LR\n/);
  assert.doesNotMatch(p.stdout, /sweep:/);
});

it('validate of a pipeline of several chains lists each stage with the stages it needs: plan\'s lines without the decisions', async () => {
  const root = makeTree({ 'p.yaml': readFileSync(join(REPO, 'pipelines', 'fashion-mnist-transfer.yaml'), 'utf8') });
  const v = await runInProcess(root, ['validate', 'p.yaml']);
  assert.equal(v.exitCode, 0, v.stderr);
  const [head, ...lines] = v.stdout.trimEnd().split('\n');
  assert.equal(head, "'p.yaml' is valid: 15 stages, in order:");
  // Two chains from one pretraining: model_pre needs data_b and pretrain; model_scratch only data_b; plots joins both.
  assert.ok(lines.includes('  7. model_pre [build-model] <- data_b, pretrain'), v.stdout);
  assert.ok(lines.includes('  11. model_scratch [build-model] <- data_b'), v.stdout);
  assert.equal(lines.at(-1), '  15. plots [plot] <- eval_pre, eval_scratch');
  const p = await runInProcess(root, ['plan', 'p.yaml']);
  assert.equal(p.exitCode, 0, p.stderr);
  const planned = p.stdout.split('\n').filter((l) => /^ {2}\d+\. /.test(l)).map((l) => l.replace(/: (run|skip) \(.*\)$/, ''));
  assert.deepEqual(lines, planned);
});
