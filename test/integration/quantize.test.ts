/**
 * The int8 quantizer: its passes one by one, then the fidelity of the whole on real models
 * (the generated test ResNet50, and another ResNet50 imported from a Keras .h5), staleness,
 * and a real hub serving int8.
 * Run: node --import tsx --test test/integration/quantize.test.ts   (≈ 3 min)
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-node';

import { loadTfjs } from '../../lib/tfjs-runtime.ts';
import { importKerasWeightsInWorker } from '../../model-tools/keras/import-weights.ts';
import { foldBatchNorm } from '../../model-tools/onnx/fold-batch-norm.ts';
import { attrInt, attrInts, DataType, type Model } from '../../model-tools/onnx/ir.ts';
import { decodeModel, encodeModel } from '../../model-tools/onnx/protobuf.ts';
import type { FidelityReport } from '../../model-store/fidelity-schema.ts';
import { ensureInt8Model, int8Key } from '../../model-tools/onnx/quantize/int8-model.ts';
import { INT8_FILE, int8Staleness } from '../../model-store/derived-files.ts';
import { quantizeQdq } from '../../model-tools/onnx/quantize/qdq.ts';
import { activationParams, quantizeBias, quantizeWeightsPerChannel, roundHalfEven } from '../../model-tools/onnx/quantize/quant-params.ts';
import { DEFAULT_QUANTIZATION } from '../../model-tools/onnx/quantize/quantize.ts';
import { RangeHistogram } from '../../model-tools/onnx/quantize/range-histogram.ts';
import { ensureOnnxModel } from '../../model-tools/onnx-export.ts';
import { loadLayersModelFromStore, readManifest } from '../../model-store/store.ts';
import type { ClassifyReply } from '../../shared/protocol/classify.ts';
import type { StatusReport } from '../../shared/protocol/status.ts';
import { launchHub } from '../../kit/hub-process.ts';
import { kerasLayersOf, writeKerasH5 } from '../support/keras-h5.ts';
import { PHOTOS_DIR, REPO_ROOT, TEST_MODEL_DIR, TINY_MODEL_DIR } from '../../kit/paths.ts';

const execFileAsync = promisify(execFile);
const temps: string[] = [];

after(async () => {
  for (const dir of temps) await rm(dir, { recursive: true, force: true });
});

async function tempDir(label: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `resnet-hub-int8-${label}-`));
  temps.push(dir);
  return dir;
}

/** A private copy of a store (weights and manifest, plus model.onnx if current there). */
async function copyStore(from: string, label: string, keepInt8 = false): Promise<string> {
  const dir = path.join(await tempDir(label), 'store');
  await mkdir(dir);
  for (const name of await readdir(from)) {
    if (name.startsWith('model.int8') && !keepInt8) continue;
    await copyFile(path.join(from, name), path.join(dir, name));
  }
  return dir;
}

/** The bar the issue sets: pooled features ≥ 25 dB, and int8's top-1 in fp32's top 5 on every held-apart image. */
function assertFidelity(report: FidelityReport, label: string): void {
  console.log(
    `${label}: pooled ${report.pooled_sqnr_db} dB, logits ${report.logits_sqnr_db} dB, top-1 agreement ${report.top1_agreement}, ` +
      `ranks ${report.images.map((i) => i.int8_top1_rank_in_fp32).join(',')}, max |Δp| ${report.max_probability_diff}`,
  );
  assert.ok(report.held_apart_images >= 10, 'measured on at least 10 held-apart images');
  assert.ok(report.pooled_sqnr_db >= 25, `pooled-feature SQNR ${report.pooled_sqnr_db} dB < 25 dB`);
  for (const image of report.images) {
    assert.ok(image.int8_top1_rank_in_fp32 <= 5, `${image.name}: int8 top-1 is fp32's #${image.int8_top1_rank_in_fp32}`);
  }
  assert.equal(report.int8_top1_in_fp32_top5, 1);
  assert.ok(report.layers.length > 50, 'a per-layer SQNR for every quantized activation');
  assert.ok(report.layers.every((l) => l.sqnr_db > 5), 'no quantized layer is wrecked');
}

// ---------------------------------------------------------------------------------------------
// The passes, on small graphs.

describe('quantization arithmetic', () => {
  test('activation parameters keep zero exact, and a ReLU range gets the lowest code as zero point', () => {
    assert.deepEqual(activationParams(0, 255, 'u8'), { scale: 1, zeroPoint: 0 });
    assert.equal(activationParams(0, 10, 's8').zeroPoint, -128);
    const signed = activationParams(-1, 3, 'u8');
    assert.equal(signed.zeroPoint, 64);
    assert.equal(roundHalfEven(0 / signed.scale) + signed.zeroPoint, signed.zeroPoint, 'zero maps to the zero point');
    assert.equal(roundHalfEven(2.5), 2);
    assert.equal(roundHalfEven(-2.5), -2);
    assert.equal(roundHalfEven(3.5), 4);
  });

  test('weights are symmetric per output channel, biases int32 at s_in × s_w', () => {
    // Two channels of a [2, 1, 1, 2] conv kernel: one large, one small.
    const { codes, scales } = quantizeWeightsPerChannel(Float32Array.of(1.27, -0.5, 0.0127, 0.01), [2, 1, 1, 2], 0);
    assert.deepEqual(Array.from(codes), [127, -50, 127, 100]);
    assert.ok(Math.abs(scales[0] - 0.01) < 1e-9 && Math.abs(scales[1] - 0.0001) < 1e-9);
    // Gemm's [in, out]: channels along axis 1.
    const gemm = quantizeWeightsPerChannel(Float32Array.of(1, 2, -1, -4), [2, 2], 1);
    assert.deepEqual(Array.from(gemm.codes), [127, 64, -127, -127]);
    const bias = quantizeBias(Float32Array.of(0.5, -0.25), 0.1, scales);
    assert.deepEqual(Array.from(bias.codes), [500, -25000]);
  });

  test('the range histogram: min/max exactly, a percentile cuts each tail on its own', () => {
    const h = new RangeHistogram();
    const values = new Float32Array(100_000);
    for (let i = 0; i < values.length; i++) values[i] = (i % 1000) / 100; // 0 … 9.99
    values[5] = 1000; // one outlier
    values[7] = -3;
    h.add(values);
    assert.deepEqual(h.range({ kind: 'minmax' }), [-3, 1000]);
    const [low, high] = h.range({ kind: 'percentile', percentile: 99.9 });
    assert.ok(high > 9.9 && high < 10.1, `the outlier is cut: ${high}`);
    assert.equal(low, -3, 'the only negative value is the whole negative tail');
  });
});

/** Input → Conv (weights w, bias b) → Mul(scale) → Add(shift) → Relu → output, all NCHW [1, 2, 3, 3]. */
function convBnGraph(scale: number[], shift: number[]): Model {
  const w = Float32Array.of(0.5, -1, 0.25, 2); // [2, 2, 1, 1]
  return {
    ir_version: 7,
    opset_import: [{ domain: '', version: 13 }],
    producer_name: 'test',
    producer_version: 'test',
    doc_string: '',
    graph: {
      name: 'g',
      node: [
        { name: 'conv', op_type: 'Conv', input: ['x', 'w', 'b'], output: ['c'], attribute: [] },
        { name: 'bn/mul', op_type: 'Mul', input: ['c', 'scale'], output: ['m'], attribute: [] },
        { name: 'bn/add', op_type: 'Add', input: ['m', 'shift'], output: ['bn'], attribute: [] },
        { name: 'relu', op_type: 'Relu', input: ['bn'], output: ['y'], attribute: [] },
      ],
      initializer: [
        { name: 'w', dims: [2, 2, 1, 1], data_type: DataType.FLOAT, data: w },
        { name: 'b', dims: [2], data_type: DataType.FLOAT, data: Float32Array.of(0.1, -0.2) },
        { name: 'scale', dims: [2, 1, 1], data_type: DataType.DOUBLE, data: Float64Array.from(scale) },
        { name: 'shift', dims: [2, 1, 1], data_type: DataType.DOUBLE, data: Float64Array.from(shift) },
      ],
      input: [{ name: 'x', elem_type: DataType.FLOAT, shape: [1, 2, 3, 3] }],
      output: [{ name: 'y', elem_type: DataType.FLOAT, shape: [1, 2, 3, 3] }],
    },
    metadata_props: [],
  };
}

async function runGraph(model: Model, x: Float32Array): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(await encodeModel(model));
  try {
    const out = await session.run({ x: new ort.Tensor('float32', x, [1, 2, 3, 3]) });
    return out.y.data as Float32Array;
  } finally {
    await session.release();
  }
}

const input18 = Float32Array.from({ length: 18 }, (_, i) => (i - 7) / 3);

describe('graph passes', () => {
  test('fold-batch-norm folds Mul+Add into the conv, in float64, and the result is unchanged', async () => {
    const model = convBnGraph([2, 0.5], [0.3, -1]);
    // The unfolded reference: the same graph with the factors rounded to float32.
    const reference = convBnGraph([2, 0.5], [0.3, -1]);
    for (const t of reference.graph.initializer) if (t.data_type === DataType.DOUBLE) Object.assign(t, { data: Float32Array.from(t.data as Float64Array), data_type: DataType.FLOAT });
    assert.equal(foldBatchNorm(model), 1);
    assert.deepEqual(model.graph.node.map((n) => n.op_type), ['Conv', 'Relu']);
    assert.deepEqual(model.graph.node[0].output, ['bn']);
    assert.deepEqual(Array.from(model.graph.initializer.find((t) => t.name === 'b')!.data as Float32Array), [Math.fround(0.1 * 2 + 0.3), Math.fround(-0.2 * 0.5 - 1)]);
    const [folded, unfolded] = [await runGraph(model, input18), await runGraph(reference, input18)];
    for (let i = 0; i < folded.length; i++) assert.ok(Math.abs(folded[i] - unfolded[i]) < 1e-6);
  });

  test('a conv whose output is also read elsewhere is not folded', () => {
    const model = convBnGraph([2, 0.5], [0.3, -1]);
    model.graph.output.push({ name: 'c', elem_type: DataType.FLOAT });
    assert.equal(foldBatchNorm(model), 0);
    assert.equal(model.graph.node.length, 4);
  });

  test('protobuf: encode then decode gives the same graph and tensors', async () => {
    const model = convBnGraph([2, 0.5], [0.3, -1]);
    foldBatchNorm(model);
    model.graph.node[0].attribute.push(attrInt('group', 1));
    const back = await decodeModel(await encodeModel(model));
    assert.deepEqual(back.graph.node.map((n) => [n.op_type, n.input, n.output]), model.graph.node.map((n) => [n.op_type, n.input, n.output]));
    assert.equal(back.graph.node[0].attribute[0].i, 1);
    for (const t of model.graph.initializer) {
      const u = back.graph.initializer.find((x) => x.name === t.name)!;
      assert.deepEqual(u.dims, t.dims);
      assert.deepEqual(Array.from(u.data as Float32Array), Array.from(t.data as Float32Array));
    }
    assert.deepEqual(back.graph.input[0].shape, [1, 2, 3, 3]);
  });

  test('the QDQ pass: int8 weights per channel, int32 bias, Q/DQ after the ReLU; onnxruntime runs it close to fp32', async () => {
    const model = convBnGraph([2, 0.5], [0.3, -1]);
    foldBatchNorm(model);
    const ranges = new Map<string, [number, number]>([
      ['x', [-2.4, 3.4]],
      ['y', [0, 8]],
    ]);
    for (const type of ['u8', 's8'] as const) {
      const { model: q, plan } = quantizeQdq(model, ranges, { activationType: type, keepFloat: new Set() });
      assert.deepEqual(plan.int8Nodes, ['conv']);
      assert.deepEqual([...plan.tensors.keys()].sort(), ['x', 'y'], 'the input and the ReLU output, not the conv output');
      const types = new Map(q.graph.initializer.map((t) => [t.name, t.data_type]));
      assert.equal(types.get('w/quantized'), DataType.INT8);
      assert.equal(types.get('b/quantized'), DataType.INT32);
      assert.equal(types.get('w'), undefined, 'the float weights are gone');
      assert.equal(types.get('y/zero_point'), type === 'u8' ? DataType.UINT8 : DataType.INT8);
      const wDq = q.graph.node.find((n) => n.input[0] === 'w/quantized')!;
      assert.equal(wDq.op_type, 'DequantizeLinear');
      assert.equal(wDq.attribute.find((a) => a.name === 'axis')?.i, 0);
      const [fp, int8] = [await runGraph(model, input18), await runGraph(q, input18)];
      for (let i = 0; i < fp.length; i++) assert.ok(Math.abs(fp[i] - int8[i]) < 0.1, `${type} element ${i}: ${int8[i]} vs ${fp[i]}`);
    }
    const kept = quantizeQdq(model, ranges, { activationType: 'u8', keepFloat: new Set(['conv']) });
    assert.deepEqual(kept.plan.int8Nodes, []);
    assert.ok(kept.model.graph.initializer.some((t) => t.name === 'w' && t.data_type === DataType.FLOAT));
  });

  test('a MaxPool between an fp32 conv and an int8 one runs on the codes, with its output parameters, exactly', async () => {
    // fp32 conv → Relu → MaxPool → int8 conv: before, the MaxPool ran in fp32 (slow in onnxruntime).
    const model = convBnGraph([2, 0.5], [0.3, -1]);
    foldBatchNorm(model);
    const g = model.graph;
    g.node.push(
      { name: 'pool', op_type: 'MaxPool', input: ['y'], output: ['p'], attribute: [attrInts('kernel_shape', [2, 2]), attrInts('strides', [1, 1])] },
      { name: 'conv2', op_type: 'Conv', input: ['p', 'w2'], output: ['z'], attribute: [] },
    );
    g.initializer.push({ name: 'w2', dims: [2, 2, 1, 1], data_type: DataType.FLOAT, data: Float32Array.of(1, 0, 0, 1) });
    g.output = [{ name: 'z', elem_type: DataType.FLOAT, shape: [1, 2, 2, 2] }];
    const ranges = new Map<string, [number, number]>([
      ['y', [0, 9]], // the pool's input range is wider than its output's: the output's wins
      ['p', [0, 8]],
      ['z', [0, 8]],
    ]);
    const { model: q, plan } = quantizeQdq(model, ranges, { activationType: 'u8', keepFloat: new Set(['conv']) });
    assert.deepEqual(plan.int8Nodes, ['conv2']);
    assert.deepEqual(plan.tensors.get('y'), plan.tensors.get('p'), 'the pool input takes the output parameters');
    assert.deepEqual(plan.tensors.get('p'), activationParams(0, 8, 'u8'));
    const pool = q.graph.node.find((n) => n.op_type === 'MaxPool')!;
    assert.equal(pool.input[0], plan.dequantized.get('y'), 'the MaxPool reads dequantized codes');
    // Max commutes with the monotonic quantization: the int8 graph equals Q(fp32 MaxPool) then conv2.
    const session = await ort.InferenceSession.create(await encodeModel(q));
    const reference = await ort.InferenceSession.create(await encodeModel({ ...model, graph: { ...g, output: [{ name: 'p', elem_type: DataType.FLOAT, shape: [1, 2, 2, 2] }] } }));
    try {
      const x = new ort.Tensor('float32', input18, [1, 2, 3, 3]);
      const z = (await session.run({ x })).z.data as Float32Array;
      const p = (await reference.run({ x })).p.data as Float32Array;
      const { scale } = activationParams(0, 8, 'u8');
      for (let i = 0; i < p.length; i++) {
        const pq = Math.min(255, roundHalfEven(p[i] / scale)) * scale;
        assert.ok(Math.abs(z[i] - pq) <= scale, `element ${i}: ${z[i]} vs Q(${p[i]}) = ${pq}`);
      }
    } finally {
      await session.release();
      await reference.release();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Real models.

/** The generated model's store once quantized, for the hub test. */
let quantizedStore: string;

describe('int8 model of the generated test ResNet50', () => {
  let store: string;
  let report: FidelityReport;

  before(async () => {
    store = await copyStore(TEST_MODEL_DIR, 'generated');
    await ensureOnnxModel(store);
    const started = performance.now();
    const stages = new Set<string>();
    const result = await ensureInt8Model(store, { onProgress: (stage) => stages.add(stage) });
    const seconds = (performance.now() - started) / 1000;
    console.log(`first quantization: ${seconds.toFixed(1)} s, stages ${[...stages].join(' → ')}`);
    assert.equal(result.quantized, true);
    assert.ok(stages.has('calibrating') && stages.has('measuring fidelity'), 'progress is reported');
    assert.ok(seconds < 120, `first quantization took ${seconds} s`);
    report = result.report;
    quantizedStore = store;
  });

  test('fidelity: pooled features ≥ 25 dB, int8 top-1 within fp32 top-5 on every held-apart image', () => {
    assertFidelity(report, 'generated ResNet50');
  });

  test('the report is in the store manifest and the sidecar; a current model is not re-made', async () => {
    const manifest = await readManifest(store);
    assert.equal(manifest?.int8?.file, INT8_FILE);
    assert.deepEqual(manifest?.int8?.report, report);
    assert.equal(await int8Staleness(store, await int8Key(DEFAULT_QUANTIZATION)), null);
    const mtime = (await stat(path.join(store, INT8_FILE))).mtimeMs;
    const again = await ensureInt8Model(store);
    assert.equal(again.quantized, false);
    assert.equal((await stat(path.join(store, INT8_FILE))).mtimeMs, mtime);
  });

  test('other settings make it stale and re-quantize; so does a truncated file', async () => {
    // On the tiny model (the same code, seconds instead of half a minute per quantization).
    const store = await copyStore(TINY_MODEL_DIR, 'staleness');
    await ensureInt8Model(store);
    const minmax = { ...DEFAULT_QUANTIZATION, calibration: { kind: 'minmax' as const } };
    assert.match((await int8Staleness(store, await int8Key(minmax))) ?? '', /other quantization settings/);
    const remade = await ensureInt8Model(store, { settings: minmax });
    assert.equal(remade.quantized, true);
    assert.equal((await readManifest(store))?.int8?.settings.calibration.kind, 'minmax');
    assert.equal(await int8Staleness(store, await int8Key(minmax)), null);
    assert.match((await int8Staleness(store, await int8Key(DEFAULT_QUANTIZATION))) ?? '', /other quantization settings/);
    const back = await ensureInt8Model(store);
    assert.equal(back.quantized, true);
    const file = path.join(store, INT8_FILE);
    const bytes = await readFile(file);
    await (await import('node:fs/promises')).writeFile(file, bytes.subarray(0, bytes.length - 100));
    assert.match((await int8Staleness(store)) ?? '', /bytes, its sidecar says/);
  });
});

describe('int8 model of a ResNet50 imported from a Keras .h5', () => {
  test('fidelity holds for other weights, imported through the Keras path', async () => {
    // Independent weights: another seed of the generator, written as Keras writes them (h5py).
    const work = await tempDir('keras');
    const generated = path.join(work, 'generated');
    await execFileAsync(process.execPath, ['--import', 'tsx', 'model-tools/generate-cli.ts', '--model-dir', generated, '--seed', '4242'], { cwd: REPO_ROOT });
    const tf = await loadTfjs('cpu');
    const source = await loadLayersModelFromStore(tf, generated);
    let layers;
    try {
      layers = kerasLayersOf(source, (layer, i) => (source.getLayer(layer).weights[i].read().dataSync() as Float32Array).slice());
    } finally {
      source.dispose();
    }
    const h5 = path.join(work, 'weights.h5');
    await writeKerasH5(h5, layers);
    const store = path.join(work, 'imported');
    const manifest = await importKerasWeightsInWorker(h5, { modelDir: store });
    assert.equal(manifest.source.kind, 'keras-h5');
    const result = await ensureInt8Model(store);
    assertFidelity(result.report, 'Keras-imported ResNet50');
  });
});

describe('a hub with --precision int8', () => {
  test('answers with model.precision int8 and says so in /api/status', async () => {
    // The store quantized above: its first quantization, with progress, is timed there.
    const store = await copyStore(quantizedStore, 'hub', true);
    const started = performance.now();
    const hub = await launchHub({ args: ['--model-dir', store, '--precision', 'int8', '--engine', 'auto', '--max-batch', '2'] });
    const coldMs = performance.now() - started;
    try {
      const body = new Uint8Array(await readFile(path.join(PHOTOS_DIR, 'chelsea.jpg')));
      const reply = (await (await fetch(`${hub.http}/api/classify`, { method: 'POST', body, headers: { 'Content-Type': 'image/jpeg' } })).json()) as ClassifyReply;
      assert.equal(reply.model.precision, 'int8');
      assert.equal(reply.executor.engine, 'onnx');
      const status = (await (await fetch(`${hub.http}/api/status`)).json()) as StatusReport;
      assert.equal(status.model.precision, 'int8');
      assert.ok(status.model.int8_fidelity && status.model.int8_fidelity.pooled_sqnr_db >= 25, 'status shows the measured fidelity');
      assert.equal(status.engine.chosen, 'onnx');
      assert.ok(hub.logs.some((l) => String(l.msg).includes('only the onnx engine runs int8')), 'auto says why it tries onnx alone');
      console.log(`hub with int8 (engine auto), existing int8 store: ready in ${(coldMs / 1000).toFixed(1)} s`);
    } finally {
      assert.equal(await hub.stop(), 0);
    }
    // The store has a current int8 model: nothing is re-made, and the hub is ready quickly.
    assert.ok(coldMs < 10_000, `ready in ${coldMs} ms with an existing int8 model`);
    assert.ok(!hub.logs.some((l) => String(l.msg).startsWith('quantized')), 'nothing re-quantized');
  });

  test('--engine wasm --precision int8 is refused at start with a clear message', async () => {
    const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = execFile(process.execPath, ['--import', 'tsx', 'server/main.ts', '--engine', 'wasm', '--precision', 'int8'], { cwd: REPO_ROOT }, (_error, _stdout, err) =>
        resolve({ code: child.exitCode, stderr: err }),
      );
    });
    assert.notEqual(code, 0);
    assert.match(stderr, /--precision int8 runs only on the onnx engine; --engine wasm/);
  });
});
