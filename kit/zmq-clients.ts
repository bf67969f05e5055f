/**
 * ZeroMQ clients as real callers use them: a DEALER sending one JSON frame (the seed's
 * clients), a REQ socket (adds the empty delimiter), and raw multipart sends for bad input.
 */
import { readFileSync } from 'node:fs';
import * as zmq from 'zeromq';
import type { ClassifyReply, ErrorReply, Reply } from '../shared/protocol/classify.ts';
import { PHOTOS_DIR } from './paths.ts';

export interface Timed<T> {
  reply: T;
  ms: number;
}

type Frames = Array<string | Buffer>;

/** One request on a fresh socket of the given kind; the reply's last frame parsed. */
async function request(
  socket: zmq.Dealer | zmq.Request,
  endpoint: string,
  frames: Frames | string,
): Promise<Timed<Reply> & { frames: number }> {
  socket.connect(endpoint);
  try {
    const started = performance.now();
    await socket.send(frames);
    const received = await socket.receive();
    const ms = performance.now() - started;
    return { reply: JSON.parse(received[received.length - 1].toString()) as Reply, ms, frames: received.length };
  } finally {
    socket.close();
  }
}

export function dealerRequest(endpoint: string, frames: Frames | string, timeoutMs = 60_000): Promise<Timed<Reply>> {
  return request(new zmq.Dealer({ receiveTimeout: timeoutMs, linger: 0 }), endpoint, frames);
}

export function reqRequest(endpoint: string, frames: Frames | string, timeoutMs = 60_000): Promise<Timed<Reply> & { frames: number }> {
  return request(new zmq.Request({ receiveTimeout: timeoutMs, linger: 0 }), endpoint, frames);
}

export function payloadOf(bytes: Buffer, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ payload: bytes.toString('base64'), ...extra });
}

export const PHOTO_NAMES = ['astronaut', 'chelsea', 'coffee', 'camera', 'rocket', 'hubble_deep_field'] as const;

export function photo(name: (typeof PHOTO_NAMES)[number]): Buffer {
  return readFileSync(`${PHOTOS_DIR}/${name}.jpg`);
}

export function expectSuccess(reply: Reply): ClassifyReply {
  if ('error' in reply) throw new Error(`expected a result, got error ${reply.error.code}: ${reply.error.message}`);
  return reply;
}

export function expectError(reply: Reply): ErrorReply {
  if (!('error' in reply)) throw new Error(`expected an error, got a result: ${reply.preds}`);
  return reply;
}
