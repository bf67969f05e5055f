/**
 * Error codes every front (ZeroMQ, HTTP, WebSocket) answers with. One list so that clients
 * can switch on `error.code` whatever way they came in.
 */
export const ERROR_CODES = [
  'invalid_json',
  'invalid_request',
  'invalid_frames',
  'invalid_base64',
  'invalid_top',
  'payload_too_large',
  'too_many_pixels',
  'unsupported_image',
  'corrupt_image',
  'not_ready',
  'unauthorized',
  'overloaded',
  'timeout',
  'shutting_down',
  'internal',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** An error meant for the client: its code and message go into the reply as they are. */
export class ServiceError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ServiceError';
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value);
}
