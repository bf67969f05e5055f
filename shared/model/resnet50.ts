/**
 * ResNet50 exactly as keras-applications builds it (`keras.applications.ResNet50(include_top=True)`,
 * the v1 "conv shortcut in the first block of each stage, stride in the 1×1 convs" variant):
 * same layer names, same weight shapes, 25,636,712 parameters. Keras weights therefore map
 * onto it by layer name (conv kernels HWIO, dense [in, out], BN gamma/beta/moving_mean/
 * moving_variance).
 *
 * Input: float NHWC [batch, 224, 224, 3], caffe-preprocessed (BGR minus ImageNet means, see
 * shared/caffe.ts). Output: [batch, 1000] softmax probabilities.
 *
 * This file is shared with the browser: it must not import anything from Node, and it takes
 * the tfjs namespace as a parameter so each side can pass its own tfjs build.
 */
import type * as tfjs from '@tensorflow/tfjs';

/** The tfjs namespace (`typeof import(...)` has no `default`, so any tfjs namespace fits). */
type Tf = typeof import('@tensorflow/tfjs');
type SymbolicTensor = tfjs.SymbolicTensor;

export const RESNET50_INPUT_SHAPE = [224, 224, 3] as const;
export const RESNET50_CLASSES = 1000;
/** Keras' own count (model.count_params()), trainable + BN moving statistics. */
export const RESNET50_PARAM_COUNT = 25_636_712;

/** Stage name, number of bottleneck blocks, bottleneck width (output is 4× that), first stride. */
interface Stage {
  name: string;
  blocks: number;
  filters: number;
  stride: number;
}

/** A ResNet of keras-applications' shape: stem, bottleneck stages, pooling, classifier. */
export interface ResNetArchitecture {
  name: string;
  stemFilters: number;
  stages: readonly Stage[];
}

export const RESNET50: ResNetArchitecture = {
  name: 'resnet50',
  stemFilters: 64,
  stages: [
    { name: 'conv2', blocks: 3, filters: 64, stride: 1 },
    { name: 'conv3', blocks: 4, filters: 128, stride: 2 },
    { name: 'conv4', blocks: 6, filters: 256, stride: 2 },
    { name: 'conv5', blocks: 3, filters: 512, stride: 2 },
  ],
};

/**
 * The same layer types, names and data path at a fraction of the cost (≈ 0.1 M parameters):
 * for tests that need a real model through a slow path, such as a browser on a software GPU.
 */
export const TINY_RESNET: ResNetArchitecture = {
  name: 'tiny-resnet',
  stemFilters: 16,
  stages: [
    { name: 'conv2', blocks: 1, filters: 8, stride: 1 },
    { name: 'conv3', blocks: 2, filters: 16, stride: 2 },
  ],
};

export const ARCHITECTURES = { resnet50: RESNET50, 'tiny-resnet': TINY_RESNET } as const;
export type ArchitectureName = keyof typeof ARCHITECTURES;

const BN_EPSILON = 1.001e-5;

export interface BuildOptions {
  /**
   * Initializer for conv/dense kernels at build time. Keras uses glorot_uniform; pass 'zeros'
   * when the weights are about to be overwritten anyway (loading, generation), which skips
   * drawing 25M random numbers. It only changes the `kernel_initializer` recorded in the topology,
   * which inference ignores.
   */
  kernelInitializer?: 'glorotUniform' | 'zeros';
}

export function buildResNet50(tf: Tf, options: BuildOptions = {}): tfjs.LayersModel {
  return buildResNet(tf, RESNET50, options);
}

export function buildResNet(tf: Tf, architecture: ResNetArchitecture, options: BuildOptions = {}): tfjs.LayersModel {
  const kernelInitializer = options.kernelInitializer ?? 'glorotUniform';
  const L = tf.layers;

  const conv = (
    x: SymbolicTensor,
    filters: number,
    kernelSize: number,
    strides: number,
    name: string,
    padding: 'valid' | 'same' = 'valid',
  ): SymbolicTensor =>
    L.conv2d({ filters, kernelSize, strides, padding, useBias: true, kernelInitializer, name }).apply(
      x,
    ) as SymbolicTensor;

  const bn = (x: SymbolicTensor, name: string): SymbolicTensor =>
    L.batchNormalization({ axis: 3, epsilon: BN_EPSILON, name }).apply(x) as SymbolicTensor;

  const relu = (x: SymbolicTensor, name: string): SymbolicTensor =>
    L.activation({ activation: 'relu', name }).apply(x) as SymbolicTensor;

  /** Keras `block1`: bottleneck residual block; `shortcutConv` only in a stage's first block. */
  const block = (
    x: SymbolicTensor,
    filters: number,
    stride: number,
    shortcutConv: boolean,
    name: string,
  ): SymbolicTensor => {
    let shortcut = x;
    if (shortcutConv) {
      shortcut = bn(conv(x, 4 * filters, 1, stride, `${name}_0_conv`), `${name}_0_bn`);
    }
    let y = relu(bn(conv(x, filters, 1, stride, `${name}_1_conv`), `${name}_1_bn`), `${name}_1_relu`);
    y = relu(bn(conv(y, filters, 3, 1, `${name}_2_conv`, 'same'), `${name}_2_bn`), `${name}_2_relu`);
    y = bn(conv(y, 4 * filters, 1, 1, `${name}_3_conv`), `${name}_3_bn`);
    // Keras adds [shortcut, x] in that order; the order only matters for names, not values.
    const sum = L.add({ name: `${name}_add` }).apply([shortcut, y]) as SymbolicTensor;
    return relu(sum, `${name}_out`);
  };

  const input = tf.input({ shape: [...RESNET50_INPUT_SHAPE], name: 'input_1', dtype: 'float32' });
  let x = L.zeroPadding2d({ padding: [[3, 3], [3, 3]], name: 'conv1_pad' }).apply(input) as SymbolicTensor;
  x = conv(x, architecture.stemFilters, 7, 2, 'conv1_conv');
  x = relu(bn(x, 'conv1_bn'), 'conv1_relu');
  x = L.zeroPadding2d({ padding: [[1, 1], [1, 1]], name: 'pool1_pad' }).apply(x) as SymbolicTensor;
  x = L.maxPooling2d({ poolSize: 3, strides: 2, name: 'pool1_pool' }).apply(x) as SymbolicTensor;

  for (const stage of architecture.stages) {
    x = block(x, stage.filters, stage.stride, true, `${stage.name}_block1`);
    for (let i = 2; i <= stage.blocks; i++) {
      x = block(x, stage.filters, 1, false, `${stage.name}_block${i}`);
    }
  }

  x = L.globalAveragePooling2d({ name: 'avg_pool' }).apply(x) as SymbolicTensor;
  const output = L.dense({
    units: RESNET50_CLASSES,
    activation: 'softmax',
    kernelInitializer,
    name: 'predictions',
  }).apply(x) as SymbolicTensor;

  return tf.model({ inputs: input, outputs: output, name: architecture.name });
}
