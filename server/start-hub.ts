/**
 * Wires the hub together: preprocessing pool, scheduler, local workers, and the fronts.
 */
import type { ModelManifest } from '../model-store/store.ts';
import { MAX_TOP } from '../shared/labels.ts';
import type { ModelInfo, Precision } from '../shared/protocol/classify.ts';
import { availableParallelism } from 'node:os';
import type { Config } from './config.ts';
import type { EngineName } from './engines/engine.ts';
import { LocalPool } from './executors/local-pool.ts';
import { HttpFront } from './front/http-front.ts';
import { ZmqFront } from './front/zmq-front.ts';
import { curveSecurity } from './front/curve-auth.ts';
import { Hub } from './hub/hub.ts';
import { defaultHubId } from './hub/hub-id.ts';
import type { Logger } from '../lib/log.ts';
import { PreprocessPool } from './preprocess/preprocess-pool.ts';
import { nativeJpegDecoder } from './preprocess/native-jpeg-decoder.ts';
import { ServiceError } from '../shared/protocol/errors.ts';
import { defaultHedgeAfter, Scheduler } from './scheduler/scheduler.ts';
import { createVerifier } from './scheduler/verifier.ts';
import { attachVolunteerSocket } from './volunteers/volunteer-registry.ts';
import { MODEL_URL_PREFIX, serveDirectory, serveModelStore, WEB_APP_ROUTES } from './front/static-files.ts';
import { WEB_DIST_DIR } from './web-build.ts';
import { buildStatus, int8FidelitySummary, UNTRAINED_WARNING, withInt8Fidelity } from './observability/status.ts';
import { EventFeed } from './observability/event-feed.ts';
import { EventsSocket } from './observability/events-socket.ts';
import { HubMetrics } from './observability/hub-metrics.ts';
import { attachModelSwapper } from './model-swap/attach-swapper.ts';
import { removeServingMarker, writeServingMarker } from '../model-store/serving-marker.ts';
import type { ModelSwapRecord, SwapTrigger } from '../shared/protocol/model-swap.ts';

export interface RunningHub {
  zmqEndpoint: string;
  httpPort: number;
  /** Looks for new weights in the store and swaps to them (SIGHUP, the reload API). */
  reloadModel(trigger: SwapTrigger): ModelSwapRecord | undefined;
  /** Stops taking requests, answers those accepted (up to graceMs), closes everything. */
  stop(graceMs: number): Promise<boolean>;
}

export function modelInfo(manifest: ModelManifest, precision: Precision = 'fp32'): ModelInfo {
  const { source } = manifest;
  return {
    name: manifest.name,
    weights: manifest.weights,
    precision,
    sha256: manifest.weightsSha256,
    source: source.kind === 'generated' ? { kind: 'generated', seed: source.seed } : { kind: 'keras-h5', sha256: source.sha256, md5: source.md5, url: source.url },
  };
}

export interface StartOptions {
  /** Engines `--engine auto` may try. */
  candidates?: readonly EngineName[];
  /** What the engines need of a new store before a model swap warms it (ONNX export…). */
  prepareModel?: (manifest: ModelManifest, engine: EngineName | undefined) => Promise<void>;
}

const MiB = 1024 * 1024;

export async function startHub(config: Config, manifest: ModelManifest, log: Logger, options: StartOptions = {}): Promise<RunningHub> {
  const limits = { maxImageBytes: config.maxImageBytes };
  const scheduler = new Scheduler({ batchWaitMs: config.batchWaitMs, offload: config.offload, hedgeAfter: defaultHedgeAfter });
  const preprocess = new PreprocessPool(config.preprocessWorkers, config.maxPixels, log);
  const createPool = (served: ModelManifest, generation: number) =>
    new LocalPool(
      scheduler,
      {
        // A swap keeps the engine the first pool chose: no second trial while serving.
        engine: generation === 0 ? config.engine : (pools.current?.engine ?? config.engine),
        candidates: options.candidates,
        requested: { workers: config.workers, threadsPerWorker: config.threadsPerWorker, soloThreads: config.soloThreads },
        cores: availableParallelism(),
        modelDir: config.modelDir,
        precision: config.precision,
        modelSha256: served.weightsSha256,
        idOffset: generation * (pools.current?.parallelism?.workers ?? 0),
        // Images being decoded count too: each is about to want a worker.
        pendingWork: () => hub.waiting,
        maxBatch: config.maxBatch,
        topK: MAX_TOP,
      },
      log,
    );
  const pools: { current: LocalPool } = { current: undefined as unknown as LocalPool }; // set on the next line
  pools.current = createPool(manifest, 0);
  scheduler.switchModel(modelInfo(manifest, config.precision));
  const hub = new Hub(preprocess, scheduler, modelInfo(manifest, config.precision), log, {
    maxQueue: config.maxQueue,
    defaultDeadlineMs: config.defaultDeadlineMs > 0 ? config.defaultDeadlineMs : undefined,
  });
  // A wildcard port (tcp://…:*) is only known once bound; until then the id shows `*`.
  hub.identity = { id: config.hubId ?? defaultHubId(config.zmq) };
  // Read again after each model swap: the int8 file (and its report) are remade for new weights.
  const readInt8Fidelity = async () => (config.precision === 'int8' ? await int8FidelitySummary(config.modelDir) : undefined);
  let int8Fidelity = await readInt8Fidelity();
  const status = () => ({ ...withInt8Fidelity(buildStatus(hub, scheduler, pools.current, volunteers), int8Fidelity), model_swap: swaps.swapper.status() });
  const http = new HttpFront(
    hub,
    { limits, status, metrics: () => metrics.exposition(), apiToken: config.apiToken, reloadModel: () => swaps.swapper.request('api') },
    log,
  );
  const zmqFront = new ZmqFront(hub, limits, log, curveSecurity(config));
  http.addGetHandler(serveModelStore(config.modelDir));
  http.addGetHandler(serveDirectory(WEB_DIST_DIR, { prefix: '/', spaRoutes: { ...WEB_APP_ROUTES }, cache: 'immutable-assets' }));
  const allowedOrigins = config.volunteerOrigins?.split(',').map((origin) => origin.trim());
  const volunteers = attachVolunteerSocket({
    onUpgrade: (path, handler) => http.onUpgrade(path, handler),
    scheduler,
    // A function: after a model swap, tabs are welcomed with the new one.
    model: () => ({ url: `${MODEL_URL_PREFIX}model.json`, sha256: hub.model.sha256, weights: hub.model.weights }),
    log,
    token: config.volunteerToken,
    allowedOrigins,
  });
  // What one pool of workers costs in memory, measured as the first one starts: a swap holds two.
  let footprintMiB = 0;
  const swaps = attachModelSwapper({
    modelDir: config.modelDir,
    log,
    scheduler,
    volunteers,
    pools,
    createPool,
    prepare: async (next) => {
      await options.prepareModel?.(next, pools.current.engine);
      nextInt8Fidelity = await readInt8Fidelity();
    },
    modelInfo: (served) => modelInfo(served, config.precision),
    footprintMiB: () => footprintMiB,
    memoryLimitMiB: config.swapMemoryLimitMib,
    pollMs: config.modelPollMs,
  });
  let nextInt8Fidelity = int8Fidelity;
  swaps.swapper.on('swap', (record) => {
    if (record.state === 'switching') int8Fidelity = nextInt8Fidelity;
  });
  const feed = new EventFeed({ hub, scheduler, volunteers, swaps: swaps.swapper, status, log });
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
  const rssBeforePool = process.memoryUsage.rss();
  await pools.current.start();
  footprintMiB = Math.max(0, process.memoryUsage.rss() - rssBeforePool) / MiB;
  const zmqEndpoint = await zmqFront.bind(config.zmq);
  if (config.hubId === undefined) hub.identity = { id: defaultHubId(zmqEndpoint) };
  await swaps.watch();
  // Tells the model tools that this hub serves the store (they say so after writing new weights).
  const marker = { pid: process.pid, http: `http://${config.httpHost === '0.0.0.0' ? 'localhost' : config.httpHost}:${httpPort}`, poll_ms: config.modelPollMs, started_at: new Date().toISOString() };
  await writeServingMarker(config.modelDir, marker).catch((error: unknown) => log.debug({ err: error }, 'could not write the serving note beside the store'));
  // Nothing is awaited from here to the return: the caller must hold this hub (and so drain it
  // on SIGTERM) from the moment it accepts a request. A signal that fell in an await between
  // the two found no hub to drain and exited, dropping what had been accepted.
  hub.markReady();
  const untrained = manifest.weights === 'untrained';
  const ready = {
    hub_id: hub.identity.id,
    zmq: zmqEndpoint,
    http: `http://${config.httpHost}:${httpPort}`,
    engine: pools.current.engine,
    workers: pools.current.parallelism?.workers,
    threads_per_worker: pools.current.parallelism?.threadsPerWorker,
    solo_threads: pools.current.parallelism?.soloThreads,
    precision: config.precision,
    preprocess_workers: config.preprocessWorkers,
    // Small JPEGs are decoded by the system's libturbojpeg where installed, else its wasm build.
    jpeg_decoder: nativeJpegDecoder() ? 'libturbojpeg' : 'wasm',
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
    reloadModel: (trigger) => swaps.swapper.request(trigger),
    async stop(graceMs) {
      zmqFront.stopReceiving();
      // A swap under way ends where it is; the drain below answers everything either way.
      const swapStopped = swaps.stop();
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
      await swapStopped;
      await Promise.all([pools.current.stop(), preprocess.stop(), removeServingMarker(config.modelDir, process.pid).catch(() => undefined)]);
      return drained;
    },
  };
}
