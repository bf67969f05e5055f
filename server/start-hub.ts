/**
 * Wires the hub together, each part after what it needs: the request path (scheduler,
 * preprocessing, hub), its executors (local workers, volunteers), model swaps, the fronts and
 * what watches them (status, metrics, events). Nothing is used before it exists.
 */
import { availableParallelism } from 'node:os';
import type { Logger } from '../lib/log.ts';
import type { ModelManifest } from '../model-store/store.ts';
import { writeServingMarker } from '../model-store/serving-marker.ts';
import { MAX_TOP } from '../shared/labels.ts';
import type { ModelInfo, Precision } from '../shared/protocol/classify.ts';
import type { ModelSwapRecord, SwapTrigger } from '../shared/protocol/model-swap.ts';
import type { Int8FidelitySummary } from '../shared/protocol/status.ts';
import type { Config } from './config.ts';
import type { EngineName } from './engines/engine.ts';
import { LocalPool } from './executors/local-pool.ts';
import { curveSecurity } from './front/curve-auth.ts';
import { HttpFront } from './front/http-front.ts';
import { OpenInferenceGrpcFront } from './front/open-inference/grpc-front.ts';
import { OpenInferenceRoutes } from './front/open-inference/open-inference-routes.ts';
import { productVersion } from './product-version.ts';
import { MODEL_URL_PREFIX, serveDirectory, serveModelStore, WEB_APP_ROUTES } from './front/static-files.ts';
import { ZmqFront } from './front/zmq-front.ts';
import { defaultHubId } from './hub/hub-id.ts';
import { Hub } from './hub/hub.ts';
import { attachModelSwapper } from './model-swap/attach-swapper.ts';
import { EventFeed } from './observability/event-feed.ts';
import { EventsSocket } from './observability/events-socket.ts';
import { HubMetrics } from './observability/hub-metrics.ts';
import { buildStatus, int8FidelitySummary, UNTRAINED_WARNING, withInt8Fidelity } from './observability/status.ts';
import { nativeJpegDecoder } from './preprocess/native-jpeg-decoder.ts';
import { PreprocessPool } from './preprocess/preprocess-pool.ts';
import { defaultHedgeAfter } from './scheduler/dispatch-policy.ts';
import { Scheduler } from './scheduler/scheduler.ts';
import { createVerifier } from './scheduler/verifier.ts';
import { stopHub } from './shutdown.ts';
import { VOLUNTEER_PATH, VolunteerRegistry } from './volunteers/volunteer-registry.ts';
import { WEB_DIST_DIR } from './web-build.ts';

export interface RunningHub {
  zmqEndpoint: string;
  httpPort: number;
  grpcPort: number;
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

interface PoolDeps {
  config: Config;
  scheduler: Scheduler;
  hub: Hub;
  candidates?: readonly EngineName[];
  log: Logger;
}

/**
 * A pool of local workers for `served`. `previous`, for a model swap: the new pool keeps the
 * engine the first one chose (no second trial while serving) and numbers its workers after it.
 */
function createLocalPool(deps: PoolDeps, served: ModelManifest, generation: number, previous?: LocalPool): LocalPool {
  const { config } = deps;
  return new LocalPool(
    deps.scheduler,
    {
      engine: previous?.engine ?? config.engine,
      candidates: deps.candidates,
      requested: { workers: config.workers, threadsPerWorker: config.threadsPerWorker, soloThreads: config.soloThreads },
      cores: availableParallelism(),
      modelDir: config.modelDir,
      precision: config.precision,
      modelSha256: served.weightsSha256,
      idOffset: generation * (previous?.parallelism?.workers ?? 0),
      // Images being decoded count too: each is about to want a worker.
      pendingWork: () => deps.hub.waiting,
      maxBatch: config.maxBatch,
      topK: MAX_TOP,
    },
    deps.log,
  );
}

/** The int8 fidelity report shown in status: read again for new weights, shown from the switch on. */
class Int8FidelityShown {
  private shown: Int8FidelitySummary | undefined;
  private next: Int8FidelitySummary | undefined;

  constructor(private readonly config: Config) {}

  async load(): Promise<void> {
    this.next = this.config.precision === 'int8' ? await int8FidelitySummary(this.config.modelDir) : undefined;
  }

  switchToNext(): void {
    this.shown = this.next;
  }

  get current(): Int8FidelitySummary | undefined {
    return this.shown;
  }
}

export async function startHub(config: Config, manifest: ModelManifest, log: Logger, options: StartOptions = {}): Promise<RunningHub> {
  const limits = { maxImageBytes: config.maxImageBytes };
  const served = modelInfo(manifest, config.precision);

  // The request path.
  const scheduler = new Scheduler({ batchWaitMs: config.batchWaitMs, offload: config.offload, hedgeAfter: defaultHedgeAfter });
  scheduler.switchModel(served);
  const preprocess = new PreprocessPool(config.preprocessWorkers, config.maxPixels, log);
  const hub = new Hub(preprocess, scheduler, served, log, {
    maxQueue: config.maxQueue,
    defaultDeadlineMs: config.defaultDeadlineMs > 0 ? config.defaultDeadlineMs : undefined,
  });
  // A wildcard port (tcp://…:*) is only known once bound; until then the id shows `*`.
  hub.identity = { id: config.hubId ?? defaultHubId(config.zmq) };

  // Its executors.
  const poolDeps: PoolDeps = { config, scheduler, hub, candidates: options.candidates, log };
  const pools = { current: createLocalPool(poolDeps, manifest, 0) };
  const allowedOrigins = config.volunteerOrigins?.split(',').map((origin) => origin.trim());
  const volunteers = new VolunteerRegistry({
    scheduler,
    // A function: after a model swap, tabs are welcomed with the new one.
    model: () => ({ url: `${MODEL_URL_PREFIX}model.json`, sha256: hub.model.sha256, weights: hub.model.weights }),
    log,
    token: config.volunteerToken,
    allowedOrigins,
    maxConnections: config.maxVolunteers,
  });

  // New weights while serving.
  const int8Fidelity = new Int8FidelityShown(config);
  await int8Fidelity.load();
  int8Fidelity.switchToNext();
  // What one pool of workers costs in memory, measured as the first one starts: a swap holds two.
  let footprintMiB = 0;
  const swaps = attachModelSwapper({
    modelDir: config.modelDir,
    log,
    scheduler,
    volunteers,
    pools,
    createPool: (next, generation) => createLocalPool(poolDeps, next, generation, pools.current),
    prepare: async (next) => {
      await options.prepareModel?.(next, pools.current.engine);
      await int8Fidelity.load();
    },
    modelInfo: (next) => modelInfo(next, config.precision),
    footprintMiB: () => footprintMiB,
    memoryLimitMiB: config.swapMemoryLimitMib,
    pollMs: config.modelPollMs,
  });
  swaps.swapper.on('swap', (record) => {
    if (record.state === 'switching') int8Fidelity.switchToNext();
  });

  // The fronts, and what watches the hub.
  const zmqFront = new ZmqFront(hub, limits, log, curveSecurity(config));
  const status = () => ({ ...withInt8Fidelity(buildStatus(hub, scheduler, pools.current, volunteers), int8Fidelity.current), model_swap: swaps.swapper.status() });
  const metrics = new HubMetrics({ hub, scheduler, volunteers, status, log, zmqAuth: () => zmqFront.curveCounts, zmqDrops: () => zmqFront.droppedReplies });
  scheduler.setResultReviewer(
    createVerifier(scheduler, {
      fraction: config.verifyFraction,
      onVerdict: (executor, agreed, detail) => {
        metrics.recordVerification(agreed);
        if (!agreed) volunteers.quarantine(executor.id, `its answer disagreed with a local worker: ${detail}`);
      },
    }),
  );
  const openInferenceOptions = { hub, limits, model: () => scheduler.model ?? served, serverName: 'resnet-hub', serverVersion: productVersion(), localWorkers: config.workers !== 0, log };
  const openInference = new OpenInferenceRoutes(openInferenceOptions);
  const grpc = new OpenInferenceGrpcFront({ ...openInferenceOptions, apiToken: config.apiToken });
  const http = new HttpFront(
    hub,
    { limits, status, metrics: () => metrics.exposition(), apiToken: config.apiToken, reloadModel: () => swaps.swapper.request('api'), openInference },
    log,
  );
  http.addGetHandler(serveModelStore(config.modelDir));
  http.addGetHandler(serveDirectory(WEB_DIST_DIR, { prefix: '/', spaRoutes: { ...WEB_APP_ROUTES }, cache: 'immutable-assets' }));
  http.onUpgrade(VOLUNTEER_PATH, (request, socket, head) => volunteers.handleUpgrade(request, socket, head));
  const feed = new EventFeed({ hub, scheduler, volunteers, swaps: swaps.swapper, status, log });
  const events = new EventsSocket({ onUpgrade: (path, handler) => http.onUpgrade(path, handler), feed, log, allowedOrigins, token: config.apiToken });

  // Probes answer while the workers warm up: /readyz says 503 until they are.
  const httpPort = await http.listen(config.httpPort, config.httpHost);
  const grpcPort = await grpc.listen(config.grpcPort, config.httpHost);
  log.info({ http: `http://${config.httpHost}:${httpPort}`, grpc: `${config.httpHost}:${grpcPort}`, workers: config.workers }, 'warming up');
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
  grpc.setServing(true);
  logReady(log, config, manifest, { hub, zmqFront, pool: pools.current, zmqEndpoint, httpPort, grpcPort });
  const parts = { config, hub, scheduler, preprocess, pools, volunteers, swaps, zmqFront, http, grpc, feed, events };
  return {
    zmqEndpoint,
    httpPort,
    grpcPort,
    reloadModel: (trigger) => swaps.swapper.request(trigger),
    stop: (graceMs) => stopHub(parts, graceMs),
  };
}

/** The one `ready` line: where the hub listens and what it runs (a warning with untrained weights). */
function logReady(
  log: Logger,
  config: Config,
  manifest: ModelManifest,
  running: { hub: Hub; zmqFront: ZmqFront; pool: LocalPool; zmqEndpoint: string; httpPort: number; grpcPort: number },
): void {
  const { hub, zmqFront, pool } = running;
  const untrained = manifest.weights === 'untrained';
  const ready = {
    hub_id: hub.identity.id,
    zmq: running.zmqEndpoint,
    http: `http://${config.httpHost}:${running.httpPort}`,
    grpc: `${config.httpHost}:${running.grpcPort}`,
    engine: pool.engine,
    workers: pool.parallelism?.workers,
    threads_per_worker: pool.parallelism?.threadsPerWorker,
    solo_threads: pool.parallelism?.soloThreads,
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
}
