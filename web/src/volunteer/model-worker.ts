/**
 * The volunteer tab's model worker: everything slow happens here (loading TF.js, downloading
 * and hashing the weights, compiling shaders, inference), so the page's WebSocket heartbeats
 * and UI never stall — on a software GPU the first ResNet50 inference spends ~50 s compiling
 * shaders.
 *
 * Backend: WebGPU first, then WebGL (only where workers have OffscreenCanvas), then wasm (its
 * .wasm binaries bundled by Vite). Whichever `tf.setBackend` actually initialises is reported;
 * nothing is claimed that did not succeed.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-webgpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import wasmPlainUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimdUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreadedSimdUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';
import { INPUT_SIZE, INPUT_VALUES_PER_IMAGE, toCaffeInput } from '../../../shared/caffe.ts';
import { NUM_CLASSES, topK } from '../../../shared/labels.ts';
import { VOLUNTEER_BACKENDS } from '../../../shared/protocol/volunteer.ts';
import { IntegrityError, download, errorMessage, loadFromCache, saveToCache } from './model-source.ts';
import type { AdapterInfo, FaultMode, FromWorker, LoadPhase, ToWorker, VolunteerBackend } from './worker-messages.ts';

// An explicit file map: Vite renames the binaries (content hashes), tfjs must not guess.
setWasmPaths({
  'tfjs-backend-wasm.wasm': wasmPlainUrl,
  'tfjs-backend-wasm-simd.wasm': wasmSimdUrl,
  'tfjs-backend-wasm-threaded-simd.wasm': wasmThreadedSimdUrl,
});

// The worker global scope; typed through the DOM lib's Window, whose postMessage(message,
// options) overload is the one workers have.
const scope = self;

function post(message: FromWorker, transfer: Transferable[] = []): void {
  scope.postMessage(message, { transfer });
}

function warn(message: string): void {
  post({ type: 'warn', message });
}

let fault: FaultMode = null;
let backendReady: Promise<VolunteerBackend> | undefined;

interface LoadedModel {
  sha256: string;
  model: tf.LayersModel;
  source: 'cache' | 'download';
  bytes: number;
  firstRunMs: number;
  perImageMs: number;
  /** Whether the shaders for batches of more than one image are compiled too. */
  batchWarmed: boolean;
}
let loaded: LoadedModel | undefined;
let loading: { sha256: string; promise: Promise<LoadedModel> } | undefined;

/**
 * TF.js compiles one set of WebGPU shaders for a batch of one image and another for any larger
 * batch (measured on SwiftShader with the tiny model: the first batch of 2 costs about as much
 * compilation as the very first inference, later batches of 2, 3 or 4 none). Both are compiled
 * before saying hello, so no job stalls on compilation — unless the first inference (compilation
 * plus one image) took longer than this: a software or very slow GPU (ResNet50 on SwiftShader:
 * ~29 s, then ~25 s per image), where batching gains nothing and the extra warm-up would cost
 * minutes. Such a tab offers max_batch 1, and skips the timed warm run too.
 */
const SLOW_FIRST_RUN_MS = 20_000;

/** Jobs run one at a time, in order. */
let queue: Promise<void> = Promise.resolve();

scope.addEventListener('message', (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  switch (message.type) {
    case 'init':
      fault = message.fault;
      backendReady ??= initBackend(message.backend);
      break;
    case 'load':
      void handleLoad(message.url, message.sha256, message.maxBatch);
      break;
    case 'run':
      queue = queue.then(() => runJob(message));
      break;
  }
});

// ---------------------------------------------------------------------------------------------
// Backend

async function initBackend(forced: VolunteerBackend | null): Promise<VolunteerBackend> {
  tf.enableProdMode();
  const notes: string[] = [];
  const order: readonly VolunteerBackend[] = forced ? [forced] : VOLUNTEER_BACKENDS;
  for (const name of order) {
    const unavailable = whyUnavailable(name);
    if (unavailable) {
      notes.push(`${name}: ${unavailable}`);
      continue;
    }
    try {
      // setBackend resolves to false (rather than throwing) when initialisation fails.
      const ok = await tf.setBackend(name);
      if (!ok || tf.getBackend() !== name) {
        notes.push(`${name}: failed to initialise`);
        continue;
      }
      await tf.ready();
      // Prove it computes before claiming it.
      const probe = tf.tidy(() => tf.add(tf.scalar(1), tf.scalar(2)));
      const value = (await probe.data())[0];
      probe.dispose();
      if (value !== 3) {
        notes.push(`${name}: computed 1 + 2 = ${value}`);
        continue;
      }
      const adapter = await describeAdapter(name);
      if (name === 'webgpu') watchDevice();
      post({ type: 'backend', backend: name, adapter, notes });
      return name;
    } catch (error) {
      notes.push(`${name}: ${errorMessage(error)}`);
    }
  }
  const message = forced ? `the ${forced} backend is not available here` : 'no TF.js backend works in this browser (tried WebGPU, WebGL, wasm)';
  post({ type: 'init-failed', message, notes });
  throw new Error(message);
}

/** The part of TF.js's WebGPU backend that holds the device (not in its typings). */
interface DeviceHolder {
  device?: { lost: Promise<{ reason: string; message: string }>; destroy(): void };
}

function gpuDevice(): DeviceHolder['device'] {
  return (tf.backend() as unknown as DeviceHolder).device;
}

/** A lost device is told to the page at once: the job in hand fails and the page starts a new worker. */
function watchDevice(): void {
  void gpuDevice()?.lost.then((info) => post({ type: 'device-lost', message: info.message || `reason: ${info.reason}` }));
}

function whyUnavailable(name: VolunteerBackend): string | null {
  switch (name) {
    case 'webgpu':
      return 'gpu' in navigator && navigator.gpu ? null : 'this browser has no WebGPU (navigator.gpu) in workers';
    case 'webgl':
      return typeof OffscreenCanvas === 'undefined' ? 'workers have no OffscreenCanvas in this browser' : null;
    case 'wasm':
      return typeof WebAssembly === 'undefined' ? 'no WebAssembly' : null;
  }
}

async function describeAdapter(backend: VolunteerBackend): Promise<AdapterInfo | null> {
  const clip = (value: string | undefined, max: number) => (value ? value.slice(0, max) : undefined);
  try {
    if (backend === 'webgpu') {
      const adapter = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
      const info = adapter?.info;
      if (!info) return null;
      const description = [info.description, adapter.info.isFallbackAdapter ? '(software fallback adapter)' : '']
        .filter(Boolean)
        .join(' ');
      return compact({ vendor: clip(info.vendor, 200), architecture: clip(info.architecture, 200), description: clip(description, 500) });
    }
    if (backend === 'webgl') {
      const gl = (tf.backend() as unknown as { gpgpu?: { gl?: WebGLRenderingContext } }).gpgpu?.gl;
      if (!gl) return null;
      const debug = gl.getExtension('WEBGL_debug_renderer_info');
      const vendor = debug ? gl.getParameter(debug.UNMASKED_VENDOR_WEBGL) : gl.getParameter(gl.VENDOR);
      const renderer = debug ? gl.getParameter(debug.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER);
      return compact({ vendor: clip(String(vendor), 200), description: clip(String(renderer), 500) });
    }
  } catch (error) {
    warn(`cannot describe the GPU: ${errorMessage(error)}`);
  }
  return null;
}

function compact(info: AdapterInfo): AdapterInfo | null {
  const out: AdapterInfo = {};
  if (info.vendor) out.vendor = info.vendor;
  if (info.architecture) out.architecture = info.architecture;
  if (info.description) out.description = info.description;
  return Object.keys(out).length > 0 ? out : null;
}

// ---------------------------------------------------------------------------------------------
// Model

async function handleLoad(url: string, sha256: string, maxBatch: number): Promise<void> {
  try {
    const { model, source } = await ensureModel(url, sha256);
    let offered = 1;
    if (maxBatch > 1 && model.firstRunMs <= SLOW_FIRST_RUN_MS) {
      if (!model.batchWarmed) {
        progress('compile-batch');
        await predict(model.model, new Uint8Array(2 * INPUT_VALUES_PER_IMAGE).fill(128), 2);
        model.batchWarmed = true;
      }
      offered = maxBatch;
    }
    post({
      type: 'model-ready',
      sha256,
      source,
      bytes: model.bytes,
      firstRunMs: model.firstRunMs,
      perImageMs: model.perImageMs,
      maxBatch: offered,
    });
  } catch (error) {
    post({ type: 'model-failed', sha256, message: errorMessage(error), integrity: error instanceof IntegrityError });
  }
}

/** The model with these weights, loaded once; concurrent requests share one load. */
async function ensureModel(url: string, sha256: string): Promise<{ model: LoadedModel; source: 'memory' | 'cache' | 'download' }> {
  if (loaded?.sha256 === sha256 && loading === undefined) return { model: loaded, source: 'memory' };
  if (loading?.sha256 !== sha256) {
    const promise = loadModel(url, sha256);
    const entry = { sha256, promise };
    loading = entry;
    const clear = () => {
      if (loading === entry) loading = undefined;
    };
    promise.then(clear, clear);
  }
  const model = await loading.promise;
  return { model, source: model.source };
}

function progress(phase: LoadPhase, loadedBytes?: number, total?: number): void {
  post({ type: 'progress', phase, loaded: loadedBytes, total });
}

async function loadModel(url: string, sha256: string): Promise<LoadedModel> {
  await backendReadyOrThrow();
  progress('cache');
  let artifacts = await loadFromCache(tf, sha256, warn);
  let source: 'cache' | 'download' = 'cache';
  if (!artifacts) {
    source = 'download';
    let lastPost = 0;
    artifacts = await download(url, sha256, (done, total) => {
      const now = performance.now();
      if (done === total || now - lastPost > 100) {
        lastPost = now;
        progress('download', done, total);
      }
    });
    progress('save');
    await saveToCache(tf, sha256, artifacts, warn);
  }
  const bytes = (artifacts.weightData as ArrayBuffer).byteLength;

  const model = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  const shape = model.inputs[0]?.shape;
  if (shape?.[1] !== INPUT_SIZE || shape[2] !== INPUT_SIZE || shape[3] !== 3) {
    model.dispose();
    throw new Error(`the model's input is ${JSON.stringify(shape)}, not [null, 224, 224, 3]`);
  }

  // First inference: on WebGPU this compiles every shader (tens of seconds on a software GPU).
  progress('compile');
  const zeros = new Uint8Array(INPUT_VALUES_PER_IMAGE).fill(128);
  let started = performance.now();
  await predict(model, zeros, 1);
  const firstRunMs = performance.now() - started;

  // One timed warm run: the estimate the hub schedules with until real jobs are measured. On a
  // GPU as slow as SLOW_FIRST_RUN_MS says, the first run stands in for it (an overestimate by the
  // compilation, which is small there next to the run itself: ResNet50 on SwiftShader, ~29 s
  // against ~25 s): another run would keep the tab from serving for as long again.
  let perImageMs = firstRunMs;
  if (firstRunMs <= SLOW_FIRST_RUN_MS) {
    progress('warm-up');
    started = performance.now();
    await predict(model, zeros, 1);
    perImageMs = performance.now() - started;
  }

  if (loaded && loaded.model !== model) loaded.model.dispose();
  loaded = { sha256, model, source, bytes, firstRunMs, perImageMs, batchWarmed: false };
  return loaded;
}

async function backendReadyOrThrow(): Promise<VolunteerBackend> {
  if (!backendReady) throw new Error('the worker was not initialised');
  return backendReady;
}

async function predict(model: tf.LayersModel, pixels: Uint8Array, batch: number): Promise<Float32Array> {
  const input = toCaffeInput(pixels, batch);
  const output = tf.tidy(() => model.predict(tf.tensor4d(input, [batch, INPUT_SIZE, INPUT_SIZE, 3])) as tf.Tensor);
  try {
    return (await output.data()) as Float32Array;
  } finally {
    output.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// Jobs

async function runJob(job: Extract<ToWorker, { type: 'run' }>): Promise<void> {
  const started = performance.now();
  try {
    if (!loaded) throw new Error('no model loaded');
    // TEST HOOK (?fault=lose-device): the device goes away as a job starts, as on a driver reset.
    if (fault === 'lose-device') gpuDevice()?.destroy();
    const pixels = new Uint8Array(job.pixels);
    const probabilities = await predict(loaded.model, pixels, job.batch);
    const indices: number[][] = [];
    const probs: number[][] = [];
    for (let b = 0; b < job.batch; b++) {
      const row = probabilities.subarray(b * NUM_CLASSES, (b + 1) * NUM_CLASSES);
      for (let i = 0; i < row.length; i++) {
        if (!Number.isFinite(row[i])) throw new Error(`the model produced a non-finite probability for image ${b}`);
      }
      const top = topK(row, job.topK);
      // TEST HOOK (?fault=wrong): answer the top-k of the next class index instead, so the hub's
      // verification of volunteers can be exercised. It only ever hurts this tab's own standing.
      indices.push(fault === 'wrong' ? top.indices.map((i) => (i + 1) % NUM_CLASSES) : top.indices);
      probs.push(top.probabilities.map((p) => Math.min(1, Math.max(0, p))));
    }
    post({ type: 'result', seq: job.seq, jobId: job.jobId, indices, probabilities: probs, computeMs: performance.now() - started });
  } catch (error) {
    post({ type: 'run-failed', seq: job.seq, jobId: job.jobId, message: errorMessage(error) });
  }
}
