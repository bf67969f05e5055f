/**
 * A real HTTP server on loopback that serves one file with byte ranges, as a CDN does, and
 * misbehaves on cue (drops the connection mid-body, stalls, answers 500, ignores Range,
 * redirects), logging every request, so download code is tested against real sockets.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type Fault =
  /** Send the status line, headers and `bytes` bytes of the body, then destroy the socket. */
  | { type: 'drop-after'; bytes: number }
  /** Send `bytes` bytes of the body, then nothing more (the socket stays open). */
  | { type: 'stall-after'; bytes: number }
  | { type: 'status'; status: number }
  /** Answer 200 with the whole file whatever Range asked for. */
  | { type: 'ignore-range' }
  | { type: 'redirect'; location: string };

export interface RequestRecord {
  path: string;
  range: string | undefined;
  status: number;
}

export interface FileServer {
  /** http://127.0.0.1:port */
  origin: string;
  url(path?: string): string;
  requests: RequestRecord[];
  /** Faults for the next requests, one per request, in order; then the server behaves. */
  faults: Fault[];
  close(): Promise<void>;
}

export async function startFileServer(body: Uint8Array, options: { path?: string } = {}): Promise<FileServer> {
  const filePath = options.path ?? '/weights.h5';
  const requests: RequestRecord[] = [];
  const faults: Fault[] = [];
  const sockets = new Set<Socket>();

  const server = http.createServer((req, res) => {
    const range = req.headers.range;
    const record: RequestRecord = { path: req.url ?? '', range, status: 0 };
    requests.push(record);
    const send = (status: number, headers: http.OutgoingHttpHeaders, data?: Uint8Array) => {
      record.status = status;
      res.writeHead(status, headers);
      res.end(data);
    };
    const fault = faults.shift();
    if (fault?.type === 'status') return send(fault.status, { 'Content-Length': 0 });
    if (fault?.type === 'redirect') return send(302, { Location: fault.location, 'Content-Length': 0 });
    if (req.url !== filePath) return send(404, { 'Content-Length': 0 });

    let start = 0;
    let status = 200;
    const match = range && fault?.type !== 'ignore-range' ? /^bytes=(\d+)-$/.exec(range) : null;
    if (match) {
      start = Number(match[1]);
      if (start >= body.byteLength) return send(416, { 'Content-Range': `bytes */${body.byteLength}`, 'Content-Length': 0 });
      status = 206;
    }
    const slice = body.subarray(start);
    const headers: http.OutgoingHttpHeaders = { 'Content-Length': slice.byteLength, 'Accept-Ranges': 'bytes' };
    if (status === 206) headers['Content-Range'] = `bytes ${start}-${body.byteLength - 1}/${body.byteLength}`;
    record.status = status;
    res.writeHead(status, headers);
    if (fault?.type === 'drop-after') {
      // A pause before the drop lets the client read what was sent (a reader that sees the
      // connection die discards what it had buffered but not yet consumed).
      res.write(slice.subarray(0, fault.bytes), () => setTimeout(() => res.socket?.destroy(), 100));
    } else if (fault?.type === 'stall-after') {
      res.write(slice.subarray(0, fault.bytes));
    } else {
      res.end(slice);
    }
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    url: (path = filePath) => `${origin}${path}`,
    requests,
    faults,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A loopback port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Deterministic bytes (xorshift32), so every run serves the same file. */
export function seededBytes(length: number, seed = 0x2545f491): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}
