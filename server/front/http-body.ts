/**
 * Reads an HTTP request body into memory, refusing it as soon as it passes a size limit.
 */
import type { IncomingMessage } from 'node:http';
import busboy from 'busboy';
import { ServiceError } from '../../shared/protocol/errors.ts';

/**
 * The client hung up before its body was complete: there is nobody to answer, so the fronts
 * neither reply nor count it as a request.
 */
export class ClientGoneError extends Error {
  constructor() {
    super('the client closed the connection before its request was complete');
  }
}

export function readBody(request: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(request.headers['content-length'] ?? 0);
  if (declared > limit) {
    return Promise.reject(new ServiceError('payload_too_large', `the body is ${declared} bytes; the limit is ${limit}`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        request.removeAllListeners('data');
        request.resume();
        reject(new ServiceError('payload_too_large', `the body is over the limit of ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks, size)));
    // An aborted upload may end in 'error' or only in 'close'; either way it must settle, or
    // the buffered part would be held for good.
    request.on('error', () => reject(new ClientGoneError()));
    request.on('close', () => {
      if (!request.complete) reject(new ClientGoneError());
    });
  });
}

export interface UploadedFile {
  bytes: Buffer;
  fields: Record<string, string>;
}

/** The first file of a multipart/form-data body (field `file`), and its text fields. */
export function readMultipartFile(request: IncomingMessage, limit: number): Promise<UploadedFile> {
  return new Promise((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({ headers: request.headers, limits: { fileSize: limit, files: 1, fields: 20 } });
    } catch (error) {
      reject(new ServiceError('invalid_request', `bad multipart request: ${error instanceof Error ? error.message : String(error)}`));
      return;
    }
    const fields: Record<string, string> = {};
    let file: Promise<Buffer> | undefined;
    parser.on('field', (name, value) => (fields[name] = value));
    parser.on('file', (name, stream) => {
      if (name !== 'file' || file) {
        stream.resume();
        return;
      }
      file = new Promise((resolveFile, rejectFile) => {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('limit', () => rejectFile(new ServiceError('payload_too_large', `the file is over the limit of ${limit} bytes`)));
        stream.on('error', () => rejectFile(new ClientGoneError()));
        stream.on('close', () => resolveFile(Buffer.concat(chunks)));
      });
      // Read by the parser's 'close' below; until then a rejection must not count as unhandled.
      file.catch(() => undefined);
    });
    parser.on('error', (error: Error) => reject(new ServiceError('invalid_request', `bad multipart request: ${error.message}`)));
    parser.on('close', () => {
      if (!file) reject(new ServiceError('invalid_request', 'the multipart request has no field "file"'));
      else file.then((bytes) => resolve({ bytes, fields }), reject);
    });
    // pipe() does not end the parser when the client hangs up mid-upload; without this the
    // parser (and the part of the file it holds) would wait for ever.
    const abandon = () => {
      if (request.complete) return;
      reject(new ClientGoneError());
      request.unpipe(parser);
      parser.destroy();
    };
    request.on('error', abandon);
    request.on('close', abandon);
    request.pipe(parser);
  });
}

/**
 * Reads and drops what is left of a refused request's body, up to `maxBytes`; true when the
 * body ended within that. A client still uploading when the server answers and closes gets a
 * broken pipe instead of the answer, so a body that is merely too large is read to its end
 * first; one far too large is not worth reading, and its connection is closed instead.
 */
export function discardBody(request: IncomingMessage, maxBytes: number): Promise<boolean> {
  if (request.complete) return Promise.resolve(true);
  return new Promise((resolve) => {
    let dropped = 0;
    request.removeAllListeners('data');
    request.on('data', (chunk: Buffer) => {
      dropped += chunk.length;
      if (dropped > maxBytes) {
        request.removeAllListeners('data');
        resolve(false);
      }
    });
    request.once('end', () => resolve(true));
    request.once('error', () => resolve(false));
    request.once('close', () => resolve(request.complete));
    request.resume();
  });
}
