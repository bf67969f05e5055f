/**
 * What the fuzzer sends and what it may get back. A case is one ZeroMQ message (its frames,
 * as a DEALER sends them) or one image (sent as the ZeroMQ JSON or as an HTTP body); `expect`
 * lists the outcomes the reply may have once the frames, the JSON and the request fields are in
 * order (oracle.ts settles those outcomes from the bytes).
 */
import type { ErrorCode } from '../../../shared/protocol/errors.ts';

export type Outcome = ErrorCode | 'ok';

export interface MessageCase {
  kind: string;
  frames: Buffer[];
  expect: readonly Outcome[];
}

export interface ImageCase {
  kind: string;
  /** The base image and the mutations applied to it, for the report. */
  recipe: string;
  bytes: Buffer;
}

/** Outcomes of an image that reaches the decoder. */
export const IMAGE_OUTCOMES: readonly Outcome[] = ['ok', 'unsupported_image', 'corrupt_image', 'too_many_pixels', 'payload_too_large'];

/** Outcomes of bytes that are certainly no image (they reach the decoder and are refused). */
export const NOT_AN_IMAGE: readonly Outcome[] = ['unsupported_image', 'corrupt_image'];

/** Every error a client's input can cause (README); `internal` and the lifecycle codes are the hub's own doing. */
export const CLIENT_ERRORS: readonly Outcome[] = [
  'invalid_json',
  'invalid_request',
  'invalid_frames',
  'invalid_base64',
  'invalid_top',
  'payload_too_large',
  'too_many_pixels',
  'unsupported_image',
  'corrupt_image',
];

/** Outcomes that any request may meet under load, whatever it holds: allowed, but counted. */
export const LOAD_OUTCOMES: readonly Outcome[] = ['overloaded'];
