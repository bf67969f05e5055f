/**
 * The container image definition and the Kubernetes manifests, held to Kubernetes' schemas and
 * to the hub itself: every HUB_* variable is one of the hub's flags, ports and probe paths are
 * the hub's, the grace period outlasts the hub's, and the autoscaler's metric is one the hub
 * exports. A real hub is started with the manifest's environment, so the values must also be
 * ones it accepts, and its probes and metrics are read from it, not from a list kept here.
 * (No Docker engine and no cluster here: nothing is built or applied.)
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import type { IDeployment } from 'kubernetes-models/apps/v1';
import type { IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1';
import type { IConfigMap, IContainer, IEnvVar, IProbe, IService } from 'kubernetes-models/v1';
import { hubFlags } from '../../server/config.ts';
import { HubClient } from '../../client/index.ts';
import { findKind, KUBERNETES_DIR, readDockerfile, readManifests, validateManifest } from '../support/deploy-files.ts';
import type { Dockerfile, Manifest } from '../support/deploy-files.ts';
import { launchHub } from '../../kit/hub-process.ts';
import type { HubProcess } from '../../kit/hub-process.ts';
import { REPO_ROOT, TINY_MODEL_DIR } from '../../kit/paths.ts';
import { photo } from '../../kit/zmq-clients.ts';

const FLAGS = hubFlags();
const flagByEnv = new Map(FLAGS.filter((flag) => flag.env).map((flag) => [flag.env!, flag]));
/** The value a variable has in the container: the manifest's, else the image's, else the hub's default. */
const valueOf = (env: Record<string, string>, name: string): string => env[name] ?? String(flagByEnv.get(name)?.defaultValue);

let manifests: Manifest[] = [];
let dockerfile: Dockerfile;
let deployment: IDeployment;
let hub: IContainer;
let init: IContainer;
/** The hub container's environment as Kubernetes gives it: the image's ENV, then the manifest's values. */
let env: Record<string, string> = {};

before(async () => {
  manifests = await readManifests();
  dockerfile = await readDockerfile();
  [deployment] = findKind<IDeployment>(manifests, 'Deployment', 'resnet-hub');
  hub = deployment.spec!.template.spec!.containers.find((c) => c.name === 'hub')!;
  init = deployment.spec!.template.spec!.initContainers![0];
  env = { ...dockerfile.env, ...plainEnv(hub.env ?? []) };
});

function plainEnv(vars: readonly IEnvVar[]): Record<string, string> {
  return Object.fromEntries(vars.filter((v) => v.value !== undefined).map((v) => [v.name, v.value!]));
}

function portOf(endpoint: string): string {
  return /:(\d+)$/.exec(endpoint)?.[1] ?? assert.fail(`no port in ${endpoint}`);
}

/** A probe's or Service's port, by name or number, as the container's port number. */
function containerPort(port: number | string | undefined): number {
  const found = hub.ports!.find((p) => p.name === port || p.containerPort === port);
  return found?.containerPort ?? assert.fail(`port ${port} is not one of the hub container's`);
}

test('every object passes Kubernetes\' schema (kubernetes-models)', () => {
  assert.ok(manifests.length >= 6);
  for (const manifest of manifests) validateManifest(manifest);
});

test('the schema check is live: a broken copy is refused', () => {
  const original = manifests.find((m) => m.object.kind === 'Deployment')!;
  const broken = structuredClone(original);
  (broken.object as IDeployment).spec!.template.spec!.containers[0].ports![0].containerPort = 'zmq' as unknown as number;
  assert.throws(() => validateManifest(broken), /containerPort must be integer/);
});

test('kustomization.yaml lists every manifest', async () => {
  const kustomization = parse(await readFile(path.join(KUBERNETES_DIR, 'kustomization.yaml'), 'utf8')) as { resources: string[] };
  const files = (await readdir(KUBERNETES_DIR)).filter((file) => file.endsWith('.yaml') && file !== 'kustomization.yaml');
  assert.deepEqual([...kustomization.resources].sort(), files.sort());
});

test('every HUB_* variable is one of the hub\'s flags, in the image and in every container', () => {
  const used = [
    ...Object.keys(dockerfile.env),
    ...[hub, init].flatMap((container) => (container.env ?? []).map((v) => v.name)),
  ].filter((name) => name.startsWith('HUB_'));
  assert.ok(used.length >= 8);
  for (const name of used) assert.ok(flagByEnv.has(name), `${name} is no hub flag's variable (known: ${[...flagByEnv.keys()].join(', ')})`);
  assert.equal(hub.env!.find((v) => v.name === 'HUB_HUB_ID')?.valueFrom?.fieldRef?.fieldPath, 'metadata.name', 'replies name the pod');
});

test('ports: the image, the container, the Services and the probes use the hub\'s', () => {
  const zmqPort = Number(portOf(valueOf(env, 'HUB_ZMQ')));
  const httpPort = Number(valueOf(env, 'HUB_HTTP_PORT'));
  const grpcPort = Number(valueOf(env, 'HUB_GRPC_PORT'));
  assert.equal(containerPort('zmq'), zmqPort);
  assert.equal(containerPort('http'), httpPort);
  assert.equal(containerPort('grpc'), grpcPort);
  assert.deepEqual([...dockerfile.exposed].sort(), [String(httpPort), String(zmqPort), String(grpcPort)].sort());
  assert.equal(valueOf(env, 'HUB_HTTP_HOST'), '0.0.0.0', 'reachable from outside the pod');

  const zmqService = findKind<IService>(manifests, 'Service', 'resnet-hub-zmq')[0];
  assert.equal(zmqService.spec!.clusterIP, 'None', 'headless: the name resolves to every pod');
  assert.equal(containerPort(zmqService.spec!.ports![0].targetPort), zmqPort);
  assert.equal(zmqService.spec!.ports![0].port, zmqPort, 'clients connect to the port the hub binds');
  const httpService = findKind<IService>(manifests, 'Service', 'resnet-hub-http')[0];
  assert.equal(httpService.spec!.sessionAffinity, 'ClientIP', 'a volunteer tab stays on the hub that served its page');
  assert.equal(containerPort(httpService.spec!.ports![0].targetPort), httpPort);
  const grpcService = findKind<IService>(manifests, 'Service', 'resnet-hub-grpc')[0];
  assert.equal(grpcService.spec!.clusterIP, 'None', 'headless: a gRPC client balances over every pod');
  assert.equal(containerPort(grpcService.spec!.ports![0].targetPort), grpcPort);

  for (const probe of [hub.startupProbe, hub.readinessProbe, hub.livenessProbe]) assert.equal(containerPort(probe!.httpGet!.port), httpPort);
  const annotations = deployment.spec!.template.metadata!.annotations!;
  assert.equal(Number(annotations['prometheus.io/port']), httpPort);
});

test('every selector matches the pods', () => {
  const labels = deployment.spec!.template.metadata!.labels!;
  const matches = (selector: Record<string, string> | undefined) => Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);
  assert.ok(matches(deployment.spec!.selector.matchLabels));
  for (const service of findKind<IService>(manifests, 'Service')) assert.ok(matches(service.spec!.selector), service.metadata!.name);
  for (const pdb of findKind<IPodDisruptionBudget>(manifests, 'PodDisruptionBudget')) assert.ok(matches(pdb.spec!.selector!.matchLabels));
});

test('the kubelet waits longer than the hub\'s grace period, with room to close', () => {
  const graceMs = Number(valueOf(env, 'HUB_GRACE_MS'));
  const seconds = deployment.spec!.template.spec!.terminationGracePeriodSeconds!;
  assert.ok(seconds * 1000 >= graceMs + 5000, `terminationGracePeriodSeconds ${seconds} vs HUB_GRACE_MS ${graceMs}`);
});

test('the init step fills the store the hub reads, on the same volume, with a real npm script', async () => {
  const modelDir = valueOf(env, 'HUB_MODEL_DIR');
  const command = [...(init.command ?? []), ...(init.args ?? [])];
  const packageJson = JSON.parse(await readFile(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  assert.deepEqual(command.slice(0, 3), ['npm', 'run', 'model:fetch']);
  assert.ok(packageJson.scripts['model:fetch']);
  assert.equal(command[command.indexOf('--model-dir') + 1], modelDir);
  const mountOf = (container: IContainer) => container.volumeMounts!.find((m) => modelDir.startsWith(`${m.mountPath}/`));
  assert.ok(mountOf(hub) && mountOf(init));
  assert.equal(mountOf(hub)!.name, mountOf(init)!.name);
  assert.ok(dockerfile.volumes.includes(mountOf(hub)!.mountPath), 'the image declares the store\'s volume');
  assert.equal(valueOf(env, 'HUB_MODEL_FETCH'), '0', 'the hub never replaces missing weights by untrained ones behind the init step\'s back');
});

test('the image: multi-stage, not root, runs the hub', () => {
  assert.ok(dockerfile.stages >= 2);
  assert.ok(dockerfile.user && dockerfile.user !== 'root' && dockerfile.user !== '0');
  assert.ok(dockerfile.entrypoint.includes('server/main.ts'));
  for (const context of [deployment.spec!.template.spec!.securityContext!]) assert.equal(context.runAsNonRoot, true);
});

test('the autoscaler scales the Deployment on a pods metric the adapter rule serves', () => {
  const [hpa] = findKind<IHorizontalPodAutoscaler>(manifests, 'HorizontalPodAutoscaler');
  assert.equal(hpa.spec!.scaleTargetRef.kind, 'Deployment');
  assert.equal(hpa.spec!.scaleTargetRef.name, deployment.metadata!.name);
  const metric = hpa.spec!.metrics![0].pods!.metric.name;
  assert.equal(metric, 'resnet_hub_queue_depth');
  const [rules] = findKind<IConfigMap>(manifests, 'ConfigMap', 'resnet-hub-adapter-rules');
  const config = parse(rules.data!['config.yaml']) as { rules: Array<{ seriesQuery: string; name: { as: string } }> };
  assert.ok(config.rules.some((rule) => rule.name.as === metric && rule.seriesQuery.startsWith(`${metric}{`)));
});

describe('a real hub with the Deployment\'s environment', () => {
  let running: HubProcess | undefined;
  const podName = 'resnet-hub-5d9c7-x2x9q';
  before(async () => {
    // Paths and ports are the cluster's; here they move to the test model and free loopback ports (flags win over variables).
    running = await launchHub({
      env: { ...env, HUB_HUB_ID: podName },
      args: ['--model-dir', TINY_MODEL_DIR, '--workers', '1', '--zmq', 'tcp://127.0.0.1:*', '--http-port', '0', '--http-host', '127.0.0.1', '--grpc-port', '0'],
    });
  });
  after(() => running?.stop());

  test('accepts every value, answers the probes, exports the autoscaler\'s metric, names itself', async () => {
    const probes: Array<[string, IProbe]> = [['startup', hub.startupProbe!], ['readiness', hub.readinessProbe!], ['liveness', hub.livenessProbe!]];
    for (const [kind, probe] of probes) {
      const response = await fetch(`${running!.http}${probe.httpGet!.path}`);
      assert.equal(response.status, 200, `${kind} probe ${probe.httpGet!.path}`);
    }
    const metrics = await (await fetch(`${running!.http}${deployment.spec!.template.metadata!.annotations!['prometheus.io/path']}`)).text();
    assert.match(metrics, /^resnet_hub_queue_depth \d+$/m);
    assert.ok(metrics.includes(`resnet_hub_info{hub_id="${podName}"} 1`));
    const status = (await (await fetch(`${running!.http}/api/status`)).json()) as { hub: { id: string } };
    assert.equal(status.hub.id, podName);
    assert.equal(running!.logs.find((entry) => entry.msg === 'ready')?.hub_id, podName);

    const client = new HubClient({ endpoints: running!.zmq });
    try {
      const result = await client.classify(photo('coffee'), { requestId: 'mine' });
      assert.ok(result.ok);
      assert.equal(result.reply.hub.id, podName);
      assert.equal(result.reply.request_id, 'mine');
      const refused = await client.classify(Buffer.from('not an image'));
      assert.ok(!refused.ok && refused.reply?.hub?.id === podName, 'error replies name the hub too');
    } finally {
      await client.close();
    }
  });
});
