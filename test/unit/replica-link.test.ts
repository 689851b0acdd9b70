// Goal: the leader's link to a replica delivers validations reliably: one whose request gets no
// reply is sent again a round trip later, riding on the next request when there is one, and is
// dropped once the replica no longer takes our writes.
// Method: a ReplicaLink on a scripted Bus and xstate's SimulatedClock.
import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import type { Bus, Clock } from '../../actors/ports.ts';
import type { PeerMessage, PeerReply } from '../../actors/protocol.ts';
import { ReplicaLink } from '../../actors/replica-link.ts';
import { BusTimeoutError } from '../../bus/errors.ts';

const ACK_TIMEOUT_MS = 300;

function setup(options: { wanted?: () => boolean } = {}) {
  const clock = new SimulatedClock();
  const sent: PeerMessage[] = [];
  /** Replies to requests, in order; `lost` rejects like a request that got no reply; `held` replies once `release` runs. */
  const script: Array<'ok' | 'lost' | 'held'> = [];
  const held: Array<() => void> = [];
  const bus: Bus = {
    serveClients: async () => undefined,
    servePeers: async () => undefined,
    request: (_to: string, message: PeerMessage): Promise<PeerReply> => {
      sent.push(message);
      const next = script.shift() ?? 'ok';
      if (next === 'held') return new Promise((resolve) => held.push(() => resolve({ ok: true, type: 'ack' })));
      return next === 'ok' ? Promise.resolve({ ok: true, type: 'ack' }) : Promise.reject(new BusTimeoutError('lost'));
    },
    send: (_to: string, message: PeerMessage) => void sent.push(message),
    close: async () => undefined,
  };
  const link = new ReplicaLink(
    { from: 'n1', to: 'n2', epoch: 1, ackTimeoutMs: ACK_TIMEOUT_MS, maxBatchEntries: 64, maxBatchBytes: 1 << 20, wanted: options.wanted ?? (() => true) },
    bus,
    clock as unknown as Clock,
  );
  const turn = () => new Promise((resolve) => setTimeout(resolve, 0));
  const validatedKeys = () => sent.flatMap((m) => (m.type === 'validate' || m.type === 'invalidate' ? m.validated.map((v) => `${v.key}@${v.rev}`) : []));
  const release = () => held.splice(0).forEach((reply) => reply());
  return { clock, sent, script, link, turn, validatedKeys, release };
}

describe('replica link', () => {
  it('replica link - a validation whose request is lost is sent again a round trip later', async () => {
    const t = setup();
    t.script.push('lost');
    t.link.validate('k', 7);
    await t.turn();
    expect(t.validatedKeys()).toEqual(['k@7']);
    t.clock.increment(ACK_TIMEOUT_MS - 1);
    await t.turn();
    expect(t.validatedKeys()).toEqual(['k@7']);
    t.clock.increment(1);
    await t.turn();
    expect(t.validatedKeys()).toEqual(['k@7', 'k@7']);
    // Delivered now: nothing more goes out.
    t.clock.increment(ACK_TIMEOUT_MS * 3);
    await t.turn();
    expect(t.sent).toHaveLength(2);
  });

  it('replica link - a write carries the validation of its key\'s last write again until the replica confirmed it', async () => {
    const t = setup();
    t.script.push('held');
    t.link.validate('k', 7);
    await t.turn();
    const entry = (key: string, rev: number) => ({ key, rev, value: new Uint8Array([1]) });
    void t.link.invalidate(entry('other', 8));
    await t.turn();
    void t.link.invalidate(entry('k', 9));
    await t.turn();
    // The validate is unanswered: only the write of `k` carries it again, so `k@7` is never behind `k@9`.
    expect(t.sent.map((m) => (m.type === 'invalidate' ? `${m.entries[0]!.key}:${m.validated.map((v) => `${v.key}@${v.rev}`).join(',')}` : m.type))).toEqual(['validate', 'other:', 'k:k@7']);
    t.release();
    await t.turn();
    void t.link.invalidate(entry('k', 10));
    await t.turn();
    expect(t.sent.at(-1)).toMatchObject({ type: 'invalidate', validated: [] });
  });

  it('replica link - validations carried by a lost invalidate ride on the next request', async () => {
    const t = setup();
    t.link.validate('a', 1);
    t.script.push('lost');
    void t.link.invalidate({ key: 'b', rev: 2, value: null }).catch(() => undefined);
    await t.turn();
    expect(t.sent.map((m) => m.type)).toEqual(['invalidate']);
    void t.link.invalidate({ key: 'c', rev: 3, value: null });
    await t.turn();
    expect(t.validatedKeys()).toEqual(['a@1', 'a@1']);
  });

  it('replica link - validations to a replica that left are dropped', async () => {
    let wanted = true;
    const t = setup({ wanted: () => wanted });
    t.script.push('lost');
    t.link.validate('k', 7);
    await t.turn();
    wanted = false;
    t.clock.increment(ACK_TIMEOUT_MS * 3);
    await t.turn();
    expect(t.sent).toHaveLength(1);
  });

  it('replica link - a transaction\'s writes travel in one request, even when the open batch is nearly full', async () => {
    const t = setup();
    for (let i = 0; i < 63; i++) void t.link.invalidate({ key: `k${i}`, rev: i + 1, value: null });
    const group = [
      { key: 'x', rev: 100, value: null },
      { key: 'y', rev: 100, value: null },
    ];
    void t.link.invalidateTogether(group);
    await t.turn();
    const batches = t.sent.flatMap((m) => (m.type === 'invalidate' ? [m.entries.map((e) => e.key)] : []));
    expect(batches.map((b) => b.length)).toEqual([63, 2]);
    expect(batches[1]).toEqual(['x', 'y']);
  });
});

