/**
 * KServe's ServingRuntime (serving.kserve.io/v1alpha1) and InferenceService
 * (serving.kserve.io/v1beta1) as zod schemas, written from KServe's API reference for the fields
 * deploy/kserve/ uses and their close neighbours: types, required fields, and the enumerated
 * values (protocol versions, scale metrics). Objects are strict, so a misspelt field fails as a
 * cluster's CRD validation would. Containers are held to Kubernetes' own schema
 * (kubernetes-models), as the runtime's pod template is.
 */
import { Container, ContainerPort, EnvVar } from 'kubernetes-models/v1';
import type { IContainer, IContainerPort, IEnvVar } from 'kubernetes-models/v1';
import { z } from 'zod';

/** KServe's protocol names: constants.InferenceServiceProtocol. */
export const KSERVE_PROTOCOLS = ['v1', 'v2', 'grpc-v1', 'grpc-v2'] as const;
/** The port names KServe (Knative) gives meaning to: http1 for HTTP/1.1, h2c for gRPC. */
export const KSERVE_PORT_NAMES = ['http1', 'h2c'] as const;

const name = z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a DNS-1123 label').max(63);
const quantityMap = z.record(z.string(), z.union([z.string(), z.number()]));

const ObjectMeta = z
  .object({
    name,
    namespace: name.optional(),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
  })
  .strict();

function kubernetes<T>(Model: new (data: T) => { validate(): void }) {
  return z.custom<T>((value) => {
    try {
      new Model(value as T).validate();
      return true;
    } catch {
      return false;
    }
  }, `not a valid ${Model.name} (Kubernetes' schema)`);
}

const K8sContainer = kubernetes<IContainer>(Container);

const SupportedModelFormat = z
  .object({
    name: z.string().min(1),
    version: z.string().optional(),
    autoSelect: z.boolean().optional(),
    priority: z.int().min(1).optional(),
  })
  .strict();

export const ServingRuntimeSchema = z
  .object({
    apiVersion: z.literal('serving.kserve.io/v1alpha1'),
    kind: z.enum(['ServingRuntime', 'ClusterServingRuntime']),
    metadata: ObjectMeta,
    spec: z
      .object({
        supportedModelFormats: z.array(SupportedModelFormat).min(1),
        protocolVersions: z.array(z.enum(KSERVE_PROTOCOLS)).min(1).optional(),
        multiModel: z.boolean().optional(),
        disabled: z.boolean().optional(),
        annotations: z.record(z.string(), z.string()).optional(),
        labels: z.record(z.string(), z.string()).optional(),
        containers: z.array(K8sContainer).min(1),
        volumes: z.array(z.record(z.string(), z.unknown())).optional(),
        nodeSelector: z.record(z.string(), z.string()).optional(),
        replicas: z.int().min(0).optional(),
        grpcEndpoint: z.string().optional(),
        grpcDataEndpoint: z.string().optional(),
        httpDataEndpoint: z.string().optional(),
      })
      .strict(),
  })
  .strict();
export type ServingRuntime = z.infer<typeof ServingRuntimeSchema>;

const ModelSpec = z
  .object({
    modelFormat: z.object({ name: z.string().min(1), version: z.string().optional() }).strict(),
    runtime: name.optional(),
    protocolVersion: z.enum(KSERVE_PROTOCOLS).optional(),
    storageUri: z.string().regex(/^(pvc|gs|s3|https?|hdfs|webhdfs|oci|hf):\/\/\S+$/, 'a storage URI KServe can fetch').optional(),
    env: z.array(kubernetes<IEnvVar>(EnvVar)).optional(),
    args: z.array(z.string()).optional(),
    ports: z.array(kubernetes<IContainerPort>(ContainerPort).and(z.object({ name: z.enum(KSERVE_PORT_NAMES) }))).max(1, 'a Knative service routes one port').optional(),
    resources: z.object({ requests: quantityMap.optional(), limits: quantityMap.optional() }).strict().optional(),
  })
  .strict();

export const InferenceServiceSchema = z
  .object({
    apiVersion: z.literal('serving.kserve.io/v1beta1'),
    kind: z.literal('InferenceService'),
    metadata: ObjectMeta,
    spec: z
      .object({
        predictor: z
          .object({
            model: ModelSpec,
            minReplicas: z.int().min(0).optional(),
            maxReplicas: z.int().min(0).optional(),
            scaleMetric: z.enum(['cpu', 'memory', 'concurrency', 'rps']).optional(),
            scaleTarget: z.int().min(1).optional(),
            containerConcurrency: z.int().min(0).optional(),
            timeout: z.int().min(1).optional(),
            canaryTrafficPercent: z.int().min(0).max(100).optional(),
            serviceAccountName: name.optional(),
          })
          .strict()
          .refine((p) => p.maxReplicas === undefined || p.minReplicas === undefined || p.maxReplicas >= p.minReplicas, 'maxReplicas below minReplicas'),
      })
      .strict(),
  })
  .strict();
export type InferenceService = z.infer<typeof InferenceServiceSchema>;
