/**
 * Pretrained weights end to end, with no network beyond 127.0.0.1: a torch-layout state_dict of
 * test_resnet18 is written as safetensors here, served by a node:http server (Range support, one
 * dropped connection), fetched into a temporary cache through the download machinery (checksum
 * pass/fail, resume, trust-on-first-use when no digest is published, an HF_ENDPOINT mirror), and
 * loaded by buildClassifier. Load errors name the tensor (missing, unexpected, wrong shape); the
 * classifier is replaced when the class count differs.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { DownloadError } from '../../src/data/download.js';
import { initEngine } from '../../src/engine/backend.js';
import { PipelineError } from '../../src/errors.js';
import { buildClassifier, type Classifier } from '../../src/models/registry.js';
import { cachedWeightsPath, fetchPretrained, hubCfg, type PretrainedConfig } from '../../src/models/pretrained.js';
import { encodeSafetensors, type TensorToWrite } from '../../src/models/safetensors.js';
import { exportTorchWeights } from '../../src/models/torch-weights.js';
import { Rng } from '../../src/rng.js';

const INP = { height: 32, width: 32, channels: 3 };
let tmp = '';
let server: Server;
let base = '';
let body: Buffer = Buffer.alloc(0);
let sha = '';
let source: Classifier;
let sd: Record<string, TensorToWrite> = {};
const seen: Array<{ url: string; range?: string }> = [];
let dropNext = false;

function handle(req: IncomingMessage, res: ServerResponse): void {
  seen.push({ url: req.url ?? '', range: req.headers.range });
  if (!(req.url ?? '').endsWith('/model.safetensors')) {
    res.writeHead(404).end();
    return;
  }
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const start = m ? Number(m[1]) : 0;
  res.writeHead(m ? 206 : 200, { 'content-length': String(body.length - start) });
  if (dropNext) {
    dropNext = false;
    res.write(body.subarray(start, start + 1000), () => setTimeout(() => res.destroy(), 50));
    return;
  }
  res.end(body.subarray(start));
}

/** A 10-class test_resnet18 made here, its state_dict in torch layout. */
before(async () => {
  await initEngine('wasm');
  tmp = await mkdtemp(join(tmpdir(), 'weights-test-'));
  source = buildClassifier('test_resnet18', INP, 10, 'none', new Rng(3));
  sd = exportTorchWeights([source.backbone, { model: source.head, bindings: [{ layer: 'head_fc', torch: 'fc', kind: 'dense' }] }]);
  body = Buffer.from(encodeSafetensors(sd));
  sha = createHash('sha256').update(body).digest('hex');
  server = createServer(handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  await rm(tmp, { recursive: true, force: true });
});

function cfg(over: Partial<PretrainedConfig> = {}): PretrainedConfig {
  const c = hubCfg({ hubId: 'test/tiny.local', commit: null, sha256: sha, sizeBytes: body.length, classifier: 'fc', firstConv: 'conv1', interpolation: 'bilinear', origin: 'torchvision' });
  return { ...c, url: `${base}/test/tiny.local/resolve/main/model.safetensors`, ...over };
}

function logitsOf(c: Classifier, seed: number): Float32Array {
  return tf.tidy(() => {
    const x = tf.randomUniform([2, 32, 32, 3], -2, 2, 'float32', seed);
    return (c.head.predict(c.backbone.model.predict(x) as tf.Tensor) as tf.Tensor).dataSync() as Float32Array;
  });
}

describe('fetchPretrained (127.0.0.1)', () => {
  it('downloads once into the cache, checks sha256 and size, then loads to the same logits', async () => {
    const root = join(tmp, 'cache1');
    seen.length = 0;
    const got = await fetchPretrained(cfg(), { root });
    assert.equal(got.path, cachedWeightsPath(cfg(), root));
    assert.equal(got.sha256, sha);
    assert.equal(got.bytes, body.length);
    assert.equal(got.downloaded, true);
    assert.equal(got.trustNote, undefined);
    await fetchPretrained(cfg(), { root });
    assert.equal(seen.length, 1, 'the second call is served from the cache');
    const c = buildClassifier('test_resnet18', INP, 10, got.path, new Rng(99));
    assert.deepEqual(c.reinitialized, []);
    assert.deepEqual([...logitsOf(c, 5)], [...logitsOf(source, 5)]);
  });

  it('a checksum mismatch is a DownloadError and leaves nothing in the cache', async () => {
    const root = join(tmp, 'cache2');
    const wrong = createHash('sha256').update('other').digest('hex');
    await assert.rejects(fetchPretrained(cfg({ sha256: wrong }), { root }), (e: unknown) => e instanceof DownloadError && e.message.includes(wrong) && e.message.includes(sha));
    assert.equal(existsSync(cachedWeightsPath(cfg({ sha256: wrong }), root)), false);
  });

  it('an unreachable Hub: the error names the exact file (URL, sha256, size), where to put it, and HF_ENDPOINT', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const c = cfg({ url: `http://127.0.0.1:${port}/test/tiny.local/resolve/main/model.safetensors` });
    const root = join(tmp, 'cache-offline');
    await assert.rejects(fetchPretrained(c, { root }), (e: unknown) => {
      assert.ok(e instanceof DownloadError, String(e));
      assert.ok(e.message.endsWith(`\noffline: download ${c.url} (sha256 ${sha}, ${body.length} bytes) where the network reaches it and put it at ${cachedWeightsPath(c, root)}; or set HF_ENDPOINT to a Hugging Face Hub mirror`), e.message);
      assert.doesNotMatch(e.message, /partial data/);
      return true;
    });
  });

  it('resumes with a Range request after a dropped connection', async () => {
    const root = join(tmp, 'cache3');
    seen.length = 0;
    dropNext = true;
    const got = await fetchPretrained(cfg(), { root });
    assert.equal(got.sha256, sha);
    assert.equal(seen.length, 2);
    assert.match(seen[1]!.range ?? '', /^bytes=\d+-$/);
    assert.ok(Number(/\d+/.exec(seen[1]!.range!)![0]) > 0);
  });

  it('no published sha256: the first download is trusted and its digest reported', async () => {
    const got = await fetchPretrained(cfg({ sha256: null, sizeBytes: null }), { root: join(tmp, 'cache4') });
    assert.equal(got.sha256, sha);
    assert.match(got.trustNote ?? '', new RegExp(`trusting the first download \\(sha256 ${sha}, ${body.length} bytes\\)`));
  });

  it('HF_ENDPOINT points the Hub URL at a mirror', async () => {
    seen.length = 0;
    process.env['HF_ENDPOINT'] = `${base}/`;
    try {
      const c = cfg();
      await fetchPretrained({ ...c, url: 'https://huggingface.co/test/tiny.local/resolve/main/model.safetensors' }, { root: join(tmp, 'cache5') });
    } finally {
      delete process.env['HF_ENDPOINT'];
    }
    assert.deepEqual(seen.map((s) => s.url), ['/test/tiny.local/resolve/main/model.safetensors']);
  });
});

describe('loading a state_dict into buildClassifier', () => {
  async function variant(name: string, edit: (d: Record<string, TensorToWrite>) => void): Promise<string> {
    const d = { ...sd };
    edit(d);
    const path = join(tmp, `${name}.safetensors`);
    await writeFile(path, encodeSafetensors(d));
    return path;
  }
  const rejects = (path: string, re: RegExp): void => {
    assert.throws(() => buildClassifier('test_resnet18', INP, 10, path, new Rng(1)), (e: unknown) => e instanceof PipelineError && e.code === 'PIPE_MODEL' && re.test(e.message));
  };

  it('a missing tensor is named', async () => {
    rejects(await variant('missing', (d) => delete d['layer1.0.conv1.weight']), /missing tensor 'layer1\.0\.conv1\.weight' \(for layer layer1_0_conv1, torch shape \[8,8,3,3\]\)/);
  });

  it('a tensor of the wrong shape is named with both shapes', async () => {
    rejects(await variant('shape', (d) => (d['bn1.weight'] = { dtype: 'F32', shape: [9], data: new Float32Array(9) })), /tensor 'bn1\.weight' has shape \[9\], the model needs \[8\]/);
  });

  it('an unexpected tensor is named', async () => {
    rejects(await variant('extra', (d) => (d['layer5.0.conv1.weight'] = { dtype: 'F32', shape: [1], data: new Float32Array(1) })), /unexpected tensor 'layer5\.0\.conv1\.weight'/);
  });

  it('a different class count replaces the classifier and keeps the backbone', async () => {
    const path = await variant('same', () => {});
    const c = buildClassifier('test_resnet18', INP, 4, path, new Rng(1));
    assert.deepEqual(c.reinitialized, ['head_fc']);
    assert.deepEqual(c.weights?.skipped.sort(), ['fc.bias', 'fc.weight']);
    const feats = (m: Classifier): number[] => [...tf.tidy(() => (m.backbone.model.predict(tf.ones([1, 32, 32, 3])) as tf.Tensor).dataSync())];
    assert.deepEqual(feats(c), feats(source));
    assert.equal(c.head.outputs[0]!.shape[1], 4);
  });

  it('a file that is not safetensors, and a path that does not exist, are clear errors', async () => {
    const junk = join(tmp, 'junk.safetensors');
    await writeFile(junk, 'not a safetensors file at all');
    rejects(junk, /junk\.safetensors: not a valid safetensors file/);
    rejects(join(tmp, 'nope.safetensors'), /weights '.*nope\.safetensors': no such file; give none, imagenet, or the path of a \.safetensors file/);
  });
});
