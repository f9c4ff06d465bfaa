/**
 * The pinned ImageNet weights of the zoo, one table: for each architecture that has them, the
 * published file (Hub repository, commit, sha256, size) and the preprocessing it was trained with
 * (src/models/pretrained.ts PretrainedConfig). The family files (resnet.ts, vgg.ts, ...) put these
 * on their registry entries, and `pipe plan` reads them without loading TensorFlow.js, to say
 * which weights are not in the cache yet.
 * Sources of the values: the Hugging Face Hub pages and timm source;
 * test/fixtures/weights/weights.json is the independent record the tests check these pins against.
 */
import type { ArchName } from './catalog.js';
import { hubCfg, type PretrainedConfig } from './pretrained.js';

/** torchvision's own ResNet weights as timm republished them (`<arch>.tv_in1k`). */
const tvResnet = (hubId: string, commit: string, sha256: string, sizeBytes: number): PretrainedConfig =>
  hubCfg({ hubId, commit, sha256, sizeBytes, classifier: 'fc', firstConv: 'conv1', interpolation: 'bilinear', origin: 'torchvision' });

/** The ImageNet weights by architecture (those without an entry have none). */
export const IMAGENET_WEIGHTS = {
  resnet18: tvResnet('timm/resnet18.tv_in1k', 'a987fd6b60f845221bfff84b6f0191273ba56ead', '694f673df6520a3158624e8a89af086f59923ee4cd7436fe5bc3bc71d295ad81', 46_807_446),
  resnet34: tvResnet('timm/resnet34.tv_in1k', 'c983eba7f5e69bc3548a626d1b0b0b914e5de3a6', '0bb82595a564991a9d424708b33f5d843f5aaed7f6c0886ff10849ff97022235', 87_278_522),
  resnet50: tvResnet('timm/resnet50.tv_in1k', 'aa6c2d36d56bc0209040c02b5a7b7d7bf11d57b8', '5d061a3c593d795bfe682d9b152bafbcf550579873492def3515b46db1189888', 102_469_840),
  vgg16: hubCfg({
    hubId: 'timm/vgg16.tv_in1k',
    commit: '3394518cba29aee1ea82a49d971be90d2dd1dab7',
    sha256: '57b026918159a6bf9faf8405c3a551903768e7138989d9c6224a14227203fad8',
    sizeBytes: null, // not published (the Hub shows "553 MB"); sha256 is the check
    classifier: 'head.fc',
    firstConv: 'features.0',
    interpolation: 'bilinear',
    origin: 'torchvision',
  }),
  // timm-trained weights (timm's RandAugment recipe, not torchvision's)
  mobilenet_v2: hubCfg({
    hubId: 'timm/mobilenetv2_100.ra_in1k',
    commit: 'f3ff81ba89de0bc46b546568ebeab2edef6b9d49',
    sha256: '55ea4fb3a96010b933710ebf44fc965b070d5cd054d3f35e44f2d1320b4a714e',
    sizeBytes: null, // not published (the Hub shows "14.2 MB"); sha256 is the check
    classifier: 'classifier',
    firstConv: 'conv_stem',
    interpolation: 'bicubic',
    origin: 'timm',
  }),
  efficientnet_b0: hubCfg({
    hubId: 'timm/efficientnet_b0.ra_in1k',
    commit: '1b5383e5f79cc0f7fc067e372f8f26a5fa73f26a',
    sha256: 'd569899762ea9b1384ee07f4af64805cf8caa1c55f9253ebb1080dc40e87a2cd',
    sizeBytes: 21_355_344,
    classifier: 'classifier',
    firstConv: 'conv_stem',
    interpolation: 'bicubic',
    origin: 'timm',
  }),
  inception_v3: hubCfg({
    hubId: 'timm/inception_v3.tv_in1k',
    commit: null, // full hash not known: the URL follows 'main', the sha256 is the anchor
    sha256: '9c452c63a67fd03a38a78c401ba12d4be0e926df63c93403de3a29f6df20fefb',
    sizeBytes: null, // not published (the Hub shows "95.5 MB")
    classifier: 'fc',
    firstConv: 'Conv2d_1a_3x3.conv',
    interpolation: 'bicubic',
    origin: 'torchvision',
    mean: [0.5, 0.5, 0.5],
    std: [0.5, 0.5, 0.5],
    inputSize: [3, 299, 299],
  }),
  densenet121: hubCfg({
    hubId: 'timm/densenet121.tv_in1k',
    // NOTE: this commit comes from a third-party Hub cache snapshot, not a Hub page; sha256 is the anchor.
    commit: 'f0d0f2698a02cb133b09d48396db6e1e46fe9f3b',
    sha256: 'c894c6d9caa317a8ca1942986dee7a16a86c77734a4d691d2abe05389cfef358',
    sizeBytes: null, // not published (the Hub shows "32.3 MB")
    classifier: 'classifier',
    firstConv: 'features.conv0',
    interpolation: 'bicubic',
    origin: 'torchvision',
  }),
} as const satisfies Partial<Record<ArchName, PretrainedConfig>>;

/** The table as a plain lookup: undefined for an architecture without ImageNet weights (or an unknown name). */
export const IMAGENET_PINS: Readonly<Record<string, PretrainedConfig | undefined>> = IMAGENET_WEIGHTS;

/**
 * Why `weights: imagenet` cannot be used with `arch` (an architecture without an entry in the
 * table above): the one wording of validation (src/dag/weights-checks.ts) and of the registry.
 */
export function noImageNetWeights(arch: string): string {
  return `${arch} has no ImageNet weights; models with them: ${Object.keys(IMAGENET_WEIGHTS).join(', ')} (or use weights: none)`;
}
