/**
 * Entry point of an inference worker thread: loads the engine and the model once, warms up,
 * then runs batches as the main thread sends them, one at a time.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { NUM_CLASSES, topK } from '../../shared/labels.ts';
import { INPUT_VALUES_PER_IMAGE } from '../../shared/caffe.ts';
import { loadEngine } from '../engines/create-engine.ts';
import { readManifest } from '../../model-store/store.ts';
import type { Engine } from '../engines/engine.ts';
import type { InferRequest, InferenceWorkerData, WorkerToMain } from './worker-protocol.ts';
import { nameThisThread, THREAD_NAMES } from '../../lib/thread-name.ts';

const IMAGE_BYTES = INPUT_VALUES_PER_IMAGE;
const port = parentPort!;
const data = workerData as InferenceWorkerData;

function post(message: WorkerToMain, transfer: ArrayBuffer[] = []): void {
  port.postMessage(message, transfer);
}

const WARMUP_RUNS = 3;
/** A slow engine is timed once: start-up time matters more than a precise figure for it. */
const WARMUP_BUDGET_MS = 500;

/** Median time of one image after a first, untimed run (which compiles kernels and allocates). */
async function warmUp(engine: Engine, solo: boolean): Promise<number> {
  const blank = new Uint8Array(IMAGE_BYTES).fill(128);
  await engine.infer(blank, 1, solo);
  const times: number[] = [];
  const budgetEnd = performance.now() + WARMUP_BUDGET_MS;
  while (times.length < WARMUP_RUNS && (times.length === 0 || performance.now() < budgetEnd)) {
    const started = performance.now();
    await engine.infer(blank, 1, solo);
    times.push(performance.now() - started);
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
}

/** A batch whose verification images run at the reference precision, the rest as served. */
async function inferWithReference(engine: Engine, request: InferRequest, images: Uint8Array | Float32Array): Promise<Float32Array> {
  const reference = request.reference;
  if (!reference?.some(Boolean)) return engine.infer(images, request.batch, request.solo);
  if (reference.every(Boolean)) return engine.infer(images, request.batch, request.solo, true);
  const out = new Float32Array(request.batch * NUM_CLASSES);
  for (const asReference of [true, false]) {
    const indices = reference.flatMap((r, i) => (r === asReference ? [i] : []));
    const part = images instanceof Float32Array ? new Float32Array(indices.length * IMAGE_BYTES) : new Uint8Array(indices.length * IMAGE_BYTES);
    indices.forEach((image, k) => part.set(images.subarray(image * IMAGE_BYTES, (image + 1) * IMAGE_BYTES), k * IMAGE_BYTES));
    const probabilities = await engine.infer(part, indices.length, request.solo, asReference);
    indices.forEach((image, k) => out.set(probabilities.subarray(k * NUM_CLASSES, (k + 1) * NUM_CLASSES), image * NUM_CLASSES));
  }
  return out;
}

async function runBatch(engine: Engine, request: InferRequest): Promise<void> {
  try {
    const images = request.tensors ?? request.rgb ?? new Uint8Array(data.batchBuffer, 0, Math.min(request.batch * IMAGE_BYTES, data.batchBuffer.byteLength));
    if (images.length !== request.batch * IMAGE_BYTES) {
      throw new Error(`batch of ${request.batch} needs ${request.batch * IMAGE_BYTES} values, got ${images.length}`);
    }
    const started = performance.now();
    const probabilities = await inferWithReference(engine, request, images);
    const inferenceMs = performance.now() - started;
    const indices = new Int32Array(request.batch * data.topK);
    const topProbabilities = new Float32Array(request.batch * data.topK);
    for (let i = 0; i < request.batch; i++) {
      const top = topK(probabilities.subarray(i * NUM_CLASSES, (i + 1) * NUM_CLASSES), data.topK);
      indices.set(top.indices, i * data.topK);
      topProbabilities.set(top.probabilities, i * data.topK);
    }
    // A copy: the engine's output may live in memory the engine reuses.
    const all = request.allClasses ? probabilities.slice() : undefined;
    post({ type: 'result', batchId: request.batchId, indices, probabilities: topProbabilities, inferenceMs, ...(all ? { all } : {}) }, [
      indices.buffer,
      topProbabilities.buffer,
      ...(all ? [all.buffer] : []),
    ]);
  } catch (error) {
    post({ type: 'failed', batchId: request.batchId, message: error instanceof Error ? error.message : String(error) });
  }
}

async function main(): Promise<void> {
  // Before the engine loads: ONNX Runtime's own threads inherit the name.
  nameThisThread(THREAD_NAMES.inference);
  const loadStarted = performance.now();
  // The weights this worker really loads, whatever the pool that started it serves: one started
  // again after an import replaced the store's files has the new weights, and must say so.
  const weightsBefore = (await readManifest(data.modelDir))?.weightsSha256;
  const engine = await loadEngine(data.engine, {
    modelDir: data.modelDir,
    precision: data.precision,
    threads: data.threads,
    spin: data.spin,
    soloThreads: data.soloThreads,
  });
  const weights = (await readManifest(data.modelDir))?.weightsSha256;
  if (weights !== weightsBefore) throw new Error(`the model store changed while this worker loaded it (${weightsBefore} → ${weights}); starting again`);
  const loadMs = performance.now() - loadStarted;
  const warmupMs = await warmUp(engine, false);
  const soloWarmupMs = data.soloThreads ? await warmUp(engine, true) : undefined;
  // Batches run one after another: the engine already uses the cores it was given.
  let chain = Promise.resolve();
  port.on('message', (request: InferRequest) => {
    chain = chain.then(() => runBatch(engine, request));
  });
  post({ type: 'ready', warmupMs, soloWarmupMs, loadMs, ...(weights ? { modelSha256: weights } : {}) });
}

main().catch((error: unknown) => {
  post({ type: 'fatal', message: error instanceof Error ? error.message : String(error) });
});
