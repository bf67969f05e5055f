/**
 * A derived model file (model.onnx, model.int8.onnx) and its JSON sidecar, which names what it
 * was made from. The sidecar goes last and is removed first, so whatever happens in between,
 * no sidecar ever vouches for a file it does not describe.
 */
import { readFile, rm, stat } from 'node:fs/promises';
import type { z } from 'zod';
import { writeFileAtomic } from '../lib/write-file-atomic.ts';

export function sidecarPath(file: string): string {
  return `${file}.json`;
}

/** The parsed sidecar, or null when it is missing, not JSON or not of this schema. */
export async function readSidecar<T>(file: string, schema: z.ZodType<T>): Promise<T | null> {
  let text: string;
  try {
    text = await readFile(sidecarPath(file), 'utf8');
  } catch {
    return null;
  }
  try {
    const parsed = schema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

export async function writeWithSidecar(file: string, bytes: Uint8Array, sidecar: object): Promise<void> {
  // The old sidecar goes first: until the new one lands, nothing claims the file is current.
  await rm(sidecarPath(file), { force: true });
  await writeFileAtomic(file, bytes);
  await writeFileAtomic(sidecarPath(file), JSON.stringify(sidecar, null, 2) + '\n');
}

export async function fileSize(file: string): Promise<number | null> {
  try {
    return (await stat(file)).size;
  } catch {
    return null;
  }
}
