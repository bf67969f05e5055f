/** The md5 (hex) of a file, streamed so a 100 MiB weights file never sits in memory. */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

export async function fileMd5(file: string, onProgress?: (doneBytes: number) => void): Promise<string> {
  const hash = createHash('md5');
  let done = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    done += (chunk as Buffer).byteLength;
    onProgress?.(done);
  }
  return hash.digest('hex');
}
