/**
 * The classify request and reply, as spoken over ZeroMQ, HTTP and shown in the web UI.
 */
import { z } from 'zod';
import { MAX_TOP } from '../labels.ts';
import type { Prediction } from '../labels.ts';
import type { ErrorCode } from './errors.ts';

export const ClassifyRequestSchema = z.object({
  payload: z.string({ error: 'payload must be a base64 string' }),
  top: z.int({ error: `top must be an integer from 1 to ${MAX_TOP}` }).min(1).max(MAX_TOP).optional(),
  request_id: z.string({ error: 'request_id must be a string' }).max(200).optional(),
  deadline_ms: z.number({ error: 'deadline_ms must be a number' }).positive().max(3_600_000).optional(),
  offload: z.boolean({ error: 'offload must be true or false' }).optional(),
});

export type ClassifyRequest = z.infer<typeof ClassifyRequestSchema>;

export type ExecutorKind = 'local' | 'volunteer';
export type WeightsKind = 'imagenet' | 'untrained';

export interface ExecutorInfo {
  kind: ExecutorKind;
  id: string;
  engine: string;
}

/** Where the weights came from: a Keras HDF5 file (with its own hashes), or the seeded generator. */
export type WeightsSource =
  | { kind: 'keras-h5'; sha256?: string; md5?: string; url?: string }
  | { kind: 'generated'; seed: number };

/** What the weights compute in: fp32 as trained, or int8 (quantized, see the README's int8 section). */
export type Precision = 'fp32' | 'int8';

export interface ModelInfo {
  name: string;
  weights: WeightsKind;
  precision: Precision;
  /** sha256 of the weights, so a client can tell which weights answered. */
  sha256: string;
  source: WeightsSource;
}

export interface Timing {
  queue_ms: number;
  preprocess_ms: number;
  inference_ms: number;
  total_ms: number;
}

/** The hub that answered (`--hub-id`), so a client of several hubs can tell them apart. */
export interface HubInfo {
  id: string;
}

export interface ClassifyReply {
  preds: string;
  predictions: Prediction[];
  executor: ExecutorInfo;
  model: ModelInfo;
  timing: Timing;
  hub: HubInfo;
  request_id?: string;
}

export interface ErrorReply {
  error: { code: ErrorCode; message: string };
  /** Absent only on HTTP refusals made before a request reaches the hub (401, 404). */
  hub?: HubInfo;
  request_id?: string;
}

export type Reply = ClassifyReply | ErrorReply;

export function isErrorReply(reply: Reply): reply is ErrorReply {
  return 'error' in reply;
}
