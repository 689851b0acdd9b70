// Goal: on a nats-server without authorization (a bare server, `zistore node` deployed without
// credentials) any NATS client can publish on the peer subjects; what the nodes can check without
// knowing who sent a message, they check. A sync with an epoch ZooKeeper does not record
// (near 2^53, or the next epoch naming another node) is refused and changes nobody's leader; a
// forward or a read carrying what no client could send (a key breaking the key rules, a value over
// 1 MiB) is refused and writes nothing.
// And on the server `zistore up` runs open (loopback, no credentials needed), a client cannot send
// any peer message at all: every kind, in any node's name, is refused by the server.
// Method: a real 3-node cluster (LocalCluster), a plain NATS client publishing hand-made peer
// messages in the nodes' own encoding on `zistore.<cluster>.peer.<to>.<from>.<type>`.
import { afterEach, describe, expect, it } from 'vitest';
import { connect } from 'nats';
import { kv } from '../support/raw-client.ts';
import { decode, encode } from '../../bus/codec.ts';
import type { PeerReply } from '../../actors/protocol.ts';
import { subjects } from '../../bus/subjects.ts';
import { expectPublishRefused, expectSubscribeRefused, forgedMessages, serverErrors } from '../support/forgery.ts';
import { startServingCluster, stopServingCluster } from '../support/serving-cluster.ts';

const CLUSTER = 'forged';

afterEach(stopServingCluster);

describe('forged peer messages', () => {
  it('a sync of an epoch nobody claimed is refused; a forward or read breaking the client rules is refused; nothing changes', async () => {
    const { c, store, leader, followers } = await startServingCluster(CLUSTER, { sessionTimeoutMs: 2000, access: 'none' });
    const nc = await c.connectClient();
    try {
      const ask = async (node: string, message: Record<string, unknown>) =>
        decode<PeerReply>((await nc.request(subjects.peer(CLUSTER, node, String(message.from), String(message.type)), encode(message), { timeout: 5000 })).data);
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

  it('open (the `zistore up` default): a client without credentials uses the contract, but every peer message kind it forges is refused by the server and nothing changes', async () => {
    const { c, store, leader, followers } = await startServingCluster(CLUSTER, { sessionTimeoutMs: 2000 });
    // What an outside client of `zistore up` has: the URL, no credentials.
    const nc = await connect({ servers: c.natsUrl, reconnect: false });
    try {
      const anonymous = kv(nc, CLUSTER);
      expect((await anonymous.put('k', 'v1', followers[0])).code).toBe(200);
      const before = await Promise.all([...c.nodes.keys()].map(async (n) => [(await store.members(n)).epoch, (await store.members(n)).leader, (await store.get('k', n)).revision]));
      const epoch = (await store.members(leader)).epoch;
      const errors = serverErrors(nc);
      for (const to of c.nodes.keys()) {
        for (const from of c.nodes.keys()) {
          if (from === to) continue;
          for (const message of forgedMessages(from, epoch, 'k')) await expectPublishRefused(nc, errors, subjects.peer(CLUSTER, to, from, String(message.type)), message);
        }
      }
      // Listening as a node (to answer in its place) is refused too.
      // Nor can it speak as a node's change feed (watchers would take its events).
      await expectPublishRefused(nc, errors, subjects.changes(CLUSTER, leader), { revision: 1, events: [], more: false });
      await expectSubscribeRefused(nc, errors, subjects.peerAll(CLUSTER, leader));
      await expectSubscribeRefused(nc, errors, subjects.client(CLUSTER, 'get'));
      await expectSubscribeRefused(nc, errors, `${subjects.nodeInbox(CLUSTER, leader)}.>`);
      const after = await Promise.all([...c.nodes.keys()].map(async (n) => [(await store.members(n)).epoch, (await store.members(n)).leader, (await store.get('k', n)).revision]));
      expect(after).toEqual(before);
      for (const n of c.nodes.keys()) expect((await anonymous.get('k', n)).text).toBe('v1');
      expect((await anonymous.put('k', 'v2', leader)).code).toBe(200);
    } finally {
      await nc.close();
    }
  });
});
