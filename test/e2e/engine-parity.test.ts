/**
 * Every engine available on this machine gives the same answer on the full ResNet50 (the test
 * store), for the same uint8 input: same top-3, probabilities within 1e-4, at batch 1 and 4.
 * Each engine runs in its own worker thread, as in the hub: tfjs' backend is a per-thread
 * singleton, so 'wasm' and 'tfjs-node' could not share one thread.
 * Run: node --import tsx --test test/e2e/engine-parity.test.ts   (≈ 1 min; needs models/test-resnet50)
 */
import assert from 'node:assert/strict';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { after, before, describe, test } from 'node:test';

import { loadEngine } from '../../server/engines/create-engine.ts';
import { ENGINE_NAMES, type EngineName } from '../../server/engines/engine.ts';
import { spawnWorker } from '../../lib/spawn-worker.ts';
import { ensureOnnxModel } from '../../model-tools/onnx-export.ts';
import { generateSyntheticImages } from '../../model-tools/synthetic-images.ts';
import { INPUT_VALUES_PER_IMAGE } from '../../shared/caffe.ts';
import { NUM_CLASSES } from '../../shared/labels.ts';
import { TEST_MODEL_DIR } from '../../kit/paths.ts';

const IMAGES = 24;
const LARGE_BATCH = 4;
const TOLERANCE = 1e-4;
const TOP_K = 3;
/** Engines that may be missing from a machine; any other failing to load is a failure. */
const OPTIONAL_ENGINES: ReadonlySet<EngineName> = new Set(['tfjs-node']);

interface WorkerInput {
  parityEngine: EngineName;
  modelDir: string;
  rgb: Uint8Array;
}
type WorkerOutput =
  | { type: 'done'; batch1: Float32Array; batchN: Float32Array; msPerImage: number }
  | { type: 'unavailable'; message: string }
  | { type: 'failed'; message: string };

// ---------------------------------------------------------------------------------------------
// Worker side: this file is also the entry of the per-engine worker threads.

async function runEngine(input: WorkerInput): Promise<WorkerOutput> {
  let engine;
  try {
    engine = await loadEngine(input.parityEngine, { modelDir: input.modelDir, threads: 2 });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const unavailable = error instanceof Error && error.name === 'EngineUnavailableError';
    return { type: unavailable ? 'unavailable' : 'failed', message };
  }
  try {
    const count = input.rgb.length / INPUT_VALUES_PER_IMAGE;
    const batch1 = new Float32Array(count * NUM_CLASSES);
    const started = performance.now();
    for (let i = 0; i < count; i++) {
      const image = input.rgb.subarray(i * INPUT_VALUES_PER_IMAGE, (i + 1) * INPUT_VALUES_PER_IMAGE);
      batch1.set(await engine.infer(image, 1), i * NUM_CLASSES);
    }
    const msPerImage = (performance.now() - started) / count;
    const batchN = new Float32Array(count * NUM_CLASSES);
    for (let i = 0; i < count; i += LARGE_BATCH) {
      const rgb = input.rgb.subarray(i * INPUT_VALUES_PER_IMAGE, (i + LARGE_BATCH) * INPUT_VALUES_PER_IMAGE);
      batchN.set(await engine.infer(rgb, LARGE_BATCH), i * NUM_CLASSES);
    }
    return { type: 'done', batch1, batchN, msPerImage };
  } finally {
    engine.dispose();
  }
}

if (!isMainThread && (workerData as Partial<WorkerInput> | null)?.parityEngine) {
  const port = parentPort!;
  runEngine(workerData as WorkerInput).then(
    (result) => port.postMessage(result),
    (error: unknown) => port.postMessage({ type: 'failed', message: error instanceof Error ? error.stack ?? error.message : String(error) }),
  );
}

function runInWorker(engine: EngineName, rgb: Uint8Array): Promise<WorkerOutput> {
  return new Promise((resolve, reject) => {
    const worker = spawnWorker(new URL(import.meta.url), { workerData: { parityEngine: engine, modelDir: TEST_MODEL_DIR, rgb } satisfies WorkerInput });
    worker.once('message', (message: WorkerOutput) => {
      resolve(message);
      void worker.terminate();
    });
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`${engine} worker exited (code ${code}) without an answer`)));
  });
}

// ---------------------------------------------------------------------------------------------

function topK(probabilities: Float32Array, k: number): number[] {
  return Array.from(probabilities.keys())
    .sort((a, b) => probabilities[b] - probabilities[a] || a - b)
    .slice(0, k);
}

if (isMainThread) {
  describe(`engine parity on ResNet50 (${IMAGES} synthetic photos, batch 1 and ${LARGE_BATCH})`, () => {
    const rgb = generateSyntheticImages(20260229, IMAGES);
    const results = new Map<EngineName, Extract<WorkerOutput, { type: 'done' }>>();
    const unavailable = new Map<EngineName, string>();
    let reference: Float32Array;
    let worstDiff = 0;
    let worstPair = '';

    before(
      async () => {
        const onnx = await ensureOnnxModel(TEST_MODEL_DIR);
        if (onnx.exported) console.log(`exported ${onnx.path} in ${Math.round(onnx.ms)} ms`);
        // One engine at a time: they would only slow each other down on the shared cores.
        for (const name of ENGINE_NAMES) {
          const result = await runInWorker(name, rgb);
          if (result.type === 'done') {
            results.set(name, result);
            console.log(`${name}: ${result.msPerImage.toFixed(0)} ms/image at batch 1`);
          } else if (result.type === 'unavailable' && OPTIONAL_ENGINES.has(name)) {
            unavailable.set(name, result.message);
          } else {
            throw new Error(`engine ${name} failed: ${result.message}`);
          }
        }
        // TF.js is the model's home: its wasm backend at batch 1 is the reference.
        reference = results.get('wasm')!.batch1;
      },
      { timeout: 10 * 60_000 },
    );

    after(() => {
      if (worstPair) console.log(`largest difference from wasm@1 over all engines and batch sizes: ${worstDiff.toExponential(2)} (${worstPair})`);
    });

    test('the reference is a meaningful distribution (not flat, not one-hot)', () => {
      for (let i = 0; i < IMAGES; i++) {
        const p = reference.subarray(i * NUM_CLASSES, (i + 1) * NUM_CLASSES);
        const max = Math.max(...p);
        assert.ok(max > 2 / NUM_CLASSES && max < 0.999, `image ${i}: top probability ${max}`);
      }
    });

    for (const name of ENGINE_NAMES) {
      test(`${name} at batch 1 and ${LARGE_BATCH} agrees with the reference (wasm, batch 1)`, (t) => {
        const reason = unavailable.get(name);
        if (reason !== undefined) {
          t.skip(`${name} is not available on this machine: ${reason}`);
          return;
        }
        const result = results.get(name);
        assert.ok(result, `${name} produced no result`);
        for (const [label, output] of [
          ['batch 1', result.batch1],
          [`batch ${LARGE_BATCH}`, result.batchN],
        ] as const) {
          let maxDiff = 0;
          let minMargin = Infinity;
          for (let i = 0; i < IMAGES; i++) {
            const expected = reference.subarray(i * NUM_CLASSES, (i + 1) * NUM_CLASSES);
            const actual = output.subarray(i * NUM_CLASSES, (i + 1) * NUM_CLASSES);
            const expectedTop = topK(expected, TOP_K + 1);
            assert.deepEqual(topK(actual, TOP_K), expectedTop.slice(0, TOP_K), `${name} ${label} image ${i}: top-${TOP_K}`);
            for (let k = 0; k < TOP_K; k++) minMargin = Math.min(minMargin, expected[expectedTop[k]] - expected[expectedTop[k + 1]]);
            for (let c = 0; c < NUM_CLASSES; c++) maxDiff = Math.max(maxDiff, Math.abs(expected[c] - actual[c]));
          }
          const line = `${name} ${label}: max |p − p_wasm@1| = ${maxDiff.toExponential(2)} (closest top-${TOP_K} gap ${minMargin.toExponential(2)})`;
          t.diagnostic(line);
          console.log(line);
          if (maxDiff > worstDiff) {
            worstDiff = maxDiff;
            worstPair = `${name} ${label}`;
          }
          assert.ok(maxDiff <= TOLERANCE, `${name} ${label}: max abs difference ${maxDiff} > ${TOLERANCE}`);
        }
      });
    }
  });
}
