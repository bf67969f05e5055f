/**
 * A minimal hub side of /ws/volunteer for testing the volunteer page alone: welcome on connect,
 * heartbeats echoed, every message from the tab validated with the shared schema and queued for
 * the test to take. The real hub side is tested with real tabs in test/e2e/browser/volunteer-e2e.test.ts.
 */
import type { IncomingMessage } from 'node:http';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';
import { MODEL_URL_PREFIX } from '../../server/front/static-files.ts';
import { VOLUNTEER_PROTOCOL_VERSION, VolunteerMessageSchema, encodeJobFrame } from '../../shared/protocol/volunteer.ts';
import type { HubMessage, VolunteerMessage } from '../../shared/protocol/volunteer.ts';

export type Of<T extends VolunteerMessage['type']> = Extract<VolunteerMessage, { type: T }>;

export class TabConnection {
  readonly messages: VolunteerMessage[] = [];
  readonly invalid: string[] = [];
  heartbeats = 0;
  closed = false;
  /** When set, the hub side stops answering heartbeats (a dead hub, as the tab sees it). */
  silent = false;
  private waiters: Array<() => void> = [];

  constructor(
    readonly socket: WebSocket,
    /** The upgrade request's URL (path and query). */
    readonly url: string,
  ) {
    socket.on('message', (data, isBinary) => {
      if (isBinary) {
        this.invalid.push('binary frame from the tab');
      } else {
        const parsed = VolunteerMessageSchema.safeParse(JSON.parse(data.toString()));
        if (!parsed.success) this.invalid.push(data.toString());
        else if (parsed.data.type === 'heartbeat') {
          this.heartbeats++;
          if (!this.silent) this.send({ type: 'heartbeat', sent_at: Date.now() });
        } else this.messages.push(parsed.data);
      }
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  send(message: HubMessage): void {
    this.socket.send(JSON.stringify(message));
  }

  sendJob(jobId: number, images: Uint8Array[]): void {
    this.socket.send(encodeJobFrame(jobId, images, 224, 224), { binary: true });
  }

  /** The next message of this type (earlier ones of other types are left in place). */
  async next<T extends VolunteerMessage['type']>(type: T, timeoutMs = 30_000): Promise<Of<T>> {
    return waitFor(
      () => {
        const at = this.messages.findIndex((m) => m.type === type);
        return at >= 0 ? (this.messages.splice(at, 1)[0] as Of<T>) : undefined;
      },
      (wake) => this.waiters.push(wake),
      timeoutMs,
      `no ${type} from the tab within ${timeoutMs} ms (got: ${this.messages.map((m) => m.type).join(', ') || 'nothing'})`,
    );
  }

  async waitClosed(timeoutMs = 10_000): Promise<void> {
    await waitFor(() => (this.closed ? true : undefined), (wake) => this.waiters.push(wake), timeoutMs, 'the tab did not close its connection');
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

export class TestHub {
  readonly connections: TabConnection[] = [];
  readonly wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  private taken = 0;
  private waiters: Array<() => void> = [];
  private nextVolunteer = 1;

  constructor(
    private readonly sha256: string,
    private readonly welcome: { heartbeatMs: number; topK: number },
  ) {
    this.wss.on('connection', (socket: WebSocket, request: IncomingMessage) => {
      const connection = new TabConnection(socket, request.url ?? '');
      this.connections.push(connection);
      connection.send({
        type: 'welcome',
        protocol: VOLUNTEER_PROTOCOL_VERSION,
        volunteer_id: `v-${this.nextVolunteer++}`,
        model: { url: `${MODEL_URL_PREFIX}model.json`, sha256: this.sha256, weights: 'untrained' },
        heartbeat_ms: this.welcome.heartbeatMs,
        top_k: this.welcome.topK,
        max_batch: 4,
      });
      const waiters = this.waiters;
      this.waiters = [];
      for (const wake of waiters) wake();
    });
  }

  /** The next connection not yet taken by the test. */
  async nextConnection(timeoutMs = 15_000): Promise<TabConnection> {
    return waitFor(
      () => (this.connections.length > this.taken ? this.connections[this.taken++] : undefined),
      (wake) => this.waiters.push(wake),
      timeoutMs,
      `no new connection from the tab within ${timeoutMs} ms`,
    );
  }

  get untaken(): number {
    return this.connections.length - this.taken;
  }

  close(): void {
    for (const client of this.wss.clients) client.terminate();
    this.wss.close();
  }
}

export async function waitFor<T>(check: () => T | undefined, subscribe: (wake: () => void) => void, timeoutMs: number, message: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(message);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.min(left, 250));
      subscribe(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
