/** The gRPC status each of the hub's error codes is answered with on the Open Inference gRPC service. */
import { status } from '@grpc/grpc-js';
import type { ErrorCode } from '../../shared/protocol/errors.ts';

export const GRPC_STATUS_BY_CODE: Record<ErrorCode, status> = {
  invalid_json: status.INVALID_ARGUMENT,
  invalid_request: status.INVALID_ARGUMENT,
  invalid_frames: status.INVALID_ARGUMENT,
  invalid_base64: status.INVALID_ARGUMENT,
  invalid_top: status.INVALID_ARGUMENT,
  // The client's image is too large for this hub's limits: not worth retrying as it is.
  payload_too_large: status.INVALID_ARGUMENT,
  too_many_pixels: status.INVALID_ARGUMENT,
  unsupported_image: status.INVALID_ARGUMENT,
  corrupt_image: status.INVALID_ARGUMENT,
  not_ready: status.UNAVAILABLE,
  unauthorized: status.UNAUTHENTICATED,
  // Retry later: the queue is full now (gRPC's retry policies and clients read it so).
  overloaded: status.RESOURCE_EXHAUSTED,
  shutting_down: status.UNAVAILABLE,
  timeout: status.DEADLINE_EXCEEDED,
  internal: status.INTERNAL,
};
