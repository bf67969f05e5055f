/**
 * What the volunteer WebSocket is configured with (and its defaults), and the events it reports.
 */
import { MAX_TOP } from '../../shared/labels.ts';
import type { WeightsKind } from '../../shared/protocol/classify.ts';
import { MAX_VOLUNTEER_BATCH } from '../../shared/protocol/volunteer.ts';
import type { VolunteerStatus } from '../../shared/protocol/status.ts';
import type { JobTimeout } from './standing-policy.ts';
import type { Logger } from '../../lib/log.ts';
import type { Scheduler } from '../scheduler/scheduler.ts';
import type { UpgradeHandler } from '../front/http-front.ts';
import { DEFAULT_ALLOWED_ORIGINS, parseOriginRule, tokenDigest } from '../front/upgrade-guard.ts';
import type { OriginRule } from '../front/upgrade-guard.ts';

const DEFAULT_HEARTBEAT_MS = 2000;

export interface VolunteerModel {
  url: string;
  sha256: string;
  weights: WeightsKind;
}

/** The volunteer registry's settings; its socket's route is attached apart (VolunteerSocketOptions). */
export interface VolunteerRegistryOptions {
  scheduler: Pick<Scheduler, 'addExecutor' | 'removeExecutor'>;
  /** The model tabs must run; a function when it may change while the hub runs. */
  model: VolunteerModel | (() => VolunteerModel);
  log: Logger;
  path?: string;
  /** When set (and not empty), a tab must present it as `?token=` or as one of its WebSocket subprotocols. */
  token?: string;
  /**
   * Origins allowed besides the hub's own host (same host as the Host header), e.g.
   * `https://example.org`, `http://localhost:*` (any port), `*` (any). Default: localhost ones.
   */
  allowedOrigins?: readonly string[];
  heartbeatMs?: number;
  /** A tab silent for this many heartbeats is dropped. */
  missedBeats?: number;
  /** The hub's batch limit for a tab (the tab's own from hello applies too). */
  maxBatch?: number;
  topK?: number;
  /** Protocol violations after which a tab's socket is closed. */
  maxViolations?: number;
  maxConnections?: number;
  jobTimeout?: JobTimeout;
  maxConsecutiveFailures?: number;
  failureRestMs?: number;
}

export interface VolunteerSocketOptions extends VolunteerRegistryOptions {
  /** Registers the upgrade handler for `path` (HttpFront.onUpgrade). */
  onUpgrade: (path: string, handler: UpgradeHandler) => void;
}

export interface VolunteerRegistryEvents {
  joined: [volunteer: VolunteerStatus];
  left: [volunteer: VolunteerStatus, reason: string];
  quarantined: [volunteer: VolunteerStatus, reason: string];
}

/** The options with every default applied and every limit clamped, as the socket uses them. */
export interface VolunteerSettings {
  model: () => VolunteerModel;
  tokenDigest: Buffer | undefined;
  originRules: OriginRule[];
  heartbeatMs: number;
  missedBeats: number;
  maxBatch: number;
  topK: number;
  maxViolations: number;
  maxConnections: number;
  jobTimeout: JobTimeout | undefined;
  maxConsecutiveFailures: number | undefined;
  failureRestMs: number | undefined;
}

export function volunteerSettings(options: VolunteerRegistryOptions): VolunteerSettings {
  const model = options.model;
  return {
    model: typeof model === 'function' ? model : () => model,
    tokenDigest: options.token ? tokenDigest(options.token) : undefined,
    originRules: (options.allowedOrigins ?? DEFAULT_ALLOWED_ORIGINS).map(parseOriginRule),
    heartbeatMs: options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
    missedBeats: options.missedBeats ?? 3,
    maxBatch: clamp(options.maxBatch ?? MAX_VOLUNTEER_BATCH, 1, MAX_VOLUNTEER_BATCH),
    topK: clamp(options.topK ?? MAX_TOP, 1, MAX_TOP),
    maxViolations: options.maxViolations ?? 20,
    maxConnections: options.maxConnections ?? 256,
    jobTimeout: options.jobTimeout,
    maxConsecutiveFailures: options.maxConsecutiveFailures,
    failureRestMs: options.failureRestMs,
  };
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, Math.floor(value)));
}
