/**
 * One way into the hub each, as a program would use it, behind one interface: classify one
 * image (its top 3) and say whether a result came back, or which error. All are driven with the
 * same images, so only the way in differs:
 *
 * - `zmq`: the client library's HubClient (the seed's JSON with a base64 payload);
 * - `http`: POST /api/classify with the image's bytes, on kept-alive connections;
 * - `v2-rest`: POST /v2/models/resnet50/infer, JSON with the image in base64 (as KServe's and
 *   MLServer's clients send BYTES), the classification extension;
 * - `v2-grpc`: ModelInfer over one gRPC channel, the image as a raw BYTES tensor (as
 *   tritonclient sends it), the classification extension.
 */
import { HubClient } from '../client/index.ts';
import { OpenInferenceGrpcClient } from '../client/open-inference-grpc-client.ts';
import type { ServiceError } from '@grpc/grpc-js';

export const FRONTS = ['zmq', 'http', 'v2-rest', 'v2-grpc'] as const;
export type Front = (typeof FRONTS)[number];

export interface FrontAddresses {
  zmq: string;
  /** http://host:port */
  http: string;
  /** host:port */
  grpc: string;
}

export type Outcome = { ok: true } | { ok: false; code: string };

export interface FrontDriver {
  classify(image: number, requestId: string): Promise<Outcome>;
  close(): Promise<void>;
}

export async function openFront(front: Front, at: FrontAddresses, images: readonly Buffer[], replyTimeoutMs: number): Promise<FrontDriver> {
  const base64 = images.map((image) => image.toString('base64'));
  switch (front) {
    case 'zmq': {
      // No per-try resend: a bench measures the hub, and a slow reply must not be sent twice.
      const client = new HubClient({ endpoints: at.zmq, deadlineMs: replyTimeoutMs, perTryTimeoutMs: replyTimeoutMs });
      await client.ready(replyTimeoutMs);
      return {
        async classify(image, requestId) {
          const result = await client.classify(base64[image], { requestId });
          return result.ok ? { ok: true } : { ok: false, code: result.reply ? result.error.code : 'lost' };
        },
        close: () => client.close(),
      };
    }
    case 'http':
      return {
        classify: (image) =>
          httpOutcome(fetch(`${at.http}/api/classify?top=3`, { method: 'POST', headers: { 'Content-Type': 'image/jpeg' }, body: new Uint8Array(images[image]), signal: AbortSignal.timeout(replyTimeoutMs) })),
        close: async () => {},
      };
    case 'v2-rest': {
      const bodies = base64.map((data) =>
        JSON.stringify({
          inputs: [{ name: 'image', datatype: 'BYTES', shape: [1], data: [data] }],
          outputs: [{ name: 'probabilities', parameters: { classification: 3 } }],
        }),
      );
      return {
        classify: (image) =>
          httpOutcome(fetch(`${at.http}/v2/models/resnet50/infer`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: bodies[image], signal: AbortSignal.timeout(replyTimeoutMs) })),
        close: async () => {},
      };
    }
    case 'v2-grpc': {
      const client = new OpenInferenceGrpcClient(at.grpc);
      return {
        async classify(image) {
          try {
            await client.infer([images[image]], { top: 3, deadlineMs: replyTimeoutMs });
            return { ok: true };
          } catch (error) {
            const grpcError = error as ServiceError;
            return { ok: false, code: grpcError.metadata?.get('resnet-hub-error-code')[0]?.toString() ?? `grpc-${grpcError.code}` };
          }
        },
        close: async () => client.close(),
      };
    }
  }
}

async function httpOutcome(pending: Promise<Response>): Promise<Outcome> {
  try {
    const response = await pending;
    const body = await response.arrayBuffer();
    if (response.ok) return { ok: true };
    const text = Buffer.from(body).toString('utf8');
    return { ok: false, code: /"code":"(\w+)"/.exec(text)?.[1] ?? `http-${response.status}` };
  } catch (error) {
    return { ok: false, code: (error as Error).name === 'TimeoutError' ? 'lost' : 'connection' };
  }
}
