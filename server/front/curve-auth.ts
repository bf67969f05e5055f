/**
 * ZeroMQ CURVE for the hub's ROUTER: encryption, and client authentication by public key.
 *
 * libzmq's CURVE server encrypts every connection, but on its own it lets in any client that
 * knows the server's public key. Who gets in is decided by a ZAP handler (ZeroMQ RFC 27): a
 * socket bound at `inproc://zeromq.zap.01` in the same context, which libzmq asks about each
 * new connection. `ZapAuthenticator` is that handler: it lets in CURVE clients whose public key
 * is on the allowed list and refuses everything else, logging refusals (rate-limited) and
 * counting them.
 *
 * Keys are Z85 text (ZeroMQ RFC 32), 40 characters for 32 bytes, as `npm run keys`,
 * zeromq.js' `curveKeyPair()` and pyzmq's `zmq.curve_keypair()` print them.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as zmq from 'zeromq';
import type { Logger } from '../../lib/log.ts';
import { SocketWriter } from './socket-writer.ts';

/** Where libzmq looks for the ZAP handler (RFC 27); one per context, and the hub uses the global one. */
export const ZAP_ENDPOINT = 'inproc://zeromq.zap.01';
export const DEFAULT_ZAP_DOMAIN = 'resnet-hub';
export const CURVE_KEY_LENGTH = 40;

const Z85_ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';
const Z85_VALUES = new Map([...Z85_ALPHABET].map((char, value) => [char, value]));

export class CurveConfigError extends Error {
  override name = 'CurveConfigError';
}

/** Z85-encodes bytes (their length a multiple of 4). */
export function z85Encode(bytes: Uint8Array): string {
  if (bytes.length % 4 !== 0) throw new RangeError(`Z85 encodes a multiple of 4 bytes, got ${bytes.length}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let text = '';
  for (let offset = 0; offset < bytes.length; offset += 4) {
    let value = view.getUint32(offset);
    const chunk: string[] = [];
    for (let i = 0; i < 5; i++) {
      chunk.unshift(Z85_ALPHABET[value % 85]);
      value = Math.floor(value / 85);
    }
    text += chunk.join('');
  }
  return text;
}

/** Z85-decodes text (its length a multiple of 5); undefined when it is no valid Z85. */
export function z85Decode(text: string): Buffer | undefined {
  if (text.length % 5 !== 0) return undefined;
  const bytes = Buffer.alloc((text.length / 5) * 4);
  for (let offset = 0; offset < text.length; offset += 5) {
    let value = 0;
    for (let i = 0; i < 5; i++) {
      const digit = Z85_VALUES.get(text[offset + i]);
      if (digit === undefined) return undefined;
      value = value * 85 + digit;
    }
    if (value > 0xffff_ffff) return undefined;
    bytes.writeUInt32BE(value, (offset / 5) * 4);
  }
  return bytes;
}

/** The 32 bytes of a Z85 CURVE key; undefined when the text is not one. */
export function decodeCurveKey(text: string): Buffer | undefined {
  return text.length === CURVE_KEY_LENGTH ? z85Decode(text) : undefined;
}

/** PKCS #8 DER of an X25519 private key, before its 32 bytes. */
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/**
 * The public key of a CURVE secret key (both Z85). CURVE keys are X25519 keys, so this is
 * libzmq's `zmq_curve_public`, which zeromq.js does not expose, done with Node's crypto.
 */
export function curvePublicKeyOf(secretKey: string): string {
  const secret = decodeCurveKey(secretKey);
  if (!secret) throw new CurveConfigError('expected a Z85 CURVE secret key (40 characters)');
  const key = createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, secret]), format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(key).export({ format: 'der', type: 'spki' });
  return z85Encode(spki.subarray(spki.length - 32));
}

/**
 * The allowed client keys from `--curve-clients`: Z85 public keys separated by commas, or
 * `@path` to a file with one key per line. In the file, blank lines and lines starting with
 * `#` are skipped, and a key may be followed by whitespace and a `# comment`. (`#` is also a
 * Z85 character, so a line whose first word is a valid 40-character key is a key even when
 * it starts with `#`; a key commented out with `#` is 41 characters, so it is a comment.)
 * Throws a CurveConfigError naming the entry or line at fault.
 */
export function parseCurveClients(value: string, readFile: (path: string) => string = (path) => readFileSync(path, 'utf8')): Buffer[] {
  const keys: Buffer[] = [];
  if (value.startsWith('@')) {
    const path = value.slice(1);
    if (path === '') throw new CurveConfigError('--curve-clients @file: no file named after the @');
    let text: string;
    try {
      text = readFile(path);
    } catch (error) {
      throw new CurveConfigError(`--curve-clients @${path}: cannot read the file: ${(error as Error).message}`);
    }
    for (const [index, raw] of text.split(/\r?\n/).entries()) {
      const line = raw.trim();
      if (line === '') continue;
      const [first, ...rest] = line.split(/\s+/);
      const key = decodeCurveKey(first);
      if (key && (rest.length === 0 || rest[0].startsWith('#'))) {
        keys.push(key);
        continue;
      }
      if (line.startsWith('#')) continue;
      throw new CurveConfigError(`--curve-clients @${path} line ${index + 1}: ${describeBadKey(first, rest)}`);
    }
    if (keys.length === 0) throw new CurveConfigError(`--curve-clients @${path}: the file holds no client key, so no client could connect`);
  } else {
    for (const [index, raw] of value.split(',').entries()) {
      const entry = raw.trim();
      if (entry === '') continue;
      const key = decodeCurveKey(entry);
      if (!key) throw new CurveConfigError(`--curve-clients entry ${index + 1}: ${describeBadKey(entry, [])}`);
      keys.push(key);
    }
    if (keys.length === 0) throw new CurveConfigError('--curve-clients: no client key given, so no client could connect');
  }
  // Duplicates are harmless; keep one of each.
  return [...new Map(keys.map((key) => [key.toString('hex'), key])).values()];
}

/** Says what is wrong without echoing the text (a secret key pasted in by mistake stays out of the logs). */
function describeBadKey(word: string, rest: string[]): string {
  if (word.length !== CURVE_KEY_LENGTH) return `expected a Z85 CURVE public key (40 characters), got ${word.length} characters`;
  if (rest.length > 0) return 'expected only a key on the line (and optionally a # comment after it)';
  return 'not a valid Z85 key (a character outside the Z85 alphabet, or a value out of range)';
}

export interface CurveSecurity {
  /** The hub's secret key, Z85. */
  secretKey: string;
  /** The hub's public key, Z85; derived from the secret key when absent (and checked against it when given). */
  publicKey?: string;
  /** Client public keys allowed in: 32-byte keys or Z85 text. */
  clientKeys: ReadonlyArray<Buffer | string>;
  /** The ZAP domain the ROUTER announces (default `resnet-hub`). */
  zapDomain?: string;
}

/**
 * The CURVE options from the hub's configuration: undefined when `--curve-secret-key` is not
 * set. Refuses a secret key without allowed clients and allowed clients without a secret key,
 * and a bad client list, with a CurveConfigError saying which.
 */
export function curveSecurity(config: { curveSecretKey?: string; curveClients?: string }): CurveSecurity | undefined {
  const { curveSecretKey, curveClients } = config;
  if (curveSecretKey === undefined && curveClients === undefined) return undefined;
  if (curveSecretKey === undefined) {
    throw new CurveConfigError(
      '--curve-clients is set without --curve-secret-key: CURVE needs the hub\'s secret key (npm run keys makes a key pair)',
    );
  }
  if (curveClients === undefined) {
    throw new CurveConfigError(
      '--curve-secret-key is set without --curve-clients: name the client public keys allowed in (comma-separated, or @file)',
    );
  }
  return { secretKey: curveSecretKey, publicKey: curvePublicKeyOf(curveSecretKey), clientKeys: parseCurveClients(curveClients) };
}

/** Why a connection was refused. */
export type RefusalReason =
  /** A CURVE client whose public key is not on the allowed list. */
  | 'client_key_not_allowed'
  /** A ZAP request for another mechanism than CURVE. */
  | 'not_curve'
  /** A ZAP request for another domain than the hub's. */
  | 'wrong_domain'
  /** A ZAP request this handler could not read. */
  | 'bad_zap_request'
  /** The client speaks no CURVE (a plain socket): seen in the handshake, before ZAP. */
  | 'mechanism_mismatch'
  /** The CURVE handshake did not decrypt: most often the client has the wrong server public key. */
  | 'cryptographic'
  /** Any other handshake failure. */
  | 'handshake_failed';

export interface CurveCounts {
  accepted: number;
  refused: number;
  refusedByReason: Partial<Record<RefusalReason, number>>;
}

export interface ZapAuthenticatorOptions {
  zapDomain?: string;
  /** Refusal log lines per reason per window (default 3 per 10 s); the rest are counted and summed up in the next line. */
  logLimit?: { lines: number; windowMs: number };
}

/** Per-reason log budget: the first few refusals of a window are logged, the rest counted. */
class RefusalLog {
  private readonly windows = new Map<string, { start: number; logged: number; suppressed: number }>();

  constructor(
    private readonly log: Logger,
    private readonly limit: { lines: number; windowMs: number },
  ) {}

  refused(reason: RefusalReason, fields: Record<string, unknown>): void {
    const now = performance.now();
    let window = this.windows.get(reason);
    if (!window || now - window.start >= this.limit.windowMs) {
      const suppressed = window?.suppressed ?? 0;
      window = { start: now, logged: 0, suppressed: 0 };
      this.windows.set(reason, window);
      if (suppressed > 0) fields = { ...fields, suppressed_before: suppressed };
    }
    if (window.logged >= this.limit.lines) {
      window.suppressed++;
      return;
    }
    window.logged++;
    this.log.warn({ reason, ...fields }, 'ZeroMQ client refused');
  }

  /** Logs what was counted but not logged. */
  flush(counts: CurveCounts): void {
    const suppressed = [...this.windows.entries()].filter(([, window]) => window.suppressed > 0);
    if (suppressed.length === 0) return;
    this.log.warn(
      { suppressed: Object.fromEntries(suppressed.map(([reason, window]) => [reason, window.suppressed])), refused: counts.refused },
      'ZeroMQ clients refused (not logged one by one)',
    );
    this.windows.clear();
  }
}

/**
 * The ZAP handler: lets in CURVE clients with an allowed public key, refuses every other
 * request. Bind it (`start`) before the CURVE socket binds; only one can be bound per process
 * (per ZeroMQ context).
 */
export class ZapAuthenticator {
  // Fail fast, never wait on libzmq's side of the ZAP pipe; the writer serialises the replies.
  private readonly socket = new zmq.Router({ linger: 0, sendTimeout: 0, mandatory: true });
  private readonly writer = new SocketWriter(this.socket, {
    onDrop: (reason, error) => this.log.warn({ reason, err: error }, 'a ZAP reply could not be sent; that connection is refused by libzmq'),
  });
  private readonly allowed: Set<string>;
  private readonly domain: string;
  private readonly refusals: RefusalLog;
  private serving: Promise<void> | undefined;
  private readonly tally: CurveCounts = { accepted: 0, refused: 0, refusedByReason: {} };

  constructor(
    clientKeys: ReadonlyArray<Buffer | string>,
    private readonly log: Logger,
    options: ZapAuthenticatorOptions = {},
  ) {
    this.allowed = new Set(
      clientKeys.map((key, index) => {
        const bytes = typeof key === 'string' ? decodeCurveKey(key) : key;
        if (!bytes || bytes.length !== 32) throw new CurveConfigError(`client key ${index + 1}: expected a CURVE public key (Z85, or 32 bytes)`);
        return bytes.toString('hex');
      }),
    );
    this.domain = options.zapDomain ?? DEFAULT_ZAP_DOMAIN;
    this.refusals = new RefusalLog(log, options.logLimit ?? { lines: 3, windowMs: 10_000 });
  }

  get allowedCount(): number {
    return this.allowed.size;
  }

  /** Connections let in so far. */
  get accepted(): number {
    return this.tally.accepted;
  }

  /** Connections refused so far, by ZAP or in the handshake. */
  get refused(): number {
    return this.tally.refused;
  }

  /** A copy of the counters, refusals by reason. */
  counts(): CurveCounts {
    return { accepted: this.tally.accepted, refused: this.tally.refused, refusedByReason: { ...this.tally.refusedByReason } };
  }

  async start(): Promise<void> {
    try {
      await this.socket.bind(ZAP_ENDPOINT);
    } catch (error) {
      this.socket.close();
      throw new Error(`could not bind the ZAP handler at ${ZAP_ENDPOINT} (is another one running in this process?): ${(error as Error).message}`, {
        cause: error,
      });
    }
    this.serving = this.serve();
  }

  async close(): Promise<void> {
    await this.writer.flushed();
    if (!this.socket.closed) {
      // close() frees the endpoint later, on ZeroMQ's I/O thread; an awaited unbind frees it now, so a handler
      // started next in this process (a restarted hub, a test) can bind it (seen failing 34 times in 300 without).
      await this.socket.unbind(ZAP_ENDPOINT).catch(() => undefined);
      this.socket.close();
    }
    await this.serving;
    this.refusals.flush(this.tally);
  }

  /** A connection that failed in the CURVE handshake, before any ZAP request (seen by the ROUTER's event observer). */
  recordHandshakeFailure(reason: Extract<RefusalReason, 'mechanism_mismatch' | 'cryptographic' | 'handshake_failed'>, fields: Record<string, unknown> = {}): void {
    this.refuse(reason, fields);
  }

  private refuse(reason: RefusalReason, fields: Record<string, unknown>): void {
    this.tally.refused++;
    this.tally.refusedByReason[reason] = (this.tally.refusedByReason[reason] ?? 0) + 1;
    this.refusals.refused(reason, { ...fields, refused: this.tally.refused });
  }

  private async serve(): Promise<void> {
    try {
      for await (const frames of this.socket) {
        let reply: ReturnType<ZapAuthenticator['answer']>;
        try {
          reply = this.answer(frames);
        } catch (error) {
          // One malformed request must not stop the handler, or no CURVE client could connect again.
          this.log.error({ err: error }, 'ZAP request handling failed; that connection is refused');
          continue;
        }
        if (reply) this.writer.write(reply);
      }
    } catch (error) {
      if (!this.socket.closed) this.log.error({ err: error }, 'the ZAP handler stopped: CURVE clients can no longer connect');
    }
  }

  /** RFC 27: [route, "", version, request id, domain, address, identity, mechanism, credentials...] → [route, "", "1.0", request id, status, text, user id, metadata]. */
  private answer(frames: Buffer[]): Array<Buffer | string> | undefined {
    const [route, delimiter, version, requestId, domainFrame, addressFrame, , mechanismFrame, ...credentials] = frames;
    if (frames.length < 8 || delimiter.length !== 0) {
      this.refuse('bad_zap_request', { frames: frames.length });
      // Without its envelope the request cannot be answered; libzmq then refuses the connection itself.
      return undefined;
    }
    const address = addressFrame.toString();
    const mechanism = mechanismFrame.toString();
    const reply = (status: '200' | '400' | '500', text: string, userId = '') => [route, '', '1.0', requestId, status, text, userId, ''];
    if (version.toString() !== '1.0') {
      this.refuse('bad_zap_request', { address, version: version.toString() });
      return reply('500', 'unsupported ZAP version');
    }
    const domain = domainFrame.toString();
    if (domain !== this.domain) {
      this.refuse('wrong_domain', { address, domain, mechanism });
      return reply('400', 'unknown domain');
    }
    if (mechanism !== 'CURVE' || credentials.length !== 1 || credentials[0].length !== 32) {
      this.refuse('not_curve', { address, mechanism });
      return reply('400', 'CURVE required');
    }
    const clientKey = credentials[0];
    const clientKeyZ85 = z85Encode(clientKey);
    if (!this.allowed.has(clientKey.toString('hex'))) {
      this.refuse('client_key_not_allowed', { address, client_key: clientKeyZ85 });
      return reply('400', 'client key not allowed');
    }
    this.tally.accepted++;
    this.log.debug({ address, client_key: clientKeyZ85 }, 'ZeroMQ CURVE client accepted');
    return reply('200', 'OK', clientKeyZ85);
  }
}
