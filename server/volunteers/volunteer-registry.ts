/**
 * The registry of volunteer tabs: who is connected, in which state, and the hub's end of
 * `/ws/volunteer` through which they come. Admits a tab at the HTTP upgrade (Origin, token),
 * greets it, turns it into a VolunteerExecutor once it says hello with the right model, routes its
 * answers, drops it when it falls silent, and takes whatever a hostile or broken tab sends
 * without harm to the hub: refused, counted, logged, never thrown.
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { RawData, WebSocket } from 'ws';
import {
  CLOSE_BYE,
  CLOSE_MODEL_CHANGED,
  CLOSE_QUARANTINED_EARLY,
  CLOSE_REFUSED,
  CLOSE_STOP,
  CLOSE_VIOLATIONS,
  MAX_VOLUNTEER_MESSAGE_BYTES,
  VolunteerMessageSchema,
} from '../../shared/protocol/volunteer.ts';
import type { VolunteerMessage } from '../../shared/protocol/volunteer.ts';
import type { UpgradeRefusal, VolunteerRegistryStats, VolunteerStatus } from '../../shared/protocol/status.ts';
import { VolunteerExecutor } from './volunteer-executor.ts';
import type { JobVerdict, VolunteerHello } from './volunteer-executor.ts';
import type { Logger } from '../../lib/log.ts';
import { refuseUpgrade, upgradeRefusal } from '../front/upgrade-guard.ts';
import { CLOSE_WAIT_MS, connectionStatus, newConnection, rawText, sendJobFrame, sendMessage, whyDead } from './volunteer-connection.ts';
import type { Connection } from './volunteer-connection.ts';
import { volunteerSettings } from './volunteer-options.ts';
import type { VolunteerRegistryEvents, VolunteerRegistryOptions, VolunteerSettings, VolunteerSocketOptions } from './volunteer-options.ts';

export type { VolunteerRegistryEvents, VolunteerModel, VolunteerRegistryOptions, VolunteerSocketOptions } from './volunteer-options.ts';

export const VOLUNTEER_PATH = '/ws/volunteer';
/** Quarantined tabs that left, still shown by list(). */
const QUARANTINE_RECORDS = 50;


/** Attaches the volunteer WebSocket to the HTTP front; the returned registry is the hub's handle on volunteers. */
export function attachVolunteerSocket(options: VolunteerSocketOptions): VolunteerRegistry {
  const registry = new VolunteerRegistry(options);
  options.onUpgrade(options.path ?? VOLUNTEER_PATH, (request, socket, head) => registry.handleUpgrade(request, socket, head));
  return registry;
}

export class VolunteerRegistry extends EventEmitter<VolunteerRegistryEvents> {
  private readonly connections = new Map<string, Connection>();
  private readonly wss: WebSocketServer;
  private readonly heartbeatTimer: NodeJS.Timeout;
  private readonly log: Logger;
  private readonly scheduler: VolunteerRegistryOptions['scheduler'];
  private readonly settings: VolunteerSettings;
  private accepting = true;
  private volunteerCount = 0;
  private jobCount = 0;
  private readonly counters = { joined: 0, dropped: 0, refusedHellos: 0, violations: 0 };
  private readonly quarantinedGone: VolunteerStatus[] = [];
  private readonly refusedUpgrades: Record<UpgradeRefusal, number> = { origin: 0, token: 0, capacity: 0, stopping: 0 };

  constructor(options: VolunteerRegistryOptions) {
    super();
    this.log = options.log.child({ component: 'volunteers' });
    this.scheduler = options.scheduler;
    this.settings = volunteerSettings(options);
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      maxPayload: MAX_VOLUNTEER_MESSAGE_BYTES,
      // Tabs send small JSON; inflating their frames would only be a way to make the hub work.
      perMessageDeflate: false,
    });
    this.heartbeatTimer = setInterval(() => this.tick(), this.settings.heartbeatMs);
    this.heartbeatTimer.unref();
  }

  /** The HTTP upgrade for the volunteer path: refused at once unless Origin and token pass. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    try {
      const refusal = upgradeRefusal(request, {
        accepting: this.accepting,
        full: this.connections.size >= this.settings.maxConnections,
        originRules: this.settings.originRules,
        tokenDigest: this.settings.tokenDigest,
      });
      if (refusal) {
        const count = ++this.refusedUpgrades[refusal.kind];
        const fields = { reason: refusal.kind, origin: request.headers.origin, address: request.socket.remoteAddress, count };
        // The first of a kind points at a misconfiguration; a stream of them must not flood the log.
        if (count === 1) this.log.warn(fields, 'volunteer connection refused');
        else this.log.debug(fields, 'volunteer connection refused');
        refuseUpgrade(socket, refusal.status, refusal.message);
        return;
      }
      this.wss.handleUpgrade(request, socket, head, (ws) => this.accept(ws, request));
    } catch (error) {
      this.log.error({ err: error }, 'volunteer upgrade failed');
      socket.destroy();
    }
  }

  /** Connected tabs, then the most recent quarantined ones that have since left (so an operator sees them). */
  list(): VolunteerStatus[] {
    return [...[...this.connections.values()].map(connectionStatus), ...this.quarantinedGone];
  }

  stats(): VolunteerRegistryStats {
    return {
      connected: this.connections.size,
      joined_total: this.counters.joined,
      dropped_total: this.counters.dropped,
      refused_hellos: this.counters.refusedHellos,
      violations_total: this.counters.violations,
      refused_upgrades: { ...this.refusedUpgrades },
    };
  }

  /**
   * No more jobs for this tab; it is told, and its batch in flight goes back to the queue. It
   * stays connected (and listed) so the tab can show why. False when there is no such tab.
   */
  quarantine(id: string, reason: string): boolean {
    const connection = this.connections.get(id);
    if (!connection) return false;
    if (connection.executor) {
      connection.executor.quarantine(reason); // false when it already was: still quarantined
      return true;
    }
    // Not joined yet: nothing to hold back, so it is told and let go.
    sendMessage(connection, { type: 'quarantined', reason }, this.log);
    this.log.warn({ volunteer: id, reason }, 'volunteer quarantined before hello');
    this.closeConnection(connection, CLOSE_QUARANTINED_EARLY, 'quarantined', `quarantined: ${reason}`);
    return true;
  }

  /**
   * The hub serves another model now (the `model` option already returns it): every tab is
   * told and let go, so it rejoins, is welcomed with the new model, and gets work only once its
   * hello names it. Jobs a tab was running go back to the queue; a late answer is dropped.
   */
  modelChanged(): void {
    const model = this.settings.model();
    for (const connection of [...this.connections.values()]) {
      sendMessage(connection, { type: 'model', model: { url: model.url, sha256: model.sha256, weights: model.weights } }, this.log);
      void this.closeConnection(connection, CLOSE_MODEL_CHANGED, 'model changed', `the hub changed its model to ${model.sha256}`);
    }
  }

  /** For shutdown: every tab is sent `stop` and closed; new tabs are refused from now on. */
  async stopAll(reason: string): Promise<void> {
    this.accepting = false;
    const closing = [...this.connections.values()].map((connection) => {
      sendMessage(connection, { type: 'stop', reason }, this.log);
      return this.closeConnection(connection, CLOSE_STOP, 'hub stopping', `stopped: ${reason}`);
    });
    await Promise.all(closing);
  }

  /** stopAll, then stops the heartbeat; the upgrade handler refuses from now on. */
  async close(): Promise<void> {
    await this.stopAll('the hub is closing');
    clearInterval(this.heartbeatTimer);
    this.wss.close();
  }

  private accept(ws: WebSocket, request: IncomingMessage): void {
    const id = `volunteer-${++this.volunteerCount}`;
    const connection = newConnection(id, ws, request);
    this.connections.set(id, connection);
    ws.on('message', (data, isBinary) => {
      try {
        this.onMessage(connection, data, isBinary);
      } catch (error) {
        // A bug of ours, not the tab's: logged loudly, never thrown into ws.
        this.log.error({ err: error, volunteer: id }, 'volunteer message handler failed');
      }
    });
    // ws reports the tab's protocol errors here (oversized, bad UTF-8, bad opcode) and then closes.
    ws.on('error', (error) => this.violation(connection, 'socket_error', error.message));
    ws.on('close', (code, reason) => this.finish(connection, `socket closed (${code}${reason.length > 0 ? ` ${reason.toString()}` : ''})`));
    ws.on('pong', () => {
      connection.lastPong = performance.now();
    });
    // Joining (the hello, with its model and adapter) is logged at info; a bare connection is not news.
    this.log.debug({ volunteer: id, address: request.socket.remoteAddress, origin: request.headers.origin }, 'volunteer connected');
    const model = this.settings.model();
    sendMessage(connection, {
      type: 'welcome',
      protocol: connection.protocol,
      volunteer_id: id,
      model: { url: model.url, sha256: model.sha256, weights: model.weights },
      heartbeat_ms: this.settings.heartbeatMs,
      top_k: this.settings.topK,
      max_batch: this.settings.maxBatch,
    }, this.log);
  }

  private onMessage(connection: Connection, data: RawData, isBinary: boolean): void {
    if (connection.finished) return;
    connection.lastHeard = performance.now();
    connection.executor?.markSeen();
    if (isBinary) return this.violation(connection, 'binary_frame', 'a tab sends only text frames');
    let json: unknown;
    try {
      json = JSON.parse(rawText(data));
    } catch {
      return this.violation(connection, 'invalid_json', 'not JSON');
    }
    const parsed = VolunteerMessageSchema.safeParse(json);
    if (!parsed.success) {
      const detail = parsed.error.issues
        .slice(0, 3)
        .map((issue) => `${issue.path.join('.') || '(message)'}: ${issue.message}`)
        .join('; ');
      return this.violation(connection, 'invalid_message', detail);
    }
    const message = parsed.data;
    switch (message.type) {
      case 'heartbeat':
        return;
      case 'bye':
        this.closeConnection(connection, CLOSE_BYE, 'bye', 'said bye');
        return;
      case 'hello':
        return this.onHello(connection, message);
      case 'pause':
      case 'resume':
        return this.onPauseOrResume(connection, message);
      case 'result':
      case 'job_failed': {
        const executor = connection.executor;
        if (!executor) return this.violation(connection, 'before_hello', `${message.type} before hello`);
        const verdict = message.type === 'result' ? executor.handleResult(message) : executor.handleJobFailed(message);
        return this.onVerdict(connection, message.type, message.job_id, verdict);
      }
    }
  }

  private onPauseOrResume(connection: Connection, message: Extract<VolunteerMessage, { type: 'pause' | 'resume' }>): void {
    if (connection.protocol < 2) return this.violation(connection, 'not_in_protocol', `${message.type} needs protocol 2; this connection speaks ${connection.protocol}`);
    const executor = connection.executor;
    // Before hello the tab takes no work anyway; it says pause again after its hello if it still must.
    if (!executor) return;
    if (message.type === 'resume') {
      executor.resume();
      this.log.debug({ volunteer: connection.id }, 'volunteer resumed');
      return;
    }
    executor.pause(message.reason);
    this.log.debug({ volunteer: connection.id, reason: message.reason }, 'volunteer paused');
  }

  private onHello(connection: Connection, hello: VolunteerHello): void {
    if (connection.executor) return this.violation(connection, 'duplicate_hello', 'hello after hello');
    if (hello.protocol !== connection.protocol) {
      return this.violation(connection, 'protocol_mismatch', `hello says protocol ${hello.protocol}; the welcome said ${connection.protocol}`);
    }
    const model = this.settings.model();
    if (hello.model_sha256 !== model.sha256.toLowerCase()) {
      this.counters.refusedHellos++;
      this.log.warn({ volunteer: connection.id, theirs: hello.model_sha256, ours: model.sha256 }, 'volunteer refused: wrong model');
      sendMessage(connection, { type: 'refused', reason: `the hub serves model ${model.sha256} (${model.url}), not ${hello.model_sha256}` }, this.log);
      this.closeConnection(connection, CLOSE_REFUSED, 'wrong model', 'refused: wrong model');
      return;
    }
    const executor = new VolunteerExecutor({
      id: connection.id,
      hello,
      link: {
        send: (message) => sendMessage(connection, message, this.log),
        sendJob: (frame, onError) => sendJobFrame(connection, frame, onError),
      },
      maxBatch: this.settings.maxBatch,
      topK: this.settings.topK,
      // u32, as the job frame carries it; unique across tabs so one can never answer another's.
      nextJobId: () => (this.jobCount = (this.jobCount + 1) >>> 0),
      timeout: this.settings.jobTimeout,
      maxConsecutiveFailures: this.settings.maxConsecutiveFailures,
      failureRestMs: this.settings.failureRestMs,
    });
    executor.onQuarantined((reason) => this.onQuarantined(connection, reason));
    connection.executor = executor;
    connection.inScheduler = true;
    this.scheduler.addExecutor(executor);
    this.counters.joined++;
    this.log.info(
      { volunteer: connection.id, backend: hello.backend, adapter: hello.adapter, per_image_ms: hello.per_image_ms, max_batch: executor.maxBatch },
      'volunteer joined',
    );
    this.emit('joined', connectionStatus(connection));
  }

  private onVerdict(connection: Connection, type: string, jobId: number, verdict: JobVerdict): void {
    switch (verdict.verdict) {
      case 'accepted':
        return;
      case 'late':
        this.log.debug({ volunteer: connection.id, job_id: jobId, type }, 'late answer for a job that already ended');
        return;
      case 'unknown_job': {
        const owner = this.ownerOf(jobId, connection);
        const detail = owner ? `job ${jobId} belongs to ${owner}` : verdict.detail;
        return this.violation(connection, owner ? 'foreign_job' : 'unknown_job', detail);
      }
      case 'bad_shape':
        return this.violation(connection, 'bad_result', verdict.detail);
    }
  }

  /** Which other tab has this job in flight, so the log can say a tab answered for another. */
  private ownerOf(jobId: number, except: Connection): string | undefined {
    for (const other of this.connections.values()) {
      if (other !== except && other.executor?.inFlightJobId === jobId) return other.id;
    }
    return undefined;
  }

  private onQuarantined(connection: Connection, reason: string): void {
    this.leaveScheduler(connection);
    this.log.warn({ volunteer: connection.id, reason }, 'volunteer quarantined');
    this.emit('quarantined', connectionStatus(connection), reason);
  }

  private violation(connection: Connection, kind: string, detail: string): void {
    connection.violations++;
    this.counters.violations++;
    const fields = { volunteer: connection.id, kind, detail, violations: connection.violations };
    // The first one is worth a warning; a flood of them is not worth a flood of warnings.
    if (connection.violations === 1) this.log.warn(fields, 'volunteer protocol violation');
    else this.log.debug(fields, 'volunteer protocol violation');
    if (connection.violations >= this.settings.maxViolations && !connection.finished) {
      this.log.warn({ volunteer: connection.id, violations: connection.violations }, 'volunteer closed: too many protocol violations');
      this.closeConnection(connection, CLOSE_VIOLATIONS, 'too many protocol violations', 'too many protocol violations');
    }
  }

  /** Every beat each tab gets a heartbeat message and a WebSocket ping; one that answered nothing for too long is dropped. */
  private tick(): void {
    const now = performance.now();
    const silenceLimitMs = this.settings.missedBeats * this.settings.heartbeatMs;
    for (const connection of [...this.connections.values()]) {
      const dead = whyDead(connection, now, silenceLimitMs);
      if (dead) {
        this.drop(connection, dead, now - connection.lastHeard);
        continue;
      }
      sendMessage(connection, { type: 'heartbeat', sent_at: Date.now() }, this.log);
      if (connection.ws.readyState === connection.ws.OPEN) connection.ws.ping();
    }
  }

  private drop(connection: Connection, why: string, silentMs: number): void {
    this.counters.dropped++;
    // A tab that had joined matters to an operator; a bare connection that never said hello
    // is noise (or a flood of them), kept to debug.
    const level = connection.executor ? 'warn' : 'debug';
    this.log[level]({ volunteer: connection.id, silent_ms: Math.round(silentMs), why }, `volunteer dropped: ${why}`);
    // Finished first, so its batch is back in the queue before the socket is even gone.
    this.finish(connection, `${why} (silent for ${Math.round(silentMs)} ms)`);
    connection.ws.terminate();
  }

  /** Closes politely; the tab leaves the scheduler now, not when the closing handshake ends. */
  private closeConnection(connection: Connection, code: number, closeReason: string, logReason: string): Promise<void> {
    this.finish(connection, logReason);
    try {
      connection.ws.close(code, closeReason);
    } catch (error) {
      this.log.debug({ err: error, volunteer: connection.id }, 'close failed; terminating');
      connection.ws.terminate();
    }
    const cutOff = setTimeout(() => connection.ws.terminate(), CLOSE_WAIT_MS);
    cutOff.unref();
    return connection.closed.finally(() => clearTimeout(cutOff));
  }

  /** The tab is gone for the hub, whatever the reason; runs once. */
  private finish(connection: Connection, reason: string): void {
    if (connection.finished) return;
    connection.finished = true;
    this.connections.delete(connection.id);
    const executor = connection.executor;
    if (executor) {
      executor.disconnect(reason);
      this.leaveScheduler(connection);
    }
    this.log[executor ? 'info' : 'debug']({ volunteer: connection.id, reason, jobs: executor?.jobsDone ?? 0 }, 'volunteer left');
    const status = connectionStatus(connection);
    if (executor?.quarantineReason !== undefined) {
      this.quarantinedGone.push({ ...status, state: 'quarantined' });
      if (this.quarantinedGone.length > QUARANTINE_RECORDS) this.quarantinedGone.shift();
    }
    this.emit('left', status, reason);
  }

  /** Scheduler.removeExecutor must be called once: a second call would leave it "retiring" for ever. */
  private leaveScheduler(connection: Connection): void {
    if (!connection.executor || !connection.inScheduler) return;
    connection.inScheduler = false;
    this.scheduler.removeExecutor(connection.executor);
  }
}
