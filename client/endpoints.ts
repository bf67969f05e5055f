/**
 * Where the hubs are: a list of ZeroMQ endpoints, some of which may name a host that resolves
 * to several addresses (a Kubernetes headless Service). libzmq connects to only the first
 * address a host name resolves to, so the client resolves names itself and connects to each.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

/** Every address a host name stands for (IPv4 or IPv6, as text). */
export type Resolver = (host: string) => Promise<string[]>;

/** getaddrinfo, as libzmq and every other program on the machine resolve (/etc/hosts, then DNS). */
export const systemResolver: Resolver = async (host) => {
  const addresses = await lookup(host, { all: true });
  return [...new Set(addresses.map((entry) => entry.address))];
};

/** `tcp://a:5576,tcp://b:5576` or a list of such strings, as one flat list. */
export function splitEndpoints(input: string | readonly string[]): string[] {
  const parts = (typeof input === 'string' ? [input] : input).flatMap((text) => text.split(','));
  return [...new Set(parts.map((part) => part.trim()).filter((part) => part.length > 0))];
}

export interface TcpEndpoint {
  host: string;
  port: string;
}

/** `tcp://host:port` or `tcp://[v6]:port`; undefined for any other transport (ipc://, inproc://), used as it is. */
export function parseTcpEndpoint(endpoint: string): TcpEndpoint | undefined {
  const match = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):(\d+)$/.exec(endpoint);
  if (!match) return undefined;
  const host = match[1].startsWith('[') ? match[1].slice(1, -1) : match[1];
  return { host, port: match[2] };
}

export function tcpEndpoint(address: string, port: string): string {
  return isIP(address) === 6 ? `tcp://[${address}]:${port}` : `tcp://${address}:${port}`;
}

/** True when the endpoint names a host that needs resolving (not an address, not another transport). */
export function needsResolving(endpoint: string): boolean {
  const tcp = parseTcpEndpoint(endpoint);
  return tcp !== undefined && isIP(tcp.host) === 0;
}

/** Validates an endpoint as the client accepts it, with a message that says what is wrong. */
export function checkEndpoint(endpoint: string): void {
  if (/^(ipc|inproc):\/\/.+/.test(endpoint)) return;
  if (!parseTcpEndpoint(endpoint)) throw new Error(`bad hub endpoint '${endpoint}': expected tcp://host:port (or ipc://, inproc://)`);
}

/**
 * The endpoints one configured endpoint stands for now: itself, or one per address of its
 * host. Throws when the name does not resolve; the caller decides whether to keep what it had.
 */
export async function resolveEndpoint(endpoint: string, resolver: Resolver): Promise<string[]> {
  const tcp = parseTcpEndpoint(endpoint);
  if (!tcp || isIP(tcp.host) !== 0) return [endpoint];
  const addresses = await resolver(tcp.host);
  return addresses.map((address) => tcpEndpoint(address, tcp.port));
}
