/**
 * Starts the Web Worker that runs the model (model-worker.ts), so that the page and its
 * heartbeats never stall while the GPU computes.
 */
import type { FromWorker } from './worker-messages.ts';

export interface ModelWorkerHandlers {
  onMessage(message: FromWorker): void;
  /** The worker threw past its own handlers; `message` says so for people. */
  onFailed(message: string): void;
}

export function spawnModelWorker(handlers: ModelWorkerHandlers): Worker {
  // Literal `new Worker(new URL(…))`: the form Vite recognises and bundles as a worker.
  const worker = new Worker(new URL('./model-worker.ts', import.meta.url), { type: 'module', name: 'volunteer-model' });
  worker.addEventListener('message', (event: MessageEvent<FromWorker>) => handlers.onMessage(event.data));
  worker.addEventListener('error', (event) => {
    event.preventDefault();
    const message = `the model worker failed: ${event.message || 'unknown error (see the browser console)'}`;
    console.error(`volunteer: ${message}`);
    handlers.onFailed(message);
  });
  return worker;
}
