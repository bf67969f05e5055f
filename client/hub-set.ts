/**
 * The hubs the client is connected to, kept in line with its configured endpoints: names are
 * resolved again periodically; a new address gets a connection, an address that is gone is
 * retired (no new work) and closed once nothing is outstanding on it. A name that fails to
 * resolve keeps the hubs it had: a DNS hiccup must not empty the fleet.
 */
import { HubConnection } from './hub-connection.ts';
import type { ConnectionEvents, ConnectionOptions } from './hub-connection.ts';
import { needsResolving, resolveEndpoint } from './endpoints.ts';
import type { Resolver } from './endpoints.ts';

export interface HubSetOptions {
  endpoints: readonly string[];
  resolver: Resolver;
  resolveIntervalMs: number;
  connection: ConnectionOptions;
  events: ConnectionEvents;
}

export class HubSet {
  private readonly hubs = new Map<string, HubConnection>();
  /** What each configured endpoint last resolved to. */
  private readonly resolved = new Map<string, string[]>();
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  private closed = false;
  /** The last resolution failure, for the message of a request no hub could take. */
  lastResolveError: string | undefined;

  constructor(private readonly options: HubSetOptions) {}

  /** Resolves once and connects; then keeps resolving in the background. */
  async start(): Promise<void> {
    await this.refresh();
    const periodic = this.options.endpoints.some(needsResolving) && this.options.resolveIntervalMs > 0;
    if (periodic && !this.closed) {
      this.timer = setInterval(() => void this.refresh(), this.options.resolveIntervalMs);
      this.timer.unref();
    }
  }

  list(): HubConnection[] {
    return [...this.hubs.values()];
  }

  /** Resolves every configured endpoint now (one refresh at a time) and reconciles connections. */
  refresh(): Promise<void> {
    this.refreshing ??= this.reconcile().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  /** Closes a retired hub once nothing is outstanding on it. */
  closeIfIdle(hub: HubConnection): void {
    if (hub.mode !== 'retired' || hub.live.size > 0) return;
    this.hubs.delete(hub.endpoint);
    void hub.close();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.refreshing;
    await Promise.all(this.list().map((hub) => hub.close()));
    this.hubs.clear();
  }

  private async reconcile(): Promise<void> {
    const results = await Promise.allSettled(this.options.endpoints.map((endpoint) => resolveEndpoint(endpoint, this.options.resolver)));
    if (this.closed) return;
    results.forEach((result, i) => {
      const endpoint = this.options.endpoints[i];
      if (result.status === 'fulfilled') this.resolved.set(endpoint, result.value);
      else this.lastResolveError = `${endpoint}: ${result.reason instanceof Error ? result.reason.message : String(result.reason)}`;
    });
    const wanted = new Set([...this.resolved.values()].flat());
    for (const endpoint of wanted) {
      const known = this.hubs.get(endpoint);
      if (!known) this.hubs.set(endpoint, new HubConnection(endpoint, this.options.connection, this.options.events));
      else if (known.mode === 'retired') known.mode = 'active';
    }
    for (const hub of this.hubs.values()) {
      if (wanted.has(hub.endpoint)) continue;
      hub.mode = 'retired';
      this.closeIfIdle(hub);
    }
  }
}
