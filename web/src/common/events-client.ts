/**
 * The page's side of `/ws/events`: one socket, reconnected with backoff when it drops, each
 * message parsed into a typed event. On every (re)connect the hub sends a snapshot first, so
 * listeners rebuild from it rather than patching across a gap.
 */
import { EVENTS_PATH } from '../../../shared/protocol/events.ts';
import type { HubEvent } from '../../../shared/protocol/events.ts';
import { apiToken } from './api-token.ts';

export type StreamState = 'connecting' | 'live' | 'offline';

const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 10_000;

export class EventStream {
  private socket: WebSocket | undefined;
  private retryMs = FIRST_RETRY_MS;
  private retryTimer: number | undefined;
  private stopped = false;
  private readonly eventListeners: Array<(event: HubEvent) => void> = [];
  private readonly stateListeners: Array<(state: StreamState) => void> = [];
  state: StreamState = 'connecting';

  onEvent(listener: (event: HubEvent) => void): this {
    this.eventListeners.push(listener);
    return this;
  }

  onState(listener: (state: StreamState) => void): this {
    this.stateListeners.push(listener);
    listener(this.state);
    return this;
  }

  start(): this {
    this.stopped = false;
    this.connect();
    return this;
  }

  stop(): void {
    this.stopped = true;
    window.clearTimeout(this.retryTimer);
    this.socket?.close(1000, 'page closed');
  }

  private connect(): void {
    this.setState('connecting');
    const url = new URL(EVENTS_PATH, window.location.href);
    url.protocol = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    const token = apiToken();
    if (token) url.searchParams.set('token', token);
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.addEventListener('open', () => {
      this.retryMs = FIRST_RETRY_MS;
      this.setState('live');
    });
    socket.addEventListener('message', (message: MessageEvent) => {
      if (typeof message.data !== 'string') return;
      let event: HubEvent;
      try {
        event = JSON.parse(message.data) as HubEvent;
      } catch {
        return; // the hub sends JSON only; anything else is not ours to act on
      }
      for (const listener of this.eventListeners) listener(event);
    });
    socket.addEventListener('close', () => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      if (this.stopped) return;
      this.setState('offline');
      this.retryTimer = window.setTimeout(() => this.connect(), this.retryMs);
      this.retryMs = Math.min(MAX_RETRY_MS, this.retryMs * 2);
    });
  }

  private setState(state: StreamState): void {
    this.state = state;
    for (const listener of this.stateListeners) listener(state);
  }
}
