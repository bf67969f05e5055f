/**
 * The client library for programs that classify images with one hub or many. It speaks the
 * seed's protocol (HubClient) or the Open Inference Protocol over gRPC (OpenInferenceGrpcClient),
 * and depends on the protocols' types only, never on the server's code.
 */
export { HubClient } from './hub-client.ts';
export { systemResolver, splitEndpoints } from './endpoints.ts';
export type { Resolver } from './endpoints.ts';
export { RETRYABLE_CODES } from './types.ts';
export type { ClassifyOptions, ClassifyResult, ClientErrorCode, ClientStats, CurveKeys, HubClientOptions, HubStats } from './types.ts';
export type { ClassifyReply, ErrorReply } from '../shared/protocol/classify.ts';
export { OpenInferenceGrpcClient } from './open-inference-grpc-client.ts';
export type { ClassEntry, InferOptions, InferResult, OpenInferenceGrpcOptions } from './open-inference-grpc-client.ts';
