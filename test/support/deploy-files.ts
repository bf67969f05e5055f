/**
 * Reads the deployment files (deploy/kubernetes/*.yaml and the Dockerfile) into plain data for
 * test/integration/deploy.test.ts, and validates each Kubernetes object against Kubernetes' own schemas
 * (kubernetes-models).
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Service } from 'kubernetes-models/v1';
import type { IDeployment } from 'kubernetes-models/apps/v1';
import type { IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1';
import type { IConfigMap, IService } from 'kubernetes-models/v1';
import { REPO_ROOT } from '../../kit/paths.ts';

export const KUBERNETES_DIR = path.join(REPO_ROOT, 'deploy/kubernetes');

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
};

/** Every object of every .yaml file but kustomization.yaml (not an API object). */
export async function readManifests(): Promise<Manifest[]> {
  const files = (await readdir(KUBERNETES_DIR)).filter((file) => file.endsWith('.yaml') && file !== 'kustomization.yaml').sort();
  const manifests: Manifest[] = [];
  for (const file of files) {
    for (const document of parseAllDocuments(await readFile(path.join(KUBERNETES_DIR, file), 'utf8'))) {
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
