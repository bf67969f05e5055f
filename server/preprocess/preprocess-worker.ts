/**
 * Entry point of a preprocessing worker thread: turns encoded images into 224×224×3 RGB,
 * many at a time (sharp decodes on libuv's threads and does not block this one).
 */
import { parentPort, workerData } from 'node:worker_threads';
import sharp from 'sharp';
import { ServiceError } from '../../shared/protocol/errors.ts';
import { OUTPUT_BYTES, preprocessImage } from './preprocess-image.ts';
import type { PreprocessRequest, PreprocessResponse, PreprocessWorkerData } from './preprocess-protocol.ts';
import { slotView } from './image-slots.ts';
import { nameThisThread, THREAD_NAMES } from '../../lib/thread-name.ts';

const port = parentPort!;
const { slots } = workerData as PreprocessWorkerData;
nameThisThread(THREAD_NAMES.preprocess);
// One libvips thread per image: several images run at once on libuv's pool, and the
// inference engines need the cores more than one image needs them all.
sharp.concurrency(1);
// Every request is a new image: libvips' operation cache would only hold memory.
sharp.cache(false);

port.on('message', (request: PreprocessRequest) => {
  const started = performance.now();
  const into = request.slot === undefined ? undefined : slotView(slots, request.slot, OUTPUT_BYTES);
  preprocessImage(request.bytes, { maxPixels: request.maxPixels }, into).then(
    ({ rgb, ...image }) => {
      const ms = performance.now() - started;
      if (into) {
        const response: PreprocessResponse = { id: request.id, ok: true, ...image, ms };
        port.postMessage(response);
      } else {
        const response: PreprocessResponse = { id: request.id, ok: true, rgb, ...image, ms };
        port.postMessage(response, [rgb.buffer as ArrayBuffer]);
      }
    },
    (error: unknown) => {
      const response: PreprocessResponse =
        error instanceof ServiceError
          ? { id: request.id, ok: false, code: error.code, message: error.message, ms: performance.now() - started }
          : { id: request.id, ok: false, code: 'internal', message: `preprocessing failed: ${String(error)}`, ms: performance.now() - started };
      port.postMessage(response);
    },
  );
});
