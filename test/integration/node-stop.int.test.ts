// Goal: PROTOCOL.md's "a request in flight when a node stops gracefully gets 503 (not begun) or
// 504 (outcome unknown), never 500", on real processes. Method: three nodes; the leader is
// frozen (SIGSTOP) so a write forwarded by a follower waits for its reply; the follower gets
// SIGTERM, which closes its NATS connection under the waiting forward. The unit test
// test/unit/node-stop.test.ts covers the same paths on the memory bus, reads included.
import { afterEach, describe, expect, it } from 'vitest';
import type { NatsConnection } from 'nats';
import { LocalCluster } from '../../cluster/local-cluster.ts';
import { kv } from '../support/raw-client.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let cluster: LocalCluster | null = null;
let nc: NatsConnection | null = null;
let frozen: string | null = null;

afterEach(async () => {
  if (frozen !== null) await cluster?.resume(frozen);
  frozen = null;
  await nc?.close();
  nc = null;
  await cluster?.stop();
  cluster = null;
});

describe('node stop with a request in flight', () => {
  it('a write forwarded to a frozen leader gets 504 when its follower stops, not 500', async () => {
    cluster = await LocalCluster.start({ nodes: 3, cluster: 'stop-inflight', sessionTimeoutMs: 2000 });
    await cluster.waitServing(60_000);
    nc = await cluster.connectClient();
    const store = kv(nc, 'stop-inflight');
    const leader = (await store.members('n1')).leader!;
    const follower = [...cluster.nodes.keys()].find((id) => id !== leader)!;
    expect((await store.put('k', 'v1', follower)).code).toBe(200);

    await cluster.pause(leader);
    frozen = leader;
    // The node answers within its 4 s operation timeout; the client waits longer.
    const put = store.raw('put', { headers: [['Zi-Key', 'k']], data: 'v2', timeoutMs: 8000 }, follower);
    await sleep(300); // forwarded, waiting for the frozen leader
    const stoppedAt = performance.now();
    await cluster.stopNode(follower);
    const reply = await put;
    // Well before the node's own deadline: the answer came from the stop, not the timeout.
    expect(performance.now() - stoppedAt).toBeLessThan(3000);
    expect(reply.code, reply.description).toBe(504);
    expect(reply.description).toMatch(/outcome is unknown/);
  });
});
