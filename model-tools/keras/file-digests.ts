/**
 * MD5 and SHA-256 of a file in one streaming pass: the MD5 is what Keras publishes for its
 * weight files (checked against the caller's), the SHA-256 is what the manifest records.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

export interface FileDigests {
  md5: string;
  sha256: string;
  bytes: number;
}

export async function fileDigests(file: string, onProgress?: (done: number) => void): Promise<FileDigests> {
  const md5 = createHash('md5');
  const sha256 = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    const data = chunk as Buffer;
    md5.update(data);
    sha256.update(data);
    bytes += data.byteLength;
    onProgress?.(bytes);
  }
  return { md5: md5.digest('hex'), sha256: sha256.digest('hex'), bytes };
}
