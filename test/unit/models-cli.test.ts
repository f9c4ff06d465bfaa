/**
 * `pipe models`: the table says what its parameter counts are (with a 1000-class head) and
 * shows the published count (torchvision's resnet18: 11,689,512); the cached column counts a
 * file of the published size only (test/fixtures/weights/weights.json, the independent record).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixture } from '../fixtures.js';
import { makeTree, runCliIn } from '../utils.js';

test('pipe models: the params column says it counts a 1000-class head; resnet18 has the published count', async () => {
  const root = makeTree({});
  const pins = JSON.parse(readFileSync(fixture('weights', 'weights.json'), 'utf8')) as Array<{ arch: string; hub_id: string; sha256: string; size_bytes: number }>;
  const cached = (arch: string): { file: string; size: number } => {
    const p = pins.find((w) => w.arch === arch)!;
    const dir = join(root, 'cache', 'weights', p.hub_id.replace('/', '--'), p.sha256.slice(0, 16));
    mkdirSync(dir, { recursive: true });
    return { file: join(dir, 'model.safetensors'), size: p.size_bytes };
  };
  writeFileSync(cached('resnet18').file, 'junk\n'); // 5 bytes: not the weights
  const r34 = cached('resnet34');
  writeFileSync(r34.file, '');
  truncateSync(r34.file, r34.size); // the published size (sparse)
  const r = await runCliIn(root, ['models'], { PIPE_CACHE: join(root, 'cache') });
  assert.equal(r.exitCode, 0, r.stderr);
  const lines = r.stdout.split('\n');
  assert.match(lines[0]!, /^name +params \(1000-class head\) +input +min +weights \(imagenet\) +cached$/);
  // torchvision.models.resnet18 (1000 classes): 11,689,512 parameters (its model card).
  assert.match(r.stdout, /^resnet18 +11,689,512 +224x224 +1 +timm\/resnet18\.tv_in1k@\w+ \(bsd-3-clause\) +no \(5 bytes, not 46807446\)$/m);
  assert.match(r.stdout, /^resnet34 .* +yes$/m);
  assert.match(r.stdout, /^params: with a 1000-class \(ImageNet\) head, as torchvision and timm count them; a pipeline's head has num_classes outputs$/m);
  assert.match(r.stdout, /^weights cache: <root>\/cache\/weights /m);
});
