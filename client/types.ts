/**
 * What the client library promises its callers: the options it takes, the result of one
 * request, and the figures it keeps per hub.
 */
import type { ClassifyReply, ErrorReply } from '../shared/protocol/classify.ts';
import type { ErrorCode } from '../shared/protocol/errors.ts';
import type { Resolver } from './endpoints.ts';

/** Hub answers that mean "not now, not here": the request goes to another hub. */
export const RETRYABLE_CODES = ['overloaded', 'shutting_down', 'not_ready'] as const satisfies readonly ErrorCode[];
export type RetryableCode = (typeof RETRYABLE_CODES)[number];

/**
 * Errors the client makes itself: `timeout` (no result by the request's deadline, and no hub's
 * refusal to report instead), `closed` (the client was closed first).
 */
export type ClientErrorCode = 'timeout' | 'closed';

export interface CurveKeys {
  /** The hub's public key (Z85), as its `ready` line prints it. */
  serverKey: string;
  publicKey: string;
  secretKey: string;
}

export interface HubClientOptions {
  /**
   * Hubs: `tcp://host:port` strings, in a list or comma-separated. A host name is resolved to
   * every address it has, and each address is a hub of its own.
   */
  endpoints: string | readonly string[];
  /** How names are resolved (default: the system's getaddrinfo); tests inject their own. */
  resolver?: Resolver;
  /** Names are resolved again this often, so hubs can come and go; 0: only at the start. Default 5000. */
  resolveIntervalMs?: number;
  /** A request's own deadline when the call gives none: no result by then is a `timeout`. Default 60000. */
  deadlineMs?: number;
  /** Silence from a hub for this long sends the request to another hub as well (the first result wins). Default 10000. */
  perTryTimeoutMs?: number;
  /** A hub that answered `overloaded` gets no new request for this long. Default 100. */
  overloadBackoffMs?: number;
  /** A hub that answered `not_ready` gets no new request for this long. Default 500. */
  notReadyBackoffMs?: number;
  /** ZMTP heartbeats: a hub whose connection is silent this long (×3) counts as gone. 0: off. Default 2000. */
  heartbeatMs?: number;
  /** ZeroMQ CURVE, for hubs started with --curve-secret-key. */
  curve?: CurveKeys;
}

export interface ClassifyOptions {
  /** How many entries `predictions` holds (1–20; the hub's default is 3). */
  top?: number;
  /** Yours: given back in the reply's `request_id`. The wire carries the client's own ids. */
  requestId?: string;
  /** This request's deadline, from now (default: the client's `deadlineMs`). */
  deadlineMs?: number;
  /** `false` keeps the request off volunteers' tabs. */
  offload?: boolean;
}

interface Outcome {
  /** The hub's endpoint that gave the answer (undefined: none did). */
  endpoint?: string;
  /** Sends, including resends to other hubs. */
  attempts: number;
  /** From the call to the answer. */
  ms: number;
}

export type ClassifyResult =
  | (Outcome & { ok: true; reply: ClassifyReply })
  | (Outcome & {
      ok: false;
      error: { code: ErrorCode | ClientErrorCode; message: string };
      /** The hub's error reply, when a hub answered; absent for the client's own errors. */
      reply?: ErrorReply;
    });

export interface HubStats {
  endpoint: string;
  /** As the hub names itself in its replies (`--hub-id`), once it has answered. */
  hubId?: string;
  connected: boolean;
  /** `draining`: it answered shutting_down; `retired`: its name no longer resolves to it. */
  mode: 'active' | 'draining' | 'retired';
  outstanding: number;
  sent: number;
  results: number;
  /** Final error replies, by code. */
  errors: Record<string, number>;
  /** overloaded / shutting_down / not_ready replies, each followed by a resend elsewhere. */
  refusals: Record<string, number>;
  /** Sends that met the per-try timeout. */
  silences: number;
  disconnects: number;
  /** Replies for requests already answered (by another hub) or unknown: dropped, never handed on. */
  dropped: number;
}

export interface ClientStats {
  requests: number;
  results: number;
  errors: number;
  /** Sends beyond each request's first. */
  resends: number;
  /** Requests waiting for any hub to be reachable. */
  waiting: number;
  hubs: HubStats[];
}
