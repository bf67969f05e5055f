/**
 * Subscribes an observer (the event stream, the metrics) to one of the request path's emitters.
 * Node's emit() throws whatever a listener throws back into the emitter, i.e. into the middle
 * of a dispatch or a reply; an observer's failure is logged here instead, so that watching
 * the hub can never stop a request from being answered.
 */
import type { Logger } from '../../lib/log.ts';

interface Emitter<Args extends unknown[]> {
  on(name: string, listener: (...args: Args) => void): unknown;
  off(name: string, listener: (...args: Args) => void): unknown;
}

/** Returns the function that unsubscribes it. */
export function observe<Args extends unknown[]>(source: Emitter<Args>, name: string, listener: (...args: Args) => void, log: Logger): () => void {
  const guarded = (...args: Args) => {
    try {
      listener(...args);
    } catch (error) {
      log.error({ err: error, event: name }, 'an observer of the hub failed; the request path goes on');
    }
  };
  source.on(name, guarded);
  return () => source.off(name, guarded);
}
