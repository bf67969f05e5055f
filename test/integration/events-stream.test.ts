/**
 * `/ws/events` on the real hub: a snapshot first, then each request's queued → started →
 * finished (or failed) with the client's request id, statistics every second, and browsers
 * from foreign origins kept out. Plus the statistics window on its own.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import type { HubEvent, RequestEvent, SnapshotEvent, StatsEvent } from '../../shared/protocol/events.ts';
import type { ClassifyReply } from '../../shared/protocol/classify.ts';
import { StatsWindow } from '../../server/observability/stats-window.ts';
import { launchHub } from '../../kit/hub-process.ts';
import type { HubProcess } from '../../kit/hub-process.ts';
import { photo } from '../../kit/zmq-clients.ts';

let hub: HubProcess;

before(async () => {
  hub = await launchHub({ args: ['--engine', 'onnx', '--workers', '1'] });
});

after(async () => {
  assert.equal(await hub?.stop(), 0);
});

/** A listener on the event stream that keeps every event for the test to wait on. */
class Listener {
  readonly events: HubEvent[] = [];
  private waiters: Array<() => void> = [];

  constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      this.events.push(JSON.parse(data.toString()) as HubEvent);
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  static async open(origin?: string): Promise<Listener> {
    const socket = new WebSocket(`${hub.http.replace('http', 'ws')}/ws/events`, origin ? { origin } : {});
    const listener = new Listener(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    return listener;
  }

  async until<T extends HubEvent>(match: (event: HubEvent) => event is T, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.find(match);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no matching event in ${timeoutMs} ms; got ${this.events.map((e) => e.type).join(', ')}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  }

  close(): void {
    this.socket.close();
  }
}

const about = (requestId: string) => (event: HubEvent): event is RequestEvent =>
  event.type.startsWith('request.') && (event as RequestEvent).request_id === requestId;

test('a snapshot first, then queued → started → finished for a request, with its request id and result', async () => {
  const listener = await Listener.open();
  const snapshot = await listener.until((e): e is SnapshotEvent => e.type === 'snapshot');
  assert.equal(listener.events[0].type, 'snapshot', 'the snapshot comes first');
  assert.equal(snapshot.status.ready, true);
  assert.equal(snapshot.status.executors.length, 1);
  assert.equal(snapshot.status.executors[0].engine, 'onnx');

  const requestId = `events-${Date.now()}`;
  const response = await fetch(`${hub.http}/api/classify?request_id=${requestId}`, { method: 'POST', body: new Uint8Array(photo('chelsea')), headers: { 'Content-Type': 'image/jpeg' } });
  const reply = (await response.json()) as ClassifyReply;
  assert.equal(response.status, 200);
  const finished = await listener.until((e): e is Extract<RequestEvent, { type: 'request.finished' }> => about(requestId)(e) && e.type === 'request.finished');
  const mine = listener.events.filter(about(requestId));
  assert.deepEqual(mine.map((e) => e.type), ['request.queued', 'request.started', 'request.finished']);
  const started = mine[1] as Extract<RequestEvent, { type: 'request.started' }>;
  assert.deepEqual(started.executor, reply.executor);
  assert.equal(started.hedge, false);
  assert.equal(finished.top1.label, reply.predictions[0].label);
  assert.equal(finished.top1.probability, reply.predictions[0].probability);
  assert.deepEqual(finished.timing, reply.timing);
  assert.match(finished.id, /^r\d+$/, 'the hub keeps its own id beside the client\'s');

  // The next statistics sample counts it.
  const stats = await listener.until((e): e is StatsEvent => e.type === 'stats' && (e.requests.ok ?? 0) >= 1);
  assert.equal(stats.executors.length, 1);
  listener.close();
});

test('a refused request is reported as failed with its code', async () => {
  const listener = await Listener.open();
  const requestId = `events-bad-${Date.now()}`;
  const response = await fetch(`${hub.http}/api/classify?request_id=${requestId}`, { method: 'POST', body: 'not an image', headers: { 'Content-Type': 'image/png' } });
  assert.equal(response.status, 415);
  const failed = await listener.until((e): e is Extract<RequestEvent, { type: 'request.failed' }> => about(requestId)(e) && e.type === 'request.failed');
  assert.equal(failed.code, 'unsupported_image');
  listener.close();
});

test('a page from a foreign origin is refused; the hub\'s own origin is let in', async () => {
  await assert.rejects(Listener.open('https://evil.example'), /403/);
  const own = await Listener.open(hub.http);
  own.close();
});

test('statistics window: per-interval counts, throughput and percentiles, limited history', () => {
  const window = new StatsWindow(3, 0);
  for (const ms of [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]) window.recordSuccess(ms);
  window.recordFailure();
  const first = window.take(4, 2, 2000);
  assert.equal(first.completed, 10);
  assert.equal(first.failed, 1);
  assert.equal(first.throughput, 5, '10 results in 2 s');
  assert.equal(first.latency_p50_ms, 55);
  assert.equal(first.latency_p90_ms, 91);
  assert.equal(first.queue_depth, 4);
  assert.equal(first.running, 2);
  const idle = window.take(0, 0, 3000);
  assert.equal(idle.completed, 0);
  assert.equal(idle.latency_p50_ms, null, 'no latency without replies');
  window.take(0, 0, 4000);
  window.take(0, 0, 5000);
  assert.deepEqual(window.history().map((s) => s.at), [3000, 4000, 5000], 'keeps only the last 3 samples');
});
