/**
 * Triton's binary tensor data extension, both ways: a request body is a JSON header
 * (`Inference-Header-Content-Length` bytes long) followed by the binary sections of the inputs
 * that carry `parameters.binary_data_size`, in the order of those inputs; a response with binary
 * outputs is built the same way. BYTES elements in a binary section are each a 4-byte
 * little-endian length and then that many bytes.
 */
import { ServiceError } from '../../../shared/protocol/errors.ts';
import type { RequestInput } from '../../../shared/protocol/open-inference.ts';

export const HEADER_LENGTH_HEADER = 'inference-header-content-length';

/** The JSON header and the binary tail of a request body; without the header, the whole body is JSON. */
export function splitInferBody(body: Buffer, headerLength: string | undefined): { json: Buffer; tail: Buffer } {
  if (headerLength === undefined) return { json: body, tail: body.subarray(body.length) };
  const length = Number(headerLength);
  if (!Number.isInteger(length) || length < 1 || length > body.length) {
    throw new ServiceError('invalid_request', `Inference-Header-Content-Length ${JSON.stringify(headerLength)} must be a length from 1 to the body's ${body.length} bytes`);
  }
  return { json: body.subarray(0, length), tail: body.subarray(length) };
}

/** Each input's binary section (undefined for inputs given as JSON `data`), checked against the tail's length. */
export function binarySections(inputs: readonly RequestInput[], tail: Buffer): Array<Buffer | undefined> {
  let offset = 0;
  const sections = inputs.map((input) => {
    const size = input.parameters?.binary_data_size;
    if (size === undefined) return undefined;
    if (typeof size !== 'number' || !Number.isInteger(size) || size < 0) {
      throw new ServiceError('invalid_request', `input ${input.name}: binary_data_size must be a byte count`);
    }
    if (input.data !== undefined) throw new ServiceError('invalid_request', `input ${input.name} has both data and binary_data_size`);
    if (offset + size > tail.length) {
      throw new ServiceError('invalid_request', `input ${input.name}: binary_data_size ${size} runs past the end of the body`);
    }
    const section = tail.subarray(offset, offset + size);
    offset += size;
    return section;
  });
  if (offset !== tail.length) {
    throw new ServiceError('invalid_request', `the body has ${tail.length - offset} bytes after the binary sections its inputs declare`);
  }
  return sections;
}

/** The elements of a BYTES tensor's binary section; exactly `count` of them, filling it. */
export function decodeBytesElements(section: Buffer, count: number, name: string): Buffer[] {
  const elements: Buffer[] = [];
  let offset = 0;
  while (offset < section.length) {
    if (offset + 4 > section.length) throw new ServiceError('invalid_request', `input ${name}: a BYTES element's 4-byte length is cut off`);
    const length = section.readUInt32LE(offset);
    offset += 4;
    if (offset + length > section.length) throw new ServiceError('invalid_request', `input ${name}: a BYTES element of ${length} bytes runs past its section`);
    elements.push(section.subarray(offset, offset + length));
    offset += length;
  }
  if (elements.length !== count) throw new ServiceError('invalid_request', `input ${name}: ${elements.length} BYTES elements for a shape of ${count}`);
  return elements;
}

export function encodeBytesElements(elements: readonly string[]): Buffer {
  const encoded = elements.map((element) => Buffer.from(element, 'utf8'));
  const out = Buffer.alloc(encoded.reduce((sum, bytes) => sum + 4 + bytes.length, 0));
  let offset = 0;
  for (const bytes of encoded) {
    out.writeUInt32LE(bytes.length, offset);
    bytes.copy(out, offset + 4);
    offset += 4 + bytes.length;
  }
  return out;
}

/** Rows of FP32 values, one after another, little-endian whatever the host. */
export function encodeFp32(rows: readonly Float32Array[]): Buffer {
  const out = Buffer.alloc(rows.reduce((sum, row) => sum + row.length * 4, 0));
  let offset = 0;
  for (const row of rows) {
    for (const value of row) offset = out.writeFloatLE(value, offset);
  }
  return out;
}

/** A response body: the JSON header, then the binary sections in the order of their outputs. */
export function encodeInferResponse(header: unknown, sections: readonly Buffer[]): { body: Buffer; headers: Record<string, string | number> } {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  if (sections.length === 0) return { body: json, headers: { 'Content-Type': 'application/json' } };
  const body = Buffer.concat([json, ...sections]);
  return { body, headers: { 'Content-Type': 'application/octet-stream', 'Inference-Header-Content-Length': json.length } };
}
