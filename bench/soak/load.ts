/**
 * The soak's load: --clients closed-loop clients, the first ones over ZeroMQ, the last
 * --http-clients over HTTP, each with its own seeded sequence of requests.
 */
import { runHttpClient, runZmqClient } from './clients.ts';
import type { ClientContext } from './clients.ts';
import type { Ledger } from './ledger.ts';
import { seededRandom } from '../../kit/random.ts';
import type { RequestMix } from './requests.ts';

export interface LoadOptions {
  zmq: string;
  /** The hub's http://host:port. */
  http: string;
  clients: number;
  httpClients: number;
  replyTimeoutS: number;
  seed: number;
  apiToken?: string;
}

export interface Load {
  stopSending(): void;
  /** Stop waiting for replies: the hub has exited. */
  abandon(): void;
  /** Resolves when every client has its last reply (or gave it up); lists clients that crashed. */
  done(): Promise<string[]>;
}

/** The closed-loop clients: ZeroMQ first, then HTTP, each with its own seeded choices. */
export function startLoad(options: LoadOptions, ledger: Ledger, mix: RequestMix): Load {
  let sending = true;
  const abandon = new AbortController();
  const tag = `soak${Date.now().toString(36)}`;
  const context = (index: number): ClientContext => ({
    ledger,
    mix,
    random: seededRandom(options.seed * 1000 + index),
    replyTimeoutMs: options.replyTimeoutS * 1000,
    sending: () => sending,
    abandon: abandon.signal,
    tag,
  });
  const zmqClients = options.clients - options.httpClients;
  const clients = Promise.allSettled([
    ...Array.from({ length: zmqClients }, (_, i) => runZmqClient(options.zmq, i, context(i))),
    ...Array.from({ length: options.httpClients }, (_, i) => runHttpClient(options.http, i, { ...context(zmqClients + i), apiToken: options.apiToken })),
  ]);
  return {
    stopSending: () => (sending = false),
    abandon: () => abandon.abort(),
    // A client that throws is a bug in the soak, not the hub: reported, never swallowed.
    done: async () =>
      (await clients)
        .filter((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected')
        .map(({ reason }) => `a client failed: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`),
  };
}
