/**
 * Worker threads that decode and resize images, so the main thread never touches pixels.
 */
import type { Worker } from 'node:worker_threads';
// Loaded here too, not only in the workers: sharp's native module must stay loaded in the
// main thread, or terminating a worker that used it can crash the process (lovell/sharp#2263).
import 'sharp';
import { ServiceError } from '../../shared/protocol/errors.ts';
import type { Logger } from '../../lib/log.ts';
import type { PreprocessRequest, PreprocessResponse, PreprocessWorkerData } from './preprocess-protocol.ts';
import { spawnWorker } from '../../lib/spawn-worker.ts';
import { ImageSlots } from './image-slots.ts';
import { OUTPUT_BYTES } from './preprocess-image.ts';

const WORKER_URL = new URL('./preprocess-worker.ts', import.meta.url);

/**
 * Images held at once in shared memory (9.6 MB): a saturated hub holds a few dozen. Past that,
 * as in a burst that fills the queue, an image comes in a buffer of its own.
 */
export const DEFAULT_IMAGE_SLOTS = 64;

export interface Preprocessed {
  /** 224×224×3 RGB; valid until `release()`. */
  rgb: Uint8Array;
  width: number;
  height: number;
  format: string;
  ms: number;
  /**
   * Lets the pool reuse the memory of `rgb`: call it once, when nothing will read `rgb` again.
   * Executors copy a batch's images when they start it; what keeps an image longer (a
   * verification run) keeps a copy.
   */
  release(): void;
}

interface Pending {
  resolve: (image: Preprocessed) => void;
  reject: (error: ServiceError) => void;
  /** The image slot the worker writes into, if one was free. */
  imageSlot?: number;
}

interface WorkerEntry {
  worker: Worker;
  pending: Map<number, Pending>;
}

export class PreprocessPool {
  private readonly workers: WorkerEntry[] = [];
  private nextId = 1;
  private stopping = false;
  private readonly images: ImageSlots;

  constructor(
    size: number,
    private readonly maxPixels: number,
    private readonly log: Logger,
    imageSlots = DEFAULT_IMAGE_SLOTS,
  ) {
    this.images = new ImageSlots(imageSlots, OUTPUT_BYTES);
    for (let i = 0; i < size; i++) this.workers.push(this.spawn(i));
  }

  /**
   * Decodes and resizes; rejects with a ServiceError saying what is wrong with the image.
   * Takes ownership of `bytes`: a buffer of its own is moved to the worker, not copied.
   */
  preprocess(bytes: Uint8Array): Promise<Preprocessed> {
    // Nothing to decode, and possibly a buffer already moved to a worker by an earlier call: such
    // a message would reach the worker as nothing at all, and never be answered.
    if (bytes.byteLength === 0) return Promise.reject(new ServiceError('unsupported_image', 'The image is empty (0 bytes).'));
    const entry = this.workers.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const id = this.nextId++;
    const imageSlot = this.images.acquire();
    const request: PreprocessRequest = { id, bytes, maxPixels: this.maxPixels, ...(imageSlot === undefined ? {} : { slot: imageSlot }) };
    return new Promise((resolve, reject) => {
      entry.pending.set(id, { resolve, reject, imageSlot });
      // A small Node Buffer shares its memory with others (Buffer's pool): copy that one.
      const ownsMemory = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
      entry.worker.postMessage(request, ownsMemory ? [bytes.buffer as ArrayBuffer] : []);
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.workers.map((entry) => entry.worker.terminate()));
  }

  /** Image slots held now: by requests still running (the tests check none is left behind). */
  get imageSlotsInUse(): number {
    return this.images.inUse;
  }

  private settle(pending: Pending, response: PreprocessResponse): void {
    const { imageSlot } = pending;
    const rgb = response.ok ? (response.rgb ?? (imageSlot === undefined ? undefined : this.images.view(imageSlot))) : undefined;
    if (!response.ok || !rgb) {
      if (imageSlot !== undefined) this.images.release(imageSlot);
      pending.reject(response.ok ? new ServiceError('internal', 'the image decoder sent no image') : new ServiceError(response.code, response.message));
      return;
    }
    let held = imageSlot !== undefined;
    const release = () => {
      if (held && imageSlot !== undefined) this.images.release(imageSlot);
      held = false;
    };
    pending.resolve({ rgb, width: response.width, height: response.height, format: response.format, ms: response.ms, release });
  }

  private spawn(index: number): WorkerEntry {
    const workerData: PreprocessWorkerData = { slots: this.images.buffer };
    const entry: WorkerEntry = { worker: spawnWorker(WORKER_URL, { name: `preprocess-${index + 1}`, workerData }), pending: new Map() };
    entry.worker.on('message', (response: PreprocessResponse) => {
      const pending = entry.pending.get(response.id);
      if (!pending) return;
      entry.pending.delete(response.id);
      this.settle(pending, response);
    });
    entry.worker.on('error', (error) => this.log.error({ err: error }, 'preprocess worker error'));
    entry.worker.on('exit', (code) => {
      for (const pending of entry.pending.values()) {
        if (pending.imageSlot !== undefined) this.images.release(pending.imageSlot);
        pending.reject(new ServiceError('internal', `the image decoder stopped (exit code ${code}); try again`));
      }
      entry.pending.clear();
      if (this.stopping) return;
      this.log.error({ worker: index + 1, code }, 'preprocess worker died; restarting it');
      this.workers[index] = this.spawn(index);
    });
    return entry;
  }
}
