/**
 * How many worker threads, and how many threads each engine uses inside one: together they
 * never ask for more than the cores unless the user said so.
 *
 * By default ONNX Runtime gets one worker per core, each running one thread, which is the
 * most images per second a busy hub can get (no thread synchronisation inside an image); and
 * a batch that arrives while every other worker is idle runs "solo" on all the cores, which
 * is the lowest latency a lone request can get. tfjs' wasm backend is single-threaded under
 * Node, so it only scales by workers.
 */
import type { EngineName } from './engine.ts';

export interface Parallelism {
  workers: number;
  threadsPerWorker: number;
  /** Threads of a solo batch (see EngineOptions.soloThreads); undefined: no solo mode. */
  soloThreads?: number;
}

export interface RequestedParallelism {
  workers?: number;
  threadsPerWorker?: number;
  /** 0 turns solo mode off. */
  soloThreads?: number;
}

const SINGLE_THREADED: ReadonlySet<EngineName> = new Set(['wasm']);
const SOLO_CAPABLE: ReadonlySet<EngineName> = new Set(['onnx']);

export function resolveParallelism(engine: EngineName, cores: number, requested: RequestedParallelism): Parallelism {
  if (SINGLE_THREADED.has(engine)) return { workers: requested.workers ?? cores, threadsPerWorker: 1 };
  const threadsPerWorker = requested.threadsPerWorker ?? Math.max(1, Math.floor(cores / (requested.workers ?? cores)));
  const workers = requested.workers ?? Math.max(1, Math.floor(cores / threadsPerWorker));
  const soloThreads = requested.soloThreads ?? cores;
  const solo = SOLO_CAPABLE.has(engine) && soloThreads > threadsPerWorker;
  return { workers, threadsPerWorker, ...(solo ? { soloThreads } : {}) };
}

export function oversubscribes(parallelism: Parallelism, cores: number): boolean {
  return parallelism.workers * parallelism.threadsPerWorker > cores;
}
