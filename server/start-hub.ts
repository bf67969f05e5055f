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
import { curveSecurity } from './front/curve-auth.ts';
import { Hub } from './hub.ts';
import type { Logger } from './log.ts';
import { PreprocessPool } from './preprocess/preprocess-pool.ts';
import { ServiceError } from '../shared/protocol/errors.ts';
import { defaultHedgeAfter, Scheduler } from './scheduler/scheduler.ts';
import { createVerifier } from './scheduler/verifier.ts';
import { attachVolunteerSocket } from './front/volunteer-socket.ts';
import { MODEL_URL_PREFIX, serveDirectory, serveModelStore, WEB_APP_ROUTES } from './front/static-files.ts';
import { WEB_DIST_DIR } from './web-build.ts';
import { buildStatus, UNTRAINED_WARNING } from './status.ts';
import { EventFeed } from './events/event-feed.ts';
import { EventsSocket } from './front/events-socket.ts';
import { HubMetrics } from './metrics/hub-metrics.ts';

export interface RunningHub {
  zmqEndpoint: string;
  httpPort: number;
  /** Stops taking requests, answers those accepted (up to graceMs), closes everything. */
  stop(graceMs: number): Promise<boolean>;
}

export function modelInfo(manifest: ModelManifest): ModelInfo {
  const { source } = manifest;
  return {
    name: manifest.name,
    weights: manifest.weights,
    sha256: manifest.weightsSha256,
    source: source.kind === 'generated' ? { kind: 'generated', seed: source.seed } : { kind: 'keras-h5', sha256: source.sha256, md5: source.md5, url: source.url },
  };
}

export interface StartOptions {
  /** Engines `--engine auto` may try. */
  candidates?: readonly EngineName[];
}

export async function startHub(config: Config, manifest: ModelManifest, log: Logger, options: StartOptions = {}): Promise<RunningHub> {
  const limits = { maxImageBytes: config.maxImageBytes };
  const scheduler = new Scheduler({ batchWaitMs: config.batchWaitMs, offload: config.offload, hedgeAfter: defaultHedgeAfter });
  const preprocess = new PreprocessPool(config.preprocessWorkers, config.maxPixels, log);
  const pool = new LocalPool(
    scheduler,
    {
      engine: config.engine,
      candidates: options.candidates,
      requested: { workers: config.workers, threadsPerWorker: config.threadsPerWorker, soloThreads: config.soloThreads },
      cores: availableParallelism(),
      modelDir: config.modelDir,
      modelSha256: manifest.weightsSha256,
      maxBatch: config.maxBatch,
      topK: MAX_TOP,
    },
    log,
  );
  scheduler.switchModel(modelInfo(manifest));
  const hub = new Hub(preprocess, scheduler, modelInfo(manifest), log, {
    maxQueue: config.maxQueue,
    defaultDeadlineMs: config.defaultDeadlineMs > 0 ? config.defaultDeadlineMs : undefined,
  });
  const status = () => buildStatus(hub, scheduler, pool, volunteers);
  const http = new HttpFront(hub, { limits, status, metrics: () => metrics.exposition(), apiToken: config.apiToken }, log);
  const zmqFront = new ZmqFront(hub, limits, log, curveSecurity(config));
  http.addGetHandler(serveModelStore(config.modelDir));
  http.addGetHandler(serveDirectory(WEB_DIST_DIR, { prefix: '/', spaRoutes: { ...WEB_APP_ROUTES }, cache: 'immutable-assets' }));
  const allowedOrigins = config.volunteerOrigins?.split(',').map((origin) => origin.trim());
  const volunteers = attachVolunteerSocket({
    onUpgrade: (path, handler) => http.onUpgrade(path, handler),
    scheduler,
    model: { url: `${MODEL_URL_PREFIX}model.json`, sha256: manifest.weightsSha256, weights: manifest.weights },
    log,
    token: config.volunteerToken,
    allowedOrigins,
  });
  const feed = new EventFeed({ hub, scheduler, volunteers, status, log });
  const events = new EventsSocket({ onUpgrade: (path, handler) => http.onUpgrade(path, handler), feed, log, allowedOrigins, token: config.apiToken });
  const metrics = new HubMetrics({ hub, scheduler, volunteers, status, log, zmqAuth: () => zmqFront.curveCounts, zmqDrops: () => zmqFront.droppedReplies });
  // Without local workers nothing can recompute a volunteer's answer.
  const verifyFraction = config.workers === 0 ? 0 : config.verifyFraction;
  scheduler.setResultReviewer(
    createVerifier(scheduler, {
      fraction: verifyFraction,
      onVerdict: (executor, agreed, detail) => {
        metrics.recordVerification(agreed);
        if (!agreed) volunteers.quarantine(executor.id, `its answer disagreed with a local worker: ${detail}`);
      },
    }),
  );

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
    curve: zmqFront.curvePublicKey !== undefined,
    ...(zmqFront.curvePublicKey ? { curve_public_key: zmqFront.curvePublicKey } : {}),
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
      await zmqFront.settleIncoming();
      await zmqFront.flush();
      // Volunteers' sockets count as the HTTP server's connections: close them before it.
      await volunteers.close();
      feed.close();
      await events.close();
      await Promise.all([zmqFront.close(), http.close()]);
      await Promise.all([pool.stop(), preprocess.stop()]);
      return drained;
    },
  };
}
