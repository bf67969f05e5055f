/**
 * What the soak sends: valid photos and bad input, over ZeroMQ and over HTTP, each kind with
 * the reply the hub documents for it (README: "Errors"). A reply outside that is "unexpected"
 * and fails the soak, as does `ok` for input that should have been refused.
 *
 * Everything heavy (base64 of the photos, the oversized payloads) is built once; a request
 * only adds its own request_id.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { crafted } from '../../kit/bad-images.ts';
import { REPO_ROOT } from '../../lib/repo-root.ts';
import { pickOne, pickWeighted } from '../../kit/random.ts';
import type { Random } from '../../kit/random.ts';

/** What the ledger needs to judge a reply. */
export interface Expectation {
  /** `zmq:photo`, `http:truncated-jpeg`, …: the tables group by it. */
  kind: string;
  valid: boolean;
  /** `ok` or the error codes the hub may answer with. */
  expected: readonly string[];
  /** Whether the hub can echo the request_id (not when the JSON, or the framing, is unreadable). */
  echoesId: boolean;
}

export interface ZmqRequest extends Expectation {
  /** One frame, or several for the framing error. */
  frames: string | Array<string | Buffer>;
}

export interface HttpRequest extends Expectation {
  /** Path and query, request_id included. */
  path: string;
  headers: Record<string, string>;
  body: Bytes | string | FormData;
}

interface Kind<R> {
  name: string;
  weight: number;
  expected: readonly string[];
  echoesId?: boolean;
  build(requestId: string, random: Random): Omit<R, keyof Expectation>;
}

export interface RequestMix {
  zmq(requestId: string, random: Random): ZmqRequest;
  http(requestId: string, random: Random): HttpRequest;
}

/** Bytes on their own ArrayBuffer, as fetch takes them (a Buffer may sit in a shared pool). */
type Bytes = Uint8Array<ArrayBuffer>;

interface Materials {
  photos: Array<{ name: string; bytes: Bytes; base64: string }>;
  notAnImage: Bytes;
  truncated: Bytes[];
  hugePng: Bytes;
  /** One byte over --max-image-bytes. */
  oversized: Bytes;
  oversizedBase64: string;
  /** One byte under it, and no image: passes admission, refused by the decoder. */
  nearLimit: Bytes;
  nearLimitBase64: string;
}

const PHOTOS_DIR = path.join(REPO_ROOT, 'test/fixtures/photos');
/** Far over the hub's default --max-pixels (40 M), in a header of a few bytes. */
const HUGE_SIDE = 20_000;
/** Oversized payloads are tens of MiB each: rare enough not to turn the soak into a copy benchmark. */
const HEAVY_WEIGHT = 0.3;

function loadMaterials(maxImageBytes: number): Materials {
  const files = readdirSync(PHOTOS_DIR).filter((file) => file.endsWith('.jpg')).sort();
  if (files.length === 0) throw new Error(`no .jpg fixtures in ${PHOTOS_DIR}`);
  const jpegs = files.map((file) => readFileSync(path.join(PHOTOS_DIR, file)));
  const photos = jpegs.map((bytes, i) => ({ name: path.basename(files[i], '.jpg'), bytes: Uint8Array.from(bytes), base64: bytes.toString('base64') }));
  // Not an image in any format, so sharp gives up on the header whatever the size.
  const oversized = Buffer.alloc(maxImageBytes + 1, 0x20);
  return {
    photos,
    notAnImage: Uint8Array.from(crafted.notAnImage()),
    truncated: jpegs.map((jpeg) => Uint8Array.from(crafted.truncatedJpeg(jpeg))),
    hugePng: Uint8Array.from(crafted.hugePngHeader(HUGE_SIDE, HUGE_SIDE)),
    oversized: Uint8Array.from(oversized),
    nearLimit: Uint8Array.from(oversized.subarray(0, maxImageBytes - 1)),
    oversizedBase64: oversized.toString('base64'),
    nearLimitBase64: oversized.subarray(0, maxImageBytes - 1).toString('base64'),
  };
}

function base64(bytes: Bytes): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/** A JSON frame around an already-encoded payload, without re-serialising tens of MiB. */
function jsonFrame(base64: string, requestId: string, extra = ''): string {
  return `{"payload":"${base64}"${extra},"request_id":${JSON.stringify(requestId)}}`;
}

function zmqKinds(m: Materials): { valid: Kind<ZmqRequest>[]; bad: Kind<ZmqRequest>[] } {
  const photo = (random: Random) => pickOne(m.photos, random).base64;
  return {
    valid: [
      {
        name: 'photo',
        weight: 6,
        expected: ['ok'],
        // Half of them ask for a `top`, so the reply's size varies too.
        build: (id, random) => ({ frames: jsonFrame(photo(random), id, random() < 0.5 ? `,"top":${1 + Math.floor(random() * 20)}` : '') }),
      },
      { name: 'photo-data-url', weight: 1, expected: ['ok'], build: (id, random) => ({ frames: jsonFrame(`data:image/jpeg;base64,${photo(random)}`, id) }) },
    ],
    bad: [
      { name: 'not-an-image', weight: 3, expected: ['unsupported_image'], build: (id) => ({ frames: jsonFrame(base64(m.notAnImage), id) }) },
      { name: 'truncated-jpeg', weight: 3, expected: ['corrupt_image'], build: (id, random) => ({ frames: jsonFrame(base64(pickOne(m.truncated, random)), id) }) },
      { name: 'huge-dimensions', weight: 1, expected: ['too_many_pixels'], build: (id) => ({ frames: jsonFrame(base64(m.hugePng), id) }) },
      { name: 'invalid-json', weight: 2, expected: ['invalid_json'], echoesId: false, build: (id) => ({ frames: `{"payload": "abc", "request_id": "${id}"` }) },
      { name: 'not-an-object', weight: 1, expected: ['invalid_request'], echoesId: false, build: (id) => ({ frames: JSON.stringify(`payload ${id}`) }) },
      { name: 'no-payload', weight: 1, expected: ['invalid_request'], build: (id) => ({ frames: JSON.stringify({ image: 'abc', request_id: id }) }) },
      { name: 'payload-not-string', weight: 1, expected: ['invalid_request'], build: (id) => ({ frames: JSON.stringify({ payload: 42, request_id: id }) }) },
      { name: 'empty-payload', weight: 1, expected: ['invalid_request'], build: (id) => ({ frames: JSON.stringify({ payload: '', request_id: id }) }) },
      { name: 'bad-offload', weight: 0.5, expected: ['invalid_request'], build: (id, random) => ({ frames: jsonFrame(photo(random), id, ',"offload":"yes"') }) },
      { name: 'bad-base64', weight: 1, expected: ['invalid_base64'], build: (id) => ({ frames: JSON.stringify({ payload: '@@ not base64 @@', request_id: id }) }) },
      {
        name: 'bad-top',
        weight: 2,
        expected: ['invalid_top'],
        build: (id, random) => ({ frames: jsonFrame(photo(random), id, `,"top":${pickOne(['0', '21', '2.5', '"3"', 'null'], random)}`) }),
      },
      // A DEALER message of two frames: the hub cannot tell which is the request.
      { name: 'two-frames', weight: 1, expected: ['invalid_frames'], echoesId: false, build: (id) => ({ frames: [JSON.stringify({ request_id: id }), 'second'] }) },
      { name: 'oversized', weight: HEAVY_WEIGHT, expected: ['payload_too_large'], build: (id) => ({ frames: jsonFrame(m.oversizedBase64, id) }) },
      { name: 'near-limit-garbage', weight: HEAVY_WEIGHT, expected: ['unsupported_image'], build: (id) => ({ frames: jsonFrame(m.nearLimitBase64, id) }) },
    ],
  };
}

function httpKinds(m: Materials): { valid: Kind<HttpRequest>[]; bad: Kind<HttpRequest>[] } {
  // The request_id rides in the query on every request, so even unreadable bodies are echoed.
  const raw = (id: string, body: Bytes, type = 'image/jpeg', query = '') => ({
    path: `/api/classify?request_id=${encodeURIComponent(id)}${query}`,
    headers: { 'Content-Type': type },
    body,
  });
  const form = (id: string, parts: Record<string, Blob | string>) => {
    const body = new FormData();
    for (const [name, value] of Object.entries(parts)) {
      if (typeof value === 'string') body.append(name, value);
      else body.append(name, value, 'photo.jpg');
    }
    return { path: `/api/classify?request_id=${encodeURIComponent(id)}`, headers: {}, body };
  };
  const json = (id: string, text: string) => ({ path: `/api/classify?request_id=${encodeURIComponent(id)}`, headers: { 'Content-Type': 'application/json' }, body: text });
  const photo = (random: Random) => pickOne(m.photos, random);
  return {
    valid: [
      { name: 'photo-raw', weight: 3, expected: ['ok'], build: (id, random) => raw(id, photo(random).bytes, 'image/jpeg', `&top=${1 + Math.floor(random() * 20)}`) },
      { name: 'photo-multipart', weight: 2, expected: ['ok'], build: (id, random) => form(id, { file: new Blob([photo(random).bytes], { type: 'image/jpeg' }) }) },
      { name: 'photo-json', weight: 1, expected: ['ok'], build: (id, random) => json(id, jsonFrame(photo(random).base64, id)) },
    ],
    bad: [
      { name: 'not-an-image', weight: 3, expected: ['unsupported_image'], build: (id) => raw(id, m.notAnImage) },
      { name: 'truncated-jpeg', weight: 3, expected: ['corrupt_image'], build: (id, random) => raw(id, pickOne(m.truncated, random)) },
      { name: 'huge-dimensions', weight: 1, expected: ['too_many_pixels'], build: (id) => raw(id, m.hugePng, 'image/png') },
      { name: 'empty-body', weight: 1, expected: ['invalid_request'], build: (id) => raw(id, new Uint8Array(0)) },
      { name: 'invalid-json', weight: 2, expected: ['invalid_json'], build: (id) => json(id, '{"payload": "abc",') },
      { name: 'json-no-payload', weight: 1, expected: ['invalid_request'], build: (id) => json(id, JSON.stringify({ image: 'abc', request_id: id })) },
      { name: 'bad-top', weight: 2, expected: ['invalid_top'], build: (id, random) => raw(id, photo(random).bytes, 'image/jpeg', `&top=${pickOne(['0', '21', 'x', '2.5'], random)}`) },
      { name: 'wrong-content-type', weight: 1, expected: ['invalid_request'], build: (id, random) => raw(id, photo(random).bytes, 'text/plain') },
      { name: 'multipart-no-file', weight: 1, expected: ['invalid_request'], build: (id) => form(id, { note: 'no file here' }) },
      { name: 'oversized', weight: HEAVY_WEIGHT, expected: ['payload_too_large'], build: (id) => raw(id, m.oversized, 'application/octet-stream') },
      { name: 'near-limit-garbage', weight: HEAVY_WEIGHT, expected: ['unsupported_image'], build: (id) => raw(id, m.nearLimit, 'application/octet-stream') },
    ],
  };
}

export function buildRequestMix(options: { badShare: number; maxImageBytes: number; exclude: readonly string[] }): RequestMix {
  const materials = loadMaterials(options.maxImageBytes);
  const zmq = keep('zmq', zmqKinds(materials), options.exclude);
  const http = keep('http', httpKinds(materials), options.exclude);
  const unknown = options.exclude.filter((name) => !zmq.names.has(name) && !http.names.has(name));
  if (unknown.length > 0) throw new Error(`--exclude: no request kind ${unknown.join(', ')}; kinds: ${[...zmq.names, ...http.names].join(' ')}`);
  const make = <R>(transport: string, kinds: { valid: Kind<R>[]; bad: Kind<R>[] }) => {
    return (requestId: string, random: Random): R => {
      // With every bad (or valid) kind excluded, the other group takes the whole share.
      const valid = kinds.bad.length === 0 || (kinds.valid.length > 0 && random() >= options.badShare);
      const kind = pickWeighted(valid ? kinds.valid : kinds.bad, random);
      const expectation: Expectation = { kind: `${transport}:${kind.name}`, valid, expected: kind.expected, echoesId: kind.echoesId ?? true };
      return { ...kind.build(requestId, random), ...expectation } as R;
    };
  };
  return { zmq: make('zmq', zmq.kinds), http: make('http', http.kinds) };
}

/** The kinds not excluded, and every kind's full name (`zmq:photo`) for checking --exclude. */
function keep<R>(transport: string, kinds: { valid: Kind<R>[]; bad: Kind<R>[] }, exclude: readonly string[]) {
  const names = new Set([...kinds.valid, ...kinds.bad].map((kind) => `${transport}:${kind.name}`));
  const kept = (list: Kind<R>[]) => list.filter((kind) => !exclude.includes(`${transport}:${kind.name}`));
  const result = { valid: kept(kinds.valid), bad: kept(kinds.bad) };
  if (result.valid.length + result.bad.length === 0) throw new Error(`--exclude leaves no ${transport} request kind`);
  return { kinds: result, names };
}
