/**
 * Open Inference gRPC clients that never back off: each has its own channel (its own HTTP/2
 * connection), sends one image, and sends again the moment it has an answer, whatever the
 * answer was. Every call goes through a StormLedger, settled with the hub's error code (from
 * the `resnet-hub-error-code` trailer), `ok`, or `grpc:<STATUS>` when the hub gave no code.
 */
import { status } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import { OpenInferenceGrpcClient } from '../../client/open-inference-grpc-client.ts';
import type { StormLedger } from './ledger.ts';

export interface GrpcStormOptions {
  /** host:port of the hub's gRPC front. */
  address: string;
  clients: number;
  image: Buffer;
  ledger: StormLedger;
  until: Promise<unknown>;
  token?: string;
  /** Each call's gRPC deadline. */
  deadlineMs: number;
  /** Stop a client once the hub said it is going away (shutting_down, or the connection refused). */
  stopOnUnavailable?: boolean;
  /** Told of every call as it settles, with when it was sent (performance.now()). */
  onSettled?: (code: string, sentAt: number) => void;
}

/** The ledger's code for a call's outcome. */
export function grpcOutcome(error: ServiceError | undefined): string {
  if (!error) return 'ok';
  const code = error.metadata?.get('resnet-hub-error-code')[0]?.toString();
  return code ?? `grpc:${status[error.code] ?? error.code}`;
}

export async function noBackoffGrpcClients(options: GrpcStormOptions): Promise<void> {
  let stopping = false;
  void options.until.then(() => (stopping = true));
  let next = 0;
  const client = async (index: number) => {
    const channel = new OpenInferenceGrpcClient(options.address, options.token ? { token: options.token } : {});
    try {
      while (!stopping) {
        const id = `grpc-${index}-${next++}`;
        const sentAt = performance.now();
        options.ledger.begin(id, 'grpc');
        let error: ServiceError | undefined;
        try {
          await channel.infer([options.image], { top: 1, deadlineMs: options.deadlineMs });
        } catch (caught) {
          error = caught as ServiceError;
        }
        const code = grpcOutcome(error);
        options.ledger.settle(id, code);
        options.onSettled?.(code, sentAt);
        if (options.stopOnUnavailable && error?.code === status.UNAVAILABLE) return;
      }
    } finally {
      channel.close();
    }
  };
  await Promise.all(Array.from({ length: options.clients }, (_, i) => client(i)));
}
