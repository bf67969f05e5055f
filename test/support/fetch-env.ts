/**
 * What the model download tests share: a loopback file server serving BODY (which misbehaves
 * on cue, see file-server.ts) and a temp folder, opened before a test file's tests.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { after, before } from 'node:test';
import os from 'node:os';
import path from 'node:path';
import { seededBytes, startFileServer, type FileServer } from './file-server.ts';

export const MiB = 1024 * 1024;
export const BODY = seededBytes(3 * MiB + 4321);
export const BODY_MD5 = md5(BODY);
/** Retries in tests wait milliseconds, not seconds. */
export const FAST = { retryBaseMs: 20, retryMaxMs: 200 };

export function md5(data: Uint8Array): string {
  return createHash('md5').update(data).digest('hex');
}

export interface FetchEnv {
  server: FileServer;
  tmp: string;
}

/** Opens the server and a temp folder before the calling file's tests, and removes both after. */
export function useFetchEnv(tmpPrefix: string, onOpen: (env: FetchEnv) => void): void {
  let env: FetchEnv | undefined;
  before(async () => {
    env = { server: await startFileServer(BODY), tmp: await mkdtemp(path.join(os.tmpdir(), tmpPrefix)) };
    onOpen(env);
  });
  after(async () => {
    await env?.server.close();
    if (env) await rm(env.tmp, { recursive: true, force: true });
  });
}

/** Each test starts with a server that behaves and an empty request log. */
export function resetServer(server: FileServer): void {
  server.requests.length = 0;
  server.faults.length = 0;
}
