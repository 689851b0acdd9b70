// Goal: the viewer's model (what /state and the page show) from the nodes' inspector batches:
// node cards, per-key entry states with their recent transitions, message flow with the two
// reports of one message merged, and every list bounded. Method: hand-made batches.
import { describe, expect, it } from 'vitest';
import type { InspectBatch, InspectRecord } from '../../observe/inspector.ts';
import type { NodeStatus } from '../../observe/metrics.ts';
import { isInspectBatch, stateText, ViewerState } from '../../observe/viewer-state.ts';

const seqs = new Map<string, number>();
function batch(node: string, records: InspectRecord[], status?: Partial<NodeStatus>): InspectBatch {
  const seq = (seqs.get(node) ?? 0) + 1;
  seqs.set(node, seq);
  const b: InspectBatch = { v: 1, node, seq, t: 0, dropped: 0, records };
  if (status) {
    b.status = { node, session: 'connected', epoch: 1, leader: 'n1', role: 'follower', state: 'serving', keys: 0, bytes: 0, writesInFlight: 0, replicas: null, watch: { changes: 0, floor: 0, stable: 0, waiting: 0 }, ...status };
  }
  return b;
}

describe('observe viewer state', () => {
  it('viewer - nodes with role, epoch, replica set from the leader, and liveness', () => {
    seqs.clear();
    const v = new ViewerState('c1');
    v.apply(batch('n1', [{ kind: 'snapshot', t: 1, actor: 'leader', value: 'serving', status: 'active', context: { epoch: 1 } }], { role: 'leader', replicas: ['n1', 'n2'] }), 1000);
    v.apply(batch('n2', [{ kind: 'snapshot', t: 1, actor: 'follower', value: { replica: 'serving' }, status: 'active', context: {} }], {}), 1000);
    const s = v.toJSON(1500);
    expect(s.leader).toBe('n1');
    expect(s.replicas).toEqual(['n1', 'n2']);
    expect(s.nodes.map((n) => [n.id, n.status?.role, n.live])).toEqual([['n1', 'leader', true], ['n2', 'follower', true]]);
    expect(s.nodes[1].actors.follower.state).toBe('replica.serving');
    // No batch for 3 s: gone; a gone leader names no replica set.
    const later = v.toJSON(4500);
    expect(later.nodes.every((n) => !n.live)).toBe(true);
    expect(later.leader).toBeNull();
  });

  it('viewer - per-key states per node, transitions in time order across nodes', () => {
    seqs.clear();
    const v = new ViewerState('c1');
    v.apply(batch('n1', [{ kind: 'entry', t: 10, key: 'k', state: 'invalid', rev: 7 }, { kind: 'entry', t: 12, key: 'k', state: 'valid', rev: 7 }]), 0);
    v.apply(batch('n2', [{ kind: 'entry', t: 11, key: 'k', state: 'invalid', rev: 7 }]), 0);
    const [k] = v.toJSON(0).keys;
    expect(k.nodes).toEqual({ n1: { state: 'valid', rev: 7, t: 12 }, n2: { state: 'invalid', rev: 7, t: 11 } });
    expect(k.history.map((h) => `${h.node} ${h.state} ${h.rev}`)).toEqual(['n1 invalid 7', 'n2 invalid 7', 'n1 valid 7']);
  });

  it('viewer - bounded: most recent keys first, a few transitions each, a window of messages', () => {
    seqs.clear();
    const v = new ViewerState('c1', { keysMax: 3, keyHistoryMax: 2, messagesMax: 5, eventsMax: 2, staleMs: 3000 });
    for (let i = 0; i < 10; i++) v.apply(batch('n1', [{ kind: 'entry', t: i, key: `k${i}`, state: 'valid', rev: i }]), 0);
    v.apply(batch('n1', [1, 2, 3].map((rev) => ({ kind: 'entry' as const, t: 20 + rev, key: 'k7', state: 'valid' as const, rev }))), 0);
    for (let i = 0; i < 9; i++) v.apply(batch('n1', [{ kind: 'message', t: 100 + i, direction: 'in', type: 'forward', peer: 'n2', keys: [`m${i}`], keyCount: 1 }]), 0);
    const s = v.toJSON(0);
    expect(s.keys.map((k) => k.key)).toEqual(['k7', 'k9', 'k8']);
    expect(s.keys[0].history.map((h) => h.rev)).toEqual([2, 3]);
    expect(s.messages).toHaveLength(5);
    expect(s.messages[0].keys).toEqual(['m8']);
  });

  it('viewer - the sender and receiver reports of one message are merged; acks point back', () => {
    seqs.clear();
    const v = new ViewerState('c1');
    // The receiver's batch may come first.
    v.apply(batch('n2', [{ kind: 'message', t: 101, direction: 'in', type: 'invalidate', peer: 'n1', keys: ['k'], keyCount: 1 }]), 0);
    v.apply(batch('n1', [
      { kind: 'message', t: 100, direction: 'out', type: 'invalidate', peer: 'n2', keys: ['k'], keyCount: 1 },
      { kind: 'message', t: 100, direction: 'out', type: 'invalidate', peer: 'n3', keys: ['k'], keyCount: 1 },
      { kind: 'ack', t: 102, peer: 'n2', entries: 1, ms: 1.5, ok: true },
    ]), 0);
    const flows = v.toJSON(0).messages;
    expect(flows.map((m) => [m.type, m.from, m.to, m.sent, m.received])).toEqual([
      ['ack', 'n2', 'n1', false, true],
      ['invalidate', 'n1', 'n2', true, true],
      ['invalidate', 'n1', 'n3', true, false],
    ]);
    expect(flows[0]).toMatchObject({ ok: true, ms: 1.5, entries: 1 });
  });

  it('viewer - repeated events fold into a count; lost batches are counted', () => {
    seqs.clear();
    const v = new ViewerState('c1');
    const ev = (t: number): InspectRecord => ({ kind: 'event', t, actor: 'follower', event: 'lease.granted', from: null });
    v.apply(batch('n2', [ev(1), ev(2), ev(3)]), 0);
    seqs.set('n2', 5);
    v.apply(batch('n2', [{ kind: 'event', t: 4, actor: 'follower', event: 'leader.changed', from: null }]), 0);
    const [n] = v.toJSON(0).nodes;
    expect(n.events.map((e) => [e.event, e.count])).toEqual([['lease.granted', 3], ['leader.changed', 1]]);
    expect(n.lostBatches).toBe(4);
  });

  it('viewer - state values as text; batch shape check', () => {
    expect(stateText('serving')).toBe('serving');
    expect(stateText({ replica: 'serving' })).toBe('replica.serving');
    expect(stateText({ a: 'x', b: { c: 'y' } })).toBe('a.x, b.c.y');
    expect(isInspectBatch({ v: 1, node: 'n1', seq: 1, records: [] })).toBe(true);
    expect(isInspectBatch({ v: 2, node: 'n1', seq: 1, records: [] })).toBe(false);
    expect(isInspectBatch('x')).toBe(false);
  });
});
