/**
 * The Open Inference Protocol (KServe v2) over REST, on the hub's HTTP port under /v2: server
 * live, ready and metadata; the model's metadata and readiness; and inference, whose images go
 * through the same admission, queue, scheduler and executors as every other request (one job per
 * image). The model's version is the SHA-256 of the weights it serves, so a swap shows in it.
 * Errors are `{"error": "…"}`: 400 for a bad request, 404 for an unknown model or version, 503
 * while overloaded, not ready or stopping, 504 past a deadline.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ModelInfo } from '../../../shared/protocol/classify.ts';
import type { ErrorCode } from '../../../shared/protocol/errors.ts';
import { OPEN_INFERENCE_EXTENSIONS, OPEN_INFERENCE_MODEL } from '../../../shared/protocol/open-inference.ts';
import type { Hub } from '../../hub/hub.ts';
import type { Logger } from '../../../lib/log.ts';
import type { AdmissionLimits } from '../admission.ts';
import { ClientGoneError, discardBody, readBody } from '../http-body.ts';
import { HTTP_STATUS_BY_CODE } from '../http-status.ts';
import { HEADER_LENGTH_HEADER, encodeInferResponse, splitInferBody } from './binary-tensors.ts';
import { inferenceResponse, maxInferenceBytes, readInferenceRequest } from './infer-request.ts';
import { isAnswered, runInference } from './run-inference.ts';
import { modelMetadata, namesVersion } from './served-model.ts';

/** The hub's own statuses, except that every client error but 401 is the specification's 400. */
function statusOf(code: ErrorCode): number {
  const status = HTTP_STATUS_BY_CODE[code];
  return status >= 400 && status < 500 && status !== 401 ? 400 : status;
}

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
    if (method === 'GET' && action === undefined) return sendJson(response, 200, modelMetadata(model));
    if (method === 'GET' && action === 'ready') return sendJson(response, hub.isReady ? 200 : 400, { name: OPEN_INFERENCE_MODEL, ready: hub.isReady });
    if (method === 'POST' && action === 'infer') {
      await this.infer(request, response);
      return true;
    }
    return sendError(response, 404, `no route for ${method} ${path}`);
  }

  private async infer(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const receivedAt = performance.now();
    const { hub, limits } = this.options;
    let outcome: Awaited<ReturnType<typeof runInference>>;
    try {
      const refusal = hub.refusalNow();
      if (refusal) throw refusal;
      const body = await readBody(request, maxInferenceBytes(limits));
      const headerLength = request.headers[HEADER_LENGTH_HEADER];
      const { json, tail } = splitInferBody(body, Array.isArray(headerLength) ? headerLength[0] : headerLength);
      outcome = await runInference(hub, readInferenceRequest(json, tail, limits), { receivedAt, localWorkers: this.options.localWorkers });
    } catch (error) {
      if (error instanceof ClientGoneError) return;
      const refused = await hub.refusePaced(error);
      // A refused body may still be arriving: read it to its end so the client sees the answer,
      // unless it is absurdly large, in which case closing is cheaper than reading it.
      if (!request.complete && !(await discardBody(request, 2 * maxInferenceBytes(limits)))) response.setHeader('Connection', 'close');
      sendError(response, statusOf(refused.error.code), refused.error.message);
      return;
    }
    if (!isAnswered(outcome)) {
      sendError(response, statusOf(outcome.error.code), outcome.error.message);
      return;
    }
    const { response: body, sections } = inferenceResponse(outcome);
    const encoded = encodeInferResponse(body, sections);
    if (response.destroyed || response.writableEnded) return;
    response.writeHead(200, { ...encoded.headers, 'Content-Length': encoded.body.length });
    response.end(encoded.body);
  }
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

