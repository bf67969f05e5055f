/** The HTTP status each of the hub's error codes is answered with on its own API. */
import type { ErrorCode } from '../../shared/protocol/errors.ts';

export const HTTP_STATUS_BY_CODE: Record<ErrorCode, number> = {
  invalid_json: 400,
  invalid_request: 400,
  invalid_frames: 400,
  invalid_base64: 400,
  invalid_top: 400,
  payload_too_large: 413,
  too_many_pixels: 413,
  unsupported_image: 415,
  corrupt_image: 422,
  not_ready: 503,
  unauthorized: 401,
  overloaded: 503,
  shutting_down: 503,
  timeout: 504,
  internal: 500,
};
