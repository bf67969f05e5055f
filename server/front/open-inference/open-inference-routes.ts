/**
 * The Open Inference Protocol (KServe v2) over REST, on the hub's HTTP port under /v2: server
 * live, ready and metadata; the model's metadata and readiness; and inference, whose images go
 * through the same admission, queue, scheduler and executors as every other request (one job per
 * image). The model's version is the SHA-256 of the weights it serves, so a swap shows in it.
 * Errors are `{"error": "…"}`: 400 for a bad request, 404 for an unknown model or version, 503
 * while overloaded, not ready or stopping, 504 past a deadline.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ClassifyReply, ModelInfo, Reply } from '../../../shared/protocol/classify.ts';
import { isErrorReply } from '../../../shared/protocol/classify.ts';
import { ServiceError } from '../../../shared/protocol/errors.ts';
import type { ErrorCode } from '../../../shared/protocol/errors.ts';
import { IMAGE_INPUT, OPEN_INFERENCE_EXTENSIONS, OPEN_INFERENCE_MODEL, PROBABILITIES_OUTPUT } from '../../../shared/protocol/open-inference.ts';
import type { ModelMetadata } from '../../../shared/protocol/open-inference.ts';
import { NUM_CLASSES } from '../../../shared/labels.ts';
import type { Hub } from '../../hub/hub.ts';
import type { Logger } from '../../../lib/log.ts';
import type { AdmissionLimits } from '../admission.ts';
import { maxJsonBytes } from '../admission.ts';
import { ClientGoneError, discardBody, readBody } from '../http-body.ts';
import { HTTP_STATUS_BY_CODE } from '../http-status.ts';
import { HEADER_LENGTH_HEADER, encodeInferResponse, splitInferBody } from './binary-tensors.ts';
import { inferenceResponse, readInferenceRequest, wantsAllClasses } from './infer-request.ts';

/** The hub's own statuses, except that every client error but 401 is the specification's 400. */
function statusOf(code: ErrorCode): number {
  const status = HTTP_STATUS_BY_CODE[code];
  return status >= 400 && status < 500 && status !== 401 ? 400 : status;
}

/** A request body holds at most this many single-image JSON requests' worth of bytes: many images, but not many large ones. */
const MAX_BODY_IMAGES = 2;

export interface OpenInferenceOptions {
  hub: Hub;
  limits: AdmissionLimits;
  /** The model new requests are computed with. */
  model: () => ModelInfo;
  serverName: string;
  serverVersion: string;
  /** Local workers run here (not --workers 0): only they compute every class's probability. */
  localWorkers: boolean;
  log: Logger;
}

/** `/v2/models/{name}[/versions/{version}][/{action}]`, split. */
const MODEL_PATH = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(?:\/(ready|infer))?$/;

export class OpenInferenceRoutes {
  constructor(private readonly options: OpenInferenceOptions) {}

  /** Answers a /v2 request; false for any other path. */
  async handle(request: IncomingMessage, response: ServerResponse, path: string): Promise<boolean> {
    if (path !== '/v2' && path !== '/v2/' && !path.startsWith('/v2/')) return false;
    const { hub } = this.options;
    const method = request.method ?? 'GET';
    if (method === 'GET' && path === '/v2/health/live') return sendJson(response, 200, { live: true });
    if (method === 'GET' && path === '/v2/health/ready') return sendJson(response, hub.isReady ? 200 : 400, { ready: hub.isReady });
    if (method === 'GET' && (path === '/v2' || path === '/v2/')) {
      return sendJson(response, 200, { name: this.options.serverName, version: this.options.serverVersion, extensions: [...OPEN_INFERENCE_EXTENSIONS] });
    }
    const match = MODEL_PATH.exec(path);
    if (!match) return sendError(response, 404, `no route for ${method} ${path}`);
    const [, name, version, action] = match;
    const model = this.options.model();
    if (decodeURIComponent(name) !== OPEN_INFERENCE_MODEL) return sendError(response, 404, `unknown model ${JSON.stringify(decodeURIComponent(name))}; this hub serves ${OPEN_INFERENCE_MODEL}`);
    if (version !== undefined && !namesVersion(version, model.sha256)) {
      return sendError(response, 404, `model ${OPEN_INFERENCE_MODEL} has no version ${JSON.stringify(version)}; it serves ${model.sha256}`);
    }
    if (method === 'GET' && action === undefined) return sendJson(response, 200, this.metadata(model));
    if (method === 'GET' && action === 'ready') return sendJson(response, hub.isReady ? 200 : 400, { name: OPEN_INFERENCE_MODEL, ready: hub.isReady });
    if (method === 'POST' && action === 'infer') {
      await this.infer(request, response);
      return true;
    }
    return sendError(response, 404, `no route for ${method} ${path}`);
  }

  private metadata(model: ModelInfo): ModelMetadata {
    return {
      name: OPEN_INFERENCE_MODEL,
      versions: [model.sha256],
      platform: 'onnx_onnxv1',
      inputs: [{ name: IMAGE_INPUT, datatype: 'BYTES', shape: [-1] }],
      outputs: [{ name: PROBABILITIES_OUTPUT, datatype: 'FP32', shape: [-1, NUM_CLASSES] }],
    };
  }

  private async infer(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const receivedAt = performance.now();
    const { hub, limits } = this.options;
    let replies: Reply[];
    let read: ReturnType<typeof readInferenceRequest>;
    const allClasses: Array<Float32Array | undefined> = [];
    try {
      const refusal = hub.refusalNow();
      if (refusal) throw refusal;
      const body = await readBody(request, MAX_BODY_IMAGES * maxJsonBytes(limits));
      const headerLength = request.headers[HEADER_LENGTH_HEADER];
      const { json, tail } = splitInferBody(body, Array.isArray(headerLength) ? headerLength[0] : headerLength);
      read = readInferenceRequest(json, tail, limits);
      // Taken whole or not at all: a request refused halfway would have spent the cores on images nobody gets.
      if (read.images.length > hub.maxQueue) {
        throw new ServiceError('invalid_request', `this hub queues at most ${hub.maxQueue} images (--max-queue); send at most that many in one request`);
      }
      const whole = hub.refusalNow(read.images.length);
      if (whole) throw whole;
      const requestId = read.id;
      const top = Math.max(1, ...read.outputs.map((output) => output.classification ?? 1));
      const all = wantsAllClasses(read);
      if (all && !this.options.localWorkers) {
        throw new ServiceError(
          'invalid_request',
          `this hub has no local workers (--workers 0), and only they compute all ${NUM_CLASSES} probabilities; ask for ${PROBABILITIES_OUTPUT} with "parameters": {"classification": k}`,
        );
      }
      replies = await Promise.all(
        read.images.map((image, i) =>
          hub.classify({ image, top, requestId, offload: true, ...(all ? { onAllClasses: (probabilities) => void (allClasses[i] = probabilities) } : {}) }, receivedAt),
        ),
      );
    } catch (error) {
      if (error instanceof ClientGoneError) return;
      const refused = await hub.refusePaced(error);
      // A refused body may still be arriving: read it to its end so the client sees the answer,
      // unless it is absurdly large, in which case closing is cheaper than reading it.
      if (!request.complete && !(await discardBody(request, 2 * MAX_BODY_IMAGES * maxJsonBytes(limits)))) response.setHeader('Connection', 'close');
      sendError(response, statusOf(refused.error.code), refused.error.message);
      return;
    }
    const failed = replies.find(isErrorReply);
    if (failed) {
      sendError(response, statusOf(failed.error.code), failed.error.message);
      return;
    }
    const { response: body, sections } = inferenceResponse(read, replies as ClassifyReply[], allClasses);
    const encoded = encodeInferResponse(body, sections);
    if (response.destroyed || response.writableEnded) return;
    response.writeHead(200, { ...encoded.headers, 'Content-Length': encoded.body.length });
    response.end(encoded.body);
  }
}

/** A version in a path names the weights served: their SHA-256, or its first 12 or more hex digits. */
function namesVersion(version: string, sha256: string): boolean {
  return version.length >= 12 && sha256.startsWith(version.toLowerCase());
}

function sendJson(response: ServerResponse, status: number, body: unknown): true {
  if (!response.destroyed && !response.writableEnded) {
    const text = JSON.stringify(body);
    response.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    response.end(text);
  }
  return true;
}

function sendError(response: ServerResponse, status: number, message: string): true {
  return sendJson(response, status, { error: message });
}

