/**
 * One fact, one place: the stage kinds (src/stage-kinds.ts and the StageTable of
 * stages/index.ts), the model catalog (src/models/registry.ts MODELS) and the dataset catalog
 * (src/data/datasets.ts) are the sources; the JSON schemas' enums and branches must agree with
 * them, so adding a kind, a model or a dataset without its schema entry (or the reverse) fails here.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DATASET_NAMES } from '../../src/data/datasets.js';
import { MODELS } from '../../src/models/registry.js';
import { IMAGENET_PINS } from '../../src/models/pins.js';
import { readableKinds, STAGE_KINDS } from '../../src/stage-kinds.js';
import { stageKinds } from '../../stages/index.js';
import { stageMeta } from '../../stages/meta.js';

const SCHEMAS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'schemas');
const schema = (rel: string): Record<string, unknown> => JSON.parse(readFileSync(join(SCHEMAS, rel), 'utf8')) as Record<string, unknown>;
const sorted = (xs: Iterable<string>): string[] => [...xs].sort();

/** Every `enum` at `path` (property names) in a schema document. */
function enumAt(doc: unknown, path: string[]): unknown[] {
  let node = doc as Record<string, unknown>;
  for (const p of path) node = node[p] as Record<string, unknown>;
  return node['enum'] as unknown[];
}

describe('catalogs and schemas agree', () => {
  it('stage kinds: the schema enum, one if/then branch per kind (to its own schema file), the StageTable', () => {
    const kinds = Object.keys(STAGE_KINDS);
    const pipeline = schema('pipeline.schema.json');
    const stage = JSON.stringify(pipeline);
    const kindEnum = [...stage.matchAll(/"kind":\{"enum":(\[[^\]]*\])/g)].map((m) => JSON.parse(m[1]!) as string[]);
    assert.equal(kindEnum.length, 1, 'one kind enum in pipeline.schema.json');
    assert.deepEqual(sorted(kindEnum[0]!), sorted(kinds));
    const branches = [...stage.matchAll(/\{"if":\{"required":\["kind"\],"properties":\{"kind":\{"const":"([^"]+)"\}\}\},"then":\{"properties":\{"with":\{"\$ref":"([^"]+)"\}\}\}\}/g)]
      .map((m) => [m[1]!, m[2]!] as const);
    assert.deepEqual(sorted(branches.map(([k]) => k)), sorted(kinds));
    for (const [k, ref] of branches) {
      assert.equal(ref, `stages/${k}.schema.json`);
      assert.ok(existsSync(join(SCHEMAS, ref)), ref);
    }
    assert.deepEqual(sorted(Object.keys(stageKinds)), sorted(kinds));
    for (const [k, def] of Object.entries(stageKinds)) assert.equal(def.kind, k);
    // What `pipe plan` reads (stages/meta.ts) is what the runner runs: each definition spreads its row.
    assert.deepEqual(sorted(Object.keys(stageMeta)), sorted(kinds));
    for (const [k, def] of Object.entries(stageKinds)) {
      const meta = stageMeta[k as keyof typeof stageMeta] as Record<string, unknown>;
      for (const f of ['kind', 'version', 'summary', 'cacheable', 'cacheKey']) assert.equal((def as unknown as Record<string, unknown>)[f], meta[f], `${k}.${f}`);
      assert.equal(typeof def.load === 'function', def.cacheable, `${k}: load exactly when cacheable`);
    }
  });

  it('stage inputs: what each kind reads is declared once (the graph check and ctx.upstream use it)', () => {
    assert.deepEqual(sorted(readableKinds('download')), []);
    assert.deepEqual(sorted(readableKinds('build-model')), ['augment', 'download', 'freeze-train', 'unfreeze-train']); // weights: upstream
    assert.deepEqual(sorted(readableKinds('plot')), ['evaluate', 'freeze-train', 'unfreeze-train']);
    assert.deepEqual(sorted(readableKinds('freeze-train')), ['augment', 'build-model', 'freeze-train', 'unfreeze-train']);
  });

  it('models: the ImageNet weights on each registry entry are its row of the pins table (src/models/pins.ts), which `pipe plan` reads', () => {
    for (const [name, e] of Object.entries(MODELS)) {
      assert.equal(e.imagenet, IMAGENET_PINS[name], name);
      assert.deepEqual(e.pretrained, IMAGENET_PINS[name] ? ['imagenet'] : [], name);
    }
    for (const name of Object.keys(IMAGENET_PINS)) assert.ok(MODELS[name], `${name}: a pinned architecture is in the registry`);
  });

  it('models: the arch enum of build-model.schema.json is the registry', () => {
    assert.deepEqual(sorted(enumAt(schema('stages/build-model.schema.json'), ['properties', 'arch']) as string[]), sorted(Object.keys(MODELS)));
  });

  it('datasets: the dataset enum of download.schema.json is the dataset catalog', () => {
    assert.deepEqual(sorted(enumAt(schema('stages/download.schema.json'), ['properties', 'dataset']) as string[]), sorted(DATASET_NAMES));
  });
});
