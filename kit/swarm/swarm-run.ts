/**
 * One swarm measurement against a running hub: the swarm joins, the clients load the hub for a
 * while, and what came of it is returned with what it cost the hub (its main thread's CPU per
 * answered request, its resident memory, memory per connected peer).
 */
import type { StatusReport } from '../../shared/protocol/status.ts';
import { readRssMiB } from '../rss-sampler.ts';
import { THREAD_GROUPS, threadCpu, threadSnapshot } from '../thread-cpu.ts';
import type { ThreadGroup } from '../thread-cpu.ts';
import { runSwarmLoad, type SwarmLoadResult } from './swarm-load.ts';
import { Swarm, type SwarmOptions } from './swarm.ts';

export interface SwarmHub {
  http: string;
  zmq: string;
  pid: number;
}

export interface SwarmRunOptions {
  swarm: Omit<SwarmOptions, 'http'>;
  clients: number;
  durationMs: number;
  /** Load before the measured window, so the peers have a record. */
  warmupMs?: number;
  /** The request body for an id (a photo, base64). */
  body: (requestId: string) => string;
  /** How many peers must have joined before the load starts; default: all but the misbehaving share. */
  joinedAtLeast?: number;
}

export interface SwarmRunResult {
  load: SwarmLoadResult;
  peersJoined: number;
  rssBeforeSwarmMiB: number | null;
  rssWithSwarmMiB: number | null;
  /** (RSS with the swarm joined − RSS before) / peers joined. */
  kibPerPeer: number | null;
  /** The hub's main thread, CPU ms per answered request, over the measured window. */
  mainCpuMsPerRequest: number | null;
  /** Every thread group of the hub (main, preprocess, inference, zeromq, libuv+v8), CPU ms per answered request: where its time goes. */
  cpuMsPerRequest: Partial<Record<ThreadGroup, number>>;
  swarmCounts: ReturnType<Swarm['counts']>;
}

export async function runSwarm(hub: SwarmHub, options: SwarmRunOptions): Promise<SwarmRunResult> {
  const rssBeforeSwarmMiB = readRssMiB(hub.pid);
  const swarm = await Swarm.start({ ...options.swarm, http: hub.http });
  try {
    const want = options.joinedAtLeast ?? Math.floor(options.swarm.peers * 0.9);
    const peersJoined = await waitForVolunteers(hub.http, want, 60_000);
    const rssWithSwarmMiB = readRssMiB(hub.pid);
    if (options.warmupMs) await runSwarmLoad({ endpoint: hub.zmq, clients: options.clients, body: options.body, durationMs: options.warmupMs });
    const before = threadSnapshot(hub.pid);
    const load = await runSwarmLoad({ endpoint: hub.zmq, clients: options.clients, body: options.body, durationMs: options.durationMs });
    const cores = threadCpu(before, threadSnapshot(hub.pid));
    // Cores on the main thread × the window = its CPU time, shared out over the answers.
    const perRequest = (group: ThreadGroup) => (cores && load.ok > 0 ? (cores[group] * load.seconds * 1000) / load.ok : null);
    const mainCpuMsPerRequest = perRequest('main');
    const cpuMsPerRequest: Partial<Record<ThreadGroup, number>> = {};
    for (const group of THREAD_GROUPS) {
      const ms = perRequest(group);
      if (ms !== null) cpuMsPerRequest[group] = ms;
    }
    const kibPerPeer = rssBeforeSwarmMiB !== null && rssWithSwarmMiB !== null && peersJoined > 0 ? ((rssWithSwarmMiB - rssBeforeSwarmMiB) * 1024) / peersJoined : null;
    return { load, peersJoined, rssBeforeSwarmMiB, rssWithSwarmMiB, kibPerPeer, mainCpuMsPerRequest, cpuMsPerRequest, swarmCounts: swarm.counts() };
  } finally {
    await swarm.stop();
  }
}

/** Volunteers the hub lists as joined (any state but gone), once at least `count` are, or at the timeout. */
export async function waitForVolunteers(http: string, count: number, timeoutMs: number): Promise<number> {
  const until = performance.now() + timeoutMs;
  let joined = 0;
  while (performance.now() < until) {
    const status = (await (await fetch(`${http}/api/status`)).json()) as StatusReport;
    joined = status.volunteers.filter((v) => v.state !== 'quarantined').length;
    if (joined >= count) return joined;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return joined;
}
