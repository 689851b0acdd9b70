// Goal: the inspector stream batches what the observer hooks report, keeps only what the
// viewer needs from XState inspection, stays bounded, and never throws into the node.
// Method: a fake interval timer and clock drive flushes; batches are captured and decoded.
import { describe, expect, it } from 'vitest';
import { createActor, createMachine, assign } from 'xstate';
import { contextFields, InspectorStream, type InspectBatch, type InspectorTimers } from '../../observe/inspector.ts';
import type { NodeStatus } from '../../observe/metrics.ts';

function fakeTimers() {
  let now = 1_000;
  let tick: (() => void) | null = null;
  let every = 0;
  let due = 0;
  const timers: InspectorTimers = {
    now: () => now,
    setInterval: (fn, ms) => {
      tick = fn;
      every = ms;
      due = now + ms;
      return 1;
    },
    clearInterval: () => {
      tick = null;
    },
  };
  return {
    timers,
    advance(ms: number) {
      const end = now + ms;
      while (tick !== null && due <= end) {
        now = due;
        due += every;
        tick();
      }
      now = end;
    },
  };
}

function harness(options: { recordsMax?: number; failing?: () => boolean } = {}) {
  const clock = fakeTimers();
  const batches: InspectBatch[] = [];
  const decoder = new TextDecoder();
  const stream = new InspectorStream({
    nodeId: 'n1',
    timers: clock.timers,
    recordsMax: options.recordsMax,
    publish: (data) => {
      if (options.failing?.()) throw new Error('closed');
      batches.push(JSON.parse(decoder.decode(data)) as InspectBatch);
    },
  });
  return { clock, batches, stream, o: stream.observer };
}

const status = (over: Partial<NodeStatus> = {}): NodeStatus => ({
  node: 'n1', session: 'connected', epoch: 1, leader: 'n1', role: 'leader', state: 'serving', keys: 0, bytes: 0, writesInFlight: 0, replicas: ['n1'], watch: { changes: 0, floor: 0, stable: 0, waiting: 0 }, ...over,
});

describe('observe inspector', () => {
  it('inspector - batches records every flush interval, in order, with the status', () => {
    const { clock, batches, stream, o } = harness();
    stream.attach(() => status());
    stream.start();
    o.entry!('k', 'invalid', 4);
    o.message!('out', 'invalidate', 'n2', ['k']);
    o.replication!('n2', 1, 0.734, true);
    o.entry!('k', 'valid', 4);
    expect(batches).toHaveLength(0);
    clock.advance(49);
    expect(batches).toHaveLength(0);
    clock.advance(1);
    expect(batches).toHaveLength(1);
    const [b] = batches;
    expect(b).toMatchObject({ v: 1, node: 'n1', seq: 1, dropped: 0, status: { role: 'leader', epoch: 1 } });
    expect(b.records.map((r) => r.kind)).toEqual(['entry', 'message', 'ack', 'entry']);
    expect(b.records[0]).toMatchObject({ key: 'k', state: 'invalid', rev: 4 });
    expect(b.records[1]).toMatchObject({ direction: 'out', type: 'invalidate', peer: 'n2', keys: ['k'], keyCount: 1 });
    expect(b.records[2]).toMatchObject({ peer: 'n2', entries: 1, ms: 0.73, ok: true });
    expect(b.records[3]).toMatchObject({ state: 'valid', rev: 4 });
  });

  it('inspector - idle: nothing published until the status changes or a heartbeat is due', () => {
    const { clock, batches, stream } = harness();
    let current = status();
    stream.attach(() => current);
    stream.start();
    clock.advance(50);
    expect(batches).toHaveLength(1);
    clock.advance(500);
    expect(batches).toHaveLength(1);
    current = status({ epoch: 2 });
    clock.advance(50);
    expect(batches).toHaveLength(2);
    expect(batches[1].status?.epoch).toBe(2);
    expect(batches[1].records).toEqual([]);
    clock.advance(1000);
    expect(batches).toHaveLength(3);
    expect(batches[2].seq).toBe(3);
  });

  it('inspector - bounded: records past the buffer are dropped and counted', () => {
    const { clock, batches, stream, o } = harness({ recordsMax: 10 });
    stream.start();
    for (let i = 0; i < 25; i++) o.entry!(`k${i}`, 'valid', i);
    clock.advance(50);
    expect(batches[0].records).toHaveLength(10);
    expect(batches[0].dropped).toBe(15);
    o.entry!('x', 'valid', 1);
    clock.advance(50);
    expect(batches[1].records).toHaveLength(1);
    expect(stream.stats()).toEqual({ batches: 2, events: 11, dropped: 15 });
  });

  it('inspector - a failing publish drops the batch, counts it and does not throw', () => {
    let failing = true;
    const { clock, batches, stream, o } = harness({ failing: () => failing });
    stream.attach(() => status());
    stream.start();
    o.entry!('a', 'valid', 1);
    o.entry!('b', 'valid', 2);
    expect(() => clock.advance(50)).not.toThrow();
    expect(stream.stats().dropped).toBe(2);
    failing = false;
    clock.advance(50);
    // The status is sent again with the next batch that gets through.
    expect(batches).toHaveLength(1);
    expect(batches[0]).toMatchObject({ seq: 1, dropped: 2 });
    expect(batches[0].status).toBeDefined();
  });

  it('inspector - message flow: lease renewals are left out, long key lists are cut', () => {
    const { clock, batches, stream, o } = harness();
    stream.start();
    o.message!('in', 'lease', 'n2', []);
    const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
    o.message!('in', 'forward', 'n2', keys);
    o.message!('in', 'sync', 'n3', []);
    clock.advance(50);
    expect(batches[0].records).toEqual([
      expect.objectContaining({ kind: 'message', type: 'forward', keys: keys.slice(0, 8), keyCount: 20 }),
      expect.objectContaining({ kind: 'message', type: 'sync', keys: [], keyCount: 0 }),
    ]);
  });

  it('inspector - XState inspection: machine snapshots (deduplicated) and received events only', () => {
    const { clock, batches, stream } = harness();
    stream.start();
    const machine = createMachine({
      id: 'toy',
      types: {} as { context: { epoch: number; leader: string | null; leaseMs: number; store: Map<string, number> } },
      context: { epoch: 0, leader: null, leaseMs: 1000, store: new Map() },
      initial: 'idle',
      states: {
        idle: { on: { go: { target: 'busy', actions: assign({ epoch: 1, leader: 'n2' }) }, poke: {} } },
        busy: { on: { stop: 'idle' } },
      },
    });
    const actor = createActor(machine, { inspect: stream.observer.inspect });
    actor.start();
    actor.send({ type: 'poke' });
    actor.send({ type: 'go' });
    actor.stop();
    clock.advance(50);
    const records = batches[0].records;
    expect(new Set(records.map((r) => r.kind))).toEqual(new Set(['snapshot', 'event']));
    const snapshots = records.filter((r) => r.kind === 'snapshot');
    // poke leaves the snapshot as it was: not repeated.
    expect(snapshots.map((s) => [s.value, s.status])).toEqual([
      ['idle', 'active'],
      ['busy', 'active'],
      ['busy', 'stopped'],
    ]);
    expect(snapshots[1]).toMatchObject({ actor: 'toy', context: { epoch: 1, leader: 'n2' } });
    expect(snapshots[1].context).not.toHaveProperty('leaseMs');
    expect(snapshots[1].context).not.toHaveProperty('store');
    const events = records.filter((r) => r.kind === 'event').map((r) => r.event);
    expect(events).toEqual(expect.arrayContaining(['xstate.init', 'poke', 'go']));
  });

  it('inspector - context fields: plain values only, settings ending in Ms left out', () => {
    expect(contextFields({ epoch: 2, leader: 'n1', complete: true, reason: null, leaseMs: 5, nested: { a: 1 }, list: [1] })).toEqual({
      epoch: 2, leader: 'n1', complete: true, reason: null,
    });
    expect(contextFields(undefined)).toEqual({});
  });

  it('inspector - stop publishes what is buffered and stops the timer', () => {
    const { clock, batches, stream, o } = harness();
    stream.start();
    o.entry!('a', 'absent', 3);
    stream.stop();
    expect(batches).toHaveLength(1);
    o.entry!('b', 'valid', 4);
    clock.advance(500);
    expect(batches).toHaveLength(1);
  });
});
