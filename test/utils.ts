/**
 * Test helpers. `runCli` writes an inline file tree to a temporary folder, runs the real CLI
 * there (a child process), and returns its output with ANSI codes stripped and the temporary
 * path shown as `<root>`. Anchor: Vitest `runInlineTests`, DVC `tmp_dir.gen`.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is dist/test/utils.js). */
export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Result of one CLI run. */
export interface CliResult {
  stdout: string;
  stderr: string;
  exitCode: number | null;
  root: string;
}

const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

/** Writes `files` (path -> content) under a new temporary folder and returns it. */
export function makeTree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'pipe-test-'));
  for (const [p, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, p)), { recursive: true });
    writeFileSync(join(root, p), content);
  }
  return root;
}

/** Runs `pipe <args>` in a fresh tree; runs/ lands inside it. */
export function runCli(files: Record<string, string>, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const root = makeTree(files);
  return runCliIn(root, args, env);
}

/** Runs `pipe <args>` with `root` as the working directory. */
export function runCliIn(root: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(REPO, 'bin', 'pipe.js'), ...args], {
      cwd: root,
      env: { ...process.env, MLFLOW_TRACKING_URI: '', PIPE_RUNS_DIR: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (exitCode) => {
      const clean = (s: string): string => s.replace(ANSI, '').split(root).join('<root>');
      resolve({ stdout: clean(stdout), stderr: clean(stderr), exitCode, root });
    });
  });
}

/**
 * The four Fashion-MNIST file names under `dir` (for makeTree), each holding no IDX data: a
 * source `validate` accepts (the files are there) and the run refuses (the checksum), the
 * data failure no static check can see.
 */
export function corruptFashionMnist(dir: string): Record<string, string> {
  return Object.fromEntries(['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz', 't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'].map((f) => [`${dir}/${f}`, 'not gzip data\n']));
}

/** The run's refusal of corruptFashionMnist(`dir`), as a regex source (the file named is whichever is checked first). */
export const corruptFashionMnistWhy = (dir: string): string =>
  `fashion-mnist: ${dir.replace(/^\.\//, '').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\/(train|t10k)-(images|labels)-idx[13]-ubyte\\.gz: content sha256 [0-9a-f]{64} does not match the expected [0-9a-f]{64}; delete or replace the file`;

/** Debian's dataset-fashion-mnist folder (installed by .ci/run); e2e tests skip without it. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/**
 * The seven-stage pipeline of the tracking e2e tests: 384 train / 192 test real Fashion-MNIST
 * images, 64 per batch (6 batches an epoch), one freeze epoch and two unfreeze epochs.
 */
export function e2ePipeline(experiment: string): string {
  return `name: tiny
description: e2e test run
experiment: ${experiment}
seed: 7
stages:
  data:
    kind: download
    with: { dataset: fashion-mnist, source: ${FASHION_MNIST_DIR}, subset: { train: 384, test: 192 } }
  aug:
    kind: augment
    needs: [data]
    with:
      batch_size: 64
      train:
        - random_crop: { size: 28, padding: 2 }
        - horizontal_flip: {}
        - normalize: { mean: [0.286], std: [0.353] }
      test:
        - normalize: { mean: [0.286], std: [0.353] }
  model: { kind: build-model, needs: [data], with: { arch: mini_resnet } }
  head: { kind: freeze-train, needs: [aug, model], with: { epochs: 1, optimizer: { lr: 0.003 } } }
  finetune:
    kind: unfreeze-train
    needs: [head]
    with: { epochs: 2, optimizer: { lr: 0.002, weight_decay: 0.0001 } }
  eval: { kind: evaluate, needs: [finetune] }
  plots: { kind: plot, needs: [finetune, eval] }
`;
}

/**
 * A pipeline that trains for seconds (128 train / 64 test images, two steps per phase), for the
 * sweep and queue tests; `extra` is appended (e.g. a `sweep:` block).
 */
export function quickPipeline(name: string, extra = ''): string {
  return `name: ${name}
seed: 3
stages:
  data: { kind: download, with: { dataset: fashion-mnist, source: ${FASHION_MNIST_DIR}, subset: { train: 128, test: 64 } } }
  aug: { kind: augment, needs: [data], with: { batch_size: 32, test: [ { normalize: { mean: [0.3], std: [0.3] } } ], train: [ { normalize: { mean: [0.3], std: [0.3] } } ] } }
  model: { kind: build-model, needs: [data], with: { arch: mini_resnet } }
  head: { kind: freeze-train, needs: [aug, model], with: { epochs: 1, max_steps_per_epoch: 2, optimizer: { lr: 0.003 } } }
  finetune: { kind: unfreeze-train, needs: [head], with: { epochs: 1, max_steps_per_epoch: 2, optimizer: { lr: 0.002 } } }
  eval: { kind: evaluate, needs: [finetune] }
${extra}`;
}
