// Forged peer messages, one of each kind, and a way to see that nats-server refused to carry one:
// for integration tests of the NATS permissions `zistore up` sets (cluster/security.ts).
import type { NatsConnection } from 'nats';
import { encode } from '../../bus/codec.ts';

const bytes = (s: string) => new TextEncoder().encode(s);

/** One message of every peer kind, in the name of `from`, that would harm the cluster if believed (or read what the sender may not). */
export function forgedMessages(from: string, epoch: number, key: string): Record<string, unknown>[] {
  const rev = 2 ** 52;
  return [
    { type: 'invalidate', from, epoch, entries: [{ key, rev, value: bytes('forged') }], validated: [] },
    { type: 'validate', from, epoch, validated: [{ key, rev }] },
    { type: 'sync', from, epoch: Number.MAX_SAFE_INTEGER },
    { type: 'snapshot', from, epoch, admission: 1, seq: 0, maxRev: rev, done: true, entries: [{ key, rev, value: bytes('forged') }] },
    { type: 'forward', from, epoch, commands: [{ key, value: bytes('forged') }] },
    { type: 'read', from, epoch, keys: [key] },
    { type: 'scan', from, epoch, query: { prefix: '', from: null, to: null, after: null, limit: 10_000, form: 'values' } },
    { type: 'txn', from, epoch, txn: { compare: [], ops: [{ op: 'put', key, value: bytes('forged') }] } },
    { type: 'join', from, epoch, session: 'forged', attempt: 1, since: 0, history: 0, pending: [] },
    { type: 'lease', from, epoch, session: 'forged' },
  ];
}

/** Permission violations the server sent this connection, as `publish <subject>` or `subscription <subject>`. */
export function serverErrors(nc: NatsConnection): string[] {
  const errors: string[] = [];
  void (async () => {
    for await (const s of nc.status()) {
      const ctx = (s as { permissionContext?: { operation: string; subject: string } }).permissionContext;
      if (s.type === 'error' && ctx) errors.push(`${ctx.operation} ${ctx.subject}`);
    }
  })();
  return errors;
}

/**
 * Publish `message` on `subject` and wait until the server says it refused it: a permission
 * violation naming the subject. Throws if the server carried it (no violation within 2 s).
 */
export async function expectPublishRefused(nc: NatsConnection, errors: string[], subject: string, message: unknown): Promise<void> {
  nc.publish(subject, encode(message), { reply: `_INBOX.forged.${Math.random().toString(36).slice(2)}` });
  const deadline = Date.now() + 2000;
  while (!errors.includes(`publish ${subject}`)) {
    if (Date.now() > deadline) throw new Error(`the server carried a publish on ${subject}; errors seen: ${errors.join(' | ') || 'none'}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Subscribe to `subject` and wait until the server says it refused the subscription. */
export async function expectSubscribeRefused(nc: NatsConnection, errors: string[], subject: string): Promise<void> {
  nc.subscribe(subject, { callback: () => undefined });
  const deadline = Date.now() + 2000;
  while (!errors.includes(`subscription ${subject}`)) {
    if (Date.now() > deadline) throw new Error(`the server took a subscription to ${subject}; errors seen: ${errors.join(' | ') || 'none'}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
