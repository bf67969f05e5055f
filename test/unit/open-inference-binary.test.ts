/** Triton's binary tensor data extension as the hub reads and writes it: bodies cut wrong in every way are refused with a reason. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ServiceError } from '../../shared/protocol/errors.ts';
import { binarySections, decodeBytesElements, encodeBytesElements, encodeInferResponse, splitInferBody } from '../../server/front/open-inference/binary-tensors.ts';

const refused = (run: () => unknown, message: RegExp) => assert.throws(run, (error: unknown) => error instanceof ServiceError && error.code === 'invalid_request' && message.test(error.message));

test('the JSON header and the binary tail are split at Inference-Header-Content-Length', () => {
  const body = Buffer.from('{"a":1}tail');
  assert.deepEqual(splitInferBody(body, '7'), { json: Buffer.from('{"a":1}'), tail: Buffer.from('tail') });
  assert.equal(splitInferBody(body, undefined).json, body, 'without the header, all JSON');
  for (const bad of ['0', '-1', '12', 'abc', '3.5']) refused(() => splitInferBody(body, bad), /Inference-Header-Content-Length/);
});

test('binary sections follow their inputs in order; sizes that overrun, leave bytes over or clash with data are refused', () => {
  const inputs = [
    { name: 'a', shape: [1], datatype: 'BYTES', parameters: { binary_data_size: 3 } },
    { name: 'json', shape: [1], datatype: 'BYTES', data: ['x'] },
    { name: 'b', shape: [1], datatype: 'BYTES', parameters: { binary_data_size: 2 } },
  ];
  const sections = binarySections(inputs, Buffer.from('abcde'));
  assert.deepEqual(sections.map((s) => s?.toString()), ['abc', undefined, 'de']);
  refused(() => binarySections(inputs, Buffer.from('abcd')), /runs past the end/);
  refused(() => binarySections(inputs, Buffer.from('abcdef')), /1 bytes after/);
  refused(() => binarySections([{ ...inputs[0], data: ['x'] }], Buffer.from('abc')), /both data and binary_data_size/);
  refused(() => binarySections([{ ...inputs[0], parameters: { binary_data_size: 'three' } }], Buffer.from('abc')), /byte count/);
});

test('BYTES elements: 4-byte little-endian lengths, round trip, and every way to cut them short', () => {
  const encoded = encodeBytesElements(['0.5:281:tabby', '', 'ü']);
  assert.deepEqual(decodeBytesElements(encoded, 3, 'x').map((b) => b.toString('utf8')), ['0.5:281:tabby', '', 'ü']);
  assert.equal(encoded.readUInt32LE(0), 13);
  refused(() => decodeBytesElements(encoded, 2, 'x'), /3 BYTES elements for a shape of 2/);
  refused(() => decodeBytesElements(encoded.subarray(0, 2), 1, 'x'), /length is cut off/);
  refused(() => decodeBytesElements(encoded.subarray(0, 10), 1, 'x'), /runs past its section/);
});

test('a response with binary outputs is octet-stream with the JSON length in a header; without, plain JSON', () => {
  const withBinary = encodeInferResponse({ outputs: [] }, [Buffer.from('xyz')]);
  assert.equal(withBinary.headers['Content-Type'], 'application/octet-stream');
  assert.equal(withBinary.headers['Inference-Header-Content-Length'], '{"outputs":[]}'.length);
  assert.equal(withBinary.body.toString(), '{"outputs":[]}xyz');
  assert.deepEqual(encodeInferResponse({ a: 1 }, []).headers, { 'Content-Type': 'application/json' });
});
