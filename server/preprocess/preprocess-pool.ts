/**
 * Worker threads that decode and resize images, so the main thread never touches pixels.
 */
import type { Worker } from 'node:worker_threads';
// Loaded here too, not only in the workers: sharp's native module must stay loaded in the
// main thread, or terminating a worker that used it can crash the process (lovell/sharp#2263).
import 'sharp';
import { ServiceError } from '../../shared/protocol/errors.ts';
import type { Logger } from '../log.ts';
import type { PreprocessRequest, PreprocessResponse } from './preprocess-protocol.ts';
import { spawnWorker } from '../../lib/spawn-worker.ts';

const WORKER_URL = new URL('./preprocess-worker.ts', import.meta.url);

export interface Preprocessed {
  rgb: Uint8Array;
  width: number;
  height: number;
  format: string;
  ms: number;
}

interface Pending {
  resolve: (image: Preprocessed) => void;
  reject: (error: ServiceError) => void;
}

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
}

export class PreprocessPool {
  private readonly slots: Slot[] = [];
  private nextId = 1;
  private stopping = false;

  constructor(
    size: number,
    private readonly maxPixels: number,
    private readonly log: Logger,
  ) {
    for (let i = 0; i < size; i++) this.slots.push(this.spawn(i));
  }

  /**
   * Decodes and resizes; rejects with a ServiceError saying what is wrong with the image.
   * Takes ownership of `bytes`: a buffer of its own is moved to the worker, not copied.
   */
  preprocess(bytes: Uint8Array): Promise<Preprocessed> {
    const slot = this.slots.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const id = this.nextId++;
    const request: PreprocessRequest = { id, bytes, maxPixels: this.maxPixels };
    return new Promise((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      // A small Node Buffer shares its memory with others (Buffer's pool): copy that one.
      const ownsMemory = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
      slot.worker.postMessage(request, ownsMemory ? [bytes.buffer as ArrayBuffer] : []);
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.slots.map((slot) => slot.worker.terminate()));
  }

  private spawn(index: number): Slot {
    const slot: Slot = { worker: spawnWorker(WORKER_URL, { name: `preprocess-${index + 1}` }), pending: new Map() };
    slot.worker.on('message', (response: PreprocessResponse) => {
      const pending = slot.pending.get(response.id);
      if (!pending) return;
      slot.pending.delete(response.id);
      if (response.ok) pending.resolve(response);
      else pending.reject(new ServiceError(response.code, response.message));
    });
    slot.worker.on('error', (error) => this.log.error({ err: error }, 'preprocess worker error'));
    slot.worker.on('exit', (code) => {
      for (const pending of slot.pending.values()) {
        pending.reject(new ServiceError('internal', `the image decoder stopped (exit code ${code}); try again`));
      }
      slot.pending.clear();
      if (this.stopping) return;
      this.log.error({ worker: index + 1, code }, 'preprocess worker died; restarting it');
      this.slots[index] = this.spawn(index);
    });
    return slot;
  }
}
