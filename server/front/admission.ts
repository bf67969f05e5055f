/**
 * Turns what a client sent into a request the hub can run, or a ServiceError that says
 * exactly what is wrong with it. Shared by every front, so all answer bad input alike.
 */
import { DEFAULT_TOP } from '../../shared/labels.ts';
import { ClassifyRequestSchema } from '../../shared/protocol/classify.ts';
import { ServiceError } from '../../shared/protocol/errors.ts';
import type { AdmittedRequest } from '../hub/admitted-request.ts';

export interface AdmissionLimits {
  maxImageBytes: number;
}

/** Largest JSON text worth parsing for an image of `maxImageBytes`: base64 plus room for the rest. */
export function maxJsonBytes(limits: AdmissionLimits): number {
  return Math.ceil((limits.maxImageBytes * 4) / 3) + 64 * 1024;
}

const DATA_URL_PREFIX = /^data:[\w.+-]+\/[\w.+-]+(;[\w=.+-]+)*;base64,/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const WHITESPACE = /\s/;
const ALL_WHITESPACE = /\s+/g;

/** Best effort at the request id of a request that is otherwise invalid, to echo it back. */
export function salvageRequestId(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const id = (value as Record<string, unknown>).request_id;
  return typeof id === 'string' && id.length <= 200 ? id : undefined;
}

const REQUEST_ID_KEY = Buffer.from('"request_id"');
const PLAIN_ID_VALUE = /^\s*:\s*"([^"\\]{0,200})"/;

/**
 * The request_id of a JSON request read without parsing the request (its payload is most of
 * it), for refusing a flood cheaply. `{}` when the key is not in the text at all; undefined
 * when the text has it in some form this scan does not settle (escapes, not a string), and a
 * full parse must decide. A base64 payload holds no quote, so the key cannot hide in it.
 */
export function peekRequestId(body: Buffer): { requestId?: string } | undefined {
  const at = body.indexOf(REQUEST_ID_KEY);
  if (at === -1) return {};
  if (body.indexOf(REQUEST_ID_KEY, at + 1) !== -1) return undefined;
  const match = PLAIN_ID_VALUE.exec(body.subarray(at + REQUEST_ID_KEY.length, at + REQUEST_ID_KEY.length + 256).toString('utf8'));
  return match ? { requestId: match[1] } : undefined;
}

export function parseJsonRequest(text: string | Uint8Array, limits: AdmissionLimits): { value: unknown } {
  if (text.length > maxJsonBytes(limits)) {
    throw new ServiceError('payload_too_large', `request of ${text.length} bytes is over the limit for a ${limits.maxImageBytes}-byte image`);
  }
  const source = typeof text === 'string' ? text : Buffer.from(text.buffer, text.byteOffset, text.byteLength).toString('utf8');
  try {
    return { value: JSON.parse(source) };
  } catch {
    throw new ServiceError('invalid_json', 'the request is not valid JSON; send {"payload": "<base64 image>"}');
  }
}

export function admitJson(value: unknown, limits: AdmissionLimits): AdmittedRequest {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ServiceError('invalid_request', 'the request must be a JSON object: {"payload": "<base64 image>"}');
  }
  if (!('payload' in value)) throw new ServiceError('invalid_request', 'the request has no "payload" (a base64-encoded image)');
  const parsed = ClassifyRequestSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = String(issue.path[0] ?? '');
    throw new ServiceError(field === 'top' ? 'invalid_top' : 'invalid_request', issue.message);
  }
  const request = parsed.data;
  return {
    image: decodeBase64Image(request.payload, limits),
    top: request.top ?? DEFAULT_TOP,
    requestId: request.request_id,
    deadlineMs: request.deadline_ms,
    offload: request.offload ?? true,
  };
}

export function decodeBase64Image(payload: string, limits: AdmissionLimits): Uint8Array {
  let text = payload.replace(DATA_URL_PREFIX, '');
  if (WHITESPACE.test(text)) text = text.replace(ALL_WHITESPACE, '');
  if (text.length === 0) throw new ServiceError('invalid_request', 'the payload is empty');
  const decodedBytes = Math.floor((text.length * 3) / 4) - (text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0);
  if (decodedBytes > limits.maxImageBytes) {
    throw new ServiceError('payload_too_large', `the image is ${decodedBytes} bytes; the limit is ${limits.maxImageBytes}`);
  }
  const image = Buffer.from(text, 'base64'); // lenient: skips what is not base64, so checked below
  // What every encoder writes (canonical, padded) comes back identical when re-encoded, which
  // costs ~20 µs for a 50 KB payload where the pattern alone costs ~380 µs on the main thread.
  if (image.toString('base64') !== text && (!BASE64.test(text) || text.length % 4 === 1)) {
    throw new ServiceError('invalid_base64', 'the payload is not valid base64 (standard alphabet, optional = padding)');
  }
  return image;
}

/** Raw image bytes (HTTP upload) go through the same size check as base64 ones. */
export function admitImageBytes(image: Uint8Array, top: number, limits: AdmissionLimits): AdmittedRequest {
  if (image.length === 0) throw new ServiceError('invalid_request', 'the image is empty');
  if (image.length > limits.maxImageBytes) {
    throw new ServiceError('payload_too_large', `the image is ${image.length} bytes; the limit is ${limits.maxImageBytes}`);
  }
  return { image, top, offload: true };
}
