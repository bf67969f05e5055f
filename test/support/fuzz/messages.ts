/**
 * Malformed ZeroMQ messages, as a DEALER sends them: random bytes, broken and mistyped JSON,
 * wrong frame counts and envelopes, bad base64, and request fields of the wrong type or out
 * of range. Every case says which outcomes its reply may have once its frames, its JSON and
 * its fields are in order (oracle.ts settles those from the bytes). Nearly all of them are refused
 * before any pixel is decoded; a few carry a real image, so that the valid corners of the
 * field space (a `top` of `2e1`, a data: URL) are exercised too.
 */
import { MAX_TOP } from '../../../shared/labels.ts';
import type { AdmissionLimits } from '../../../server/front/admission.ts';
import { maxJsonBytes } from '../../../server/front/admission.ts';
import { CLIENT_ERRORS, NOT_AN_IMAGE } from './cases.ts';
import type { MessageCase, Outcome } from './cases.ts';
import type { FuzzRng } from './rng.ts';

export interface MessageContext {
  limits: AdmissionLimits;
  /** A small real image: the requests that are valid apart from the field under test carry it. */
  tinyImage: Buffer;
}

type Generator = (rng: FuzzRng, id: string, ctx: MessageContext) => MessageCase;

const b = (text: string | Buffer): Buffer => (typeof text === 'string' ? Buffer.from(text, 'utf8') : text);

/** Bytes that are no image in any format (a text prefix no decoder claims), base64-encoded. */
function garbageB64(rng: FuzzRng): string {
  return Buffer.concat([Buffer.from('junk:'), rng.bytes(rng.logBetween(0, 400))]).toString('base64');
}

/** A JSON object's text from raw member texts, so that values JSON.stringify cannot write (1e400, -0, duplicates) can be sent. */
function objectText(members: Array<[key: string, rawValue: string]>): string {
  return `{${members.map(([key, value]) => `${JSON.stringify(key)}:${value}`).join(',')}}`;
}

/** A request_id: unique (it starts with the case's id), sometimes with awkward characters, sometimes too long to echo. */
function requestIdValue(rng: FuzzRng, id: string): string {
  const suffix = rng.weighted<() => string>([
    [10, () => ''],
    [1, () => ' '],
    [1, () => '\u0000nul'],
    [1, () => '"quoted" \\ back\\slash'],
    [1, () => '\u202eRTL'],
    [1, () => '😀🐈‍⬛'],
    [1, () => '\ud800lone-surrogate'],
    [1, () => 'e\u0301\u0301\u0301'],
    [1, () => '\n\t\r'],
    [1, () => '</script><b>'],
    [1, () => '${x}%s%n{{}}'],
    [1, () => 'x'.repeat(rng.between(150, 199 - id.length))],
    [1, () => 'y'.repeat(rng.between(201, 5000))], // too long: refused, and not echoed
  ])();
  return id + suffix;
}

/** A well-formed request whose payload is no image: its members, to be broken or sent as they are. */
function baseMembers(rng: FuzzRng, id: string, withId = rng.chance(0.95)): Array<[string, string]> {
  const members: Array<[string, string]> = [['payload', JSON.stringify(garbageB64(rng))]];
  if (withId) members.push(['request_id', JSON.stringify(requestIdValue(rng, id))]);
  if (rng.chance(0.2)) members.push(['top', String(rng.between(1, MAX_TOP))]);
  return rng.chance(0.2) ? rng.shuffle(members) : members;
}

function garbageRequest(rng: FuzzRng, id: string): Buffer {
  return b(objectText(baseMembers(rng, id)));
}

/** Overwrites, flips, inserts or deletes a few bytes. */
function mutateBytes(rng: FuzzRng, input: Buffer, edits: number): Buffer {
  let out = Buffer.from(input);
  const special = Buffer.from('{}[]",:\\ 0-e.\u0000');
  for (let i = 0; i < edits && out.length > 0; i++) {
    const at = rng.int(out.length);
    switch (rng.int(4)) {
      case 0:
        out[at] ^= 1 << rng.int(8);
        break;
      case 1:
        out[at] = rng.chance(0.5) ? rng.pick([...special]) : rng.int(256);
        break;
      case 2:
        out = Buffer.concat([out.subarray(0, at), rng.bytes(rng.between(1, 4)), out.subarray(at)]);
        break;
      default:
        out = Buffer.concat([out.subarray(0, at), out.subarray(at + rng.between(1, 8))]);
    }
  }
  return out;
}

function nested(open: string, close: string, depth: number, inner = ''): string {
  return open.repeat(depth) + inner + close.repeat(depth);
}

/** Nesting as arrays or as objects, `depth` deep. */
function deepValue(rng: FuzzRng, depth: number): string {
  return rng.chance(0.5) ? nested('[', ']', depth) : nested('{"a":', '}', depth, '1');
}

// ---------------------------------------------------------------------------------------
// Request fields: values of the wrong type or out of range, and some odd but valid ones.

/** Values for each optional field: odd but valid ones, and wrong ones (the oracle knows which is which). */
const FIELDS: Record<'top' | 'request_id' | 'deadline_ms' | 'offload', { good: string[]; bad: string[] }> = {
  top: {
    good: ['1', '3', '20', '1.0', '2e1', '5.000', '1E1'],
    bad: ['0', '21', '-1', '3.5', '"3"', 'null', 'true', '[]', '{}', '1e21', '9007199254740993', '-0', '1e400', '-1e400', '100', '[3]', '0.9999999999999999'],
  },
  request_id: {
    good: [], // made per case, unique
    bad: ['5', 'null', '{}', '[]', 'true', '["id"]', '{"id":"x"}', JSON.stringify('z'.repeat(201))],
  },
  deadline_ms: {
    good: ['1', '0.5', '1e-9', '3600000', '60000', '5e3', '30000.5'],
    bad: ['0', '-1', '"100"', 'null', 'true', '[]', '{}', '3600001', '1e400', '-1e-300', '-0', '[100]'],
  },
  offload: {
    good: ['true', 'false'],
    bad: ['0', '1', '"false"', '"true"', 'null', '[]', '{}', '"no"'],
  },
};

const FIELD_ORDER = ['top', 'request_id', 'deadline_ms', 'offload'] as const;

function fieldsCase(rng: FuzzRng, id: string, payload: string, accepted: readonly Outcome[], kind: string): MessageCase {
  const members: Array<[string, string]> = [['payload', JSON.stringify(payload)]];
  const forcedBad = rng.pick(FIELD_ORDER);
  for (const name of FIELD_ORDER) {
    const field = FIELDS[name];
    const goodValue = name === 'request_id' ? JSON.stringify(requestIdValue(rng, id)) : field.good.length ? rng.pick(field.good) : undefined;
    const roll = rng.uniform();
    if (name === forcedBad || roll < 0.15) {
      // Sometimes the bad value comes first and a good one overrides it (JSON keeps the last).
      members.push([name, rng.pick(field.bad)]);
      if (goodValue !== undefined && rng.chance(0.1)) members.push([name, goodValue]);
    } else if (roll < 0.6 && goodValue !== undefined) {
      members.push([name, goodValue]);
    }
  }
  if (!members.some(([key]) => key === 'request_id') && rng.chance(0.5)) members.push(['request_id', JSON.stringify(requestIdValue(rng, id))]);
  const text = objectText(rng.chance(0.3) ? rng.shuffle(members) : members);
  return { kind, frames: [b(text)], expect: accepted };
}

// ---------------------------------------------------------------------------------------
// Base64 payloads gone wrong.

function base64Case(rng: FuzzRng, id: string, ctx: MessageContext): MessageCase {
  const good = garbageB64(rng);
  const idMember: Array<[string, string]> = [['request_id', JSON.stringify(id)]];
  const send = (kind: string, payload: string, expect: readonly Outcome[]): MessageCase => ({
    kind: `base64/${kind}`,
    frames: [b(objectText([['payload', JSON.stringify(payload)], ...idMember]))],
    expect,
  });
  // Never at the very end, where a '=' would be padding.
  const insertAt = (text: string, piece: string) => {
    const at = rng.int(text.length);
    return text.slice(0, at) + piece + text.slice(at);
  };
  const stripped = good.replace(/=+$/, '');
  const variant = rng.int(15);
  switch (variant) {
    case 0:
      return send('invalid-char', insertAt(good, rng.pick(['!', '*', '%', '.', '#', '~', ':', ';', ',', '\u0000', 'é', '\u200b', '＋', '٣', '\\'])), ['invalid_base64']);
    case 1: {
      const url = Buffer.from(good, 'base64').toString('base64url');
      return send('base64url', url, /[-_]/.test(url) ? ['invalid_base64'] : NOT_AN_IMAGE);
    }
    case 2:
      return send('no-padding', stripped, stripped.length % 4 === 1 ? ['invalid_base64'] : NOT_AN_IMAGE);
    case 3:
      return send('extra-padding', `${stripped}${'='.repeat(rng.between(3, 6))}`, ['invalid_base64']);
    case 4:
      return send('padding-inside', insertAt(stripped.slice(0, -1), '='), ['invalid_base64']);
    case 5: {
      const cut = good.slice(0, 4 * rng.between(0, Math.floor(good.length / 4) - 1) + 1); // length ≡ 1 (mod 4)
      return send('length-1-mod-4', cut, ['invalid_base64']);
    }
    case 6: {
      // MIME-style line breaks and stray spaces are accepted and stripped.
      const wrapped = good.replace(/.{1,76}/g, (line) => `${line}${rng.pick(['\n', '\r\n', ' ', '\t', '\u00a0', '\u3000', '\ufeff'])}`);
      return send('whitespace', rng.chance(0.5) ? ` ${wrapped}` : wrapped, NOT_AN_IMAGE);
    }
    case 7: {
      const prefix = rng.pick([
        'data:image/jpeg;base64',
        'data:image/jpeg,',
        'data:;base64,',
        'data:base64,',
        'DATA:IMAGE/JPEG;BASE64,',
        'data:image/jpeg;base64;base64',
        'data:image/jpeg;base64,data:image/jpeg;base64,',
        'data:image/jpeg;base64,,',
        'data:image jpeg;base64,',
        'data:image/jpeg;charset="utf-8";base64,',
        'data:/;base64,',
        'data:image/;base64,',
        ' data:image/jpeg;base64,',
      ]);
      return send('broken-data-url', prefix + good, ['invalid_base64']);
    }
    case 8: {
      const prefix = rng.pick(['data:image/jpeg;base64,', 'data:image/png;charset=utf-8;base64,', 'data:application/octet-stream;base64,', 'data:x.y+z/a-b;q=1;base64,']);
      return send('data-url', prefix + good, NOT_AN_IMAGE);
    }
    case 9:
      return send('empty', rng.pick(['', ' ', '\n\n', 'data:image/png;base64,', 'data:image/png;base64, \n']), ['invalid_request']);
    case 10:
      return send('only-padding', rng.pick(['=', '==', '===', 'A=', 'AA=', 'A===']), ['invalid_base64', ...NOT_AN_IMAGE]);
    case 11:
      return send('hex', Buffer.from(good, 'base64').toString('hex'), NOT_AN_IMAGE);
    case 12:
      // Valid base64 of a valid image, but sent twice over: the bytes are an image with a tail.
      return send('doubled', rng.chance(0.5) ? good + good : good.replace(/=+$/, '') + good, ['invalid_base64', ...NOT_AN_IMAGE]);
    case 13: {
      // A real image behind a data: URL prefix: classified.
      const prefix = rng.pick(['data:image/png;base64,', 'data:image/jpeg;base64,']);
      return send('image-data-url', prefix + ctx.tinyImage.toString('base64'), ['ok']);
    }
    default:
      return send('random-text', rng.bytes(rng.between(1, 300)).toString('latin1'), ['invalid_base64', 'invalid_request', ...NOT_AN_IMAGE]);
  }
}

// ---------------------------------------------------------------------------------------
// Frames and envelopes.

function framesCase(rng: FuzzRng, id: string): MessageCase {
  const body = () => garbageRequest(rng, id);
  const empty = Buffer.alloc(0);
  const routeFrame = () => Buffer.concat([Buffer.from('r'), rng.bytes(rng.logBetween(0, 64))]); // never empty
  const variant = rng.int(11);
  const cases: Array<() => [string, Buffer[]]> = [
    () => ['delimiter-only', [empty]],
    () => ['req-style', [empty, body()]],
    () => ['route', [...Array.from({ length: rng.between(1, 3) }, routeFrame), empty, body()]],
    () => ['double-delimiter', [empty, empty, body()]],
    () => ['trailing-delimiter', [body(), empty]],
    () => ['two-bodies', [body(), body()]],
    () => ['five', rng.shuffle([body(), body(), empty, b(rng.bytes(rng.between(1, 32))), body()])],
    () => ['empty-body', [empty, empty]],
    () => ['many', Array.from({ length: rng.between(6, 64) }, () => (rng.chance(0.2) ? empty : b(rng.bytes(rng.between(1, 16)))))],
    () => ['big-route', [Buffer.concat([Buffer.from('r'), rng.bytes(rng.between(10_000, 60_000))]), empty, body()]],
    () => ['body-then-delimiter-then-body', [body(), empty, body()]],
  ];
  const [kind, frames] = cases[variant]();
  return { kind: `frames/${kind}`, frames, expect: NOT_AN_IMAGE };
}

// ---------------------------------------------------------------------------------------

const GENERATORS: Array<readonly [number, Generator]> = [
  [
    8,
    (rng) => {
      const prefix = rng.pick(['', '', '', '{', '{"payload":', '[', '"', '{"payload":"']);
      const bytes = Buffer.concat([Buffer.from(prefix), rng.bytes(rng.logBetween(0, 4096))]);
      return { kind: 'bytes/random', frames: [bytes], expect: CLIENT_ERRORS };
    },
  ],
  [
    2,
    (rng) => {
      const frames = Array.from({ length: rng.between(2, 6) }, () => (rng.chance(0.25) ? Buffer.alloc(0) : rng.bytes(rng.logBetween(1, 512))));
      return { kind: 'bytes/multi-frame', frames, expect: CLIENT_ERRORS };
    },
  ],
  [
    8,
    (rng, id) => {
      const full = garbageRequest(rng, id);
      return { kind: 'json/truncated', frames: [full.subarray(0, rng.between(1, full.length - 1))], expect: CLIENT_ERRORS };
    },
  ],
  [
    8,
    (rng, id) => ({ kind: 'json/mutated', frames: [mutateBytes(rng, garbageRequest(rng, id), rng.logBetween(1, 12))], expect: CLIENT_ERRORS }),
  ],
  [
    4,
    (rng, id, ctx) => {
      const text = rng.pick([
        '5',
        '-0',
        '1e400',
        '"payload"',
        '""',
        'null',
        'true',
        'false',
        '[]',
        `[${garbageRequest(rng, id).toString()}]`,
        `${JSON.stringify(ctx.tinyImage.toString('base64'))}`,
        '[[[]]]',
        ' {} ',
        '{}',
        `{"request_id":${JSON.stringify(id)}}`,
        `{"PAYLOAD":"${garbageB64(rng)}","request_id":${JSON.stringify(id)}}`,
        `{"payload ":"${garbageB64(rng)}","request_id":${JSON.stringify(id)}}`,
      ]);
      return { kind: 'json/not-a-request', frames: [b(text)], expect: ['invalid_request'] };
    },
  ],
  [
    6,
    (rng, id) => {
      const payload = rng.pick([
        '0',
        '12345',
        '-1.5e300',
        '1e400',
        'null',
        'true',
        'false',
        '[]',
        `["${garbageB64(rng)}"]`,
        `{"data":"${garbageB64(rng)}"}`,
        '{}',
        deepValue(rng, rng.logBetween(1, 5000)),
        `[${Array.from({ length: 200 }, (_, i) => i % 256).join(',')}]`,
      ]);
      const members: Array<[string, string]> = [
        ['payload', payload],
        ['request_id', JSON.stringify(requestIdValue(rng, id))],
      ];
      return { kind: 'json/payload-type', frames: [b(objectText(members))], expect: ['invalid_request'] };
    },
  ],
  [
    3,
    (rng, id) => {
      const depth = rng.logBetween(10, 100_000);
      const where = rng.int(4);
      if (where === 0) return { kind: 'json/deep-top-level', frames: [b(deepValue(rng, depth))], expect: ['invalid_request'] };
      const members = baseMembers(rng, id, true);
      if (where === 1) members.push(['payload', deepValue(rng, depth)]); // the last one counts
      if (where === 2) members.push(['request_id', deepValue(rng, depth)]);
      if (where === 3) members.push(['extra', deepValue(rng, depth)]);
      return { kind: 'json/deep', frames: [b(objectText(members))], expect: NOT_AN_IMAGE };
    },
  ],
  [
    1.5,
    (rng, id, ctx) => {
      const limit = maxJsonBytes(ctx.limits);
      const idMember: [string, string] = ['request_id', JSON.stringify(id)];
      const variant = rng.int(5);
      if (variant === 0) {
        // Near and past the limits: the decoded size and the message size.
        const n = rng.chance(0.5) ? rng.logBetween(1, limit) : rng.between(Math.floor(limit * 0.9), limit + 50_000);
        return {
          kind: 'json/huge-payload',
          frames: [b(objectText([['payload', JSON.stringify('A'.repeat(n))], idMember]))],
          expect: ['payload_too_large', 'invalid_base64', ...NOT_AN_IMAGE],
        };
      }
      if (variant === 1) {
        const members = baseMembers(rng, id, false);
        members.push(['request_id', JSON.stringify(`${id}${'x'.repeat(rng.logBetween(201, 200_000))}`)]);
        return { kind: 'json/huge-request-id', frames: [b(objectText(members))], expect: ['invalid_request'] };
      }
      if (variant === 2) {
        // At most ~1.5 times the JSON limit in UTF-8, far below the socket's message size cap.
        const n = rng.logBetween(1, Math.floor(limit / 4));
        return {
          kind: 'json/huge-unicode-payload',
          frames: [b(objectText([['payload', JSON.stringify(rng.pick(['€', 'é', '𝔸', '\u0000']).repeat(n))], idMember]))],
          expect: ['invalid_base64', 'payload_too_large'],
        };
      }
      if (variant === 3) {
        const members = baseMembers(rng, id, true);
        members.push(['comment', JSON.stringify('c'.repeat(rng.logBetween(1000, limit - 10_000)))]);
        return { kind: 'json/huge-extra-field', frames: [b(objectText(members))], expect: NOT_AN_IMAGE };
      }
      return { kind: 'json/over-limit', frames: [Buffer.alloc(limit + rng.between(1, 50_000), 0x20)], expect: ['payload_too_large'] };
    },
  ],
  [
    6,
    (rng, id) => {
      const request = garbageRequest(rng, id);
      const variant = rng.int(9);
      const splice = (piece: Buffer) => {
        const at = rng.int(request.length + 1);
        return Buffer.concat([request.subarray(0, at), piece, request.subarray(at)]);
      };
      /** A request whose request_id holds `piece` as raw bytes. */
      const inString = (piece: Buffer) =>
        Buffer.concat([b(`{"payload":${JSON.stringify(garbageB64(rng))},"request_id":"${id}`), piece, b('"}')]);
      switch (variant) {
        case 0:
          return { kind: 'unicode/weird-id', frames: [b(objectText(baseMembers(rng, id, true)))], expect: NOT_AN_IMAGE };
        case 1:
          return { kind: 'unicode/raw-nul', frames: [splice(Buffer.alloc(rng.between(1, 4)))], expect: CLIENT_ERRORS };
        case 2: {
          const bad = rng.pick([[0xc3, 0x28], [0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82]]);
          return { kind: 'unicode/invalid-utf8-in-id', frames: [inString(Buffer.from(bad))], expect: NOT_AN_IMAGE };
        }
        case 3:
          return { kind: 'unicode/bom', frames: [Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), request])], expect: CLIENT_ERRORS };
        case 4:
          return { kind: 'unicode/utf16', frames: [Buffer.from(request.toString('utf8'), rng.chance(0.5) ? 'utf16le' : 'ucs2')], expect: CLIENT_ERRORS };
        case 5: {
          const payload = rng.pick(['ＡＢＣＤ', '٠١٢٣', 'ÀÁÂÃ', '😀😀😀😀', '\u200b\u200bAAAA', 'AAAA\u00a0']);
          return {
            kind: 'unicode/payload',
            frames: [b(objectText([['payload', JSON.stringify(payload)], ['request_id', JSON.stringify(id)]]))],
            expect: ['invalid_base64', ...NOT_AN_IMAGE],
          };
        }
        case 6:
          // Escapes in the key: this is "payload" once parsed.
          return {
            kind: 'unicode/escaped-key',
            frames: [b(`{"pay\\u006coad":${JSON.stringify(garbageB64(rng))},"\\u0072equest_id":${JSON.stringify(id)}}`)],
            expect: NOT_AN_IMAGE,
          };
        case 7: {
          const control = String.fromCharCode(rng.between(0, 31));
          return { kind: 'unicode/raw-control-in-string', frames: [inString(Buffer.from(control, 'latin1'))], expect: CLIENT_ERRORS };
        }
        default:
          return { kind: 'unicode/escaped-surrogates', frames: [b(`{"payload":"\\ud800\\udfff","request_id":"${id}\\udc00\\ud800"}`)], expect: ['invalid_base64'] };
      }
    },
  ],
  [10, (rng, id) => framesCase(rng, id)],
  [10, (rng, id, ctx) => base64Case(rng, id, ctx)],
  [14, (rng, id) => fieldsCase(rng, id, garbageB64(rng), NOT_AN_IMAGE, 'fields/bad')],
  [
    3,
    (rng, id) => {
      const text = rng.pick([
        `{"__proto__":{"payload":${JSON.stringify(garbageB64(rng))}},"request_id":${JSON.stringify(id)}}`,
        `{"constructor":{"prototype":{"payload":"x"}},"payload":${JSON.stringify(garbageB64(rng))},"request_id":${JSON.stringify(id)}}`,
        `{"__proto__":null,"payload":${JSON.stringify(garbageB64(rng))},"request_id":${JSON.stringify(id)}}`,
        `{"payload":${JSON.stringify(garbageB64(rng))},"request_id":${JSON.stringify(id)},"toString":1,"valueOf":null,"hasOwnProperty":[]}`,
      ]);
      const expect: readonly Outcome[] = text.startsWith('{"__proto__":{') ? ['invalid_request'] : NOT_AN_IMAGE;
      return { kind: 'json/prototype-keys', frames: [b(text)], expect };
    },
  ],
  [4, (rng, id) => ({ kind: 'json/garbage-image', frames: [garbageRequest(rng, id)], expect: NOT_AN_IMAGE })],
  // The few that decode: a real image with odd but valid fields, or with a bad one.
  [0.6, (rng, id, ctx) => fieldsCase(rng, id, ctx.tinyImage.toString('base64'), ['ok', 'timeout'], 'fields/real-image')],
];

export function generateMessages(rng: FuzzRng, count: number, ctx: MessageContext): MessageCase[] {
  const cases: MessageCase[] = [];
  for (let i = 0; i < count; i++) cases.push(rng.weighted(GENERATORS)(rng, `m${i}-`, ctx));
  return cases;
}
