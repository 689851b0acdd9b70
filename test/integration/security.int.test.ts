// Goal: in a secured cluster (`zistore up --secure`), a client can use the client contract and
// nothing else: it can neither send to nor listen on the nodes' peer subjects or inboxes, nor read
// another identity's replies, nor touch the cluster's znodes; a node can speak only as itself.
// Method: real nats-server with the generated users and permissions (cluster/security.ts), real
// ZooKeeper with a digest ACL, real node processes; every forgery kind is tried.
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from 'nats';
import { LocalCluster } from '../../cluster/local-cluster.ts';
import { decode, encode } from '../../bus/codec.ts';
import { subjects } from '../../bus/subjects.ts';
import type { PeerReply } from '../../actors/protocol.ts';
import { clusterPaths } from '../../coordination/paths.ts';
import { kv, raw } from '../support/raw-client.ts';
import { expectPublishRefused, expectSubscribeRefused, forgedMessages, serverErrors } from '../support/forgery.ts';

let cluster: LocalCluster;
let client: NatsConnection;
const NAME = 'secured';

beforeAll(async () => {
  cluster = await LocalCluster.start({ nodes: 3, cluster: NAME, sessionTimeoutMs: 2000, access: 'secure' });
  await cluster.waitServing(60_000);
  client = await connect({ servers: cluster.natsUrl, maxReconnectAttempts: -1, ...cluster.clientAuth('client') });
});

afterAll(async () => {
  await client?.close();
  await cluster?.stop();
});

/** Every node's view of (leader, epoch) and its copy of `key`: what a forgery must not change. */
async function snapshot(key: string) {
  const store = kv(client, NAME);
  return Promise.all(
    [...cluster.nodes.keys()].map(async (n) => {
      const view = await store.members(n);
      const got = await store.get(key, n);
      return { node: n, leader: view.leader, epoch: view.epoch, value: got.text, revision: got.revision };
    }),
  );
}

describe('security', () => {
  it('security - without credentials nothing connects', async () => {
    await expect(connect({ servers: cluster.natsUrl, reconnect: false })).rejects.toMatchObject({ code: 'AUTHORIZATION_VIOLATION' });
  });

  it('security - a client uses the contract; every peer message kind it forges, and every listen on peer traffic or others\' replies, is refused', async () => {
    const store = kv(client, NAME);
    const put = await store.put('guarded', 'v1', 'n2');
    expect(put.code).toBe(200);
    expect((await store.get('guarded', 'n3')).text).toBe('v1');
    const before = await snapshot('guarded');
    const { leader, epoch } = before[0]!;
    const errors = serverErrors(client);
    for (const to of cluster.nodes.keys()) {
      for (const message of forgedMessages(leader!, epoch, 'guarded')) {
        await expectPublishRefused(client, errors, subjects.peer(NAME, to, leader!, String(message.type)), message);
      }
    }
    await expectSubscribeRefused(client, errors, `zistore.${NAME}.peer.>`);
    await expectSubscribeRefused(client, errors, `${subjects.nodeInbox(NAME, leader!)}.>`);
    // Another identity's replies (and the catch-all inbox) are not this client's to read.
    await expectSubscribeRefused(client, errors, '_INBOX.>');
    await expectSubscribeRefused(client, errors, `${cluster.clientAuth('reader').inboxPrefix}.>`);
    // Nor may it speak as a node's change feed.
    await expectPublishRefused(client, errors, subjects.changes(NAME, leader!), { revision: 1, events: [], more: false });
    // Nor are the process commands of `zistore up`.
    await expectPublishRefused(client, errors, subjects.admin(NAME), { command: 'view' });
    expect(await snapshot('guarded')).toEqual(before);
    expect((await store.put('guarded', 'v2', 'n1')).code).toBe(200);
  });

  it('security - a node identity cannot speak as another node, nor listen on its subjects or inbox', async () => {
    const store = kv(client, NAME);
    expect((await store.put('spoken', 'real', 'n1')).code).toBe(200);
    const before = await snapshot('spoken');
    const { leader, epoch } = before[0]!;
    const rogue = [...cluster.nodes.keys()].find((n) => n !== leader)!;
    const victim = [...cluster.nodes.keys()].find((n) => n !== leader && n !== rogue)!;
    const { user, password } = cluster.secrets!.nodes[rogue]!;
    const nc = await connect({ servers: cluster.natsUrl, user, pass: password, inboxPrefix: subjects.nodeInbox(NAME, rogue), reconnect: false });
    try {
      const errors = serverErrors(nc);
      // In the leader's name on the subject: the server refuses to carry it.
      for (const message of forgedMessages(leader!, epoch, 'spoken')) {
        await expectPublishRefused(nc, errors, subjects.peer(NAME, victim, leader!, String(message.type)), message);
      }
      // In its own name on the subject but the leader's in the body: the victim refuses it.
      const [invalidate] = forgedMessages(leader!, epoch, 'spoken');
      const reply = decode<PeerReply>((await nc.request(subjects.peer(NAME, victim, rogue, 'invalidate'), encode(invalidate), { timeout: 5000 })).data);
      expect(reply).toMatchObject({ ok: false, code: 'BAD_MESSAGE' });
      expect((reply as { reason: string }).reason).toContain(`sent by ${rogue} in the name of "${leader}"`);
      await expectPublishRefused(nc, errors, subjects.changes(NAME, victim), { revision: 1, events: [], more: false });
      await expectSubscribeRefused(nc, errors, subjects.peerAll(NAME, victim));
      await expectSubscribeRefused(nc, errors, `${subjects.nodeInbox(NAME, leader!)}.>`);
    } finally {
      await nc.close();
    }
    expect(await snapshot('spoken')).toEqual(before);
  });

  it('security - the read-only identity reads but cannot write', async () => {
    const store = kv(client, NAME);
    expect((await store.put('ro', 'v', 'n1')).code).toBe(200);
    const reader = await connect({ servers: cluster.natsUrl, reconnect: false, ...cluster.clientAuth('reader') });
    try {
      const errors = serverErrors(reader);
      const readOnly = kv(reader, NAME);
      expect((await readOnly.get('ro', 'n2')).text).toBe('v');
      expect((await readOnly.members('n3')).leader).toBeTruthy();
      const listing = await raw(reader, subjects.nodeClient(NAME, 'n3', 'scan'), { headers: [['Zi-Prefix', 'ro']], timeoutMs: 3000 });
      expect(JSON.parse(listing.text).entries).toEqual([{ key: 'ro', revision: expect.any(Number) }]);
      const changes = await raw(reader, subjects.client(NAME, 'watch'), { headers: [['Zi-Key', 'ro'], ['Zi-After-Revision', '0']], timeoutMs: 3000 });
      expect(JSON.parse(changes.text).events).toEqual([{ kind: 'put', key: 'ro', revision: expect.any(Number), value: Buffer.from('v').toString('base64') }]);
      // The change feed (PROTOCOL.md "Watch", "Push"): a write of the client's arrives with the
      // revisions it lies between.
      const feed = reader.subscribe(subjects.changes(NAME, 'n2'));
      await reader.flush();
      const put = await store.put('ro/pushed', 'p', 'n1');
      expect(put.code).toBe(200);
      let pushed: unknown = null;
      for await (const m of feed) {
        const body = JSON.parse(Buffer.from(m.data).toString()) as { revision: number; events: { key: string; revision: number; value?: string }[] };
        expect(Number(m.headers?.get('Zi-Revision'))).toBe(body.revision);
        expect(Number(m.headers?.get('Zi-After-Revision'))).toBeLessThan(body.revision);
        pushed = body.events.find((e) => e.key === 'ro/pushed') ?? null;
        if (pushed !== null) break;
      }
      expect(pushed).toEqual({ kind: 'put', key: 'ro/pushed', revision: put.revision, value: Buffer.from('p').toString('base64') });
      await expectPublishRefused(reader, errors, subjects.client(NAME, 'put'), 'x');
      await expectPublishRefused(reader, errors, subjects.nodeClient(NAME, 'n1', 'delete'), '');
      await expectPublishRefused(reader, errors, subjects.client(NAME, 'txn'), '{"ops":[{"op":"delete","key":"ro"}]}');
    } finally {
      await reader.close();
    }
    expect((await store.get('ro', 'n1')).text).toBe('v');
  });

  it('security - ZooKeeper znodes of the cluster refuse a client without the digest', async () => {
    const zk = createRequire(import.meta.url)('node-zookeeper-client') as {
      createClient(cs: string, o: object): {
        connect(): void;
        close(): void;
        once(e: 'connected', cb: () => void): void;
        setData(p: string, d: Buffer, v: number, cb: (err: { code: number } | null) => void): void;
      };
      Exception: { NO_AUTH: number };
    };
    const raw = zk.createClient(cluster.zkConnectString, { sessionTimeout: 2000, retries: 0 });
    const ready = new Promise<void>((r) => raw.once('connected', r));
    raw.connect();
    await ready;
    const code = await new Promise<number>((r) => raw.setData(clusterPaths(NAME).epoch, Buffer.from('{"epoch":999}'), -1, (err) => r(err ? err.code : 0)));
    raw.close();
    expect(code).toBe(zk.Exception.NO_AUTH);
    expect((await kv(client, NAME).members('n1')).epoch).toBeLessThan(999);
  });
});
