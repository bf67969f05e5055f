/**
 * The legacy names of ResNet50's layers with weights, as the Keras ResNet50 before
 * keras-applications 1.0.7 (`keras/applications/resnet50.py`, and the older weight file
 * `resnet50_weights_tf_dim_ordering_tf_kernels.h5` of fchollet/deep-learning-models) named them:
 *
 *   conv1_conv            → conv1            conv1_bn              → bn_conv1
 *   conv2_block1_0_conv   → res2a_branch1    conv2_block1_0_bn     → bn2a_branch1
 *   conv2_block1_1_conv   → res2a_branch2a   conv2_block1_1_bn     → bn2a_branch2a
 *   conv2_block1_2_conv   → res2a_branch2b   …_3_conv / …_3_bn     → …_branch2c
 *   conv4_block6_3_bn     → bn4f_branch2c    predictions           → fc1000
 *
 * Blocks are lettered a, b, c… within a stage; the shortcut conv is branch 1, the three convs
 * of the residual branch are 2a, 2b, 2c. Same weights, same shapes, same order in each layer:
 * only the names differ.
 */
import type { ResNetArchitecture } from '../../shared/model/resnet50.ts';

/** keras-applications' `_{i}_` part of a block's layer names → the legacy branch. */
const BRANCHES: Record<number, string> = { 0: '1', 1: '2a', 2: '2b', 3: '2c' };
const BLOCK_LETTERS = 'abcdefghijklmnopqrstuvwxyz';

const FIXED: ReadonlyArray<[current: string, legacy: string]> = [
  ['conv1_conv', 'conv1'],
  ['conv1_bn', 'bn_conv1'],
  ['predictions', 'fc1000'],
];

/**
 * keras-applications name → legacy name, for every layer with weights in `architecture`
 * (ResNet50, or the tiny test ResNet, whose names follow the same scheme).
 */
export function legacyLayerNames(architecture: ResNetArchitecture): Map<string, string> {
  const names = new Map<string, string>(FIXED);
  for (const stage of architecture.stages) {
    const number = /^conv(\d+)$/.exec(stage.name)?.[1];
    if (!number) throw new Error(`stage ${stage.name} has no legacy name (expected conv<N>)`);
    if (stage.blocks > BLOCK_LETTERS.length) throw new Error(`stage ${stage.name} has more blocks than letters`);
    for (let block = 1; block <= stage.blocks; block++) {
      const current = `${stage.name}_block${block}`;
      const legacy = `${number}${BLOCK_LETTERS[block - 1]}`;
      for (const [index, branch] of Object.entries(BRANCHES)) {
        if (index === '0' && block !== 1) continue; // only a stage's first block has a shortcut conv
        names.set(`${current}_${index}_conv`, `res${legacy}_branch${branch}`);
        names.set(`${current}_${index}_bn`, `bn${legacy}_branch${branch}`);
      }
    }
  }
  return names;
}
