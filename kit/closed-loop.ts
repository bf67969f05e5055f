/**
 * Closed-loop ZeroMQ clients for the hardening tests: each client sends one request, waits for
 * its reply, and sends the next, until told to stop. Every request is tracked from send to
 * reply, so a test can tell answered from lost, and when each was sent.
 */
import * as zmq from 'zeromq';
import type { Reply } from '../shared/protocol/classify.ts';

export interface Exchange {
  requestId: string;
  client: number;
  sentAt: number;
  repliedAt?: number;
  reply?: Reply;
}

export interface ClosedLoopOptions {
  endpoint: string;
  clients: number;
  /** The JSON request for this request id (the id must be echoed back). */
  body: (requestId: string, client: number) => string;
  /** Clients stop sending once this resolves (requests in flight still get their reply). */
  until: Promise<unknown>;
  /** Pause after an `overloaded` reply, as a polite client would. */
  overloadBackoffMs?: number;
  /** How long a client waits for one reply before counting it lost. */
  replyTimeoutMs?: number;
}

export async function runClosedLoop(options: ClosedLoopOptions): Promise<Exchange[]> {
  const exchanges: Exchange[] = [];
  let stopping = false;
  void options.until.then(() => (stopping = true));
  const client = async (index: number) => {
    const socket = new zmq.Dealer({ receiveTimeout: options.replyTimeoutMs ?? 60_000, linger: 0 });
    socket.connect(options.endpoint);
    try {
      for (let n = 0; !stopping; n++) {
        const exchange: Exchange = { requestId: `c${index}-${n}`, client: index, sentAt: performance.now() };
        exchanges.push(exchange);
        await socket.send(options.body(exchange.requestId, index));
        let frames: Buffer[];
        try {
          frames = await socket.receive();
        } catch {
          return; // timed out: the exchange stays without a reply, i.e. lost
        }
        exchange.repliedAt = performance.now();
        exchange.reply = JSON.parse(frames[0].toString()) as Reply;
        if ('error' in exchange.reply && exchange.reply.error.code === 'overloaded' && options.overloadBackoffMs) {
          await new Promise((resolve) => setTimeout(resolve, options.overloadBackoffMs));
        }
      }
    } finally {
      socket.close();
    }
  };
  await Promise.all(Array.from({ length: options.clients }, (_, i) => client(i)));
  return exchanges;
}

export function codeOf(reply: Reply | undefined): string {
  if (!reply) return 'lost';
  return 'error' in reply ? reply.error.code : 'ok';
}

export function countBy<T>(items: readonly T[], key: (item: T) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) counts[key(item)] = (counts[key(item)] ?? 0) + 1;
  return counts;
}
