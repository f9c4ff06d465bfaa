/**
 * An upstream output change, end to end: a tiny pipeline on a local imagefolder runs once; one
 * input image is then rewritten, and `pipe plan` says the download stage reruns because its
 * inputs changed and every stage below it because its upstream changed, while an independent
 * stage stays cached; `pipe run` then reruns exactly those stages.
 *
 *   data ──> aug ──┐
 *     └───> model ─┴─> head ──> eval        holdout (independent)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readdirSync, readFileSync, realpathSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../../src/rng.js';
import { makeTree, runCliIn } from '../utils.js';
import { writeImageFolder, writePng } from './image-folder.js';

const PIPELINE = `name: upstream
seed: 5
stages:
  data: { kind: download, with: { dataset: imagefolder, source: images } }
  holdout: { kind: download, with: { dataset: imagefolder, source: holdout-images } }
  aug: { kind: augment, needs: [data], with: { batch_size: 4, workers: 0 } }
  model: { kind: build-model, needs: [data], with: { arch: mini_resnet } }
  head: { kind: freeze-train, needs: [aug, model], with: { epochs: 1, max_steps_per_epoch: 2 } }
  eval: { kind: evaluate, needs: [head], with: { top_k: 2 } }
`;

/** Stage name -> `decision (reason)` from `pipe plan` text output. */
function decisions(stdout: string): Record<string, string> {
  return Object.fromEntries([...stdout.matchAll(/^\s+\d+\. (\w+) \[[\w-]+\](?: <- [\w, ]+)?: (run|skip) \((.*)\)$/gm)].map((m) => [m[1]!, `${m[2]} (${m[3]})`]));
}

interface LockStage { outDir: string; status: string; reusedFrom?: string }

test('changing one input image reruns the download stage and everything below it, nothing else', async () => {
  const root = makeTree({ 'p.yaml': PIPELINE });
  const images = await writeImageFolder(join(root, 'images'), 1);
  await writeImageFolder(join(root, 'holdout-images'), 2, { classes: 2, train: 2, test: 1 });
  const env = { PIPE_CACHE: join(root, 'cache') };

  const first = await runCliIn(root, ['run', 'p.yaml', '--plain'], env);
  assert.equal(first.exitCode, 0, first.stderr + first.stdout);
  const unchanged = await runCliIn(root, ['plan', 'p.yaml'], env);
  assert.deepEqual(decisions(unchanged.stdout), {
    data: 'skip (unchanged)', holdout: 'skip (unchanged)', aug: 'skip (unchanged)', model: 'skip (unchanged)', head: 'skip (unchanged)', eval: 'skip (unchanged)',
  });

  // One train image gets new pixels (and a modification time of its own).
  const changed = images[1]!;
  await writePng(changed, new Rng(99));
  utimesSync(changed, new Date(2020, 0, 1), new Date(2020, 0, 1));
  const plan = await runCliIn(root, ['plan', 'p.yaml'], env);
  assert.equal(plan.exitCode, 0, plan.stderr);
  assert.deepEqual(decisions(plan.stdout), {
    data: 'run (input files changed (stages.data.with.source: images))',
    holdout: 'skip (unchanged)',
    aug: 'run (upstream changed: data)',
    model: 'run (upstream changed: data)',
    head: 'run (upstream changed: aug, model)',
    eval: 'run (upstream changed: head)',
  });

  const second = await runCliIn(root, ['run', 'p.yaml', '--plain'], env);
  assert.equal(second.exitCode, 0, second.stderr + second.stdout);
  assert.match(second.stdout, /^reused from the stage cache: holdout$/m);
  const runs = join(root, 'runs');
  const [run1, run2] = readdirSync(runs).filter((d) => /^\d{8}T/.test(d)).sort();
  assert.ok(run1 && run2, 'two run folders');
  const lock = JSON.parse(readFileSync(join(runs, run2, 'lock.json'), 'utf8')) as { stages: Record<string, LockStage> };
  for (const name of ['data', 'aug', 'model', 'head', 'eval']) {
    const s = lock.stages[name]!;
    assert.equal(s.status, 'done', name);
    assert.equal(s.outDir, join(runs, run2, name), `${name} ran in the new run`);
    assert.equal(s.reusedFrom, undefined, name);
    assert.ok(existsSync(join(s.outDir, '.done')), name);
  }
  assert.equal(lock.stages['holdout']!.reusedFrom, join(runs, run1, 'holdout'));
  // holdout did not run again: the new run's folder only links to the first run's.
  assert.ok(lstatSync(join(runs, run2, 'holdout')).isSymbolicLink(), 'holdout is a link');
  assert.equal(realpathSync(join(runs, run2, 'holdout')), realpathSync(join(runs, run1, 'holdout')));
  // And now nothing is left to do.
  const after = await runCliIn(root, ['plan', 'p.yaml'], env);
  assert.ok(Object.values(decisions(after.stdout)).every((d) => d === 'skip (unchanged)'), after.stdout);
});
