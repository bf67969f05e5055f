/**
 * The TF.js → ONNX exporter and the store's model.onnx lifecycle, on small models built from
 * the ResNet50 layer types (fast, and with the corner cases ResNet50 itself lacks).
 * Run: node --import tsx --test test/integration/onnx-export.test.ts   (≈ 30 s)
 */
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import type * as tfjs from '@tensorflow/tfjs';

import { createOnnxEngine } from '../../server/engines/onnx-engine.ts';
import { loadTfjs } from '../../lib/tfjs-runtime.ts';
import {
  ensureOnnxModel,
  exportOnnx,
  ONNX_OPSET,
  onnxIsCurrent,
  OnnxExportError,
} from '../../model-tools/onnx-export.ts';
import { ONNX_EXPORTER, ONNX_FILE, ONNX_SIDECAR, onnxStaleness } from '../../model-store/derived-files.ts';
import { Prng } from '../../model-tools/prng.ts';
import { ModelStoreError, writeModelStore, type ManifestInput } from '../../model-store/store.ts';
import { generateSyntheticImages } from '../../model-tools/synthetic-images.ts';
import { toCaffeInput } from '../../shared/caffe.ts';
import { meanAndStd } from '../../shared/stats.ts';

type Tf = typeof import('@tensorflow/tfjs');
type SymbolicTensor = tfjs.SymbolicTensor;

/** onnxruntime vs the tfjs cpu backend, on softmax probabilities. */
const TOLERANCE = 1e-5;

let tf: Tf;
const temps: string[] = [];

before(async () => {
  tf = await loadTfjs('cpu');
});

after(async () => {
  for (const dir of temps) await rm(dir, { recursive: true, force: true });
});

async function tempDir(label: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `resnet-hub-onnx-${label}-`));
  temps.push(dir);
  return dir;
}

// ---------------------------------------------------------------------------------------------

/**
 * A miniature ResNet made of the same layer classes, plus what ResNet50 does not exercise:
 * asymmetric 'same' padding (even kernel, stride 2), dilation, a conv without bias, a conv with
 * a fused activation, asymmetric ZeroPadding2D into a conv, a conv whose output is read twice
 * (its BN cannot be folded), standalone BNs, zero padding in front of a max-pool on values of
 * both signs (behind no-op layers), and 'same' max-pooling.
 */
function buildMiniResNet(inputShape: [number, number, number], classes: number): tfjs.LayersModel {
  const L = tf.layers;
  const apply = (layer: tfjs.layers.Layer, x: SymbolicTensor | SymbolicTensor[]): SymbolicTensor => layer.apply(x) as SymbolicTensor;
  const conv = (x: SymbolicTensor, filters: number, kernelSize: number, strides: number, name: string, extra: Partial<Parameters<Tf['layers']['conv2d']>[0]> = {}) =>
    apply(L.conv2d({ filters, kernelSize, strides, padding: 'valid', name, ...extra }), x);
  const bn = (x: SymbolicTensor, name: string) => apply(L.batchNormalization({ axis: 3, epsilon: 1.001e-5, name }), x);
  const relu = (x: SymbolicTensor, name: string) => apply(L.activation({ activation: 'relu', name }), x);

  const input = tf.input({ shape: inputShape, name: 'image', dtype: 'float32' });
  let x = apply(L.zeroPadding2d({ padding: [[3, 3], [3, 3]], name: 'stem_pad' }), input);
  x = relu(bn(conv(x, 8, 7, 2, 'stem_conv'), 'stem_bn'), 'stem_relu');
  x = apply(L.zeroPadding2d({ padding: [[1, 1], [1, 1]], name: 'pool1_pad' }), x);
  x = apply(L.maxPooling2d({ poolSize: 3, strides: 2, name: 'pool1_pool' }), x);

  // Bottleneck block with a conv shortcut, the stride in the 1×1 convs, as in ResNet50.
  const shortcut = bn(conv(x, 16, 1, 2, 'b1_0_conv'), 'b1_0_bn');
  let y = relu(bn(conv(x, 8, 1, 2, 'b1_1_conv'), 'b1_1_bn'), 'b1_1_relu');
  y = relu(bn(conv(y, 8, 3, 1, 'b1_2_conv', { padding: 'same' }), 'b1_2_bn'), 'b1_2_relu');
  y = bn(conv(y, 16, 1, 1, 'b1_3_conv'), 'b1_3_bn');
  x = relu(apply(L.add({ name: 'b1_add' }), [shortcut, y]), 'b1_out');

  // Identity block: even 'same' kernel (pads 1 top, 2 bottom), no bias, dilation 2.
  y = relu(bn(conv(x, 8, 4, 1, 'b2_1_conv', { padding: 'same', useBias: false }), 'b2_1_bn'), 'b2_1_relu');
  y = bn(conv(y, 16, 3, 1, 'b2_2_conv', { padding: 'same', dilationRate: 2 }), 'b2_2_bn');
  x = relu(apply(L.add({ name: 'b2_add' }), [x, y]), 'b2_out');

  // Strided 'same' with the odd pixel bottom/right, fused ReLU; asymmetric padding into a conv.
  x = conv(x, 16, 3, 2, 'down_conv', { padding: 'same', activation: 'relu' });
  x = apply(L.zeroPadding2d({ padding: [[0, 1], [1, 0]], name: 'asym_pad' }), x);
  x = conv(x, 16, 2, 1, 'asym_conv');

  // A conv read by its BN and by an Add: the BN stays a separate (Mul, Add).
  const c = conv(x, 16, 1, 1, 'shared_conv');
  x = apply(L.add({ name: 'shared_add' }), [c, bn(c, 'shared_bn')]);
  x = bn(x, 'free_bn');

  // Zero padding then max-pool where windows can be all negative: zeros must win there.
  // Layers that compute nothing in between must not hide the padding from the pool.
  x = apply(L.zeroPadding2d({ padding: [[1, 0], [1, 1]], name: 'signed_pad' }), x);
  x = apply(L.activation({ activation: 'linear', name: 'noop_linear' }), x);
  x = apply(L.dropout({ rate: 0.5, name: 'noop_dropout' }), x);
  x = apply(L.maxPooling2d({ poolSize: 2, strides: 1, name: 'signed_pool' }), x);
  x = apply(L.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'same_pool' }), x);

  x = apply(L.globalAveragePooling2d({ name: 'avg_pool' }), x);
  const output = apply(L.dense({ units: classes, activation: 'softmax', name: 'predictions' }), x);
  return tf.model({ inputs: input, outputs: output, name: 'mini_resnet' });
}

/**
 * Seeded random weights with non-trivial BN statistics, scaled so activations stay O(1) for
 * caffe inputs (±128) and the softmax is neither flat nor one-hot.
 */
function randomizeWeights(model: tfjs.LayersModel, seed: number): void {
  for (const layer of model.layers) {
    if (layer.weights.length === 0) continue;
    const rng = Prng.derive(seed, layer.name);
    const values = layer.weights.map((variable) => {
      const key = variable.originalName.slice(variable.originalName.lastIndexOf('/') + 1);
      const shape = variable.shape as number[];
      const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
      const fanIn = shape.slice(0, -1).reduce((a, b) => a * b, 1);
      switch (key) {
        case 'kernel': {
          // The stem sees raw caffe values (std ≈ 60); later layers see O(1) activations.
          const inputScale = layer.name === 'stem_conv' ? 64 : 1;
          rng.fillNormal(data, Math.sqrt(2 / fanIn) / inputScale * (layer.name === 'predictions' ? 4 : 1));
          break;
        }
        case 'bias':
        case 'beta':
          rng.fillUniform(data, -0.3, 0.3);
          break;
        case 'gamma':
          rng.fillUniform(data, 0.5, 1.5);
          break;
        case 'moving_mean':
          rng.fillUniform(data, -0.5, 0.5);
          break;
        case 'moving_variance':
          rng.fillUniform(data, 0.3, 3);
          break;
        default:
          throw new Error(`unexpected weight ${variable.originalName}`);
      }
      return tf.tensor(data, shape);
    });
    layer.setWeights(values);
    for (const v of values) v.dispose();
  }
}

/**
 * Rescales the Dense kernel so the logits have a standard deviation of about 2 on `input`:
 * random BN statistics leave the features' scale arbitrary, and a one-hot softmax would make
 * the comparison meaningless.
 */
function calibrateClassifier(model: tfjs.LayersModel, input: Float32Array, shape: [number, number, number, number]): void {
  const dense = model.getLayer('predictions');
  const features = tf.model({ inputs: model.inputs, outputs: model.getLayer('avg_pool').output as SymbolicTensor });
  const logits = tf.tidy(() => {
    const [kernel, bias] = dense.getWeights();
    return (features.predict(tf.tensor4d(input, shape)) as tfjs.Tensor).matMul(kernel).add(bias).dataSync();
  });
  const { std } = meanAndStd(logits);
  const [kernel, bias] = dense.getWeights();
  const scaled = [tf.mul(kernel, 2 / std), tf.mul(bias, 2 / std)];
  dense.setWeights(scaled);
  for (const t of scaled) t.dispose();
}

/** `count` caffe-preprocessed synthetic photos resized (nearest) to height × width. */
function caffeImages(count: number, height: number, width: number, seed: number): Float32Array {
  const full = toCaffeInput(generateSyntheticImages(seed, count), count);
  if (height === 224 && width === 224) return full;
  const out = new Float32Array(count * height * width * 3);
  for (let n = 0; n < count; n++) {
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const sy = Math.floor((y * 224) / height);
        const sx = Math.floor((x * 224) / width);
        for (let c = 0; c < 3; c++) out[((n * height + y) * width + x) * 3 + c] = full[((n * 224 + sy) * 224 + sx) * 3 + c];
      }
    }
  }
  return out;
}

function predictTfjs(model: tfjs.LayersModel, input: Float32Array, shape: [number, number, number, number]): Float32Array {
  return tf.tidy(() => (model.predict(tf.tensor4d(input, shape)) as tfjs.Tensor).dataSync() as Float32Array);
}

async function runOrt(
  file: string,
  input: Float32Array,
  shape: [number, number, number, number],
  level: 'disabled' | 'all',
): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(file, { graphOptimizationLevel: level, intraOpNumThreads: 1 });
  try {
    const out = await session.run({ input: new ort.Tensor('float32', input, shape) });
    return out.probabilities.data as Float32Array;
  } finally {
    await session.release();
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

function manifestInput(seed: number): ManifestInput {
  return {
    formatVersion: 1,
    name: 'resnet50',
    weights: 'untrained',
    source: { kind: 'generated', seed, generator: 'onnx-export test mini ResNet' },
    createdAt: new Date().toISOString(),
    inputShape: [224, 224, 3],
    classes: 1000,
  };
}

// ---------------------------------------------------------------------------------------------

describe('exportOnnx', () => {
  for (const { label, shape, classes } of [
    { label: '224×224 → 1000 classes', shape: [224, 224, 3] as [number, number, number], classes: 1000 },
    // Non-square and odd: a swapped H/W or a misplaced 'same' pixel cannot hide here.
    { label: '61×47 → 10 classes', shape: [61, 47, 3] as [number, number, number], classes: 10 },
  ]) {
    test(`onnxruntime matches tfjs on a mini ResNet (${label})`, async () => {
      const model = buildMiniResNet(shape, classes);
      randomizeWeights(model, 1234);
      const batch = 3;
      const input = caffeImages(batch, shape[0], shape[1], 99);
      const inputShape: [number, number, number, number] = [batch, ...shape];
      calibrateClassifier(model, input, inputShape);
      const dir = await tempDir('mini');
      const file = path.join(dir, ONNX_FILE);
      const result = await exportOnnx(model, file, { weightsSha256: 'f'.repeat(64) });
      assert.equal(result.bytes, (await stat(file)).size);

      const sidecar = JSON.parse(await readFile(`${file}.json`, 'utf8')) as Record<string, unknown>;
      assert.equal(sidecar.weightsSha256, 'f'.repeat(64));
      assert.equal(sidecar.exporter, ONNX_EXPORTER);
      assert.equal(sidecar.opset, ONNX_OPSET);
      assert.ok(!Number.isNaN(Date.parse(String(sidecar.createdAt))));
      assert.deepEqual((await readdir(dir)).sort(), [ONNX_FILE, `${ONNX_FILE}.json`], 'no temp files left behind');

      const expected = predictTfjs(model, input, inputShape);
      let peak = 0;
      for (let i = 0; i < batch; i++) peak = Math.max(peak, ...expected.subarray(i * classes, (i + 1) * classes));
      assert.ok(peak > 3 / classes && peak < 0.99, `softmax should be neither flat nor one-hot (peak ${peak})`);

      // Unoptimised too: onnxruntime's graph rewrites must not be what makes (or breaks) parity.
      for (const level of ['all', 'disabled'] as const) {
        const actual = await runOrt(file, input, inputShape, level);
        const diff = maxAbsDiff(expected, actual);
        console.log(`${label}, optimisation '${level}': max |onnxruntime − tfjs| = ${diff.toExponential(2)}`);
        assert.ok(diff <= TOLERANCE, `max abs difference ${diff} > ${TOLERANCE} (optimisation ${level})`);
      }
      model.dispose();
    });
  }

  test('an unsupported layer is refused with its name and class, and nothing is written', async () => {
    const input = tf.input({ shape: [8, 8, 3], name: 'image' });
    let x = tf.layers.conv2d({ filters: 4, kernelSize: 3, name: 'conv' }).apply(input) as SymbolicTensor;
    x = tf.layers.upSampling2d({ size: [2, 2], name: 'upsample' }).apply(x) as SymbolicTensor;
    x = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(x) as SymbolicTensor;
    const output = tf.layers.dense({ units: 3, activation: 'softmax', name: 'dense' }).apply(x) as SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: output });
    const dir = await tempDir('unsupported');
    const file = path.join(dir, ONNX_FILE);
    await assert.rejects(exportOnnx(model, file, { weightsSha256: '0'.repeat(64) }), (error: unknown) => {
      assert.ok(error instanceof OnnxExportError);
      assert.equal(error.layer, 'upsample');
      assert.match(error.message, /layer 'upsample'.*UpSampling2D/);
      return true;
    });
    assert.deepEqual(await readdir(dir), []);

    // An unsupported option of a supported class is refused just as clearly.
    const input2 = tf.input({ shape: [8, 8, 3] });
    const elu = tf.layers.conv2d({ filters: 4, kernelSize: 3, activation: 'elu', name: 'elu_conv' }).apply(input2) as SymbolicTensor;
    const flat = tf.layers.flatten({ name: 'flat' }).apply(elu) as SymbolicTensor;
    const model2 = tf.model({ inputs: input2, outputs: flat });
    await assert.rejects(exportOnnx(model2, file, { weightsSha256: '0'.repeat(64) }), /layer 'elu_conv'.*activation 'elu'/);
    model.dispose();
    model2.dispose();
  });
});

describe('the store’s model.onnx (ensureOnnxModel)', () => {
  const batch = 2;
  const input = new Uint8Array(generateSyntheticImages(5, batch));
  let model: tfjs.LayersModel;
  let dirA: string;
  let dirB: string;
  let expectedA: Float32Array;
  let expectedB: Float32Array;

  before(async () => {
    model = buildMiniResNet([224, 224, 3], 1000);
    const caffe = toCaffeInput(input, batch);
    randomizeWeights(model, 1);
    calibrateClassifier(model, caffe, [batch, 224, 224, 3]);
    expectedA = predictTfjs(model, caffe, [batch, 224, 224, 3]);
    dirA = path.join(await tempDir('store'), 'a');
    await writeModelStore(model, dirA, manifestInput(1));
    randomizeWeights(model, 2);
    calibrateClassifier(model, caffe, [batch, 224, 224, 3]);
    expectedB = predictTfjs(model, caffe, [batch, 224, 224, 3]);
    dirB = path.join(await tempDir('store'), 'b');
    await writeModelStore(model, dirB, manifestInput(2));
    assert.ok(maxAbsDiff(expectedA, expectedB) > 1e-3, 'the two weight sets must be distinguishable');
  });

  after(() => model.dispose());

  async function engineOutput(dir: string): Promise<Float32Array> {
    const engine = await createOnnxEngine({ modelDir: dir, threads: 1 });
    try {
      return await engine.infer(input, batch);
    } finally {
      engine.dispose();
    }
  }

  test('exports when missing, then reuses the current file untouched', async () => {
    assert.equal(await onnxIsCurrent(dirA), false);
    await assert.rejects(createOnnxEngine({ modelDir: dirA, threads: 1 }), /model\.onnx is missing.*run ensureOnnxModel first/);

    const first = await ensureOnnxModel(dirA);
    assert.equal(first.exported, true);
    assert.equal(first.path, path.join(dirA, ONNX_FILE));
    assert.equal(await onnxIsCurrent(dirA), true);
    const mtime = (await stat(first.path)).mtimeMs;

    const second = await ensureOnnxModel(dirA);
    assert.equal(second.exported, false);
    assert.equal((await stat(first.path)).mtimeMs, mtime, 'an unchanged store is not re-exported');

    const diff = maxAbsDiff(expectedA, await engineOutput(dirA));
    console.log(`store A through the onnx engine: max |onnxruntime − tfjs| = ${diff.toExponential(2)}`);
    assert.ok(diff <= TOLERANCE, `max abs difference ${diff}`);
  });

  test('an ONNX file made from other weights (manifest hash changed) is re-exported', async () => {
    await ensureOnnxModel(dirA);
    // Store B's manifest has another weightsSha256 than the sidecar copied from A.
    await copyFile(path.join(dirA, ONNX_FILE), path.join(dirB, ONNX_FILE));
    await copyFile(path.join(dirA, ONNX_SIDECAR), path.join(dirB, ONNX_SIDECAR));
    assert.match((await onnxStaleness(dirB)) ?? '', /exported from other weights/);
    await assert.rejects(createOnnxEngine({ modelDir: dirB, threads: 1 }), /other weights.*run ensureOnnxModel first/);

    const result = await ensureOnnxModel(dirB);
    assert.equal(result.exported, true);
    assert.equal(await onnxIsCurrent(dirB), true);
    const output = await engineOutput(dirB);
    assert.ok(maxAbsDiff(expectedB, output) <= TOLERANCE, 'the re-exported file has the new weights');
    assert.ok(maxAbsDiff(expectedA, output) > 1e-3);
  });

  test('another exporter version, a missing sidecar or a replaced file also make it stale', async () => {
    await ensureOnnxModel(dirA);
    const sidecarFile = path.join(dirA, ONNX_SIDECAR);
    const sidecar = JSON.parse(await readFile(sidecarFile, 'utf8')) as Record<string, unknown>;

    await writeFile(sidecarFile, JSON.stringify({ ...sidecar, exporter: 'resnet-hub onnx-export v0' }));
    assert.match((await onnxStaleness(dirA)) ?? '', /made by 'resnet-hub onnx-export v0'/);
    assert.equal((await ensureOnnxModel(dirA)).exported, true);

    await rm(sidecarFile);
    assert.equal(await onnxIsCurrent(dirA), false);
    assert.equal((await ensureOnnxModel(dirA)).exported, true);

    const file = path.join(dirA, ONNX_FILE);
    await truncate(file, (await stat(file)).size - 1000);
    assert.match((await onnxStaleness(dirA)) ?? '', /bytes, its sidecar says/);
    assert.equal((await ensureOnnxModel(dirA)).exported, true);

    await rm(file);
    assert.equal(await onnxIsCurrent(dirA), false);
    assert.equal((await ensureOnnxModel(dirA)).exported, true);
    assert.equal((await ensureOnnxModel(dirA)).exported, false);
    assert.ok(maxAbsDiff(expectedA, await engineOutput(dirA)) <= TOLERANCE);
  });

  test('concurrent calls share one export; a folder without a store is an error', async () => {
    await rm(path.join(dirA, ONNX_SIDECAR));
    const [a, b] = await Promise.all([ensureOnnxModel(dirA), ensureOnnxModel(dirA)]);
    assert.equal(a, b);
    assert.equal(a.exported, true);

    const empty = await tempDir('empty');
    await assert.rejects(ensureOnnxModel(empty), ModelStoreError);
    assert.equal(await onnxIsCurrent(empty), false);
  });
});
