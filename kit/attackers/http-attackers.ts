/**
 * HTTP clients that flood the classify API: closed-loop uploaders with and without keep-alive
 * (no back-off after 503), and clients that abort in the middle of their upload or of the
 * hub's response. Tracked requests go through a StormLedger, with their HTTP status.
 */
import http from 'node:http';
import type { StormLedger } from './ledger.ts';

export interface UploadOptions {
  /** The hub's HTTP base URL, e.g. http://127.0.0.1:8080. */
  base: string;
  clients: number;
  image: Buffer;
  keepAlive: boolean;
  ledger: StormLedger;
  until: Promise<unknown>;
  replyTimeoutMs: number;
  headers?: Record<string, string>;
}

interface HttpAnswer {
  status: number;
  body: string;
}

/** `onSent` is told once the request is on the wire (connected and flushed), and before any answer. */
function post(base: string, path: string, body: Buffer, agent: http.Agent | false, headers: Record<string, string>, timeoutMs: number, onSent: () => void): Promise<HttpAnswer> {
  let sent = false;
  const markSent = () => {
    if (!sent) onSent();
    sent = true;
  };
  return new Promise((resolve, reject) => {
    const request = http.request(`${base}${path}`, {
      method: 'POST',
      agent,
      headers: { 'Content-Type': 'image/jpeg', 'Content-Length': String(body.length), ...(agent === false ? { Connection: 'close' } : {}), ...headers },
      timeout: timeoutMs,
    });
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.on('error', reject);
    request.on('finish', markSent);
    request.on('response', (response) => {
      markSent();
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      response.on('error', reject);
    });
    request.end(body);
  });
}

/** Closed-loop uploaders of a raw image; each answer is recorded with its status and code. */
export async function httpUploaders(options: UploadOptions): Promise<void> {
  let stopping = false;
  void options.until.then(() => (stopping = true));
  const lane = options.keepAlive ? 'http-keepalive' : 'http-close';
  const agent = options.keepAlive ? new http.Agent({ keepAlive: true, maxSockets: options.clients }) : false;
  const client = async (index: number) => {
    for (let n = 0; !stopping; n++) {
      const id = `${lane}-${index}-${n}`;
      // Tracked from the moment it is on the wire: a request whose connection never opened
      // (the hub already gone) was never sent, and no server could answer it.
      let sent = false;
      try {
        const answer = await post(options.base, `/api/classify?request_id=${id}`, options.image, agent, options.headers ?? {}, options.replyTimeoutMs, () => {
          sent = true;
          options.ledger.begin(id, lane);
        });
        const reply = JSON.parse(answer.body) as { error?: { code?: string }; request_id?: string };
        options.ledger.settle(reply.request_id, reply.error ? String(reply.error.code) : 'ok', answer.status);
      } catch {
        if (!sent && !stopping) {
          await new Promise((resolve) => setTimeout(resolve, 10)); // not sent: try again, without spinning
          continue;
        }
        return; // a connection error or a timeout after sending: the request stays unanswered, counted lost
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: options.clients }, (_, i) => client(i)));
  } finally {
    if (agent) agent.destroy();
  }
}

export type AbortMode = 'mid-upload' | 'mid-response';

/**
 * Clients that give up halfway: `mid-upload` sends half the image and resets the connection;
 * `mid-response` sends it all and resets as soon as the response starts. Returns how many ran.
 */
export async function httpAborters(base: string, count: number, image: Buffer, mode: AbortMode, concurrency = 16): Promise<number> {
  let next = 0;
  let ran = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      const request = http.request(`${base}/api/classify`, {
        method: 'POST',
        agent: false,
        headers: { 'Content-Type': 'image/jpeg', 'Content-Length': String(image.length) },
      });
      request.on('error', () => resolve());
      request.on('close', () => resolve());
      if (mode === 'mid-upload') {
        request.write(image.subarray(0, image.length >> 1), () => setTimeout(() => request.destroy(), 2));
      } else {
        request.on('response', (response) => response.destroy());
        request.end(image);
      }
    });
  const worker = async () => {
    for (let i = next++; i < count; i = next++) {
      await one();
      ran++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, () => worker()));
  return ran;
}
