/**
 * The clients a swarm is measured with: closed-loop ZeroMQ DEALERs, each sending one request,
 * waiting for its reply, then sending the next. Every reply is matched by request_id, so a
 * request answered twice (a duplicate) or never (lost) is counted, not missed.
 */
import * as zmq from 'zeromq';
import type { Reply } from '../../shared/protocol/classify.ts';
import { percentileOfSorted } from '../../shared/stats.ts';

export interface SwarmLoadOptions {
  endpoint: string;
  clients: number;
  /** The JSON body of one request with this id. */
  body: (requestId: string) => string;
  durationMs: number;
  /** A request with no reply after this long is lost. */
  replyTimeoutMs?: number;
}

export interface SwarmLoadResult {
  seconds: number;
  sent: number;
  ok: number;
  /** Error replies by code. */
  errors: Record<string, number>;
  lost: number;
  /** Replies for a request already answered, or for no request of this client. */
  duplicates: number;
  throughput: number;
  p50Ms: number;
  p99Ms: number;
  /** Answers by executor kind (local, volunteer). */
  byExecutor: Record<string, number>;
}

export async function runSwarmLoad(options: SwarmLoadOptions): Promise<SwarmLoadResult> {
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  const byExecutor: Record<string, number> = {};
  let sent = 0;
  let lost = 0;
  let duplicates = 0;
  const started = performance.now();
  const endAt = started + options.durationMs;
  const client = async (index: number) => {
    const socket = new zmq.Dealer({ receiveTimeout: options.replyTimeoutMs ?? 30_000, linger: 0 });
    socket.connect(options.endpoint);
    try {
      for (let n = 0; performance.now() < endAt; n++) {
        const requestId = `c${index}-${n}`;
        const sentAt = performance.now();
        sent++;
        await socket.send(options.body(requestId));
        for (;;) {
          let frames: Buffer[];
          try {
            frames = await socket.receive();
          } catch {
            lost++;
            return;
          }
          const reply = JSON.parse(frames[0].toString()) as Reply;
          // A reply for an earlier request of this client: it was answered twice.
          if (reply.request_id !== requestId) {
            duplicates++;
            continue;
          }
          if ('error' in reply) errors[reply.error.code] = (errors[reply.error.code] ?? 0) + 1;
          else {
            latencies.push(performance.now() - sentAt);
            byExecutor[reply.executor.kind] = (byExecutor[reply.executor.kind] ?? 0) + 1;
          }
          break;
        }
      }
    } finally {
      socket.close();
    }
  };
  await Promise.all(Array.from({ length: options.clients }, (_, i) => client(i)));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    seconds,
    sent,
    ok: latencies.length,
    errors,
    lost,
    duplicates,
    throughput: latencies.length / seconds,
    p50Ms: percentileOfSorted(latencies, 50),
    p99Ms: percentileOfSorted(latencies, 99),
    byExecutor,
  };
}
