/**
 * The tab's WebSocket to the hub, one connection at a time: events from a connection that has
 * ended are dropped, everything sent is validated first, and attempts are spaced by back-off.
 */
import { z } from 'zod';
import type { BackoffPolicy } from '../../../shared/backoff.ts';
import { VolunteerMessageSchema } from '../../../shared/protocol/volunteer.ts';
import type { VolunteerMessage } from '../../../shared/protocol/volunteer.ts';

const BACKOFF_MIN_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;

export interface LinkHandlers {
  onText(text: string): void;
  onBinary(buffer: ArrayBuffer): void;
  onClosed(code: number, reason: string): void;
}

export class HubLink {
  private ws: WebSocket | null = null;
  private generation = 0;
  /** Epoch ms of the last message from the hub on the current connection. */
  lastReceived = 0;

  /** Bumped whenever a connection opens or ends: work tagged with an older epoch is stale. */
  get epoch(): number {
    return this.generation;
  }

  /** A connection is open or being opened. */
  get active(): boolean {
    return this.ws !== null;
  }

  /** Opens a new connection; throws when the URL cannot be used. */
  open(url: string, handlers: LinkHandlers): void {
    this.generation++;
    const epoch = this.generation;
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.addEventListener('message', (event: MessageEvent<string | ArrayBuffer>) => {
      if (epoch !== this.generation) return;
      this.lastReceived = Date.now();
      if (typeof event.data === 'string') handlers.onText(event.data);
      else handlers.onBinary(event.data);
    });
    ws.addEventListener('close', (event) => {
      if (epoch === this.generation) handlers.onClosed(event.code, event.reason);
    });
  }

  close(code: number, reason: string): void {
    const ws = this.ws;
    this.ws = null;
    this.generation++;
    if (ws && (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN)) {
      try {
        ws.close(code, reason);
      } catch {
        // already closing
      }
    }
  }

  /** Sends on an open connection; a message that fails its schema is a bug here and never sent. */
  send(message: VolunteerMessage): void {
    const checked = VolunteerMessageSchema.safeParse(message);
    if (!checked.success) {
      console.error(`volunteer: refusing to send an invalid ${message.type} message: ${z.prettifyError(checked.error)}`);
      return;
    }
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(checked.data));
  }
}

/** Reconnecting to the hub: 1 s, then doubling up to 30 s (shared/backoff.ts). */
export const RECONNECT_BACKOFF: BackoffPolicy = { baseMs: BACKOFF_MIN_MS, maxMs: BACKOFF_MAX_MS };
