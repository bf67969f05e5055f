/**
 * Base64 payloads: the fast round-trip check must accept and refuse exactly what the standard
 * alphabet with optional padding allows (the rule the fronts answered by before it).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { decodeBase64Image } from '../../server/front/admission.ts';
import { ServiceError } from '../../shared/protocol/errors.ts';

const limits = { maxImageBytes: 1024 };

function code(payload: string): string {
  try {
    decodeBase64Image(payload, limits);
    return 'ok';
  } catch (error) {
    assert.ok(error instanceof ServiceError, String(error));
    return error.code;
  }
}

describe('decodeBase64Image', () => {
  test('accepts canonical, unpadded, non-canonical final bits, whitespace and data URLs', () => {
    const bytes = Buffer.from([0xff, 0xd8, 0xff, 0x00, 0x10, 0x7f, 0x80]);
    const canonical = bytes.toString('base64');
    assert.deepEqual(Buffer.from(decodeBase64Image(canonical, limits)), bytes);
    assert.deepEqual(Buffer.from(decodeBase64Image(canonical.replace(/=+$/, ''), limits)), bytes, 'no padding');
    assert.deepEqual(Buffer.from(decodeBase64Image(`data:image/jpeg;base64,${canonical}`, limits)), bytes);
    assert.deepEqual(Buffer.from(decodeBase64Image(`${canonical.slice(0, 4)}\n ${canonical.slice(4)}`, limits)), bytes);
    // 'QR==' sets bits that 'QQ==' leaves zero: not what an encoder writes, still one byte 'A'.
    assert.deepEqual(Buffer.from(decodeBase64Image('QR==', limits)), Buffer.from('A'));
  });

  test('refuses other alphabets, stray characters and impossible lengths', () => {
    assert.equal(code('not base64 at all!!'), 'invalid_base64');
    assert.equal(code('ab-_cd=='), 'invalid_base64', 'base64url is not the standard alphabet');
    assert.equal(code('QUJD*REVG'), 'invalid_base64');
    assert.equal(code('QUJDR'), 'invalid_base64', 'a length of 4n + 1');
    assert.equal(code('QQ=A'), 'invalid_base64', 'padding only at the end');
    assert.equal(code('QQ==='), 'invalid_base64');
    assert.equal(code(''), 'invalid_request');
    assert.equal(code('A'.repeat(2000)), 'payload_too_large', 'the size is checked before decoding');
  });
});

test('a stray character anywhere, or padding in the middle, is caught whatever the length', () => {
  const valid = Buffer.from('The quick brown fox jumps over the lazy dog!').toString('base64');
  for (let at = 0; at < valid.length; at++) {
    for (const stray of ['*', '=', '-', '_', '.', 'é']) {
      const text = valid.slice(0, at) + stray + valid.slice(at);
      if (text.length % 4 === 1) continue; // refused by length alone
      assert.equal(code(text), 'invalid_base64', `${JSON.stringify(stray)} at ${at}`);
    }
  }
});

test('what a fuzzer found against a cheaper check: a third padding character, characters beyond Latin-1', () => {
  assert.equal(code('anVuazqZiuzjwSsJhmC7DKR3JFl80rpxDrhhDwoKN56GoOGT6d3D==='), 'invalid_base64');
  assert.equal(code('\u{1F338}\u{1F338}'), 'invalid_base64', 'Node decodes only the low byte of each UTF-16 unit');
  assert.equal(code('\u{1F338}'.repeat(64)), 'invalid_base64');
});
