/**
 * Asks a gRPC server's standard health service (grpc.health.v1.Health/Check) about a service, as
 * a Kubernetes gRPC probe does; '' asks about the server as a whole.
 */
import { credentials, loadPackageDefinition } from '@grpc/grpc-js';
import type { GrpcObject, ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { protoPath as HEALTH_PROTO } from 'grpc-health-check';

interface HealthClient {
  Check(request: { service: string }, callback: (error: Error | null, answer: { status: string }) => void): void;
  close(): void;
}

export async function grpcHealthStatus(address: string, service = ''): Promise<string> {
  const health = (loadPackageDefinition(loadSync(HEALTH_PROTO, { enums: String })).grpc as GrpcObject).health as GrpcObject;
  const Health = (health.v1 as GrpcObject).Health as ServiceClientConstructor;
  const client = new Health(address, credentials.createInsecure()) as unknown as HealthClient;
  try {
    return await new Promise((resolve, reject) => client.Check({ service }, (error, answer) => (error ? reject(error) : resolve(answer.status))));
  } finally {
    client.close();
  }
}
