// Goal: with credentials, a cluster's znodes belong to it alone. Method: a real ZooKeeper, a
// coordinator with digest credentials, and an outside client without them trying to read,
// change, create and delete under /zistore/<cluster>.
import { createRequire } from 'node:module';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Coordinator } from '../../actors/ports.ts';
import { startZooKeeper, type ZooKeeperHandle } from '../../cluster/zookeeper-server.ts';
import { clusterPaths } from '../../coordination/paths.ts';
import { createZkCoordinator } from '../../coordination/zk-coordinator.ts';

interface RawClient {
  connect(): void;
  close(): void;
  once(event: 'connected', cb: () => void): void;
  addAuthInfo(scheme: string, auth: Buffer): void;
  getData(path: string, cb: (err: { code: number } | null) => void): void;
  setData(path: string, data: Buffer, version: number, cb: (err: { code: number } | null) => void): void;
  create(path: string, data: Buffer, mode: number, cb: (err: { code: number } | null) => void): void;
  remove(path: string, version: number, cb: (err: { code: number } | null) => void): void;
}
const zkLib = createRequire(import.meta.url)('node-zookeeper-client') as {
  createClient(cs: string, o: object): RawClient;
  Exception: { NO_AUTH: number };
  CreateMode: { EPHEMERAL: number };
};

let zk: ZooKeeperHandle;
let coordinator: Coordinator;
const cluster = 'secured';
const paths = clusterPaths(cluster);

beforeAll(async () => {
  zk = await startZooKeeper({ tickTimeMs: 200, forceSync: false });
  coordinator = createZkCoordinator({
    connectString: zk.connectString,
    cluster,
    nodeId: 'n1',
    sessionTimeoutMs: 2000,
    auth: { user: 'zistore', password: 's3cret' },
    log: pino({ level: 'silent' }),
  });
  const connected = new Promise<void>((resolve) => coordinator.start((e) => e.type === 'coord.session' && e.state === 'connected' && resolve()));
  await connected;
}, 60_000);

afterAll(async () => {
  await coordinator?.stop();
  await zk?.stop();
});

async function outsider(auth?: string): Promise<RawClient> {
  const client = zkLib.createClient(zk.connectString, { sessionTimeout: 2000, retries: 0 });
  if (auth) client.addAuthInfo('digest', Buffer.from(auth));
  const ready = new Promise<void>((resolve) => client.once('connected', resolve));
  client.connect();
  await ready;
  return client;
}

const attempt = (run: (cb: (err: { code: number } | null) => void) => void) =>
  new Promise<number>((resolve) => run((err) => resolve(err ? err.code : 0)));

describe('zookeeper acl', () => {
  it('zk acl - the group works with its credentials', async () => {
    const claim = await coordinator.claimEpoch();
    expect(claim.epoch).toBe(1);
    await coordinator.writeReplicas(['n1'], claim);
    expect((await coordinator.readReplicas()).ids).toEqual(['n1']);
  });

  it('zk acl - a client without the credentials can neither read nor change the group', async () => {
    for (const client of [await outsider(), await outsider('zistore:wrong')]) {
      const NO_AUTH = zkLib.Exception.NO_AUTH;
      expect(await attempt((cb) => client.getData(paths.epoch, cb))).toBe(NO_AUTH);
      expect(await attempt((cb) => client.setData(paths.epoch, Buffer.from('{"epoch":99}'), -1, cb))).toBe(NO_AUTH);
      expect(await attempt((cb) => client.setData(paths.replicas, Buffer.from('{"ids":[]}'), -1, cb))).toBe(NO_AUTH);
      expect(await attempt((cb) => client.create(`${paths.election}/n_0000000000`, Buffer.from('evil'), zkLib.CreateMode.EPHEMERAL, cb))).toBe(NO_AUTH);
      expect(await attempt((cb) => client.remove(paths.epoch, -1, cb))).toBe(NO_AUTH);
      client.close();
    }
    // Still intact for the group.
    expect((await coordinator.claimEpoch()).epoch).toBe(2);
    expect((await coordinator.readReplicas()).ids).toEqual(['n1']);
  });
});
