/**
 * The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`, on --grpc-port), with
 * the standard gRPC health service for Kubernetes probes. Inference goes through the same
 * reading, admission and run as the REST routes (run-inference.ts); only the wire differs:
 *
 * - inputs come typed (`contents.bytes_contents`, one encoded image per element) or raw
 *   (`raw_input_contents`, BYTES elements each behind a 4-byte little-endian length), never both;
 * - outputs go back the way the inputs came: raw for a raw request, typed for a typed one;
 * - a gRPC deadline is the request's deadline; the hub's errors are gRPC status codes
 *   (grpc-status.ts), with the hub's own code in the `resnet-hub-error-code` trailer;
 * - with --api-token, calls carry `authorization: Bearer <token>` metadata (health excepted).
 */
import { timingSafeEqual } from 'node:crypto';
import { Metadata, Server, ServerCredentials, status } from '@grpc/grpc-js';
import type { GrpcObject, ServerErrorResponse, ServerUnaryCall, ServiceClientConstructor, sendUnaryData } from '@grpc/grpc-js';
import { loadPackageDefinition } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import type { ModelInfo } from '../../../shared/protocol/classify.ts';
import type { ErrorCode } from '../../../shared/protocol/errors.ts';
import { ServiceError } from '../../../shared/protocol/errors.ts';
import { OPEN_INFERENCE_EXTENSIONS, OPEN_INFERENCE_MODEL } from '../../../shared/protocol/open-inference.ts';
import type { InferenceRequest, Parameters } from '../../../shared/protocol/open-inference.ts';
import { OPEN_INFERENCE_SERVICE, loadOpenInferenceProto, parameterValue } from '../../../shared/protocol/open-inference-grpc.ts';
import type {
  InferOutputTensor,
  InferParameter,
  ModelInferRequest,
  ModelInferResponse,
  ModelMetadataResponse,
  ServerMetadataResponse,
} from '../../../shared/protocol/open-inference-grpc.ts';
import { GRPC_STATUS_BY_CODE } from '../grpc-status.ts';
import { tokenDigest } from '../upgrade-guard.ts';
import { encodeBytesElements, encodeFp32 } from './binary-tensors.ts';
import type { AnsweredInference } from './infer-request.ts';
import { maxInferenceBytes, readInference } from './infer-request.ts';
import type { OpenInferenceOptions } from './open-inference-routes.ts';
import { isAnswered, runInference } from './run-inference.ts';
import { modelMetadata, namesVersion } from './served-model.ts';

export const ERROR_CODE_TRAILER = 'resnet-hub-error-code';

/** The REST routes' options, and the API token, which gRPC checks itself (the HTTP front does it for REST). */
export interface OpenInferenceGrpcOptions extends OpenInferenceOptions {
  apiToken?: string;
}

/** A call that failed: its status, what to tell the client, and the hub's code when there is one. */
interface CallError {
  code: status;
  details: string;
  hubCode?: ErrorCode;
}

type Unary<Request, Response> = (call: ServerUnaryCall<Request, Response>, callback: sendUnaryData<Response>) => void;

export class OpenInferenceGrpcFront {
  private readonly server: Server;
  private readonly health = new HealthImplementation({ '': 'NOT_SERVING', [OPEN_INFERENCE_SERVICE]: 'NOT_SERVING' });
  private readonly tokenDigest: Buffer | undefined;

  constructor(private readonly options: OpenInferenceGrpcOptions) {
    this.tokenDigest = options.apiToken ? tokenDigest(options.apiToken) : undefined;
    const maxBytes = maxInferenceBytes(options.limits);
    // Channelz (gRPC's live introspection) keeps per-call books nobody reads here: off, it saves time on every call.
    this.server = new Server({ 'grpc.max_receive_message_length': maxBytes, 'grpc.max_send_message_length': maxBytes, 'grpc.enable_channelz': 0 });
    const proto = loadPackageDefinition(loadOpenInferenceProto()).inference as GrpcObject;
    const service = (proto.GRPCInferenceService as ServiceClientConstructor).service;
    this.server.addService(service, {
      ServerLive: this.unary(() => ({ live: true })),
      ServerReady: this.unary(() => ({ ready: options.hub.isReady })),
      ModelReady: this.unary((request: { name: string; version: string }) => {
        this.findModel(request.name, request.version);
        return { ready: options.hub.isReady };
      }),
      ServerMetadata: this.unary((): ServerMetadataResponse => ({ name: options.serverName, version: options.serverVersion, extensions: [...OPEN_INFERENCE_EXTENSIONS] })),
      ModelMetadata: this.unary((request: { name: string; version: string }): ModelMetadataResponse => modelMetadata(this.findModel(request.name, request.version))),
      ModelInfer: (call: ServerUnaryCall<ModelInferRequest, ModelInferResponse>, callback: sendUnaryData<ModelInferResponse>) => void this.infer(call, callback),
    });
    this.health.addToServer(this.server);
  }

  /** Binds `host:port` (0: a free port); resolves the port bound. */
  listen(port: number, host: string): Promise<number> {
    const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound)));
    });
  }

  /** What the health service says: SERVING once the hub takes requests, NOT_SERVING from the drain on. */
  setServing(serving: boolean): void {
    const state = serving ? 'SERVING' : 'NOT_SERVING';
    this.health.setStatus('', state);
    this.health.setStatus(OPEN_INFERENCE_SERVICE, state);
  }

  /** After the drain: every accepted call is answered, so a graceful shutdown ends at once; forced after `graceMs`. */
  close(graceMs = 2000): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** A unary call answered by `answer`, which may throw NotFound or a ServiceError. */
  private unary<Request, Response>(answer: (request: Request) => Response): Unary<Request, Response> {
    return (call, callback) => {
      const refused = this.unauthorized(call.metadata);
      if (refused) return void callback(callErrorResponse(refused));
      try {
        callback(null, answer(call.request));
      } catch (error) {
        callback(callErrorResponse(toCallError(error)));
      }
    };
  }

  private findModel(name: string, version: string): ModelInfo {
    const model = this.options.model();
    if (name !== OPEN_INFERENCE_MODEL) throw notFound(`unknown model ${JSON.stringify(name)}; this hub serves ${OPEN_INFERENCE_MODEL}`);
    if (version !== '' && !namesVersion(version, model.sha256)) throw notFound(`model ${OPEN_INFERENCE_MODEL} has no version ${JSON.stringify(version)}; it serves ${model.sha256}`);
    return model;
  }

  private unauthorized(metadata: Metadata): CallError | undefined {
    if (!this.tokenDigest) return undefined;
    const bearer = /^Bearer\s+(.+)$/i.exec(String(metadata.get('authorization')[0] ?? ''))?.[1];
    if (bearer && timingSafeEqual(tokenDigest(bearer), this.tokenDigest)) return undefined;
    return { code: status.UNAUTHENTICATED, details: 'this hub needs an API token: send "authorization: Bearer <token>" metadata', hubCode: 'unauthorized' };
  }

  private async infer(call: ServerUnaryCall<ModelInferRequest, ModelInferResponse>, callback: sendUnaryData<ModelInferResponse>): Promise<void> {
    const receivedAt = performance.now();
    const { hub, limits } = this.options;
    const refusedAccess = this.unauthorized(call.metadata);
    if (refusedAccess) return void callback(callErrorResponse(refusedAccess));
    const message = call.request;
    let raw = false;
    let outcome: Awaited<ReturnType<typeof runInference>>;
    try {
      this.findModel(message.model_name, message.model_version ?? '');
      const refusal = hub.refusalNow();
      if (refusal) throw refusal;
      const { request, sections } = asInferenceRequest(message);
      raw = sections.length > 0;
      const read = readInference(request, sections, limits);
      outcome = await runInference(hub, read, { receivedAt, deadlineMs: deadlineMsOf(call), localWorkers: this.options.localWorkers });
    } catch (error) {
      if (error instanceof NotFound) return void callback(callErrorResponse(toCallError(error)));
      const refused = await hub.refusePaced(error);
      return void callback(callErrorResponse(fromHubError(refused.error)));
    }
    if (!isAnswered(outcome)) return void callback(callErrorResponse(fromHubError(outcome.error)));
    callback(null, inferResponse(outcome, raw));
  }
}

class NotFound extends Error {}

function notFound(details: string): NotFound {
  return new NotFound(details);
}

function toCallError(error: unknown): CallError {
  if (error instanceof NotFound) return { code: status.NOT_FOUND, details: error.message };
  if (error instanceof ServiceError) return fromHubError(error);
  return { code: status.INTERNAL, details: `internal error: ${error instanceof Error ? error.message : String(error)}`, hubCode: 'internal' };
}

function fromHubError(error: { code: ErrorCode; message: string }): CallError {
  return { code: GRPC_STATUS_BY_CODE[error.code], details: error.message, hubCode: error.code };
}

function callErrorResponse(error: CallError): Partial<ServerErrorResponse> {
  const metadata = new Metadata();
  if (error.hubCode) metadata.set(ERROR_CODE_TRAILER, error.hubCode);
  return { code: error.code, details: error.details, metadata };
}

/** The call's deadline as milliseconds left from now; undefined when it has none. */
function deadlineMsOf(call: ServerUnaryCall<unknown, unknown>): number | undefined {
  const deadline = call.getDeadline();
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : undefined;
}

function flattenParameters(parameters: Record<string, InferParameter> | undefined): Parameters | undefined {
  if (!parameters) return undefined;
  const flat: Parameters = {};
  for (const [key, parameter] of Object.entries(parameters)) {
    const value = parameterValue(parameter);
    if (value !== undefined) flat[key] = value;
  }
  return flat;
}

/**
 * The gRPC message as the transport-free request `readInference` takes: typed contents become
 * `data`, raw contents become the inputs' sections.
 */
function asInferenceRequest(message: ModelInferRequest): { request: InferenceRequest; sections: Buffer[] } {
  const raw = message.raw_input_contents ?? [];
  if (raw.length > 0) {
    if (raw.length !== message.inputs.length) {
      throw new ServiceError('invalid_request', `raw_input_contents has ${raw.length} entries for ${message.inputs.length} inputs; send one per input, or none`);
    }
    if (message.inputs.some((input) => hasContents(input.contents))) {
      throw new ServiceError('invalid_request', 'an input has contents while raw_input_contents is used; send every input one way');
    }
  }
  const request: InferenceRequest = {
    ...(message.id ? { id: message.id } : {}),
    inputs: message.inputs.map((input) => ({
      name: input.name,
      shape: input.shape,
      datatype: input.datatype,
      ...(input.parameters ? { parameters: flattenParameters(input.parameters) } : {}),
      ...(raw.length === 0 ? { data: typedData(input) } : {}),
    })),
    outputs: (message.outputs ?? []).map((output) => ({ name: output.name, parameters: flattenParameters(output.parameters) })),
  };
  const parameters = flattenParameters(message.parameters);
  if (parameters) request.parameters = parameters;
  return { request, sections: raw.map((content) => Buffer.from(content.buffer, content.byteOffset, content.byteLength)) };
}

/** A typed input's elements, from the contents field of its datatype. */
function typedData(input: ModelInferRequest['inputs'][number]): unknown[] {
  const contents = input.contents;
  if (!contents) return [];
  return input.datatype === 'FP32' ? (contents.fp32_contents ?? []) : (contents.bytes_contents ?? []);
}

function hasContents(contents: ModelInferRequest['inputs'][number]['contents']): boolean {
  if (!contents) return false;
  return Object.values(contents).some((values) => Array.isArray(values) && values.length > 0);
}

/** The answer, with its outputs raw (`raw_output_contents`, in output order) or typed. */
function inferResponse(answered: AnsweredInference, raw: boolean): ModelInferResponse {
  const raws: Buffer[] = [];
  const outputs = answered.outputs.map((output): InferOutputTensor => {
    const { name, datatype, shape } = output;
    if (raw) {
      raws.push(output.datatype === 'FP32' ? encodeFp32(output.rows) : encodeBytesElements(output.entries));
      return { name, datatype, shape };
    }
    const contents = output.datatype === 'FP32' ? { fp32_contents: output.rows.flatMap((row) => Array.from(row)) } : { bytes_contents: output.entries.map((entry) => Buffer.from(entry, 'utf8')) };
    return { name, datatype, shape, contents };
  });
  return { model_name: OPEN_INFERENCE_MODEL, model_version: answered.modelVersion, id: answered.id ?? '', outputs, raw_output_contents: raws };
}
