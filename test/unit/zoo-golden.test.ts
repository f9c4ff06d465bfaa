/**
 * The non-ResNet builders against torchvision: test/fixtures/zoo holds slim MobileNetV2,
 * EfficientNet-B0, DenseNet and VGG nets made by torchvision 0.14 (make_goldens.py there: random
 * weights, non-trivial BatchNorm, state_dicts renamed to timm's names, float16 weights) and
 * torchvision's logits and pooled features at 32, 45 and 224 px. The same family builders as the
 * registry's full-size entries, loaded through the same torch-weights path, must reproduce them:
 * logits within 1e-4, features within 1e-4 x max(1, max |golden|) (float32 noise, see
 * resnet-golden.test.ts), on the wasm backend. At 32 px each net also survives a save/load in
 * the tfjs layers format (src/models/model-files.ts) with the same logits.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initEngine } from '../../src/engine/backend.js';
import { densenet, type DenseLayout } from '../../src/models/densenet.js';
import { mbNet, type MbStage } from '../../src/models/efficientnet.js';
import { loadModel, saveClassifier } from '../../src/models/model-files.js';
import type { Backbone, BackboneInput } from '../../src/models/torch-net.js';
import { Safetensors } from '../../src/models/safetensors.js';
import { loadTorchWeights } from '../../src/models/torch-weights.js';
import { vgg } from '../../src/models/vgg.js';

/** dist/test/unit/x.test.js -> test/fixtures/zoo in the source tree. */
const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fixtures', 'zoo');
const TOL = 1e-4;

interface Meta {
  arch: { builder: string; act?: 'relu6' | 'silu'; stages?: MbStage[]; stem?: number; head?: number; cfg?: Array<number | 'M'>; hidden?: number } & Partial<DenseLayout>;
  num_classes: number;
  sizes: number[];
}

function build(m: Meta, inp: BackboneInput): { backbone: Backbone; classifier: string } {
  const a = m.arch;
  if (a.builder === 'mbNet') return { backbone: mbNet(a.stages!, a.act!, inp, 'zeros', 'slim', a.stem, a.head), classifier: 'classifier' };
  if (a.builder === 'densenet') return { backbone: densenet(a as DenseLayout, inp, 'zeros', 'slim'), classifier: 'classifier' };
  if (a.builder === 'vgg') return { backbone: vgg(a.cfg!, inp, 'zeros', 'slim', a.hidden), classifier: 'head.fc' };
  throw new Error(`unknown builder ${a.builder}`);
}

function maxAbs(t: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(t)).dataSync()[0]!);
}

before(async () => {
  await initEngine('wasm');
});

for (const name of ['mobilenet_v2_slim', 'efficientnet_b0_slim', 'densenet121_slim', 'vgg16_slim']) {
  describe(`${name}: torchvision outputs reproduced`, () => {
    const meta = JSON.parse(readFileSync(join(FIXTURES, `${name}.json`), 'utf8')) as Meta;
    for (const size of meta.sizes) {
      it(`${size}x${size}`, async () => {
        const st = Safetensors.read(join(FIXTURES, `${name}.safetensors`));
        const io = Safetensors.read(join(FIXTURES, `${name}.io.safetensors`));
        const { backbone, classifier } = build(meta, { height: size, width: size, channels: 3 });
        const featIn = tf.input({ shape: [backbone.features] });
        const head = tf.model({ inputs: featIn, outputs: tf.layers.dense({ units: meta.num_classes, name: 'head_fc' }).apply(featIn) as tf.SymbolicTensor });
        const report = loadTorchWeights(st, [backbone, { model: head, bindings: [{ layer: 'head_fc', torch: classifier, kind: 'dense' }] }]);
        assert.equal(report.loaded, [...st.tensors.keys()].filter((k) => !k.endsWith('num_batches_tracked')).length);

        const xs = io.info(`x${size}`).shape as [number, number, number, number];
        const x = tf.tidy(() => tf.transpose(tf.tensor4d(io.float32(`x${size}`), xs), [0, 2, 3, 1]));
        const feat = backbone.model.predict(x) as tf.Tensor;
        const logits = head.predict(feat) as tf.Tensor;
        const wantFeat = tf.tensor(io.float32(`feat${size}`), io.info(`feat${size}`).shape);
        const wantLogits = tf.tensor(io.float32(`logits${size}`), io.info(`logits${size}`).shape);
        assert.deepEqual(feat.shape, wantFeat.shape);
        const errFeat = maxAbs(tf.sub(feat, wantFeat));
        const errLogits = maxAbs(tf.sub(logits, wantLogits));
        assert.ok(errLogits <= TOL, `${name} ${size}px logits: max abs error ${errLogits} > ${TOL}`);
        const featTol = TOL * Math.max(1, maxAbs(wantFeat));
        assert.ok(errFeat <= featTol, `${name} ${size}px features: max abs error ${errFeat} > ${featTol}`);
        assert.ok(maxAbs(wantLogits) > 0.1, 'the golden logits are not trivial');
        if (size === 32) {
          // the tfjs layers format round trip (custom AdaptiveAvgPool2d, swish, depthwise, multiply, concat)
          const dir = await mkdtemp(join(tmpdir(), 'zoo-save-'));
          await saveClassifier({ arch: name, backbone, head, numClasses: meta.num_classes, reinitialized: [] }, dir);
          const loaded = await loadModel(dir);
          const again = loaded.predict(x) as tf.Tensor;
          assert.ok(maxAbs(tf.sub(again, logits)) < 1e-6, `${name}: saved and reloaded model gives other logits`);
          tf.dispose(again);
          loaded.dispose();
          await rm(dir, { recursive: true, force: true });
        }
        tf.dispose([x, feat, logits, wantFeat, wantLogits]);
        backbone.model.dispose();
        head.dispose();
      });
    }
  });
}
