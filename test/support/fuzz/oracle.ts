/**
 * What the README's protocol says a DEALER must get back for a message, as far as the
 * message's structure settles it: the envelope the reply comes back in (every frame up to and
 * including the first empty one), the request_id it echoes, and the error code when the frames,
 * the size, the JSON or the request's fields decide it. When several fields are wrong, the
 * code of any of them will do.
 */
import { MAX_TOP } from '../../../shared/labels.ts';
import { maxJsonBytes } from '../../../server/front/admission.ts';
import type { AdmissionLimits } from '../../../server/front/admission.ts';
import type { Outcome } from './cases.ts';

export interface Expectation {
  /** Frames the reply must start with, before its one JSON frame. */
  route: Buffer[];
  /** The request_id the reply must carry (none when undefined). */
  requestId: string | undefined;
  /** The outcomes allowed, when structure alone decides; otherwise the case's `expect` applies. */
  codes: Outcome[] | undefined;
}

/** The request fields (README, and the schema's bounds for deadline_ms and offload) and the code a wrong value gets. */
export const FIELD_RULES: Record<string, { code: Outcome; valid: (value: unknown) => boolean }> = {
  payload: { code: 'invalid_request', valid: (v) => typeof v === 'string' },
  top: { code: 'invalid_top', valid: (v) => Number.isSafeInteger(v) && (v as number) >= 1 && (v as number) <= MAX_TOP },
  request_id: { code: 'invalid_request', valid: (v) => typeof v === 'string' && v.length <= 200 },
  deadline_ms: { code: 'invalid_request', valid: (v) => typeof v === 'number' && Number.isFinite(v) && v > 0 && v <= 3_600_000 },
  offload: { code: 'invalid_request', valid: (v) => typeof v === 'boolean' },
};

export function expectationOf(frames: Buffer[], limits: AdmissionLimits): Expectation {
  // The ROUTER prepends the identity; a DEALER's frames up to the first empty one are routing.
  const delimiter = frames.findIndex((frame) => frame.length === 0);
  const route = delimiter === -1 ? [] : frames.slice(0, delimiter + 1);
  const body = frames.slice(route.length);
  if (body.length !== 1) return { route, requestId: undefined, codes: ['invalid_frames'] };
  const bytes = body[0];
  if (bytes.length > maxJsonBytes(limits)) return { route, requestId: undefined, codes: ['payload_too_large'] };
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    return { route, requestId: undefined, codes: ['invalid_json'] };
  }
  const requestId = echoedId(value);
  if (typeof value !== 'object' || value === null || Array.isArray(value) || !('payload' in value)) {
    return { route, requestId, codes: ['invalid_request'] };
  }
  const request = value as Record<string, unknown>;
  const wrong = new Set<Outcome>();
  for (const [name, rule] of Object.entries(FIELD_RULES)) {
    if (name in request && request[name] !== undefined && !rule.valid(request[name])) wrong.add(rule.code);
  }
  return { route, requestId, codes: wrong.size > 0 ? [...wrong] : undefined };
}

/** README: `request_id` (a string) is echoed in the reply, also in error replies; the schema caps it at 200. */
function echoedId(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const id = (value as Record<string, unknown>).request_id;
  return typeof id === 'string' && id.length <= 200 ? id : undefined;
}
