/**
 * An executor backed by one inference worker thread on this machine.
 */
import type { Worker } from 'node:worker_threads';
import { INPUT_VALUES_PER_IMAGE, toCaffeInput } from '../../shared/caffe.ts';
import { NUM_CLASSES } from '../../shared/labels.ts';
import type { TopK } from '../../shared/labels.ts';
import type { EngineName } from '../engines/engine.ts';
import type { Precision } from '../../shared/protocol/classify.ts';
import type { BatchResult, Executor, ModelInput } from './executor.ts';
import { ServiceTimeEstimate } from './service-time.ts';
import type { InferenceWorkerData, InferRequest, WorkerToMain } from './worker-protocol.ts';
import { spawnWorker } from '../../lib/spawn-worker.ts';

const IMAGE_BYTES = INPUT_VALUES_PER_IMAGE;
const WORKER_URL = new URL('./inference-worker.ts', import.meta.url);

export interface LocalExecutorOptions {
  id: string;
  engine: EngineName;
  threads: number;
  spin: boolean;
  /** Threads of a solo batch (see EngineOptions.soloThreads). */
  soloThreads?: number;
  /** Whether every other worker is idle now, so a batch may run solo. */
  isAlone?: () => boolean;
  modelDir: string;
  /** Weights the engine serves (onnx only has int8). */
  precision?: Precision;
  /** The weights in modelDir when the pool started: what this worker computes with. */
  modelSha256: string;
  maxBatch: number;
  topK: number;
}

interface Pending {
  batch: number;
  solo: boolean;
  allClasses: readonly boolean[] | undefined;
  resolve: (result: BatchResult) => void;
  reject: (error: Error) => void;
}

export type LocalExecutorState = 'starting' | 'ready' | 'stopping' | 'exited';

export class LocalExecutor implements Executor {
  readonly proven = true;
  readonly kind = 'local';
  readonly capacity = 1;
  readonly id: string;
  readonly maxBatch: number;
  readonly engine: EngineName;
  /** What the pool expects until the worker is ready; from then on, what the worker says it loaded. */
  modelSha256: string;
  readonly threads: number;
  state: LocalExecutorState = 'starting';
  warmupMs = 0;
  soloWarmupMs: number | undefined;
  loadMs = 0;
  batchesDone = 0;
  imagesDone = 0;
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners: Array<() => void> = [];
  private readonly exitListeners: Array<(reason: string) => void> = [];
  private readonly estimate = new ServiceTimeEstimate(1000);
  private readonly soloEstimate = new ServiceTimeEstimate(1000);
  readonly soloThreads: number | undefined;
  private readonly isAlone: () => boolean;
  private readonly topK: number;
  private nextBatchId = 1;
  private readonly ready: Promise<void>;
  private readonly batchBuffer: SharedArrayBuffer;

  constructor(options: LocalExecutorOptions) {
    this.id = options.id;
    this.engine = options.engine;
    this.modelSha256 = options.modelSha256;
    this.threads = options.threads;
    this.soloThreads = options.soloThreads;
    this.isAlone = options.isAlone ?? (() => false);
    this.maxBatch = options.maxBatch;
    this.topK = options.topK;
    this.batchBuffer = new SharedArrayBuffer(options.maxBatch * IMAGE_BYTES);
    const workerData: InferenceWorkerData = {
      workerId: options.id,
      engine: options.engine,
      threads: options.threads,
      spin: options.spin,
      soloThreads: options.soloThreads,
      modelDir: options.modelDir,
      precision: options.precision ?? 'fp32',
      topK: options.topK,
      batchBuffer: this.batchBuffer,
    };
    this.worker = spawnWorker(WORKER_URL, { workerData, name: options.id });
    this.ready = new Promise((resolve, reject) => {
      this.worker.on('message', (message: WorkerToMain) => {
        if (message.type === 'ready') {
          this.warmupMs = message.warmupMs;
          this.soloWarmupMs = message.soloWarmupMs;
          if (message.soloWarmupMs !== undefined) this.soloEstimate.observe(1, message.soloWarmupMs);
          this.loadMs = message.loadMs;
          if (message.modelSha256) this.modelSha256 = message.modelSha256;
          this.estimate.observe(1, message.warmupMs);
          this.setState('ready');
          resolve();
        } else if (message.type === 'fatal') {
          reject(new Error(`worker ${this.id} failed to start: ${message.message}`));
          void this.worker.terminate();
        } else {
          this.onBatchMessage(message);
        }
      });
      this.worker.on('error', (error) => reject(error));
      this.worker.on('exit', (code) => {
        const reason = `worker ${this.id} exited with code ${code}`;
        reject(new Error(reason));
        this.onExit(reason);
      });
    });
  }

  /** Resolves once the worker has loaded its engine and model and is warm. */
  whenReady(): Promise<void> {
    return this.ready;
  }

  get available(): boolean {
    return this.state === 'ready';
  }

  get busy(): boolean {
    return this.pending.size > 0;
  }

  get perImageMs(): number {
    return this.estimate.perImage;
  }

  /** The time a lone request takes: what `--engine auto` compares. */
  get bestWarmupMs(): number {
    return Math.min(this.warmupMs, this.soloWarmupMs ?? Infinity);
  }

  expectedServiceMs(batchSize: number): number {
    return (this.runsSoloNow() ? this.soloEstimate : this.estimate).expectedMs(batchSize);
  }

  private runsSoloNow(): boolean {
    return this.soloThreads !== undefined && this.isAlone();
  }

  onAvailabilityChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  onExitOnce(listener: (reason: string) => void): void {
    this.exitListeners.push(listener);
  }

  readonly returnsAllClasses = true;
  readonly takesTensors = true;

  run(images: readonly ModelInput[], reference?: readonly boolean[], allClasses?: readonly boolean[]): Promise<BatchResult> {
    if (this.state !== 'ready') return Promise.reject(new Error(`worker ${this.id} is ${this.state}`));
    // A batch with an image sent as the model's input goes as the model's input whole (4 bytes a value).
    const tensors = images.some((image) => image instanceof Float32Array) ? modelInputOf(images) : undefined;
    // The shared buffer is free while no batch is pending; a second one would overwrite it.
    const shared = !tensors && this.pending.size === 0 && images.length <= this.maxBatch;
    const own = tensors || shared ? undefined : new Uint8Array(images.length * IMAGE_BYTES);
    if (!tensors) {
      const rgb = own ?? new Uint8Array(this.batchBuffer, 0, images.length * IMAGE_BYTES);
      images.forEach((image, i) => rgb.set(image, i * IMAGE_BYTES));
    }
    const batchId = this.nextBatchId++;
    const solo = this.runsSoloNow();
    const request: InferRequest = {
      type: 'infer',
      batchId,
      ...(own ? { rgb: own } : {}),
      ...(tensors ? { tensors } : {}),
      batch: images.length,
      solo,
      ...(reference?.some(Boolean) ? { reference: [...reference] } : {}),
      ...(allClasses?.some(Boolean) ? { allClasses: true } : {}),
    };
    return new Promise((resolve, reject) => {
      this.pending.set(batchId, { batch: images.length, solo, allClasses, resolve, reject });
      this.worker.postMessage(request, own ? [own.buffer] : tensors ? [tensors.buffer] : []);
    });
  }

  /** Stops the worker; batches still running are failed (the scheduler re-queues them). */
  async stop(): Promise<void> {
    if (this.state === 'exited') return;
    this.setState('stopping');
    await this.worker.terminate();
  }

  private onBatchMessage(message: Exclude<WorkerToMain, { type: 'ready' | 'fatal' }>): void {
    const pending = this.pending.get(message.batchId);
    if (!pending) return;
    this.pending.delete(message.batchId);
    if (message.type === 'failed') {
      pending.reject(new Error(`worker ${this.id}: ${message.message}`));
      return;
    }
    (pending.solo ? this.soloEstimate : this.estimate).observe(pending.batch, message.inferenceMs);
    this.batchesDone++;
    this.imagesDone += pending.batch;
    const results: TopK[] = [];
    for (let i = 0; i < pending.batch; i++) {
      const from = i * this.topK;
      results.push({
        indices: Array.from(message.indices.subarray(from, from + this.topK)),
        probabilities: Array.from(message.probabilities.subarray(from, from + this.topK)),
      });
    }
    const all = message.all;
    const allClasses = all && pending.allClasses?.map((wanted, i) => (wanted ? all.subarray(i * NUM_CLASSES, (i + 1) * NUM_CLASSES) : undefined));
    pending.resolve({ results, inferenceMs: message.inferenceMs, ...(allClasses ? { allClasses } : {}) });
  }

  private onExit(reason: string): void {
    const wasStopping = this.state === 'stopping';
    this.setState('exited');
    for (const pending of this.pending.values()) pending.reject(new Error(reason));
    this.pending.clear();
    if (!wasStopping) for (const listener of this.exitListeners) listener(reason);
  }

  private setState(state: LocalExecutorState): void {
    this.state = state;
    for (const listener of this.listeners) listener();
  }
}

/** A batch as the model's float input: RGB images made into it, images already in that form copied. */
function modelInputOf(images: readonly ModelInput[]): Float32Array<ArrayBuffer> {
  const out = new Float32Array(images.length * IMAGE_BYTES);
  images.forEach((image, i) => {
    const at = out.subarray(i * IMAGE_BYTES, (i + 1) * IMAGE_BYTES);
    if (image instanceof Float32Array) at.set(image);
    else toCaffeInput(image, 1, at);
  });
  return out;
}
