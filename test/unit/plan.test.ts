/**
 * Skip/rerun decisions of `planPipeline` against a stage cache in a temporary runs folder,
 * with the finished "previous run" faked (lock.json entries and indexed output folders; no
 * stage runs). The graph (DVC `test_repro_plan` style):
 *
 *   data ──> aug ──┐
 *     └───> model ─┴─> head ──> eval
 *
 * Expected decisions are worked out by hand from the graph: a changed stage reruns, and so does
 * everything downstream of it ("upstream changed"), nothing else.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPipeline } from '../../src/config/load.js';
import { compileDag } from '../../src/dag/compile.js';
import { StageIndex, type Lock } from '../../src/runner/cache.js';
import { planPipeline, type PlanEntry } from '../../src/runner/plan.js';
import { stageKinds } from '../../stages/index.js';

let tmp = '';
let source = '';
let runs = '';

const yaml = (lr: number): string => `name: plantest
seed: 1
stages:
  data: { kind: download, with: { dataset: fashion-mnist, source: ${source} } }
  aug: { kind: augment, needs: [data] }
  model: { kind: build-model, needs: [data], with: { arch: mini_resnet } }
  head: { kind: freeze-train, needs: [aug, model], with: { optimizer: { lr: ${lr} } } }
  eval: { kind: evaluate, needs: [head] }
`;

/** Plans the pipeline with learning rate `lr` for head, against `runs`. */
async function plan(lr: number, opts: { previous?: Lock; from?: string; force?: boolean } = {}): Promise<PlanEntry[]> {
  const file = join(tmp, `p-${lr}.yaml`);
  writeFileSync(file, yaml(lr));
  const { config, source: src } = await loadPipeline(file);
  return planPipeline(config, compileDag(config, src), { ...opts, stages: stageKinds, index: new StageIndex(runs) });
}

/** Fakes a finished run of `entries`: an output folder per stage, indexed under its key, and its lock. */
async function fakeRun(entries: PlanEntry[], runId: string): Promise<Lock> {
  const index = new StageIndex(runs);
  const lock: Lock = { pipeline: 'plantest', file: 'p.yaml', runId, createdAt: 0, stages: {} };
  for (const e of entries) {
    const outDir = join(runs, runId, e.name);
    mkdirSync(outDir, { recursive: true });
    await index.record(e.key, outDir);
    lock.stages[e.name] = { kind: e.kind, key: e.key, parts: e.parts, outDir, status: 'done' };
  }
  return lock;
}

const decisions = (entries: PlanEntry[]): Record<string, string> => Object.fromEntries(entries.map((e) => [e.name, `${e.decision} (${e.reason})`]));

const UNCHANGED = { data: 'skip (unchanged)', aug: 'skip (unchanged)', model: 'skip (unchanged)', head: 'skip (unchanged)', eval: 'skip (unchanged)' };

before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'pipe-plan-'));
  source = join(tmp, 'data');
  mkdirSync(source);
  writeFileSync(join(source, 'train-images-idx3-ubyte.gz'), 'train images v1');
  writeFileSync(join(source, 't10k-images-idx3-ubyte.gz'), 'test images');
  // validate checks that the four files are there (not what they hold)
  writeFileSync(join(source, 'train-labels-idx1-ubyte.gz'), 'train labels');
  writeFileSync(join(source, 't10k-labels-idx1-ubyte.gz'), 'test labels');
});
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('planPipeline', () => {
  let previous: Lock;

  before(async () => {
    runs = join(tmp, 'runs');
    const first = await plan(0.001);
    assert.deepEqual(decisions(first), { data: 'run (never run)', aug: 'run (never run)', model: 'run (never run)', head: 'run (never run)', eval: 'run (never run)' });
    previous = await fakeRun(first, '20260101T000000-aaaaaa');
  });

  it('nothing changed: every stage is reused from its folder', async () => {
    const again = await plan(0.001, { previous });
    assert.deepEqual(decisions(again), UNCHANGED);
    for (const e of again) assert.equal(e.reuseDir, previous.stages[e.name]!.outDir);
  });

  it('a param change reruns that stage (naming the param) and its descendants only', async () => {
    const changed = await plan(0.002, { previous });
    assert.deepEqual(decisions(changed), {
      ...UNCHANGED,
      head: 'run (params changed: optimizer.lr: 0.001 -> 0.002)',
      eval: 'run (upstream changed: head)',
    });
    // The keys of the unchanged stages are the ones of the previous run.
    for (const n of ['data', 'aug', 'model']) assert.equal(changed.find((e) => e.name === n)!.key, previous.stages[n]!.key);
  });

  it('--from and --force', async () => {
    assert.deepEqual(decisions(await plan(0.001, { previous, from: 'aug' })), {
      ...UNCHANGED, aug: 'run (forced (--from aug))', head: 'run (forced (--from aug))', eval: 'run (forced (--from aug))',
    });
    assert.ok((await plan(0.001, { previous, force: true })).every((e) => e.decision === 'run' && e.reason === 'forced (--force)'));
  });

  it('an implementation version bump reruns that stage and everything below it', async () => {
    const augment = stageKinds.augment as { version: number };
    const v = augment.version;
    augment.version = v + 1;
    try {
      assert.deepEqual(decisions(await plan(0.001, { previous })), {
        ...UNCHANGED,
        aug: `run (implementation version ${v} -> ${v + 1})`,
        head: 'run (upstream changed: aug)',
        eval: 'run (upstream changed: head)',
      });
    } finally {
      augment.version = v;
    }
    assert.deepEqual(decisions(await plan(0.001, { previous })), UNCHANGED, 'restored');
  });

  it('a stage that failed last time, or whose outputs are gone, runs again', async () => {
    const evalDone = join(previous.stages['eval']!.outDir, '.done');
    rmSync(evalDone); // the index entry now points at a folder without its finished marker
    try {
      const failed: Lock = structuredClone(previous);
      failed.stages['eval']!.status = 'failed';
      assert.deepEqual(decisions(await plan(0.001, { previous: failed })), { ...UNCHANGED, eval: 'run (did not finish last time (failed))' });
      assert.deepEqual(decisions(await plan(0.001, { previous })), { ...UNCHANGED, eval: 'run (outputs missing)' });
    } finally {
      writeFileSync(evalDone, previous.stages['eval']!.key);
    }
    assert.deepEqual(decisions(await plan(0.001, { previous })), UNCHANGED);
  });

  // Last: it changes the data files, which every later plan would see.
  it("an upstream output change (download's fingerprint of its local source) reruns everything below it", async () => {
    const file = join(source, 'train-images-idx3-ubyte.gz');
    writeFileSync(file, 'train images v2');
    utimesSync(file, new Date(2001, 1, 1), new Date(2001, 1, 1));
    const changed = await plan(0.001, { previous });
    assert.deepEqual(decisions(changed), {
      data: `run (input files changed (stages.data.with.source: ${source}))`,
      aug: 'run (upstream changed: data)',
      model: 'run (upstream changed: data)',
      head: 'run (upstream changed: aug, model)',
      eval: 'run (upstream changed: head)',
    });
    assert.notDeepEqual(changed[0]!.parts.extra, previous.stages['data']!.parts.extra);
  });
});
