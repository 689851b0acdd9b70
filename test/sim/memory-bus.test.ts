// Goal: the memory bus keeps the Bus port's contract as nats-bus.ts does (errors named
// BusTimeoutError / NoRespondersError / BusClosedError, fire-and-forget send, client requests
// answered or 500 on a handler failure), never shares buffers between nodes, and injects its
// faults as documented: cut, isolate, clog (hold, then deliver in order), drop, duplicate
// (never a forward), reorder, all from the seed.
// Method: a MemoryNetwork on a Scheduler; nodes are plain handlers.
import { describe, expect, it } from 'vitest';
import type { PeerMessage, PeerReply } from '../../actors/protocol.ts';
import { MemoryNetwork, type MemoryBus } from '../../bus/memory-bus.ts';
import { Rng } from './rng.ts';
import { NodeClock, Scheduler } from './scheduler.ts';

const ack: PeerReply = { ok: true, type: 'ack' };
const validate = (n: number, from = 'a'): PeerMessage => ({ type: 'validate', from, epoch: 1, validated: [{ key: `k${n}`, rev: n }] });
const invalidate = (value: Uint8Array): PeerMessage => ({ type: 'invalidate', from: 'a', epoch: 1, entries: [{ key: 'k', rev: 1, value }], validated: [] });

function world(profile: ConstructorParameters<typeof MemoryNetwork>[0]['profile'] = {}, seed = 1) {
  const scheduler = new Scheduler();
  const net = new MemoryNetwork({ clock: scheduler.clock, random: new Rng(seed, 'net').asFunction(), profile });
  const received = new Map<string, PeerMessage[]>();
  const node = (id: string, reply: (m: PeerMessage) => Promise<PeerReply> = async () => ack): MemoryBus => {
    const bus = net.attach(id, new NodeClock(id, scheduler).clock);
    void bus.servePeers(async (m) => {
      received.set(id, [...(received.get(id) ?? []), m]);
      return reply(m);
    });
    return bus;
  };
  const outcome = async <T>(p: Promise<T>, maxMs = 10_000): Promise<{ value?: T; error?: Error }> => {
    let out: { value?: T; error?: Error } | null = null;
    p.then(
      (value) => (out = { value }),
      (error: Error) => (out = { error }),
    );
    await scheduler.runUntilTrue(() => out !== null, maxMs);
    if (out === null) throw new Error('did not settle');
    return out;
  };
  return { scheduler, net, node, received, outcome };
}

describe('memory bus', () => {
  it('memory bus - request and reply, with the error names of nats-bus', async () => {
    const w = world();
    const a = w.node('a');
    w.node('b');
    expect((await w.outcome(a.request('b', validate(1), 100))).value).toEqual(ack);
    // Nobody serves c: the request was not delivered.
    const none = await w.outcome(a.request('c', validate(1), 100));
    expect(none.error?.name).toBe('NoRespondersError');
    // A cut link loses the request: the requester only sees a timeout.
    w.net.cut('a', 'b');
    const start = w.scheduler.now();
    const lost = await w.outcome(a.request('b', validate(1), 100));
    expect(lost.error?.name).toBe('BusTimeoutError');
    expect(w.scheduler.now() - start).toBeCloseTo(100, 5);
    w.net.heal();
    await a.close();
    expect((await w.outcome(a.request('b', validate(1), 100))).error?.name).toBe('BusClosedError');
    // A closed or crashed peer has no responders.
    const c = w.node('c');
    await c.close();
    expect((await w.outcome(w.node('d').request('c', validate(1), 100))).error?.name).toBe('NoRespondersError');
    w.net.crash('b');
    expect((await w.outcome(w.node('e').request('b', validate(1), 100))).error?.name).toBe('NoRespondersError');
  });

  it('memory bus - a handler that fails sends no reply, and garbage gets BAD_MESSAGE', async () => {
    const w = world();
    const a = w.node('a');
    w.node('b', async () => {
      throw new Error('boom');
    });
    expect((await w.outcome(a.request('b', validate(1), 50))).error?.name).toBe('BusTimeoutError');
    const bad = await w.outcome(a.request('b', { type: 'validate', from: 'a', epoch: -1 } as unknown as PeerMessage, 50));
    expect(bad.value).toMatchObject({ ok: false, code: 'BAD_MESSAGE' });
  });

  it('memory bus - messages are copies: nodes never share buffers', async () => {
    const w = world();
    const a = w.node('a');
    w.node('b');
    w.node('c');
    const value = new Uint8Array([1, 2, 3]);
    a.send('b', invalidate(value));
    a.send('c', invalidate(value));
    value[0] = 99; // the sender reuses its buffer right after sending
    await w.scheduler.runFor(50);
    const atB = (w.received.get('b')![0] as Extract<PeerMessage, { type: 'invalidate' }>).entries[0]!.value!;
    const atC = (w.received.get('c')![0] as Extract<PeerMessage, { type: 'invalidate' }>).entries[0]!.value!;
    expect([...atB]).toEqual([1, 2, 3]);
    atB[1] = 42;
    expect([...atC]).toEqual([1, 2, 3]);
  });

  it('memory bus - isolate cuts peers and clients both ways; heal brings them back', async () => {
    const w = world();
    const a = w.node('a');
    const b = w.node('b');
    void b.serveClients(async () => ({ ok: true, revision: 7 }));
    w.net.isolate('b');
    expect((await w.outcome(a.request('b', validate(1), 50))).error?.name).toBe('BusTimeoutError');
    expect((await w.outcome(b.request('a', validate(1), 50))).error?.name).toBe('BusTimeoutError');
    const req = { op: 'get' as const, headers: new Map([['Zi-Key', ['k']]]), data: new Uint8Array(0) };
    expect((await w.outcome(w.net.clientRequest('b', req, 50))).value).toEqual({ kind: 'timeout' });
    w.net.heal();
    expect((await w.outcome(w.net.clientRequest('b', req, 50))).value).toEqual({ kind: 'reply', reply: { ok: true, revision: 7 } });
    expect((await w.outcome(w.net.clientRequest('zz', req, 50))).value).toEqual({ kind: 'no-responders' });
    void b.serveClients(async () => {
      throw new Error('bug');
    });
    expect((await w.outcome(w.net.clientRequest('b', req, 50))).value).toMatchObject({ kind: 'reply', reply: { ok: false, code: 500 } });
  });

  it('memory bus - a one-way cut loses only that direction', async () => {
    const w = world();
    const a = w.node('a');
    const b = w.node('b');
    w.net.cut('a', 'b', { oneWay: true });
    a.send('b', validate(1));
    b.send('a', validate(2, 'b'));
    await w.scheduler.runFor(50);
    expect(w.received.get('b')).toBeUndefined();
    expect(w.received.get('a')).toHaveLength(1);
    // A request from b arrives, its reply (a -> b) is lost.
    expect((await w.outcome(b.request('a', validate(3, 'b'), 50))).error?.name).toBe('BusTimeoutError');
  });

  it('memory bus - a message in the name of another node is refused (as NATS permissions and the subject make it)', async () => {
    const w = world();
    w.node('a');
    const b = w.node('b');
    const outcome = await w.outcome(b.request('a', validate(1, 'a'), 50));
    expect(outcome.value).toMatchObject({ ok: false, code: 'BAD_MESSAGE', reason: 'bad peer message: sent by b in the name of "a"' });
    expect(w.received.get('a')).toBeUndefined();
  });

  it('memory bus - a clogged node receives nothing until unclogged, then everything, in order', async () => {
    const w = world({ delayMsMin: 1, delayMsMax: 5 });
    const a = w.node('a');
    w.node('b');
    w.net.clogNode('b');
    for (let i = 1; i <= 5; i++) a.send('b', validate(i));
    await w.scheduler.runFor(500);
    expect(w.received.get('b')).toBeUndefined();
    w.net.unclogNode('b');
    await w.scheduler.runFor(50);
    expect(w.received.get('b')!.map((m) => (m as Extract<PeerMessage, { type: 'validate' }>).validated[0]!.rev)).toEqual([1, 2, 3, 4, 5]);
  });

  it('memory bus - per-link FIFO by default, reordering when asked', async () => {
    const order = async (reorder: boolean) => {
      const w = world({ delayMsMin: 0, delayMsMax: 20, reorder });
      const a = w.node('a');
      w.node('b');
      for (let i = 1; i <= 30; i++) a.send('b', validate(i));
      await w.scheduler.runFor(100);
      return w.received.get('b')!.map((m) => (m as Extract<PeerMessage, { type: 'validate' }>).validated[0]!.rev);
    };
    const fifo = await order(false);
    expect(fifo).toEqual([...fifo].sort((x, y) => x - y));
    const shuffled = await order(true);
    expect(shuffled).toHaveLength(30);
    expect(shuffled).not.toEqual([...shuffled].sort((x, y) => x - y));
  });

  it('memory bus - drops and duplicates come from the seed; a forward is never duplicated', async () => {
    const run = async (seed: number) => {
      const w = world({ dropRate: 0.2, duplicateRate: 0.3 }, seed);
      const a = w.node('a');
      w.node('b');
      for (let i = 1; i <= 50; i++) a.send('b', validate(i));
      for (let i = 1; i <= 20; i++) a.send('b', { type: 'forward', from: 'a', epoch: 1, commands: [{ key: `f${i}`, value: null }] });
      await w.scheduler.runFor(100);
      return { got: w.received.get('b')!, stats: { ...w.net.stats } };
    };
    const { got, stats } = await run(5);
    expect(stats.dropped).toBeGreaterThan(0);
    expect(stats.duplicated).toBeGreaterThan(0);
    const forwards = got.filter((m) => m.type === 'forward').map((m) => (m as Extract<PeerMessage, { type: 'forward' }>).commands[0]!.key);
    expect(new Set(forwards).size).toBe(forwards.length);
    expect(await run(5)).toEqual({ got, stats });
    expect((await run(6)).got).not.toEqual(got);
  });
});
