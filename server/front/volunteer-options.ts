/**
 * What the volunteer WebSocket is configured with, and the events it reports.
 */
import type { WeightsKind } from '../../shared/protocol/classify.ts';
import type { VolunteerStatus } from '../../shared/protocol/status.ts';
import type { JobTimeout } from '../executors/volunteer-executor.ts';
import type { Logger } from '../log.ts';
import type { Scheduler } from '../scheduler/scheduler.ts';
import type { UpgradeHandler } from './http-front.ts';

export interface VolunteerModel {
  url: string;
  sha256: string;
  weights: WeightsKind;
}

export interface VolunteerSocketOptions {
  /** Registers the upgrade handler for `path` (HttpFront.onUpgrade). */
  onUpgrade: (path: string, handler: UpgradeHandler) => void;
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

export interface VolunteerHubEvents {
  joined: [volunteer: VolunteerStatus];
  left: [volunteer: VolunteerStatus, reason: string];
  quarantined: [volunteer: VolunteerStatus, reason: string];
}
