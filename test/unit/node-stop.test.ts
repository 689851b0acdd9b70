// Goal: PROTOCOL.md's promise that a request in flight when a node stops gracefully gets 503
// (not begun) or 504 (outcome unknown), never 500. Method: a simulated cluster (memory bus,
// memory ZooKeeper, virtual time); a follower's messages to the leader are lost, so what it
// forwards stays in flight; then the follower stops, which closes its bus (BusClosedError).
import { describe, expect, it } from 'vitest';
import type { ClientReply, ClientRequest } from '../../actors/protocol.ts';
import { SimCluster } from '../sim/cluster.ts';

const encoder = new TextEncoder();
const request = (op: 'get' | 'put', key: string, value = ''): ClientRequest => ({
  op,
  headers: new Map([['Zi-Key', [key]]]),
  data: encoder.encode(value),
});

async function cluster(seed: number) {
  const c = new SimCluster({ seed, nodes: 3 });
  await c.start();
  expect(await c.waitFor(() => c.allServing(), 5_000)).toBe(true);
  const leader = c.leader()!;
  const follower = c.ids.find((id) => id !== leader)!;
  expect((await c.put(leader, 'k', 'v1')).output.status).toBe('ok');
  // The follower's messages to the leader are lost from now on: a forward waits for its reply.
  c.cut(follower, leader, true);
  return { c, leader, follower };
}

describe('a node stopping with requests in flight', () => {
  it('a forwarded write gets 504 and a forwarded read 503 when the bus closes under them, never 500', async () => {
    const { c, follower } = await cluster(11);
    // Past its lease, the follower sends reads to the leader too.
    await c.run(1_500);
    const node = c.node(follower)!;
    const put = node.handleClient(request('put', 'k', 'v2'));
    const get = node.handleClient(request('get', 'k'));
    await c.run(50); // both sent, no reply can come; the node's deadline (4 s) is far away
    await c.settle(c.stop(follower));
    const [putReply, getReply] = await c.settle(Promise.all([put, get]));
    expect(putReply).toMatchObject({ ok: false, code: 504 });
    expect((putReply as ClientReply & { description: string }).description).toMatch(/outcome is unknown/);
    expect(getReply).toMatchObject({ ok: false, code: 503 });
  });

  it('a write accepted just before the stop but not yet sent gets 503: it never began', async () => {
    const { c, follower } = await cluster(12);
    const node = c.node(follower)!;
    // Accepted (the node is not stopping yet), queued to be forwarded with the next batch...
    const put = node.handleClient(request('put', 'k', 'v2'));
    // ...and the stop starts in the same turn, before the batch goes out.
    const stopping = c.stop(follower);
    const reply = await c.settle(put);
    await c.settle(stopping);
    expect(reply).toMatchObject({ ok: false, code: 503 });
    // After the stop, nothing is served either.
    expect(await node.handleClient(request('put', 'k', 'v3'))).toMatchObject({ ok: false, code: 503 });
  });
});
