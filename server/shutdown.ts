/**
 * The hub's drain, in the order that loses nothing: stop taking requests, answer those accepted
 * (up to the grace period, then `shutting_down` for what is left), flush every reply, and only
 * then close the sockets, the volunteers, the workers and the serving note.
 */
import { removeServingMarker } from '../model-store/serving-marker.ts';
import { ServiceError } from '../shared/protocol/errors.ts';
import type { Config } from './config.ts';
import type { LocalPool } from './executors/local-pool.ts';
import type { HttpFront } from './front/http-front.ts';
import type { OpenInferenceGrpcFront } from './front/open-inference/grpc-front.ts';
import type { ZmqFront } from './front/zmq-front.ts';
import type { Hub } from './hub/hub.ts';
import type { AttachedSwapper } from './model-swap/attach-swapper.ts';
import type { EventFeed } from './observability/event-feed.ts';
import type { EventsSocket } from './observability/events-socket.ts';
import type { PreprocessPool } from './preprocess/preprocess-pool.ts';
import type { Scheduler } from './scheduler/scheduler.ts';
import type { VolunteerRegistry } from './volunteers/volunteer-registry.ts';

export interface HubParts {
  config: Config;
  hub: Hub;
  scheduler: Scheduler;
  preprocess: PreprocessPool;
  pools: { current: LocalPool };
  volunteers: VolunteerRegistry;
  swaps: AttachedSwapper;
  zmqFront: ZmqFront;
  http: HttpFront;
  grpc: OpenInferenceGrpcFront;
  feed: EventFeed;
  events: EventsSocket;
}

/** Resolves whether every accepted request was answered within `graceMs`. */
export async function stopHub(parts: HubParts, graceMs: number): Promise<boolean> {
  const { hub, zmqFront } = parts;
  zmqFront.stopReceiving();
  // Probes see it at once; calls that still arrive are refused by the hub as shutting down.
  parts.grpc.setServing(false);
  // A swap under way ends where it is; the drain below answers everything either way.
  const swapStopped = parts.swaps.stop();
  const drained = await hub.drain(graceMs);
  // Past the grace period, whatever is left is answered now rather than never.
  parts.scheduler.close(new ServiceError('shutting_down', 'the server stopped before this request finished'));
  await hub.drain(1000);
  await zmqFront.settleIncoming();
  await zmqFront.flush();
  // Volunteers' sockets count as the HTTP server's connections: close them before it.
  await parts.volunteers.close();
  parts.feed.close();
  await parts.events.close();
  await Promise.all([zmqFront.close(), parts.http.close(), parts.grpc.close()]);
  await swapStopped;
  await Promise.all([parts.pools.current.stop(), parts.preprocess.stop(), removeServingMarker(parts.config.modelDir, process.pid).catch(() => undefined)]);
  return drained;
}
