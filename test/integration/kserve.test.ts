/**
 * deploy/kserve/: the ServingRuntime and InferenceServices held to KServe's schema (as
 * kserve-schema.ts writes it from KServe's API reference) and to the hub: its variables are the
 * hub's flags, its ports the hub's, the protocols ones the runtime declares, the store KServe
 * mounts the one the hub serves and the Job fills. A real hub started with the runtime's
 * environment answers the v2 readiness probe and the gRPC health service.
 * (No cluster and no KServe here: nothing is applied.)
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { IJob } from 'kubernetes-models/batch/v1';
import type { IContainer, IEnvVar, IPersistentVolumeClaim } from 'kubernetes-models/v1';
import { parse } from 'yaml';
import { launchHub } from '../../kit/hub-process.ts';
import type { HubProcess } from '../../kit/hub-process.ts';
import { grpcHealthStatus } from '../../kit/grpc-health.ts';
import { TINY_MODEL_DIR } from '../../kit/paths.ts';
import { hubFlags } from '../../server/config.ts';
import { findKind, KSERVE_DIR, readManifests, validateManifest } from '../support/deploy-files.ts';
import type { Manifest } from '../support/deploy-files.ts';
import type { InferenceService, ServingRuntime } from '../support/kserve-schema.ts';

const flagByEnv = new Map(hubFlags().filter((flag) => flag.env).map((flag) => [flag.env!, flag]));
/** Where KServe mounts an InferenceService's storageUri in the predictor. */
const KSERVE_MODEL_MOUNT = '/mnt/models';
/** The port KServe routes HTTP to when the runtime names none. */
const KSERVE_HTTP_PORT = 8080;

let manifests: Manifest[] = [];
let runtime: ServingRuntime;
let hub: IContainer;
let env: Record<string, string> = {};
let services: InferenceService[] = [];

before(async () => {
  manifests = await readManifests(KSERVE_DIR);
  [runtime] = findKind<ServingRuntime>(manifests, 'ServingRuntime');
  hub = runtime.spec.containers[0] as IContainer;
  env = Object.fromEntries((hub.env ?? []).filter((v: IEnvVar) => v.value !== undefined).map((v: IEnvVar) => [v.name, v.value!]));
  services = findKind<InferenceService>(manifests, 'InferenceService');
});

const valueOf = (name: string): string => env[name] ?? String(flagByEnv.get(name)?.defaultValue);

test('every object passes its schema: KServe\'s for the runtime and the InferenceServices, Kubernetes\' for the rest', () => {
  assert.deepEqual(manifests.map((m) => m.object.kind).sort(), ['InferenceService', 'InferenceService', 'Job', 'PersistentVolumeClaim', 'ServingRuntime']);
  for (const manifest of manifests) validateManifest(manifest);
});

test('the schema check is live: broken copies are refused, naming the field', () => {
  const broken = <T>(kind: string, breakIt: (object: T) => void): Manifest => {
    const copy = structuredClone(manifests.find((m) => m.object.kind === kind)!);
    breakIt(copy.object as unknown as T);
    return copy;
  };
  const cases: Array<[Manifest, RegExp]> = [
    [broken<ServingRuntime>('ServingRuntime', (o) => (o.spec.protocolVersions = ['grpc-v3' as 'v2'])), /protocolVersions/],
    [broken<ServingRuntime>('ServingRuntime', (o) => Object.assign(o.spec, { supportedModelFormat: [] })), /supportedModelFormat/],
    [broken<ServingRuntime>('ServingRuntime', (o) => Object.assign(o.spec.containers[0] as object, { ports: [{ containerPort: 'http' }] })), /containers/],
    [broken<InferenceService>('InferenceService', (o) => Reflect.deleteProperty(o.spec.predictor.model, 'modelFormat')), /modelFormat/],
    [broken<InferenceService>('InferenceService', (o) => (o.spec.predictor.scaleMetric = 'latency' as 'rps')), /scaleMetric/],
  ];
  for (const [manifest, message] of cases) assert.throws(() => validateManifest(manifest), message);
});

test('kustomization.yaml lists every manifest', async () => {
  const kustomization = parse(await readFile(path.join(KSERVE_DIR, 'kustomization.yaml'), 'utf8')) as { resources: string[] };
  const files = (await readdir(KSERVE_DIR)).filter((file) => file.endsWith('.yaml') && file !== 'kustomization.yaml');
  assert.deepEqual([...kustomization.resources].sort(), files.sort());
});

test('every HUB_* variable of the runtime is one of the hub\'s flags, with a value the hub takes', () => {
  const names = (hub.env ?? []).map((v: IEnvVar) => v.name).filter((name: string) => name.startsWith('HUB_'));
  assert.ok(names.length >= 8);
  for (const name of names) assert.ok(flagByEnv.has(name), `${name} is no hub flag's variable`);
  assert.equal(valueOf('HUB_MODEL_DIR'), KSERVE_MODEL_MOUNT, 'the hub serves the store KServe mounts');
  assert.equal(valueOf('HUB_MODEL_FETCH'), '0', 'no untrained weights behind KServe\'s back');
  assert.equal(valueOf('HUB_HTTP_HOST'), '0.0.0.0', 'reachable from outside the pod');
});

test('protocols and ports: REST v2 on the port KServe routes HTTP to, gRPC v2 on the hub\'s --grpc-port as h2c', () => {
  assert.deepEqual([...(runtime.spec.protocolVersions ?? [])].sort(), ['grpc-v2', 'v2']);
  assert.equal(Number(valueOf('HUB_HTTP_PORT')), KSERVE_HTTP_PORT);
  assert.equal(Number(runtime.spec.annotations?.['prometheus.kserve.io/port']), KSERVE_HTTP_PORT, 'metrics scraped from the hub\'s HTTP port');
  for (const probe of [hub.readinessProbe, hub.livenessProbe]) {
    assert.equal(Number(probe!.httpGet!.port), KSERVE_HTTP_PORT);
    assert.match(probe!.httpGet!.path!, /^\/v2\/health\/(ready|live)$/);
  }
  const byProtocol = new Map(services.map((service) => [service.spec.predictor.model.protocolVersion, service]));
  assert.deepEqual([...byProtocol.keys()].sort(), ['grpc-v2', 'v2']);
  assert.equal(byProtocol.get('v2')!.spec.predictor.model.ports, undefined, 'REST: KServe\'s default HTTP port');
  const [grpcPort] = byProtocol.get('grpc-v2')!.spec.predictor.model.ports!;
  assert.equal(grpcPort.name, 'h2c');
  assert.equal(grpcPort.containerPort, Number(valueOf('HUB_GRPC_PORT')));
});

test('each InferenceService uses the runtime, a format it supports, and the store the Job fills', () => {
  const [claim] = findKind<IPersistentVolumeClaim>(manifests, 'PersistentVolumeClaim');
  const [job] = findKind<IJob>(manifests, 'Job');
  const fill = job.spec!.template.spec!.containers[0];
  const command = [...(fill.command ?? []), ...(fill.args ?? [])];
  assert.deepEqual(command.slice(0, 3), ['npm', 'run', 'model:fetch']);
  const modelDir = command[command.indexOf('--model-dir') + 1];
  const mount = fill.volumeMounts!.find((m) => modelDir.startsWith(`${m.mountPath}/`))!;
  const volume = job.spec!.template.spec!.volumes!.find((v) => v.name === mount.name)!;
  assert.equal(volume.persistentVolumeClaim?.claimName, claim.metadata!.name);
  for (const service of services) {
    const { model } = service.spec.predictor;
    assert.equal(model.runtime, runtime.metadata.name, service.metadata.name);
    assert.ok(runtime.spec.supportedModelFormats.some((format) => format.name === model.modelFormat.name));
    assert.ok(runtime.spec.protocolVersions?.includes(model.protocolVersion!));
    assert.equal(model.storageUri, `pvc://${claim.metadata!.name}/${path.relative(mount.mountPath, modelDir)}`, 'the folder the Job filled');
  }
});

describe('a real hub with the runtime\'s environment', () => {
  let running: HubProcess | undefined;
  before(async () => {
    // The store and ports are the cluster's; here they move to the test model and free loopback ports (flags win over variables).
    running = await launchHub({
      env: { ...env, HUB_HUB_ID: 'resnet50-predictor-00001-deployment-x2x9q' },
      args: ['--model-dir', TINY_MODEL_DIR, '--workers', '1', '--zmq', 'tcp://127.0.0.1:*', '--http-port', '0', '--http-host', '127.0.0.1', '--grpc-port', '0'],
    });
  });
  after(() => running?.stop());

  test('accepts every value, answers the runtime\'s probes and the gRPC health service', async () => {
    for (const probe of [hub.readinessProbe!, hub.livenessProbe!]) assert.equal((await fetch(`${running!.http}${probe.httpGet!.path}`)).status, 200, probe.httpGet!.path);
    assert.equal(await grpcHealthStatus(running!.grpc, 'inference.GRPCInferenceService'), 'SERVING');
  });
});
