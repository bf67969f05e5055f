/**
 * WebSocket peers that connect and never read, or connect and drop, in numbers: against the
 * event stream (`/ws/events`) and the volunteer socket (`/ws/volunteer`). A silent peer is a
 * raw TCP connection that completes the upgrade and then stops reading, so whatever the hub
 * sends piles up on the hub's side, as with a frozen tab.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import WebSocket from 'ws';

export interface SilentPeers {
  /** Upgrades the hub accepted (101), and refused (any other status, or a reset). */
  accepted: number;
  refused: number;
  close(): void;
}

/** Opens `count` WebSocket connections that never read after the handshake. */
export async function silentPeers(base: string, path: string, count: number): Promise<SilentPeers> {
  const { hostname, port, host } = new URL(base);
  const sockets: net.Socket[] = [];
  let accepted = 0;
  let refused = 0;
  const open = () =>
    new Promise<void>((resolve) => {
      const socket = net.connect(Number(port), hostname);
      sockets.push(socket);
      socket.on('error', () => undefined);
      socket.once('connect', () => {
        socket.write(
          `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nOrigin: ${base}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
        );
      });
      socket.once('data', (chunk: Buffer) => {
        if (chunk.toString('latin1').startsWith('HTTP/1.1 101')) accepted++;
        else refused++;
        // From here on nothing is read: the hub's writes fill the kernel buffers, then its own.
        socket.pause();
        resolve();
      });
      socket.once('close', () => resolve());
    });
  for (let i = 0; i < count; i += 32) await Promise.all(Array.from({ length: Math.min(32, count - i) }, open));
  return {
    accepted,
    refused,
    close: () => {
      for (const socket of sockets) socket.destroy();
    },
  };
}

/** Connects `count` WebSocket clients that hang up at once: half right after the handshake, half before it ends. */
export async function connectAndDrop(base: string, path: string, count: number): Promise<number> {
  const url = `${base.replace(/^http/, 'ws')}${path}`;
  let done = 0;
  const one = (i: number) =>
    new Promise<void>((resolve) => {
      const ws = new WebSocket(url, { origin: base });
      ws.on('error', () => resolve());
      ws.on('close', () => resolve());
      if (i % 2 === 0) ws.on('open', () => ws.terminate());
      else setImmediate(() => ws.terminate());
    }).then(() => void done++);
  for (let i = 0; i < count; i += 32) await Promise.all(Array.from({ length: Math.min(32, count - i) }, (_, j) => one(i + j)));
  return done;
}
