// Goal: the node's Prometheus registry counts what the observer hooks report and samples the
// node's status on scrape. Method: feed observer calls by hand and read the text exposition.
import { describe, expect, it } from 'vitest';
import { NodeMetrics, type NodeStatus } from '../../observe/metrics.ts';

const status = (over: Partial<NodeStatus> = {}): NodeStatus => ({
  node: 'n1',
  session: 'connected',
  epoch: 3,
  leader: 'n1',
  role: 'leader',
  state: 'serving',
  keys: 7,
  bytes: 1234,
  writesInFlight: 2,
  replicas: ['n1', 'n2', 'n3'],
  watch: { changes: 40, floor: 5, stable: 45, waiting: 3 },
  ...over,
});

/** The value of one sample line, by metric name and its labels (node and cluster implied). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = { node: 'n1', cluster: 'c1', ...labels };
  for (const line of text.split('\n')) {
    const m = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.keys(want).length !== Object.keys(have).length) continue;
    if (Object.entries(want).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

describe('observe metrics', () => {
  it('metrics - counts requests by op and code, with latency histograms by op', async () => {
    const m = new NodeMetrics({ nodeId: 'n1', cluster: 'c1' });
    const o = m.observer;
    o.request!('put', 200, 3);
    o.request!('put', 200, 40);
    o.request!('put', 409, 1);
    o.request!('get', 404, 0.2);
    const text = await m.text();
    expect(sample(text, 'zistore_requests_total', { op: 'put', code: '200' })).toBe(2);
    expect(sample(text, 'zistore_requests_total', { op: 'put', code: '409' })).toBe(1);
    expect(sample(text, 'zistore_requests_total', { op: 'get', code: '404' })).toBe(1);
    expect(sample(text, 'zistore_request_duration_seconds_count', { op: 'put' })).toBe(3);
    expect(sample(text, 'zistore_request_duration_seconds_sum', { op: 'put' })).toBeCloseTo(0.044, 6);
    expect(sample(text, 'zistore_request_duration_seconds_bucket', { op: 'put', le: '0.005' })).toBe(2);
    expect(sample(text, 'zistore_request_duration_seconds_bucket', { op: 'put', le: '0.05' })).toBe(3);
    expect(sample(text, 'zistore_request_duration_seconds_bucket', { op: 'get', le: '0.0005' })).toBe(1);
  });

  it('metrics - replication round trips by peer and outcome, peer messages and entry changes', async () => {
    const m = new NodeMetrics({ nodeId: 'n1', cluster: 'c1' });
    const o = m.observer;
    o.replication!('n2', 4, 0.8, true);
    o.replication!('n2', 1, 1.5, true);
    o.replication!('n3', 2, 300, false);
    o.message!('out', 'invalidate', 'n2', ['a']);
    o.message!('in', 'forward', 'n2', ['a', 'b']);
    o.message!('out', 'invalidate', 'n3', ['a']);
    o.entry!('a', 'invalid', 5);
    o.entry!('a', 'valid', 5);
    const text = await m.text();
    expect(sample(text, 'zistore_replication_round_trip_seconds_count', { peer: 'n2', outcome: 'ok' })).toBe(2);
    expect(sample(text, 'zistore_replication_round_trip_seconds_bucket', { peer: 'n2', outcome: 'ok', le: '0.001' })).toBe(1);
    expect(sample(text, 'zistore_replication_round_trip_seconds_count', { peer: 'n3', outcome: 'failed' })).toBe(1);
    expect(sample(text, 'zistore_replication_entries_total', { peer: 'n2' })).toBe(5);
    expect(sample(text, 'zistore_replication_entries_total', { peer: 'n3' })).toBeUndefined();
    expect(sample(text, 'zistore_peer_messages_total', { direction: 'out', type: 'invalidate' })).toBe(2);
    expect(sample(text, 'zistore_peer_messages_total', { direction: 'in', type: 'forward' })).toBe(1);
    expect(sample(text, 'zistore_entry_changes_total', { state: 'invalid' })).toBe(1);
    expect(sample(text, 'zistore_entry_changes_total', { state: 'valid' })).toBe(1);
  });

  it('metrics - resync progress per peer', async () => {
    const m = new NodeMetrics({ nodeId: 'n1', cluster: 'c1' });
    m.observer.resync!('n3', 8192, false);
    let text = await m.text();
    expect(sample(text, 'zistore_resync_entries_sent', { peer: 'n3' })).toBe(8192);
    expect(sample(text, 'zistore_resync_in_progress', { peer: 'n3' })).toBe(1);
    m.observer.resync!('n3', 10_000, true);
    text = await m.text();
    expect(sample(text, 'zistore_resync_entries_sent', { peer: 'n3' })).toBe(10_000);
    expect(sample(text, 'zistore_resync_in_progress', { peer: 'n3' })).toBe(0);
    expect(sample(text, 'zistore_resyncs_completed_total', { peer: 'n3' })).toBe(1);
  });

  it('metrics - node state gauges are sampled from status() on every scrape', async () => {
    const m = new NodeMetrics({ nodeId: 'n1', cluster: 'c1' });
    let current = status();
    m.attach(() => current, { stats: () => ({ batches: 9, events: 90, dropped: 4 }) });
    let text = await m.text();
    expect(sample(text, 'zistore_keys')).toBe(7);
    expect(sample(text, 'zistore_value_bytes')).toBe(1234);
    expect([sample(text, 'zistore_watch_changes'), sample(text, 'zistore_watch_history_floor'), sample(text, 'zistore_watch_stable_revision'), sample(text, 'zistore_watch_waiting')]).toEqual([40, 5, 45, 3]);
    expect(sample(text, 'zistore_epoch')).toBe(3);
    expect(sample(text, 'zistore_writes_in_flight')).toBe(2);
    expect(sample(text, 'zistore_replica_set_size')).toBe(3);
    expect(sample(text, 'zistore_role', { role: 'leader' })).toBe(1);
    expect(sample(text, 'zistore_role', { role: 'follower' })).toBe(0);
    expect(sample(text, 'zistore_member_state', { state: 'serving' })).toBe(1);
    expect(sample(text, 'zistore_session_state', { state: 'connected' })).toBe(1);
    expect(sample(text, 'zistore_session_state', { state: 'suspended' })).toBe(0);
    expect(sample(text, 'zistore_inspector_events_dropped')).toBe(4);

    current = status({ role: 'follower', state: 'syncing', session: 'suspended', epoch: 4, keys: 8, replicas: null, writesInFlight: 0 });
    text = await m.text();
    expect(sample(text, 'zistore_keys')).toBe(8);
    expect(sample(text, 'zistore_epoch')).toBe(4);
    expect(sample(text, 'zistore_role', { role: 'leader' })).toBe(0);
    expect(sample(text, 'zistore_role', { role: 'follower' })).toBe(1);
    expect(sample(text, 'zistore_member_state', { state: 'syncing' })).toBe(1);
    expect(sample(text, 'zistore_member_state', { state: 'serving' })).toBe(0);
    expect(sample(text, 'zistore_session_state', { state: 'suspended' })).toBe(1);
    expect(sample(text, 'zistore_replica_set_size')).toBe(0);
  });

  it('metrics - each node has its own registry, labelled with node and cluster', async () => {
    const a = new NodeMetrics({ nodeId: 'n1', cluster: 'c1' });
    const b = new NodeMetrics({ nodeId: 'n2', cluster: 'c1' });
    a.observer.request!('get', 200, 1);
    const textB = await b.text();
    expect(textB).toContain('node="n2"');
    expect(textB).not.toContain('zistore_requests_total{');
    expect(sample(await a.text(), 'zistore_requests_total', { op: 'get', code: '200' })).toBe(1);
    expect(a.registry.contentType).toContain('text/plain');
  });
});
