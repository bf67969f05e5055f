/**
 * One writer per ZeroMQ socket: every send the hub makes goes through it, in order, one at a
 * time, and none can throw into its caller.
 *
 * zeromq.js allows one send in flight per socket; a second `send()` while the first waits
 * throws EBUSY synchronously (it is not a rejected promise), and under load the library
 * defers even "immediate" sends to keep the event loop fair, so overlapping sends from
 * independent replies are enough to raise it. Here sends are queued and awaited one by one.
 *
 * The writer never waits on a peer: its sockets are set to fail a send at once
 * (`sendTimeout = 0`) rather than wait, and a ROUTER is made `mandatory` so that a message for
 * a peer that is gone, or whose queue is at its high-water mark, fails with a code instead of
 * vanishing silently. Such a message is dropped for that peer alone and counted by reason;
 * other peers' messages are neither held up nor reordered. The queue itself is bounded, so a
 * storm of replies cannot grow memory without limit.
 */
export type DropReason = 'peer_gone' | 'peer_full' | 'queue_full' | 'socket_closed' | 'send_failed';

export const DROP_REASONS: readonly DropReason[] = ['peer_gone', 'peer_full', 'queue_full', 'socket_closed', 'send_failed'];

export type Frames = Array<Buffer | string>;

/** What the writer needs of a socket: zeromq.js' Writable plus whether it is closed. */
export interface WritableSocket {
  readonly closed: boolean;
  send(message: Frames): Promise<void>;
}

export interface SocketWriterOptions {
  /** Messages waiting to be handed to libzmq beyond which new ones are dropped (`queue_full`). */
  maxQueued?: number;
  /** Told of every message dropped, with why; must not throw (it is guarded anyway). */
  onDrop?: (reason: DropReason, error: unknown) => void;
}

/** Sends in a row before the writer yields to the event loop, so a burst cannot starve the receive side. */
const SENDS_PER_TURN = 256;
const DEFAULT_MAX_QUEUED = 65_536;

export class SocketWriter {
  private readonly queue: Frames[] = [];
  private head = 0;
  private pumping: Promise<void> | undefined;
  private readonly maxQueued: number;
  private readonly dropped = new Map<DropReason, number>();
  private sentCount = 0;

  constructor(
    private readonly socket: WritableSocket,
    private readonly options: SocketWriterOptions = {},
  ) {
    this.maxQueued = options.maxQueued ?? DEFAULT_MAX_QUEUED;
  }

  /** Queues a message; returns at once and never throws. */
  write(message: Frames): void {
    if (this.socket.closed) return this.drop('socket_closed', undefined);
    if (this.queue.length - this.head >= this.maxQueued) return this.drop('queue_full', undefined);
    this.queue.push(message);
    this.pumping ??= this.pump();
  }

  /** Messages waiting to be handed to libzmq. */
  get queued(): number {
    return this.queue.length - this.head;
  }

  get sent(): number {
    return this.sentCount;
  }

  /** Dropped messages so far, by reason. */
  drops(): Record<DropReason, number> {
    return Object.fromEntries(DROP_REASONS.map((reason) => [reason, this.dropped.get(reason) ?? 0])) as Record<DropReason, number>;
  }

  /** Resolves once every message queued so far has been handed to libzmq (or dropped). */
  async flushed(): Promise<void> {
    while (this.pumping) await this.pumping;
  }

  private async pump(): Promise<void> {
    try {
      let inTurn = 0;
      while (this.head < this.queue.length) {
        const message = this.queue[this.head];
        // Released as soon as it is taken: the queue must not pin replies already sent.
        this.queue[this.head++] = [];
        await this.sendOne(message);
        if (++inTurn >= SENDS_PER_TURN) {
          inTurn = 0;
          await new Promise((resolve) => setImmediate(resolve));
        }
        if (this.head > 1024 && this.head * 2 > this.queue.length) {
          this.queue.splice(0, this.head);
          this.head = 0;
        }
      }
      this.queue.length = 0;
      this.head = 0;
    } finally {
      this.pumping = undefined;
    }
  }

  private async sendOne(message: Frames): Promise<void> {
    if (this.socket.closed) return this.drop('socket_closed', undefined);
    try {
      // The call itself may throw synchronously (EBUSY, a closed socket), hence inside the try.
      await this.socket.send(message);
      this.sentCount++;
    } catch (error) {
      this.drop(reasonOf(error, this.socket.closed), error);
    }
  }

  private drop(reason: DropReason, error: unknown): void {
    this.dropped.set(reason, (this.dropped.get(reason) ?? 0) + 1);
    try {
      this.options.onDrop?.(reason, error);
    } catch {
      // An observer's failure must not become the writer's.
    }
  }
}

function reasonOf(error: unknown, closed: boolean): DropReason {
  if (closed) return 'socket_closed';
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'EHOSTUNREACH') return 'peer_gone';
  if (code === 'EAGAIN') return 'peer_full';
  if (code === 'EBADF' || code === 'ENOTSOCK' || code === 'ETERM') return 'socket_closed';
  return 'send_failed';
}
