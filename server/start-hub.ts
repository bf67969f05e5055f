/**
 * Wires the hub together: preprocessing pool, scheduler, local workers, and the fronts.
 */
import type { ModelManifest } from '../models/tools/store.ts';
import { MAX_TOP } from '../shared/labels.ts';
import type { ModelInfo } from '../shared/protocol/classify.ts';
import { availableParallelism } from 'node:os';
import type { Config } from './config.ts';
import type { EngineName } from './engines/engine.ts';
import { LocalPool } from './executors/local-pool.ts';
import { HttpFront } from './front/http-front.ts';
import { ZmqFront } from './front/zmq-front.ts';
import { Hub } from './hub.ts';
import type { Logger } from './log.ts';
import { PreprocessPool } from './preprocess/preprocess-pool.ts';
import { ServiceError } from '../shared/protocol/errors.ts';
import { Scheduler } from './scheduler/scheduler.ts';
import { buildStatus, UNTRAINED_WARNING } from './status.ts';

export interface RunningHub {
  zmqEndpoint: string;
  httpPort: number;
  /** Stops taking requests, answers those accepted (up to graceMs), closes everything. */
  stop(graceMs: number): Promise<boolean>;
}

export function modelInfo(manifest: ModelManifest): ModelInfo {
  return { name: manifest.name, weights: manifest.weights, sha256: manifest.weightsSha256 };
}

export interface StartOptions {
  /** Engines `--engine auto` may try. */
  candidates?: readonly EngineName[];
}

export async function startHub(config: Config, manifest: ModelManifest, log: Logger, options: StartOptions = {}): Promise<RunningHub> {
  const limits = { maxImageBytes: config.maxImageBytes };
  const scheduler = new Scheduler({ batchWaitMs: config.batchWaitMs });
  const preprocess = new PreprocessPool(config.preprocessWorkers, config.maxPixels, log);
  const pool = new LocalPool(
    scheduler,
    {
      engine: config.engine,
      candidates: options.candidates,
      requested: { workers: config.workers, threadsPerWorker: config.threadsPerWorker, soloThreads: config.soloThreads },
      cores: availableParallelism(),
      modelDir: config.modelDir,
      maxBatch: config.maxBatch,
      topK: MAX_TOP,
    },
    log,
  );
  const hub = new Hub(preprocess, scheduler, modelInfo(manifest), log);
  const http = new HttpFront(hub, { limits, status: () => buildStatus(hub, scheduler, pool) }, log);
  const zmqFront = new ZmqFront(hub, limits, log);

  // Probes answer while the workers warm up: /readyz says 503 until they are.
  const httpPort = await http.listen(config.httpPort, config.httpHost);
  log.info({ http: `http://${config.httpHost}:${httpPort}`, workers: config.workers }, 'warming up');
  await pool.start();
  const zmqEndpoint = await zmqFront.bind(config.zmq);
  hub.markReady();
  const untrained = manifest.weights === 'untrained';
  const ready = {
    zmq: zmqEndpoint,
    http: `http://${config.httpHost}:${httpPort}`,
    engine: pool.engine,
    workers: pool.parallelism?.workers,
    threads_per_worker: pool.parallelism?.threadsPerWorker,
    solo_threads: pool.parallelism?.soloThreads,
    weights: manifest.weights,
    ...(untrained ? { warning: UNTRAINED_WARNING } : {}),
  };
  if (untrained) log.warn(ready, 'ready');
  else log.info(ready, 'ready');

  return {
    zmqEndpoint,
    httpPort,
    async stop(graceMs) {
      zmqFront.stopReceiving();
      const drained = await hub.drain(graceMs);
      // Past the grace period, whatever is left is answered now rather than never.
      scheduler.close(new ServiceError('shutting_down', 'the server stopped before this request finished'));
      await hub.drain(1000);
      await zmqFront.flush();
      await Promise.all([zmqFront.close(), http.close()]);
      await Promise.all([pool.stop(), preprocess.stop()]);
      return drained;
    },
  };
}
