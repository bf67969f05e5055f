/**
 * ZeroMQ clients that behave as careless and hostile callers do: closed loops that resend the
 * moment a reply arrives (no back-off after `overloaded`), DEALERs that keep many requests in
 * flight and match replies by request_id, and clients that send and vanish without reading.
 * Every tracked request goes through a StormLedger.
 */
import * as zmq from 'zeromq';
import type { StormLedger } from './ledger.ts';

export type BodyFor = (requestId: string) => string;

export interface LoopOptions {
  endpoint: string;
  clients: number;
  body: BodyFor;
  ledger: StormLedger;
  /** Clients stop sending once this resolves; replies already due are still read. */
  until: Promise<unknown>;
  /** After `until`, how long a client waits for its outstanding replies before they count as lost. */
  replyTimeoutMs: number;
  lane?: string;
}

/** The code a reply frame carries: `ok`, an error code, or `unparseable`. */
export function replyCode(frame: Buffer): { code: string; requestId?: string } {
  try {
    const reply = JSON.parse(frame.toString('utf8')) as { error?: { code?: string }; request_id?: string };
    return { code: reply.error ? String(reply.error.code) : 'ok', requestId: reply.request_id };
  } catch {
    return { code: 'unparseable' };
  }
}

/** Closed-loop DEALERs that send the next request as soon as a reply comes, whatever it says. */
export async function noBackoffClients(options: LoopOptions): Promise<void> {
  return pipelinedClients({ ...options, inFlight: 1, lane: options.lane ?? 'zmq-no-backoff' });
}

/** DEALERs that each keep `inFlight` requests outstanding, refilling as replies arrive. */
export async function pipelinedClients(options: LoopOptions & { inFlight: number }): Promise<void> {
  let stopping = false;
  void options.until.then(() => (stopping = true));
  const lane = options.lane ?? `zmq-pipelined-${options.inFlight}`;
  const client = async (index: number) => {
    const socket = new zmq.Dealer({ linger: 0, receiveTimeout: options.replyTimeoutMs, sendTimeout: options.replyTimeoutMs });
    socket.connect(options.endpoint);
    let outstanding = 0;
    let n = 0;
    const sendOne = async () => {
      const id = `${lane}-${index}-${n++}`;
      options.ledger.begin(id, lane);
      outstanding++;
      await socket.send(options.body(id));
    };
    try {
      for (let i = 0; i < options.inFlight; i++) await sendOne();
      while (outstanding > 0) {
        let frames: Buffer[];
        try {
          frames = await socket.receive();
        } catch {
          return; // silent past the timeout: what is outstanding stays unanswered (lost)
        }
        outstanding--;
        const { code, requestId } = replyCode(frames[frames.length - 1]);
        options.ledger.settle(requestId, code);
        if (!stopping) await sendOne();
      }
    } finally {
      socket.close();
    }
  };
  await Promise.all(Array.from({ length: options.clients }, (_, i) => client(i)));
}

export interface VanishOptions {
  endpoint: string;
  count: number;
  body: BodyFor;
  /** Sockets open at once; the rest wait their turn. */
  concurrency?: number;
}

/** REQ and DEALER sockets (alternately) that send one request and close without reading. */
export async function vanishingClients(options: VanishOptions): Promise<number> {
  let next = 0;
  let sent = 0;
  const worker = async () => {
    for (let i = next++; i < options.count; i = next++) {
      const socket = i % 2 === 0 ? new zmq.Request({ linger: 0 }) : new zmq.Dealer({ linger: 0 });
      // Connected first, so the request really reaches the hub before its sender vanishes.
      const connected = new Promise<void>((resolve) => {
        socket.events.on('connect', () => resolve());
        setTimeout(resolve, 1000).unref();
      });
      socket.connect(options.endpoint);
      try {
        await connected;
        await socket.send(options.body(`vanish-${i}`));
        sent++;
        // Long enough for the request to leave; the reply finds no one.
        await new Promise((resolve) => setTimeout(resolve, 20));
      } finally {
        socket.close();
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 50 }, () => worker()));
  return sent;
}
