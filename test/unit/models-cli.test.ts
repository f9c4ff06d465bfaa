/**
 * `pipe models`: the table says what its parameter counts are (with a 1000-class head) and
 * shows the published count (torchvision's resnet18: 11,689,512).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { makeTree, runCliIn } from '../utils.js';

test('pipe models: the params column says it counts a 1000-class head; resnet18 has the published count', async () => {
  const root = makeTree({});
  const r = await runCliIn(root, ['models'], { PIPE_CACHE: join(root, 'cache') });
  assert.equal(r.exitCode, 0, r.stderr);
  const lines = r.stdout.split('\n');
  assert.match(lines[0]!, /^name +params \(1000-class head\) +input +min +weights \(imagenet\) +cached$/);
  // torchvision.models.resnet18 (1000 classes): 11,689,512 parameters (its model card).
  assert.match(r.stdout, /^resnet18 +11,689,512 +224x224 +1 +timm\/resnet18\.tv_in1k@\w+ \(bsd-3-clause\) +no$/m);
  assert.match(r.stdout, /^params: with a 1000-class \(ImageNet\) head, as torchvision and timm count them; a pipeline's head has num_classes outputs$/m);
  assert.match(r.stdout, /^weights cache: <root>\/cache\/weights /m);
});
