// Goal: in a secured cluster (`zistore up --secure`), a client can use the client contract and
// nothing else: it can neither send to nor listen on the nodes' peer subjects, nor touch the
// cluster's znodes. Method: real nats-server with generated users and permissions, real
// ZooKeeper with a digest ACL, real node processes.
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from 'nats';
import { LocalCluster } from '../../cluster/local-cluster.ts';
import { encode } from '../../bus/codec.ts';
import { clusterPaths } from '../../coordination/paths.ts';
import { kv } from '../support/raw-client.ts';

let cluster: LocalCluster;
let client: NatsConnection;
const NAME = 'secured';

beforeAll(async () => {
  cluster = await LocalCluster.start({ nodes: 3, cluster: NAME, sessionTimeoutMs: 2000, secure: true });
  await cluster.waitServing(60_000);
  const { user, password } = cluster.secrets!.client;
  client = await connect({ servers: cluster.natsUrl, user, pass: password, maxReconnectAttempts: -1 });
});

afterAll(async () => {
  await client?.close();
  await cluster?.stop();
});

describe('security', () => {
  it('security - without credentials nothing connects', async () => {
    await expect(connect({ servers: cluster.natsUrl, reconnect: false })).rejects.toMatchObject({ code: 'AUTHORIZATION_VIOLATION' });
  });

  it('security - a client uses the contract but cannot write to peer subjects or read them', async () => {
    const store = kv(client, NAME);
    const put = await store.put('guarded', 'v1', 'n2');
    expect(put.code).toBe(200);
    expect((await store.get('guarded', 'n3')).text).toBe('v1');

    // A forged write to the leader's peer subject: refused by the server, never delivered.
    const leader = (await store.members('n1')).leader!;
    const forged = encode({ type: 'forward', from: 'evil', epoch: 1, commands: [{ key: 'guarded', value: new TextEncoder().encode('forged') }] });
    const errors: string[] = [];
    void (async () => {
      for await (const s of client.status()) if (s.type === 'error') errors.push(String(s.data));
    })();
    await expect(client.request(`zistore.${NAME}.peer.${leader}.forward`, forged, { timeout: 1000 })).rejects.toBeTruthy();
    // Listening on peer traffic is refused too.
    const sub = client.subscribe(`zistore.${NAME}.peer.>`);
    await client.flush().catch(() => undefined);
    await new Promise((r) => setTimeout(r, 300));
    expect(sub.isClosed() || errors.some((e) => /permission/i.test(e))).toBe(true);
    // The process commands of `zistore up` are not for clients either.
    await expect(client.request(`zistore.${NAME}.admin`, new TextEncoder().encode('{"command":"view"}'), { timeout: 1000 })).rejects.toBeTruthy();
    for (const node of ['n1', 'n2', 'n3']) {
      const got = await store.get('guarded', node);
      expect(got.text).toBe('v1');
      expect(got.revision).toBe(put.revision);
    }
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
