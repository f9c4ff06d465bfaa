/**
 * What is known of each zoo architecture without building it: family, description, the blocks
 * `unfreeze: { from: <block> }` may name, the smallest input side and the classifier module.
 * `pipe validate` and `pipe plan` check pipelines against this table (src/dag) without loading
 * TensorFlow.js; the family files (resnet.ts, vgg.ts, ...) add the builders and the pretrained
 * weights (pins.ts) to these entries for the registry (registry.ts). test/unit/models.test.ts checks that
 * every built backbone's blocks are the ones listed here.
 */

/** The build-free part of a registry entry (ModelEntry in model-entry.ts). */
export interface CatalogEntry {
  /** Family file, e.g. 'resnet'. */
  family: string;
  /** One line for `pipe models`. */
  description: string;
  /** Smallest input side the architecture accepts, in pixels (torchvision's `min_size` where it has one). */
  minInputSize: number;
  /** Names of the backbone's blocks in order (what `unfreeze: { from: <block> }` takes). */
  blocks: readonly string[];
  /** Torch module of the classifier the head stands for (`fc`, `classifier`, `head.fc`). */
  classifier: string;
  /**
   * Whether the net has a PyTorch counterpart (its layers bound to torch key names), so that it
   * loads a .safetensors state_dict (`weights: <path>` or `upstream`) and its training stages save
   * one; test/unit/models.test.ts checks it against the built nets' bindings.
   */
  torch: boolean;
}

const RESNET_BLOCKS = ['stem', 'layer1', 'layer2', 'layer3', 'layer4'] as const;
const resnet = (description: string): CatalogEntry => ({ family: 'resnet', description, minInputSize: 1, blocks: RESNET_BLOCKS, classifier: 'fc', torch: true }); // torchvision ResNet*_Weights meta min_size (1, 1)
const MB_BLOCKS = ['stem', 'blocks_0', 'blocks_1', 'blocks_2', 'blocks_3', 'blocks_4', 'blocks_5', 'blocks_6', 'conv_head'] as const;

/** Every architecture by name. */
export const CATALOG = {
  mini_resnet: { family: 'resnet', description: 'small ResNet for quick runs on 28x28 data (no pretrained weights)', minInputSize: 8, blocks: ['stem', 'layer1', 'layer2', 'layer3'], classifier: 'fc', torch: false },
  resnet18: resnet('torchvision ResNet-18 (BasicBlock [2,2,2,2])'),
  resnet34: resnet('torchvision ResNet-34 (BasicBlock [3,4,6,3])'),
  resnet50: resnet('torchvision ResNet-50 v1.5 (Bottleneck [3,4,6,3], stride on the 3x3)'),
  test_resnet18: resnet('ResNet-18 layout at widths 8/16/32/64, 8-ch stem (tests; goldens slim18)'),
  test_resnet50: resnet('ResNet-50 layout at widths 8/16/32/64, 8-ch stem (tests; goldens slim50)'),
  vgg16: {
    family: 'vgg',
    description: 'torchvision VGG-16 (no BatchNorm), FC layers as convs',
    minInputSize: 32, // torchvision VGG16_Weights meta min_size (32, 32)
    blocks: ['block1', 'block2', 'block3', 'block4', 'block5', 'pre_logits'], // block1, one more after every max-pool but the last, pre_logits
    classifier: 'head.fc',
    torch: true,
  },
  mobilenet_v2: {
    family: 'efficientnet',
    description: 'MobileNetV2 1.0 (timm mobilenetv2_100; = torchvision mobilenet_v2)',
    minInputSize: 1, // torchvision MobileNet_V2_Weights meta min_size (1, 1)
    blocks: MB_BLOCKS,
    classifier: 'classifier',
    torch: true,
  },
  efficientnet_b0: {
    family: 'efficientnet',
    description: 'EfficientNet-B0 (timm efficientnet_b0; = torchvision efficientnet_b0)',
    minInputSize: 1, // torchvision EfficientNet_B0_Weights meta min_size (1, 1)
    blocks: MB_BLOCKS,
    classifier: 'classifier',
    torch: true,
  },
  inception_v3: {
    family: 'inception',
    description: 'torchvision Inception v3 without the auxiliary classifier (299 px native)',
    minInputSize: 75,
    blocks: ['stem', 'Mixed_5b', 'Mixed_5c', 'Mixed_5d', 'Mixed_6a', 'Mixed_6b', 'Mixed_6c', 'Mixed_6d', 'Mixed_6e', 'Mixed_7a', 'Mixed_7b', 'Mixed_7c'],
    classifier: 'fc',
    torch: true,
  },
  densenet121: {
    family: 'densenet',
    description: 'torchvision DenseNet-121 (growth 32, blocks 6/12/24/16)',
    minInputSize: 29, // torchvision DenseNet121_Weights meta min_size (29, 29)
    blocks: ['stem', 'denseblock1', 'transition1', 'denseblock2', 'transition2', 'denseblock3', 'transition3', 'denseblock4', 'norm5'],
    classifier: 'classifier',
    torch: true,
  },
} as const satisfies Record<string, CatalogEntry>;

/** An architecture's name. */
export type ArchName = keyof typeof CATALOG;

/** The catalog as a plain lookup (undefined for unknown names). */
export const MODEL_CATALOG: Readonly<Record<string, CatalogEntry | undefined>> = CATALOG;
