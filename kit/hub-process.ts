/**
 * Runs the real hub (server/main.ts) as a child process on loopback, on free ports, and
 * reads its structured log to know when it is ready and where.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { REPO_ROOT, TINY_MODEL_DIR } from './paths.ts';
import { LOOPBACK_HUB_ARGV } from '../server/cli/loopback-hub-argv.ts';

export interface HubProcess {
  child: ChildProcess;
  zmq: string;
  http: string;
  /** The Open Inference gRPC address, host:port. */
  grpc: string;
  /** Every log line so far, parsed. */
  logs: Array<Record<string, unknown>>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

export interface LaunchHubOptions {
  args?: string[];
  /**
   * The store it serves. Default: the tiny model (the same layer types, milliseconds per image),
   * for every test of the hub's behaviour; a test that checks ResNet50's own numbers or costs
   * passes TEST_MODEL_DIR.
   */
  modelDir?: string;
  /** Node flags before the hub's own (e.g. `--import` a fault injector). */
  nodeArgs?: string[];
  /** Resolve once the HTTP port is known, before the workers are warm. */
  untilListening?: boolean;
  timeoutMs?: number;
  /** Added to this process' environment (HUB_* variables, as a container would set them). */
  env?: Record<string, string>;
}

export async function launchHub(options: LaunchHubOptions = {}): Promise<HubProcess & { ready: Promise<void> }> {
  const args = [
    ...(options.nodeArgs ?? []),
    ...LOOPBACK_HUB_ARGV,
    '--model-dir',
    options.modelDir ?? TINY_MODEL_DIR,
    '--workers',
    '2',
    ...(options.args ?? []),
  ];
  const child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  const logs: Array<Record<string, unknown>> = [];
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));

  let zmq = '';
  let http = '';
  let grpc = '';
  let onListening!: () => void;
  let onReady!: () => void;
  const listening = new Promise<void>((resolve) => (onListening = resolve));
  const ready = new Promise<void>((resolve) => (onReady = resolve));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    logs.push(entry);
    if (entry.msg === 'warming up') {
      http = String(entry.http);
      grpc = String(entry.grpc);
      onListening();
    }
    if (entry.msg === 'ready') {
      zmq = String(entry.zmq);
      onReady();
    }
  });

  const timeoutMs = options.timeoutMs ?? 180_000;
  let timer: NodeJS.Timeout | undefined;
  const failure = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`hub not ready after ${timeoutMs} ms\n${stderr}`)), timeoutMs);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`hub exited with ${code} before it was ready\n${stderr}\n${JSON.stringify(logs)}`));
    });
  });
  failure.catch(() => undefined);
  await Promise.race([options.untilListening ? listening : ready, failure]);
  if (!options.untilListening) clearTimeout(timer);
  else void ready.then(() => clearTimeout(timer));

  const hub = {
    child,
    get zmq() {
      return zmq;
    },
    get http() {
      return http;
    },
    get grpc() {
      return grpc;
    },
    logs,
    exited,
    ready: Promise.race([ready, failure]),
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
  };
  return hub;
}
