/**
 * A swarm of protocol-level volunteer peers (peer.ts) against one hub: a mix of behaviours
 * in given shares, honest peers at a spread of speeds, misbehaving ones reconnecting after
 * each fault, all from one seed so a run can be replayed.
 */
import { seededRandom, type Random } from '../random.ts';
import { PEER_BEHAVIOURS, SwarmPeer, type PeerBehaviour, type PeerCounts } from './peer.ts';

/** Share of the swarm per behaviour; what is left over is honest. */
export type SwarmMix = Partial<Record<PeerBehaviour, number>>;

export interface SwarmOptions {
  /** The hub's HTTP base, e.g. http://127.0.0.1:8080 */
  http: string;
  peers: number;
  mix?: SwarmMix;
  /** Honest peers' time per image: uniform in this range. */
  honestMs?: [number, number];
  crawlMs?: number;
  /** Misbehaving peers come back as new connections this long after a fault; undefined: never. */
  reconnectMs?: number;
  maxBatch?: number;
  seed?: number;
  /** Peers connect this many at a time, so a thousand do not arrive in one instant. */
  connectBurst?: number;
}

/** The mix of issue 21's acceptance: 5% silent, 10% vanishing, 10% failing, 5% crawling. */
export const MIXED_SWARM: SwarmMix = { silent: 0.05, vanish: 0.1, fail: 0.1, crawl: 0.05 };

export class Swarm {
  readonly peers: SwarmPeer[];
  readonly behaviours: PeerBehaviour[];

  private constructor(peers: SwarmPeer[], behaviours: PeerBehaviour[]) {
    this.peers = peers;
    this.behaviours = behaviours;
  }

  static async start(options: SwarmOptions): Promise<Swarm> {
    const random = seededRandom(options.seed ?? 1);
    const url = `${options.http.replace(/^http/, 'ws')}/ws/volunteer?protocol=2`;
    const behaviours = assignBehaviours(options.peers, options.mix ?? {}, random);
    const [low, high] = options.honestMs ?? [3, 15];
    const peers = behaviours.map((behaviour) => {
      const perImageMs = behaviour === 'crawl' ? (options.crawlMs ?? 400) : low + (high - low) * random();
      return new SwarmPeer({ url, behaviour, perImageMs, maxBatch: options.maxBatch, reconnectMs: options.reconnectMs, random: seededRandom(Math.floor(random() * 2 ** 31)) });
    });
    const burst = options.connectBurst ?? 50;
    for (let i = 0; i < peers.length; i += burst) {
      for (const peer of peers.slice(i, i + burst)) peer.start();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return new Swarm(peers, behaviours);
  }

  /** Counts summed per behaviour. */
  counts(): Record<PeerBehaviour, PeerCounts & { peers: number }> {
    const totals = Object.fromEntries(PEER_BEHAVIOURS.map((b) => [b, { peers: 0, connections: 0, jobs: 0, images: 0, swallowed: 0, failed: 0 }])) as Record<
      PeerBehaviour,
      PeerCounts & { peers: number }
    >;
    this.peers.forEach((peer, i) => {
      const total = totals[this.behaviours[i]];
      total.peers++;
      for (const key of ['connections', 'jobs', 'images', 'swallowed', 'failed'] as const) total[key] += peer.counts[key];
    });
    return totals;
  }

  async stop(): Promise<void> {
    await Promise.all(this.peers.map((peer) => peer.stop()));
  }
}

/** Exactly round(share × peers) of each behaviour, shuffled, honest for the rest. */
function assignBehaviours(peers: number, mix: SwarmMix, random: Random): PeerBehaviour[] {
  const list: PeerBehaviour[] = [];
  for (const behaviour of PEER_BEHAVIOURS) if (behaviour !== 'honest') for (let i = 0; i < Math.round((mix[behaviour] ?? 0) * peers); i++) list.push(behaviour);
  while (list.length < peers) list.push('honest');
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [list[i], list[j]] = [list[j], list[i]];
  }
  return list.slice(0, peers);
}
