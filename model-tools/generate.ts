/**
 * Generates a deterministic UNTRAINED ResNet50 whose outputs are nonetheless well-behaved:
 * different photos get different, non-saturated predictions, and tiny input changes (a fraction
 * of one 8-bit level, e.g. a different JPEG decoder or resizer) barely move them. The service
 * can then be built, tested and benchmarked end to end without the real ImageNet weights.
 *
 * Why each step:
 *  - Random conv weights + BatchNorm statistics calibrated on the network's actual activations
 *    keep every layer at unit scale; without calibration the activations explode or vanish.
 *  - Plain random weights make a ResNet50 chaotic (a 0.2-level input change moved output
 *    probabilities by up to 0.19 in the measurements this design follows). Trained ResNets
 *    have small gammas in the last BN of each residual branch (`*_3_bn`); giving them
 *    0.05–0.2 makes each block a small perturbation of its shortcut, and such changes then
 *    move probabilities by well under 0.02 (≈0.002 on the photo fixtures).
 *  - The classifier is centred on the calibration features (bias = −mean·W) and scaled to a
 *    fixed logit spread; otherwise the feature offset shared by all images dominates the
 *    logits and every image gets the same top-1.
 *  - Calibration uses photo-like synthetic images (synthetic-images.ts), not noise, so the
 *    statistics match what the network will see. Making them photo-like in contrast and detail
 *    mattered: with flat, low-contrast images, real photos sat far outside the calibration
 *    distribution and got saturated (> 0.9) top-1 probabilities.
 *
 * Determinism: initial weights and calibration images come from prng.ts (exact integer/IEEE
 * arithmetic); the calibration forward passes run on the wasm backend (XNNPACK, single-threaded
 * under Node, fixed summation order); BN statistics and the classifier are computed in float64
 * JS. Same seed → byte-identical weights and the same weightsSha256 (pinned in the tests).
 *
 * Cost on 2 cores: ≈ 20–25 s, of which ≈ 15 s is the layer-by-layer pass over the calibration
 * images; the wasm heap peaks at ≈ 550 MB (and wasm memory is never returned to the OS, so
 * long-running processes may prefer to generate in a worker thread or child process).
 */
import type * as tfjs from '@tensorflow/tfjs';
import { loadTfjs } from '../lib/tfjs-runtime.ts';
import { toCaffeInput } from '../shared/caffe.ts';
import { ARCHITECTURES, buildResNet, RESNET50_CLASSES } from '../shared/model/resnet50.ts';
import type { ArchitectureName } from '../shared/model/resnet50.ts';
import { Prng } from './prng.ts';
import { DEFAULT_MODEL_DIR, writeModelStore, type ModelManifest } from '../model-store/store.ts';
import { generateSyntheticImages } from './synthetic-images.ts';

type Tf = typeof import('@tensorflow/tfjs');
type LayersModel = tfjs.LayersModel;
type Tensor = tfjs.Tensor;

export const GENERATOR = 'resnet-hub untrained-resnet50 v1';
export const DEFAULT_SEED = 20240229;
/** Number of synthetic images the BN statistics and the classifier are calibrated on. */
export const DEFAULT_CALIBRATION_IMAGES = 24;
/** Gammas of each residual branch's last BN (`*_3_bn`), uniform in this range. */
export const RESIDUAL_GAMMA_RANGE = [0.05, 0.2] as const;
/** Target standard deviation of the logits over calibration images and classes. */
export const LOGIT_STD = 2.5;

export type GenerateStage = 'weights' | 'calibration' | 'classifier' | 'saving';

export interface GenerateOptions {
  seed?: number;
  /** Default resnet50; tiny-resnet is for tests that need a cheap model on the same path. */
  architecture?: ArchitectureName;
  onProgress?: (stage: GenerateStage, done: number, total: number) => void;
  calibrationImages?: number;
}

/** Builds, initialises and calibrates the model, then writes it as a store at `dir`. */
export async function generateUntrainedModel(dir: string = DEFAULT_MODEL_DIR, options: GenerateOptions = {}): Promise<ModelManifest> {
  const seed = options.seed ?? DEFAULT_SEED;
  const tf = await loadTfjs('wasm');
  const model = await buildUntrainedModel(tf, options);
  try {
    return await writeModelStore(
      model,
      dir,
      {
        formatVersion: 1,
        name: options.architecture ?? 'resnet50',
        weights: 'untrained',
        source: { kind: 'generated', seed, generator: GENERATOR },
        createdAt: new Date().toISOString(),
        inputShape: [224, 224, 3],
        classes: 1000,
      },
      { onProgress: (done, total) => options.onProgress?.('saving', done, total) },
    );
  } finally {
    model.dispose();
  }
}

/** The generated model in memory (weights initialised and calibrated), on the current backend. */
export async function buildUntrainedModel(tf: Tf, options: GenerateOptions = {}): Promise<LayersModel> {
  const seed = options.seed ?? DEFAULT_SEED;
  const report = options.onProgress ?? (() => {});
  const model = buildResNet(tf, ARCHITECTURES[options.architecture ?? 'resnet50'], { kernelInitializer: 'zeros' });
  try {
    initialiseWeights(tf, model, seed, report);

    const count = options.calibrationImages ?? DEFAULT_CALIBRATION_IMAGES;
    const pixels = generateSyntheticImages(seed, count);
    const input = tf.tensor4d(toCaffeInput(pixels, count), [count, 224, 224, 3]);
    const features = await calibrateBatchNorm(tf, model, input, (done, total) => report('calibration', done, total));

    report('classifier', 0, 1);
    const [kernel, bias] = fitClassifier(features, count, seed);
    setLayerWeights(tf, model.getLayer('predictions'), [kernel, bias]);
    report('classifier', 1, 1);
    return model;
  } catch (error) {
    model.dispose();
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Initial weights

/**
 * Initial weights of one layer, from (seed, layer name) only. Conv kernels: He-normal-like
 * (std √(2/fan_in), Irwin–Hall approximation truncated at ±3.46σ); biases 0; BN gamma 1 (small
 * for `*_3_bn`), beta 0, moving mean 0, variance 1 (the statistics are calibrated afterwards).
 * Dense: zeros until the classifier is fitted.
 */
export function initialLayerWeights(seed: number, layerName: string, className: string, shapes: number[][]): Float32Array[] {
  const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
  const rng = Prng.derive(seed, layerName);
  switch (className) {
    case 'Conv2D': {
      const [kernelShape, biasShape] = shapes;
      const [kh, kw, cin] = kernelShape;
      const kernel = rng.fillNormal(new Float32Array(size(kernelShape)), Math.sqrt(2 / (kh * kw * cin)));
      return [kernel, new Float32Array(size(biasShape))];
    }
    case 'BatchNormalization': {
      const channels = size(shapes[0]);
      const gamma = new Float32Array(channels).fill(1);
      if (layerName.endsWith('_3_bn')) rng.fillUniform(gamma, RESIDUAL_GAMMA_RANGE[0], RESIDUAL_GAMMA_RANGE[1]);
      return [gamma, new Float32Array(channels), new Float32Array(channels), new Float32Array(channels).fill(1)];
    }
    case 'Dense':
      return shapes.map((s) => new Float32Array(size(s)));
    default:
      throw new Error(`no initialiser for layer ${layerName} (${className})`);
  }
}

/** Weight shapes are always fully known; the Shape type merely allows null (batch) dimensions. */
function concreteShape(shape: ReadonlyArray<number | null>): number[] {
  return shape.map((d) => {
    if (d === null) throw new Error('weight with an unknown dimension');
    return d;
  });
}

function setLayerWeights(tf: Tf, layer: tfjs.layers.Layer, values: Float32Array[]): void {
  const tensors = layer.weights.map((w, i) => tf.tensor(values[i], concreteShape(w.shape)));
  layer.setWeights(tensors); // copies into the layer's variables
  tf.dispose(tensors);
}

function initialiseWeights(tf: Tf, model: LayersModel, seed: number, report: NonNullable<GenerateOptions['onProgress']>): void {
  const layers = model.layers.filter((l) => l.weights.length > 0);
  layers.forEach((layer, i) => {
    const shapes = layer.weights.map((w) => concreteShape(w.shape));
    setLayerWeights(tf, layer, initialLayerWeights(seed, layer.name, layer.getClassName(), shapes));
    report('weights', i + 1, layers.length);
  });
}

// ---------------------------------------------------------------------------------------------
// BatchNorm calibration

/**
 * Runs the network layer by layer on `input`, in topological order. Before each BatchNorm runs,
 * its moving mean/variance are set to the per-channel statistics of its actual input (every
 * earlier BN already calibrated), so its output is exactly normalised on the calibration set.
 * Stops before the classifier and returns the pooled features [count, 2048] (row-major).
 * Disposes `input`.
 */
async function calibrateBatchNorm(
  tf: Tf,
  model: LayersModel,
  input: Tensor,
  report: (done: number, total: number) => void,
): Promise<Float32Array> {
  const layers = model.layers;
  // How many layers still need each layer's output, to free activations as soon as possible.
  const pending = new Map<string, number>();
  for (const layer of layers) {
    for (const inbound of layer.inboundNodes[0].inboundLayers) pending.set(inbound.name, (pending.get(inbound.name) ?? 0) + 1);
  }
  const activations = new Map<string, Tensor>();
  let features: Float32Array | undefined;

  try {
    for (let i = 0; i < layers.length; i++) {
      const layer = layers[i];
      const className = layer.getClassName();
      if (className === 'InputLayer') {
        activations.set(layer.name, input);
        continue;
      }
      if (layer.name === 'predictions') break;

      const inputs = layer.inboundNodes[0].inboundLayers.map((l) => {
        const t = activations.get(l.name);
        if (!t) throw new Error(`activation of ${l.name} missing before ${layer.name}`);
        return t;
      });

      if (className === 'BatchNormalization') {
        const [mean, variance] = (await channelMoments(inputs[0])).map((v) => tf.tensor1d(v));
        // Write the statistics straight into the moving_* variables (getWeights() would hand
        // back the live gamma/beta variables themselves, not copies).
        weightNamed(layer, 'moving_mean').write(mean);
        weightNamed(layer, 'moving_variance').write(variance);
        tf.dispose([mean, variance]);
      }

      const output = tf.tidy(() => layer.apply(inputs.length === 1 ? inputs[0] : inputs) as Tensor);
      activations.set(layer.name, output);

      for (const inbound of layer.inboundNodes[0].inboundLayers) {
        const left = (pending.get(inbound.name) ?? 0) - 1;
        pending.set(inbound.name, left);
        if (left === 0) {
          activations.get(inbound.name)?.dispose();
          activations.delete(inbound.name);
        }
      }
      if (layer.name === 'avg_pool') features = (await output.data()) as Float32Array;
      report(i + 1, layers.length - 1);
      // Let the event loop breathe (progress bars, signals) between layers.
      await new Promise((resolve) => setImmediate(resolve));
    }
  } finally {
    for (const t of activations.values()) t.dispose();
    input.dispose();
  }
  if (!features) throw new Error('calibration did not reach avg_pool');
  report(layers.length - 1, layers.length - 1);
  return features;
}

/**
 * Per-channel mean and population variance over batch, height and width of NHWC `x`, computed
 * in float64 JS on a copy of the data: unlike tf.moments it needs no full-size temporary
 * (x − mean)² inside the wasm heap (whose memory is never returned), it is exact to float64,
 * and on this machine it was also faster.
 */
async function channelMoments(x: Tensor): Promise<[mean: Float32Array, variance: Float32Array]> {
  const data = (await x.data()) as Float32Array;
  const channels = x.shape[x.shape.length - 1];
  const count = data.length / channels;
  const sum = new Float64Array(channels);
  for (let i = 0; i < data.length; i += channels) {
    for (let c = 0; c < channels; c++) sum[c] += data[i + c];
  }
  const mean = sum.map((v) => v / count);
  const squares = new Float64Array(channels);
  for (let i = 0; i < data.length; i += channels) {
    for (let c = 0; c < channels; c++) {
      const d = data[i + c] - mean[c];
      squares[c] += d * d;
    }
  }
  return [Float32Array.from(mean), Float32Array.from(squares, (v) => v / count)];
}

function weightNamed(layer: tfjs.layers.Layer, suffix: string): tfjs.LayerVariable {
  // originalName: `name` gets a uniquifying suffix when another model used the same names.
  const found = layer.weights.find((w) => w.originalName === `${layer.name}/${suffix}`);
  if (!found) throw new Error(`${layer.name} has no ${suffix} weight`);
  return found;
}

// ---------------------------------------------------------------------------------------------
// Classifier

/**
 * Random classifier W (standard normal), centred so the mean calibration feature gives logits 0
 * (bias = −mean·W) and scaled so the logits of the calibration images have standard deviation
 * LOGIT_STD over images and classes. Features are not whitened: on the photo fixtures that kept
 * top-1 probabilities lower and top-3 lists more distinct than dividing each feature by its
 * spread. In float64 JS, so the result does not depend on the backend.
 */
export function fitClassifier(features: Float32Array, count: number, seed: number): [kernel: Float32Array, bias: Float32Array] {
  const dims = features.length / count;
  const classes = RESNET50_CLASSES;
  const mean = new Float64Array(dims);
  for (let n = 0; n < count; n++) for (let d = 0; d < dims; d++) mean[d] += features[n * dims + d] / count;

  const rng = Prng.derive(seed, 'predictions/kernel');
  const w = new Float64Array(dims * classes); // [dims, classes], as Keras stores Dense kernels
  for (let i = 0; i < w.length; i++) w[i] = rng.normal();

  // Logits of the centred calibration features, to measure their spread.
  let sumSq = 0;
  const logits = new Float64Array(classes);
  for (let n = 0; n < count; n++) {
    logits.fill(0);
    for (let d = 0; d < dims; d++) {
      const v = features[n * dims + d] - mean[d];
      if (v === 0) continue;
      const row = d * classes;
      for (let c = 0; c < classes; c++) logits[c] += v * w[row + c];
    }
    for (let c = 0; c < classes; c++) sumSq += logits[c] * logits[c];
  }
  const scale = LOGIT_STD / Math.sqrt(sumSq / (count * classes) || 1);

  const kernel = new Float32Array(dims * classes);
  const bias = new Float64Array(classes);
  for (let d = 0; d < dims; d++) {
    const row = d * classes;
    for (let c = 0; c < classes; c++) {
      kernel[row + c] = w[row + c] * scale;
      bias[c] -= mean[d] * kernel[row + c]; // with the stored (float32) kernel value
    }
  }
  return [kernel, Float32Array.from(bias)];
}
