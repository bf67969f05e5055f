/**
 * Several real hubs on loopback, each a child process on its own address (127.0.0.N) and one
 * shared port, as pods behind a headless Service are: a test resolver can then map one name
 * to all of them. Each hub names itself (`--hub-id`) so replies tell which one answered.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { launchHub } from './hub-process.ts';
import type { HubProcess } from './hub-process.ts';
import { PHOTOS_DIR } from './paths.ts';
import { PHOTO_NAMES } from './zmq-clients.ts';

export interface FleetHub extends HubProcess {
  id: string;
  address: string;
}

export interface FleetOptions {
  modelDir: string;
  /** Extra hub flags (after the fleet's own). */
  args?: string[];
}

/** One worker on one thread, no solo mode: three hubs on two cores must not fight over threads. */
const ONE_WORKER = ['--engine', 'onnx', '--workers', '1', '--threads-per-worker', '1', '--solo-threads', '0'];

export async function startFleetHub(n: number, port: string, options: FleetOptions): Promise<FleetHub> {
  const address = `127.0.0.${n}`;
  const id = `hub-${n}`;
  const hub = await launchHub({
    args: ['--model-dir', options.modelDir, ...ONE_WORKER, '--zmq', `tcp://${address}:${port}`, '--hub-id', id, ...(options.args ?? [])],
  });
  return Object.assign(hub, { id, address });
}

/**
 * Hubs 1..count on 127.0.0.1..count, one port: the first binds a free port, the others take
 * the same (free on their addresses too, all but certainly). Started one after the other so
 * only one exports model.onnx if it is missing.
 */
export async function startFleet(count: number, options: FleetOptions): Promise<{ hubs: FleetHub[]; port: string }> {
  const first = await launchHub({
    args: ['--model-dir', options.modelDir, ...ONE_WORKER, '--zmq', 'tcp://127.0.0.1:*', '--hub-id', 'hub-1', ...(options.args ?? [])],
  });
  const port = /:(\d+)$/.exec(first.zmq)?.[1];
  if (!port) throw new Error(`no port in ${first.zmq}`);
  const hubs: FleetHub[] = [Object.assign(first, { id: 'hub-1', address: '127.0.0.1' })];
  try {
    hubs.push(...(await Promise.all(Array.from({ length: count - 1 }, (_, i) => startFleetHub(i + 2, port, options)))));
  } catch (error) {
    await stopFleet(hubs);
    throw error;
  }
  return { hubs, port };
}

export async function stopFleet(hubs: readonly HubProcess[]): Promise<void> {
  await Promise.all(hubs.map((hub) => hub.stop('SIGKILL')));
}

/**
 * Large photos (3000×2250 JPEGs of the fixtures), so that decoding adds to the full model's
 * cost and a run of 90 images lasts several seconds even on a fast machine.
 */
export async function largePhotos(): Promise<string[]> {
  const dir = path.join(tmpdir(), 'resnet-hub-fleet-photos');
  await mkdir(dir, { recursive: true });
  return Promise.all(
    PHOTO_NAMES.map(async (name) => {
      const file = path.join(dir, `${name}-3000x2250.jpg`);
      const bytes = await sharp(path.join(PHOTOS_DIR, `${name}.jpg`)).resize(3000, 2250, { fit: 'fill' }).jpeg({ quality: 85 }).toBuffer();
      await writeFile(file, bytes);
      return file;
    }),
  );
}
