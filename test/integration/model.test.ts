/**
 * The ResNet50 definition, caffe preprocessing, the untrained-model generator and the model
 * store it writes (atomic writes: model-store.test.ts; the tfjs backends: tfjs-runtime.test.ts).
 * Run: node --import tsx --test test/integration/model.test.ts   (≈ 1 min: one full generation on wasm)
 */
import { REPO_ROOT } from '../../kit/paths.ts';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cp, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import type * as tfjs from '@tensorflow/tfjs';

import { CAFFE_MEAN_BGR, INPUT_SIZE, toCaffeInput } from '../../shared/caffe.ts';
import { buildResNet50, RESNET50_PARAM_COUNT } from '../../shared/model/resnet50.ts';
import { loadTfjs } from '../../lib/tfjs-runtime.ts';
import { DEFAULT_SEED, generateUntrainedModel, initialLayerWeights, type GenerateStage } from '../../model-tools/generate.ts';
import { Prng } from '../../model-tools/prng.ts';
import {
  loadLayersModelFromStore,
  ModelStoreError,
  readManifest,
  SHARD_BYTES,
  weightsSha256,
  type ModelManifest,
} from '../../model-store/store.ts';
import { generateSyntheticImages } from '../../model-tools/synthetic-images.ts';
import { meanAndStd } from '../../shared/stats.ts';

type Tf = typeof import('@tensorflow/tfjs');

const repoRoot = REPO_ROOT;
const photosDir = path.join(repoRoot, 'test/fixtures/photos');

/**
 * SHA-256 of the weights generated with the default seed. Pinned so that a change in the
 * generator, or a machine where the wasm kernels round differently, is noticed. If you change
 * the generator on purpose, update it (and say so: existing stores will no longer match).
 */
const DEFAULT_SEED_WEIGHTS_SHA256 = '460a7f1a917deb80618fc80851c7dbdc390c15714e9a9cfb4f9acd78911fdd52';

let tf: Tf;
before(async () => {
  tf = await loadTfjs('wasm');
});

async function tempDir(label: string): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), `resnet-hub-${label}-`));
}

function argsortDesc(values: ArrayLike<number>): number[] {
  return Array.from({ length: values.length }, (_, i) => i).sort((a, b) => values[b] - values[a]);
}

// ---------------------------------------------------------------------------------------------

/** Keras ResNet50 layer names, spelled out from keras-applications' resnet.py. */
function kerasResNet50LayerNames(): string[] {
  const names = ['input_1', 'conv1_pad', 'conv1_conv', 'conv1_bn', 'conv1_relu', 'pool1_pad', 'pool1_pool'];
  const stages: Array<[number, number]> = [[2, 3], [3, 4], [4, 6], [5, 3]];
  for (const [stage, blocks] of stages) {
    for (let b = 1; b <= blocks; b++) {
      const p = `conv${stage}_block${b}`;
      if (b === 1) names.push(`${p}_0_conv`, `${p}_0_bn`);
      for (const i of [1, 2]) names.push(`${p}_${i}_conv`, `${p}_${i}_bn`, `${p}_${i}_relu`);
      names.push(`${p}_3_conv`, `${p}_3_bn`, `${p}_add`, `${p}_out`);
    }
  }
  names.push('avg_pool', 'predictions');
  return names;
}

describe('ResNet50 definition', () => {
  let model: tfjs.LayersModel;
  before(() => {
    model = buildResNet50(tf, { kernelInitializer: 'zeros' });
  });
  after(() => model.dispose());

  test('has Keras ResNet50 parameter count and layer names', () => {
    assert.equal(model.countParams(), 25_636_712);
    assert.equal(RESNET50_PARAM_COUNT, 25_636_712);
    const expected = kerasResNet50LayerNames();
    assert.equal(model.layers.length, 177);
    assert.deepEqual(model.layers.map((l) => l.name).sort(), [...expected].sort());
  });

  test('weights have Keras names, shapes and order', () => {
    const shapes = (name: string) => model.getLayer(name).weights.map((w) => [w.originalName, w.shape]);
    assert.deepEqual(shapes('conv1_conv'), [['conv1_conv/kernel', [7, 7, 3, 64]], ['conv1_conv/bias', [64]]]);
    assert.deepEqual(shapes('conv2_block1_0_conv'), [['conv2_block1_0_conv/kernel', [1, 1, 64, 256]], ['conv2_block1_0_conv/bias', [256]]]);
    assert.deepEqual(shapes('conv4_block3_2_conv')[0], ['conv4_block3_2_conv/kernel', [3, 3, 256, 256]]);
    assert.deepEqual(shapes('conv5_block1_0_conv')[0], ['conv5_block1_0_conv/kernel', [1, 1, 1024, 2048]]);
    assert.deepEqual(
      shapes('conv3_block2_3_bn').map(([n]) => n),
      ['gamma', 'beta', 'moving_mean', 'moving_variance'].map((w) => `conv3_block2_3_bn/${w}`),
    );
    assert.deepEqual(shapes('predictions'), [['predictions/kernel', [2048, 1000]], ['predictions/bias', [1000]]]);
    for (const layer of model.layers) {
      const config = layer.getConfig();
      if (layer.getClassName() === 'Conv2D') assert.equal(config.useBias, true, `${layer.name} has a bias`);
      if (layer.getClassName() === 'BatchNormalization') {
        assert.equal(config.axis, 3, layer.name);
        assert.equal(config.epsilon, 1.001e-5, layer.name);
      }
    }
    assert.equal(model.getLayer('predictions').getConfig().activation, 'softmax');
  });

  test('strides sit in the first 1×1 convs of stages 3–5 (output shapes 112/56/28/14/7)', () => {
    const shape = (name: string) => model.getLayer(name).outputShape;
    assert.deepEqual(shape('conv1_relu'), [null, 112, 112, 64]);
    assert.deepEqual(shape('pool1_pool'), [null, 56, 56, 64]);
    assert.deepEqual(shape('conv2_block3_out'), [null, 56, 56, 256]);
    assert.deepEqual(shape('conv3_block1_1_conv'), [null, 28, 28, 128]);
    assert.deepEqual(shape('conv3_block4_out'), [null, 28, 28, 512]);
    assert.deepEqual(shape('conv4_block6_out'), [null, 14, 14, 1024]);
    assert.deepEqual(shape('conv5_block3_out'), [null, 7, 7, 2048]);
    assert.deepEqual(shape('avg_pool'), [null, 2048]);
    assert.deepEqual(shape('predictions'), [null, 1000]);
    const strides = (name: string) => model.getLayer(name).getConfig().strides;
    assert.deepEqual(strides('conv2_block1_1_conv'), [1, 1]);
    for (const stage of [3, 4, 5]) {
      assert.deepEqual(strides(`conv${stage}_block1_0_conv`), [2, 2]);
      assert.deepEqual(strides(`conv${stage}_block1_1_conv`), [2, 2]);
      assert.deepEqual(strides(`conv${stage}_block1_2_conv`), [1, 1]);
    }
    // Add takes [shortcut, residual] like Keras.
    const inbound = (name: string) => model.getLayer(name).inboundNodes[0].inboundLayers.map((l) => l.name);
    assert.deepEqual(inbound('conv2_block1_add'), ['conv2_block1_0_bn', 'conv2_block1_3_bn']);
    assert.deepEqual(inbound('conv4_block2_add'), ['conv4_block1_out', 'conv4_block2_3_bn']);
  });
});

describe('caffe preprocessing', () => {
  test('RGB uint8 → BGR float minus ImageNet means', () => {
    const rgb = new Uint8Array(2 * INPUT_SIZE * INPUT_SIZE * 3);
    rgb.set([10, 20, 30], 0);
    rgb.set([255, 0, 128], rgb.length - 3);
    const out = toCaffeInput(rgb, 2);
    assert.equal(out.length, rgb.length);
    const [mb, mg, mr] = CAFFE_MEAN_BGR;
    assert.deepEqual(Array.from(out.subarray(0, 3)), [30 - mb, 20 - mg, 10 - mr].map(Math.fround));
    assert.deepEqual(Array.from(out.subarray(out.length - 3)), [128 - mb, 0 - mg, 255 - mr].map(Math.fround));
    assert.throws(() => toCaffeInput(rgb, 3), RangeError);
  });
});

// ---------------------------------------------------------------------------------------------

describe('deterministic generator pieces', () => {
  test('PRNG and weight init are seeded, stable across runs and machines', () => {
    const r = new Prng(42);
    assert.deepEqual([r.nextUint32(), r.nextUint32(), r.nextUint32()], [1028872839, 2516511472, 400437680]);

    const shapes = [[3, 3, 256, 256], [256]];
    const [a] = initialLayerWeights(DEFAULT_SEED, 'conv4_block3_2_conv', 'Conv2D', shapes);
    const [b] = initialLayerWeights(DEFAULT_SEED, 'conv4_block3_2_conv', 'Conv2D', shapes);
    const [other] = initialLayerWeights(DEFAULT_SEED + 1, 'conv4_block3_2_conv', 'Conv2D', shapes);
    const [otherLayer] = initialLayerWeights(DEFAULT_SEED, 'conv4_block4_2_conv', 'Conv2D', shapes);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a.subarray(0, 16), other.subarray(0, 16));
    assert.notDeepEqual(a.subarray(0, 16), otherLayer.subarray(0, 16));
    assert.equal(createHash('sha256').update(a).digest('hex'), '7c7d6134d7a8a6daabdb1bde360db992e6c0b9dad9aa4edd8b78e55bf12b852e');

    // He-normal-like: mean 0, std √(2/fan_in).
    const { mean, std } = meanAndStd(a);
    assert.ok(Math.abs(mean) < 0.001);
    assert.ok(Math.abs(std / Math.sqrt(2 / (3 * 3 * 256)) - 1) < 0.01, `std ${std}`);

    const [gamma] = initialLayerWeights(DEFAULT_SEED, 'conv2_block1_3_bn', 'BatchNormalization', [[256], [256], [256], [256]]);
    assert.ok(gamma.every((g) => g >= 0.05 && g <= 0.2), 'residual-branch gammas are small');
  });

  test('synthetic calibration images are seeded and photo-like, not white noise', () => {
    const images = generateSyntheticImages(DEFAULT_SEED, 4);
    assert.deepEqual(images, generateSyntheticImages(DEFAULT_SEED, 4));
    assert.equal(createHash('sha256').update(images).digest('hex'), '36c0c7dadef573c6c11f82c1e1e2f3d73a19f4d4f308fb2eb3c71cf073953dbf');
    // Neighbouring pixels of photos are strongly correlated; of white noise, not at all.
    const size = INPUT_SIZE;
    for (let i = 0; i < 4; i++) {
      const img = images.subarray(i * size * size * 3, (i + 1) * size * size * 3);
      let sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0, n = 0;
      for (let y = 0; y < size; y++) {
        for (let x = 0; x + 1 < size; x++) {
          const p = img[(y * size + x) * 3 + 1];
          const q = img[(y * size + x + 1) * 3 + 1];
          sx += p; sy += q; sxx += p * p; syy += q * q; sxy += p * q; n++;
        }
      }
      const corr = (sxy / n - (sx / n) * (sy / n)) / Math.sqrt((sxx / n - (sx / n) ** 2) * (syy / n - (sy / n) ** 2));
      assert.ok(corr > 0.8, `image ${i}: neighbour correlation ${corr.toFixed(3)}`);
    }
  });
});

// ---------------------------------------------------------------------------------------------

async function loadPhotos(): Promise<{ names: string[]; pixels: Uint8Array }> {
  const names = (await readdir(photosDir)).filter((f) => f.endsWith('.jpg')).sort();
  const perImage = INPUT_SIZE * INPUT_SIZE * 3;
  const pixels = new Uint8Array(names.length * perImage);
  for (const [i, name] of names.entries()) {
    const data = await sharp(path.join(photosDir, name))
      .toColourspace('srgb')
      .removeAlpha()
      .resize(INPUT_SIZE, INPUT_SIZE, { fit: 'fill', kernel: 'cubic' })
      .raw()
      .toBuffer();
    assert.equal(data.length, perImage, name);
    pixels.set(data, i * perImage);
  }
  return { names, pixels };
}

function predict(model: tfjs.LayersModel, input: Float32Array, batch: number): number[][] {
  return tf.tidy(() => (model.predict(tf.tensor4d(input, [batch, INPUT_SIZE, INPUT_SIZE, 3])) as tfjs.Tensor).arraySync() as number[][]);
}

describe('untrained model generation and store', () => {
  let dir: string;
  let manifest: ModelManifest;
  let model: tfjs.LayersModel;
  const stages: Array<[GenerateStage, number, number]> = [];
  let generationMs = 0;

  before(async () => {
    dir = path.join(await tempDir('gen'), 'resnet50');
    const started = performance.now();
    manifest = await generateUntrainedModel(dir, { seed: DEFAULT_SEED, onProgress: (s, d, t) => stages.push([s, d, t]) });
    generationMs = performance.now() - started;
    model = await loadLayersModelFromStore(tf, dir);
  });
  after(async () => {
    model?.dispose();
    await rm(path.dirname(dir), { recursive: true, force: true });
  });

  test('manifest: untrained, generated with the seed, hash of the shards', async (t) => {
    t.diagnostic(`generation took ${(generationMs / 1000).toFixed(1)} s`);
    assert.equal(manifest.weights, 'untrained');
    assert.deepEqual(manifest.source, { kind: 'generated', seed: DEFAULT_SEED, generator: manifest.source.kind === 'generated' ? manifest.source.generator : '' });
    assert.deepEqual(await readManifest(dir), manifest);

    const modelJson = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8'));
    assert.equal(modelJson.format, 'layers-model');
    // Keras-style weight names, without the suffixes tfjs adds to variables of a second model
    // built in the same process (this process built one in the architecture tests).
    const weightNames: string[] = modelJson.weightsManifest[0].weights.map((w: { name: string }) => w.name);
    assert.equal(weightNames.length, 320);
    assert.equal(weightNames[0], 'conv1_conv/kernel');
    for (const name of weightNames) assert.match(name, /^[a-z0-9_]+\/(kernel|bias|gamma|beta|moving_mean|moving_variance)$/);
    const paths: string[] = modelJson.weightsManifest[0].paths;
    assert.equal(paths.length, 25);
    const shards = await Promise.all(paths.map((p) => readFile(path.join(dir, p))));
    paths.forEach((p, i) => assert.equal(p, `group1-shard${i + 1}of25.bin`));
    shards.slice(0, -1).forEach((s) => assert.equal(s.length, SHARD_BYTES));
    assert.equal(shards.reduce((n, s) => n + s.length, 0), RESNET50_PARAM_COUNT * 4);
    const hash = createHash('sha256');
    shards.forEach((s) => hash.update(s));
    assert.equal(hash.digest('hex'), manifest.weightsSha256);
  });

  test('progress reports every stage, in order, to completion', () => {
    const order = [...new Set(stages.map(([s]) => s))];
    assert.deepEqual(order, ['weights', 'calibration', 'classifier', 'saving']);
    for (const stage of order) {
      const last = stages.filter(([s]) => s === stage).at(-1)!;
      assert.equal(last[1], last[2], `${stage} reaches its total`);
    }
  });

  test('same seed gives the same weights (pinned hash), and the store round-trips', async () => {
    assert.equal(
      manifest.weightsSha256,
      DEFAULT_SEED_WEIGHTS_SHA256,
      'generation is not deterministic (or the generator changed: then update DEFAULT_SEED_WEIGHTS_SHA256)',
    );
    // Loaded weights are byte-identical to the stored ones.
    assert.equal(await weightsSha256(model), manifest.weightsSha256);
    const modelJson = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8'));
    const first = await readFile(path.join(dir, modelJson.weightsManifest[0].paths[0]));
    const kernel = model.getLayer('conv1_conv').getWeights()[0].dataSync();
    assert.deepEqual(new Float32Array(first.buffer, first.byteOffset, kernel.length), kernel);
  });

  test('a browser can load the store over HTTP with tf.loadLayersModel', async () => {
    const http = await import('node:http');
    const server = http.createServer(async (req, res) => {
      try {
        res.end(await readFile(path.join(dir, path.basename(req.url ?? ''))));
      } catch {
        res.statusCode = 404;
        res.end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as import('node:net').AddressInfo;
      const viaHttp = await tf.loadLayersModel(`http://127.0.0.1:${port}/model.json`);
      try {
        assert.equal(await weightsSha256(viaHttp), manifest.weightsSha256);
      } finally {
        viaHttp.dispose();
      }
    } finally {
      server.close();
    }
  });

  test('photos get varied, unsaturated predictions, stable under a 0.2-level perturbation', async (t) => {
    const { names, pixels } = await loadPhotos();
    assert.ok(names.length >= 4, 'photo fixtures present');
    const input = toCaffeInput(pixels, names.length);
    const probs = predict(model, input, names.length);

    const top3 = probs.map((p) => argsortDesc(p).slice(0, 3));
    names.forEach((name, i) => {
      const sum = probs[i].reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(sum - 1) < 1e-3, `${name}: probabilities sum to ${sum}`);
      const top1 = probs[i][top3[i][0]];
      t.diagnostic(`${name}: top-3 ${top3[i].map((c) => `${c}:${probs[i][c].toFixed(3)}`).join(' ')}`);
      assert.ok(top1 < 0.9, `${name}: top-1 probability ${top1.toFixed(3)} ≥ 0.9`);
      assert.ok(top1 > 0.005, `${name}: top-1 probability ${top1.toFixed(4)} is flat`);
    });
    for (let i = 0; i < names.length; i++) {
      for (let j = i + 1; j < names.length; j++) {
        assert.notDeepEqual([...top3[i]].sort(), [...top3[j]].sort(), `${names[i]} and ${names[j]} share their top-3 set`);
      }
    }

    // Perturb every input value by up to 0.2 of one 8-bit level (what different JPEG decoders
    // or resizers differ by): no probability may move by more than 0.02.
    const rng = new Prng(1234);
    const perturbed = input.map((v) => v + rng.range(-0.2, 0.2));
    const moved = predict(model, perturbed, names.length);
    let worst = 0;
    probs.forEach((p, i) => p.forEach((v, c) => (worst = Math.max(worst, Math.abs(v - moved[i][c])))));
    t.diagnostic(`largest probability change under ±0.2 perturbation: ${worst.toFixed(4)}`);
    assert.ok(worst > 0, 'the perturbation reached the model');
    assert.ok(worst <= 0.02, `a probability moved by ${worst.toFixed(4)}`);
  });

  test('corrupt stores are refused with clear errors', async () => {
    const copy = path.join(await tempDir('corrupt'), 'resnet50');
    try {
      await cp(dir, copy, { recursive: true });
      const shard = path.join(copy, 'group1-shard3of25.bin');
      const bytes = await readFile(shard);
      bytes[1000] ^= 0xff;
      await writeFile(shard, bytes);
      await assert.rejects(loadLayersModelFromStore(tf, copy), (e: unknown) => e instanceof ModelStoreError && /SHA-256/.test(e.message));

      await truncate(shard, 100);
      await assert.rejects(loadLayersModelFromStore(tf, copy), (e: unknown) => e instanceof ModelStoreError && /truncated/.test(e.message));

      await writeFile(path.join(copy, 'manifest.json'), '{"formatVersion": 1, "name": "resnet50"');
      await assert.rejects(readManifest(copy), (e: unknown) => e instanceof ModelStoreError && /not valid JSON/.test(e.message));
      await writeFile(path.join(copy, 'manifest.json'), JSON.stringify({ ...manifest, weights: 'pretty-good' }));
      await assert.rejects(readManifest(copy), (e: unknown) => e instanceof ModelStoreError && /weights/.test(e.message));

      assert.equal(await readManifest(path.join(copy, 'absent')), null);
    } finally {
      await rm(path.dirname(copy), { recursive: true, force: true });
    }
  });
});
