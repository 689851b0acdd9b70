// Small helpers around NodeObserver: run several at once, and publish inspector batches on NATS.
import type { NatsConnection } from 'nats';
import type { NodeObserver } from '../actors/ports.ts';

type Hook = keyof NodeObserver;
const HOOKS: readonly Hook[] = ['request', 'replication', 'entry', 'message', 'resync', 'inspect'];

/**
 * One observer that calls each given one in turn. A hook is defined only when some observer
 * defines it, because the node skips work (timing a request, watching entries) for absent hooks.
 * Returns undefined when there is nothing to observe.
 */
export function combineObservers(...observers: (NodeObserver | undefined)[]): NodeObserver | undefined {
  const present = observers.filter((o): o is NodeObserver => o !== undefined);
  if (present.length === 0) return undefined;
  if (present.length === 1) return present[0];
  const combined: Record<string, (...args: never[]) => void> = {};
  for (const hook of HOOKS) {
    const fns = present.map((o) => o[hook] as ((...args: unknown[]) => void) | undefined).filter((f) => f !== undefined);
    if (fns.length === 0) continue;
    combined[hook] = fns.length === 1 ? fns[0] : (...args: unknown[]) => {
      for (const f of fns) f(...args);
    };
  }
  return combined as NodeObserver;
}

/**
 * Publishes on `subject` over `nc`. While the connection is down, publishing throws (the
 * inspector counts the batch as dropped) instead of queueing in nats.js's reconnect buffer:
 * a node cut off from NATS for long must not grow its memory for the sake of a view.
 */
export function natsPublisher(nc: NatsConnection, subject: string): (data: Uint8Array) => void {
  let connected = true;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') connected = false;
      else if (s.type === 'reconnect') connected = true;
    }
  })().catch(() => undefined);
  return (data) => {
    if (!connected || nc.isClosed()) throw new Error('NATS connection is down');
    nc.publish(subject, data);
  };
}
