// Goal: without --secure any NATS client can publish on the peer subjects; what the nodes can check
// without knowing who sent a message, they check. A sync with an epoch ZooKeeper does not record
// (near 2^53, or the next epoch naming another node) is refused and changes nobody's leader; a
// forward or a read carrying what no client could send (a key breaking the key rules, a value over
// 1 MiB) is refused and writes nothing.
// Method: a real 3-node cluster (LocalCluster), a plain NATS client publishing hand-made peer
// messages in the nodes' own encoding on `zistore.<cluster>.peer.<node>.<type>`.
import { afterEach, describe, expect, it } from 'vitest';
import { decode, encode } from '../../bus/codec.ts';
import type { PeerReply } from '../../actors/protocol.ts';
import { startServingCluster, stopServingCluster } from '../support/serving-cluster.ts';

const CLUSTER = 'forged';

afterEach(stopServingCluster);

describe('forged peer messages', () => {
  it('a sync of an epoch nobody claimed is refused; a forward or read breaking the client rules is refused; nothing changes', async () => {
    const { c, store, leader, followers } = await startServingCluster(CLUSTER, { sessionTimeoutMs: 2000 });
    const nc = await c.connectClient();
    try {
      const ask = async (node: string, message: Record<string, unknown>) =>
        decode<PeerReply>((await nc.request(`zistore.${CLUSTER}.peer.${node}.${String(message.type)}`, encode(message), { timeout: 5000 })).data);
      expect((await store.put('k', 'v1', leader)).code).toBe(200);
      const before = await Promise.all([...c.nodes.keys()].map((n) => store.members(n)));
      const epoch = before[0]!.epoch;

      for (const f of followers) {
        expect(await ask(f, { type: 'sync', from: leader, epoch: Number.MAX_SAFE_INTEGER })).toMatchObject({ ok: false, code: 'BAD_MESSAGE' });
      }
      expect(await ask(followers[0]!, { type: 'sync', from: followers[1]!, epoch: epoch + 1 })).toMatchObject({ ok: false, code: 'BAD_MESSAGE' });

      const forward = (key: string, value: Uint8Array | null) => ({ type: 'forward', from: followers[0]!, epoch, commands: [{ key, value }] });
      expect(await ask(leader, forward('k', new Uint8Array(1024 * 1024 + 1)))).toMatchObject({ ok: false, code: 'BAD_MESSAGE' });
      expect(await ask(leader, forward(' k', new TextEncoder().encode('x')))).toMatchObject({ ok: false, code: 'BAD_MESSAGE' });
      expect(await ask(leader, forward('k\u0000', null))).toMatchObject({ ok: false, code: 'BAD_MESSAGE' });
      expect(await ask(leader, { type: 'read', from: followers[0]!, epoch, keys: ['x'.repeat(2000)] })).toMatchObject({ ok: false, code: 'BAD_MESSAGE' });

      // Same leader and epoch everywhere; k as it was; writes go on at every node.
      const after = await Promise.all([...c.nodes.keys()].map((n) => store.members(n)));
      expect(after.map((v) => [v.node, v.leader, v.epoch])).toEqual(before.map((v) => [v.node, v.leader, v.epoch]));
      for (const n of c.nodes.keys()) expect((await store.get('k', n)).text).toBe('v1');
      for (const n of c.nodes.keys()) expect((await store.put('k', `v-${n}`, n)).code).toBe(200);
      for (const n of c.nodes.keys()) expect((await store.get('k', n)).text).toBe(`v-${[...c.nodes.keys()].at(-1)}`);
    } finally {
      await nc.close();
    }
  });
});
