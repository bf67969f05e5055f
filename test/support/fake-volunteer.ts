/**
 * A test hub's end of `/ws/volunteer` (a real VolunteerRegistry, Scheduler and HTTP server on
 * loopback) and fake tabs that speak the protocol with raw `ws` clients: they compute nothing and
 * answer each image with a fixed top-k derived from its first byte, so every answer says who gave it.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import { WebSocket } from 'ws';
import type { ClientOptions, RawData } from 'ws';
import { INPUT_VALUES_PER_IMAGE } from '../../shared/caffe.ts';
import { decodeJobFrame } from '../../shared/protocol/volunteer.ts';
import type { HubMessage, JobFrame } from '../../shared/protocol/volunteer.ts';
import { attachVolunteerSocket } from '../../server/volunteers/volunteer-registry.ts';
import type { VolunteerRegistry, VolunteerSocketOptions } from '../../server/volunteers/volunteer-registry.ts';
import type { UpgradeHandler } from '../../server/front/http-front.ts';
import { createLogger } from '../../lib/log.ts';
import { Job } from '../../server/scheduler/job.ts';
import type { JobOutcome } from '../../server/scheduler/job.ts';
import { Scheduler } from '../../server/scheduler/scheduler.ts';

export const HEARTBEAT_MS = 100;
export const MODEL_SHA = 'ab'.repeat(32);
export const TOP_K = 20;
const IMAGE_BYTES = INPUT_VALUES_PER_IMAGE;
/** Far below the hub's 60 s job timeout: a job that is not re-queued fails the test, not hangs it. */
export const TEST_TIMEOUT_MS = 10_000;

export interface TestHub {
  url: string;
  port: number;
  scheduler: Scheduler;
  volunteers: VolunteerRegistry;
}

export async function startTestHub(t: TestContext, overrides: Partial<VolunteerSocketOptions> = {}): Promise<TestHub> {
  const handlers = new Map<string, UpgradeHandler>();
  const server = createServer((_request, response) => response.writeHead(404).end());
  server.on('upgrade', (request, socket, head) => {
    const handler = handlers.get(new URL(request.url ?? '/', 'http://localhost').pathname);
    if (handler) handler(request, socket, head);
    else socket.destroy();
  });
  const scheduler = new Scheduler();
  const volunteers = attachVolunteerSocket({
    onUpgrade: (path, handler) => handlers.set(path, handler),
    scheduler,
    model: { url: '/models/current/model.json', sha256: MODEL_SHA, weights: 'untrained' },
    log: createLogger('silent'),
    heartbeatMs: HEARTBEAT_MS,
    ...overrides,
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  t.after(async () => {
    await volunteers.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url: `ws://127.0.0.1:${port}/ws/volunteer`, port, scheduler, volunteers };
}

/** Resolves with what `probe` returns once it returns something, or fails after `timeoutMs`. */
export async function waitFor<T>(probe: () => T | undefined | false, what: string, timeoutMs = 3000): Promise<T> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (performance.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function image(tag: number): Uint8Array {
  return new Uint8Array(IMAGE_BYTES).fill(tag);
}

export function job(tag: number): Job {
  return new Job({ id: `j${tag}`, image: image(tag), offload: true });
}

export function topClass(outcome: JobOutcome): number | string {
  return outcome.ok ? outcome.result.indices[0] : outcome.error.code;
}

export type Mode = 'answer' | 'hold';

/** A tab that speaks the protocol: heartbeats, hello, and (in `answer` mode) fixed answers. */
export class FakeVolunteer {
  readonly messages: HubMessage[] = [];
  readonly jobs: JobFrame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  mode: Mode = 'answer';
  /** Makes the tab measurably slow, since the hub learns its speed from its answers. */
  answerDelayMs = 0;
  private beat: NodeJS.Timeout | undefined;

  private constructor(
    readonly ws: WebSocket,
    /** Added to each image's first byte to make the top class, so the answer names the tab. */
    readonly answerBase: number,
  ) {
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.on('message', (data: RawData, isBinary) => this.onMessage(data, isBinary));
    ws.once('close', () => this.stopHeartbeat());
  }

  static async connect(t: TestContext, url: string, answerBase: number, options: ClientOptions & { protocols?: string[] } = {}): Promise<FakeVolunteer> {
    const { protocols, ...clientOptions } = options;
    const ws = new WebSocket(url, protocols ?? [], clientOptions);
    const volunteer = new FakeVolunteer(ws, answerBase);
    t.after(() => volunteer.ws.terminate());
    await once(ws, 'open');
    volunteer.startHeartbeat();
    return volunteer;
  }

  get id(): string {
    const welcome = this.messages.find((m) => m.type === 'welcome');
    assert.ok(welcome, 'no welcome yet');
    return welcome.volunteer_id;
  }

  async welcome(): Promise<Extract<HubMessage, { type: 'welcome' }>> {
    return waitFor(() => this.messages.find((m) => m.type === 'welcome'), 'welcome');
  }

  async hello(overrides: Record<string, unknown> = {}): Promise<void> {
    await this.welcome();
    this.send({
      type: 'hello',
      protocol: (await this.welcome()).protocol,
      backend: 'webgpu',
      adapter: { vendor: 'test', architecture: 'fake' },
      model_sha256: MODEL_SHA,
      per_image_ms: 10,
      max_batch: 4,
      ...overrides,
    });
  }

  send(message: unknown): void {
    this.ws.send(JSON.stringify(message));
  }

  result(frame: JobFrame, base = this.answerBase): void {
    const rows = Array.from({ length: frame.batch }, (_, i) => frame.pixels[i * IMAGE_BYTES] + base);
    this.send({
      type: 'result',
      job_id: frame.jobId,
      indices: rows.map((first) => Array.from({ length: TOP_K }, (_, k) => (first + k) % 1000)),
      probabilities: rows.map(() => Array.from({ length: TOP_K }, (_, k) => 0.5 / (k + 1))),
      compute_ms: 3,
    });
  }

  startHeartbeat(): void {
    this.beat ??= setInterval(() => this.send({ type: 'heartbeat', sent_at: Date.now() }), HEARTBEAT_MS / 2);
  }

  stopHeartbeat(): void {
    clearInterval(this.beat);
    this.beat = undefined;
  }

  count(type: HubMessage['type']): number {
    return this.messages.filter((m) => m.type === type).length;
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    if (!isBinary) {
      this.messages.push(JSON.parse(bytes.toString('utf8')) as HubMessage);
      return;
    }
    const frame = decodeJobFrame(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    this.jobs.push(frame);
    if (this.mode !== 'answer') return;
    if (this.answerDelayMs > 0) setTimeout(() => this.result(frame), this.answerDelayMs);
    else this.result(frame);
  }
}

/** Connects and reports the HTTP status of a refused upgrade, or 101 when it opened. */
export async function upgradeStatus(url: string, options: ClientOptions & { protocols?: string[] } = {}): Promise<number> {
  const { protocols, ...clientOptions } = options;
  const ws = new WebSocket(url, protocols ?? [], clientOptions);
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      ws.terminate();
      resolve(101);
    });
    ws.once('error', (error) => {
      const status = /Unexpected server response: (\d+)/.exec(error.message);
      if (status) resolve(Number(status[1]));
      else reject(error);
    });
  });
}

export async function joined(hub: TestHub, volunteer: FakeVolunteer, overrides: Record<string, unknown> = {}): Promise<void> {
  await volunteer.hello(overrides);
  await waitFor(() => hub.volunteers.list().find((v) => v.id === volunteer.id && v.state === 'ready'), `${volunteer.id} to join`);
}
