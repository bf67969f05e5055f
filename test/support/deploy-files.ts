/**
 * Reads the deployment files (deploy/kubernetes/*.yaml, deploy/kserve/*.yaml and the Dockerfile)
 * into plain data for the deployment tests, and validates each object against Kubernetes' own
 * schemas (kubernetes-models), or KServe's as kserve-schema.ts writes them.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { Job } from 'kubernetes-models/batch/v1';
import type { IJob } from 'kubernetes-models/batch/v1';
import { ConfigMap, PersistentVolumeClaim, Service } from 'kubernetes-models/v1';
import type { IDeployment } from 'kubernetes-models/apps/v1';
import type { IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1';
import type { IConfigMap, IPersistentVolumeClaim, IService } from 'kubernetes-models/v1';
import type { ZodType } from 'zod';
import { REPO_ROOT } from '../../kit/paths.ts';
import { InferenceServiceSchema, ServingRuntimeSchema } from './kserve-schema.ts';

export const KUBERNETES_DIR = path.join(REPO_ROOT, 'deploy/kubernetes');
export const KSERVE_DIR = path.join(REPO_ROOT, 'deploy/kserve');

export interface Manifest {
  file: string;
  object: { apiVersion: string; kind: string; metadata?: { name?: string } };
}

/** Each kind the manifests may hold, with the model that checks it. */
const MODELS: Record<string, (data: never) => { validate(): void }> = {
  'apps/v1/Deployment': (data: IDeployment) => new Deployment(data),
  'v1/Service': (data: IService) => new Service(data),
  'v1/ConfigMap': (data: IConfigMap) => new ConfigMap(data),
  'autoscaling/v2/HorizontalPodAutoscaler': (data: IHorizontalPodAutoscaler) => new HorizontalPodAutoscaler(data),
  'policy/v1/PodDisruptionBudget': (data: IPodDisruptionBudget) => new PodDisruptionBudget(data),
  'v1/PersistentVolumeClaim': (data: IPersistentVolumeClaim) => new PersistentVolumeClaim(data),
  'batch/v1/Job': (data: IJob) => new Job(data),
  'serving.kserve.io/v1alpha1/ServingRuntime': (data: unknown) => zodModel(ServingRuntimeSchema, data),
  'serving.kserve.io/v1beta1/InferenceService': (data: unknown) => zodModel(InferenceServiceSchema, data),
};

/** A zod schema in the shape of a kubernetes-models object: validate() throws, naming the first field refused. */
function zodModel(schema: ZodType, data: unknown): { validate(): void } {
  return {
    validate() {
      const result = schema.safeParse(data);
      if (!result.success) {
        const issue = result.error.issues[0];
        throw new Error(`${issue.path.join('.')}: ${issue.message}`);
      }
    },
  };
}

/** Every object of every .yaml file but kustomization.yaml (not an API object). */
export async function readManifests(dir = KUBERNETES_DIR): Promise<Manifest[]> {
  const files = (await readdir(dir)).filter((file) => file.endsWith('.yaml') && file !== 'kustomization.yaml').sort();
  const manifests: Manifest[] = [];
  for (const file of files) {
    for (const document of parseAllDocuments(await readFile(path.join(dir, file), 'utf8'))) {
      if (document.errors.length > 0) throw new Error(`${file}: ${document.errors.map((error) => error.message).join('; ')}`);
      const object = document.toJS() as Manifest['object'] | null;
      if (object) manifests.push({ file, object });
    }
  }
  return manifests;
}

/** Throws with the file and object named when Kubernetes' schema refuses it. */
export function validateManifest({ file, object }: Manifest): void {
  const model = MODELS[`${object.apiVersion}/${object.kind}`];
  if (!model) throw new Error(`${file}: no schema known for ${object.apiVersion} ${object.kind}`);
  try {
    (model as (data: unknown) => { validate(): void })(object).validate();
  } catch (error) {
    throw new Error(`${file} (${object.kind} ${object.metadata?.name}): ${(error as Error).message}`);
  }
}

export function findKind<T>(manifests: readonly Manifest[], kind: string, name?: string): T[] {
  return manifests.filter((m) => m.object.kind === kind && (name === undefined || m.object.metadata?.name === name)).map((m) => m.object as T);
}

export interface Dockerfile {
  stages: number;
  /** USER of the last stage. */
  user: string | undefined;
  env: Record<string, string>;
  exposed: string[];
  volumes: string[];
  entrypoint: string[];
}

/** The few instructions the test compares with the hub's flags (continuation lines joined). */
export async function readDockerfile(): Promise<Dockerfile> {
  const text = await readFile(path.join(REPO_ROOT, 'Dockerfile'), 'utf8');
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'));
  const result: Dockerfile = { stages: 0, user: undefined, env: {}, exposed: [], volumes: [], entrypoint: [] };
  for (const line of lines) {
    const [instruction, ...rest] = line.split(/\s+/);
    const argument = rest.join(' ');
    switch (instruction.toUpperCase()) {
      case 'FROM':
        result.stages++;
        result.user = undefined;
        result.env = {};
        break;
      case 'USER':
        result.user = argument;
        break;
      case 'ENV':
        for (const match of argument.matchAll(/(\w+)=("[^"]*"|\S+)/g)) result.env[match[1]] = match[2].replace(/^"|"$/g, '');
        break;
      case 'EXPOSE':
        result.exposed.push(...rest);
        break;
      case 'VOLUME':
        result.volumes.push(...(argument.startsWith('[') ? (JSON.parse(argument) as string[]) : rest));
        break;
      case 'ENTRYPOINT':
        result.entrypoint = JSON.parse(argument) as string[];
        break;
    }
  }
  return result;
}
