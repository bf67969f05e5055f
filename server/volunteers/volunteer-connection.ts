/**
 * One volunteer tab's connection as the hub holds it: its state, the close codes the hub
 * uses, what status shows of it, and how messages reach it.
 */
import type { IncomingMessage } from 'node:http';
import { WebSocket } from 'ws';
import type { RawData } from 'ws';
import { negotiateProtocol } from '../../shared/protocol/volunteer.ts';
import type { HubMessage, VolunteerProtocolVersion } from '../../shared/protocol/volunteer.ts';
import type { VolunteerStatus } from '../../shared/protocol/status.ts';
import type { VolunteerExecutor } from './volunteer-executor.ts';
import type { Logger } from '../../lib/log.ts';

/** How long stopAll waits for tabs to finish the closing handshake before cutting them off. */
export const CLOSE_WAIT_MS = 1000;

export interface Connection {
  id: string;
  ws: WebSocket;
  connectedAt: number;
  /** The volunteer protocol version negotiated at connect (the URL's ?protocol=). */
  protocol: VolunteerProtocolVersion;
  /** performance.now() of the last message from the tab: silence is measured on a monotonic clock. */
  lastHeard: number;
  /**
   * performance.now() of the last WebSocket pong. The browser's network stack answers pings even
   * while the page is frozen, so this tells a live connection from a half-open one whatever the page does.
   */
  lastPong: number;
  userAgent: string | undefined;
  violations: number;
  executor?: VolunteerExecutor;
  inScheduler: boolean;
  finished: boolean;
  closed: Promise<void>;
}

/** A tab just connected: the protocol version it asked for in its URL, and its clocks started. */
export function newConnection(id: string, ws: WebSocket, request: IncomingMessage): Connection {
  const now = performance.now();
  return {
    id,
    ws,
    protocol: negotiateProtocol(new URL(request.url ?? '/', 'http://hub').searchParams.get('protocol')),
    connectedAt: Date.now(),
    lastHeard: now,
    lastPong: now,
    userAgent: request.headers['user-agent'],
    violations: 0,
    inScheduler: false,
    finished: false,
    closed: new Promise((resolve) => ws.once('close', () => resolve())),
  };
}

/**
 * How long a paused tab may send nothing while its connection still answers pings: a frozen
 * page runs no script, so it sends no heartbeat, but it holds no job either. Past this it is let go
 * (it reconnects when it wakes).
 */
const PAUSED_SILENCE_LIMIT_MS = 5 * 60_000;

/**
 * Liveness, apart from job progress: why the connection counts as dead, or undefined while it is
 * alive. One that answered neither messages nor pings for the limit is half-open (or the tab is
 * gone); a tab whose script has gone quiet is dead too, unless it said it is paused (a frozen page
 * runs no script, but its connection still answers pings).
 */
export function whyDead(connection: Connection, now: number, silenceLimitMs: number): string | undefined {
  if (now - Math.max(connection.lastPong, connection.lastHeard) > silenceLimitMs) return 'no answer to pings';
  const paused = connection.executor?.state === 'paused';
  return now - connection.lastHeard > (paused ? PAUSED_SILENCE_LIMIT_MS : silenceLimitMs) ? 'silent' : undefined;
}

/** What /api/status and the dashboard show of one tab. */
export function connectionStatus(connection: Connection): VolunteerStatus {
  const executor = connection.executor;
  const lastSeen = performance.timeOrigin + connection.lastHeard;
  return {
    id: connection.id,
    kind: 'volunteer',
    state: executor?.state ?? (connection.finished ? 'gone' : 'joining'),
    backend: executor?.engine,
    adapter: executor?.adapter,
    user_agent: executor?.userAgent ?? connection.userAgent,
    busy: executor?.busy ?? false,
    per_image_ms: executor && round1(executor.perImageMs),
    overhead_ms: executor && round1(executor.overheadMs),
    max_batch: executor?.maxBatch,
    jobs: executor?.jobsDone ?? 0,
    images: executor?.imagesDone ?? 0,
    failures: executor?.failures ?? 0,
    violations: connection.violations,
    connected_at: new Date(connection.connectedAt).toISOString(),
    last_seen: new Date(lastSeen).toISOString(),
    quarantine_reason: executor?.quarantineReason,
    standing: executor?.standing,
    protocol: connection.protocol,
    paused_reason: executor?.pausedReason,
    late_jobs: executor?.lateJobs,
    hedges_won: executor?.hedgesWon,
    hedges_lost: executor?.hedgesLost,
    handed_back: executor?.handedBack,
  };
}

/** A JSON message to a tab; one that cannot be sent is logged at debug (the tab is going away). */
export function sendMessage(connection: Connection, message: HubMessage, log: Logger): void {
  if (connection.ws.readyState !== WebSocket.OPEN) return;
  connection.ws.send(JSON.stringify(message), (error) => {
    if (error) log.debug({ err: error, volunteer: connection.id, type: message.type }, 'send to volunteer failed');
  });
}

/** A binary job frame to a tab; onError hears of a frame that did not go out. */
export function sendJobFrame(connection: Connection, frame: Uint8Array, onError: (error: Error) => void): void {
  if (connection.ws.readyState !== WebSocket.OPEN) {
    onError(new Error('the connection is closed'));
    return;
  }
  connection.ws.send(frame, { binary: true }, (error) => {
    if (error) onError(error);
  });
}

export function rawText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}


function round1(value: number): number {
  return Math.round(value * 10) / 10;
}
