// ZooKeeper as a key-value store: one znode per key under /bench, written with setData (create
// when it does not exist yet) and read with getData, through node-zookeeper-client (the client
// ZiStore itself uses). Its own servers (the one ZiStore coordinates through stays out of the
// comparison), forceSync=yes like ZiStore's: a standalone server (the peers of every run), or a
// 3-server ensemble (the durable scenario). ZooKeeper reads are served by the server the client
// is connected to without a quorum round (sequentially consistent, not linearizable unless
// preceded by sync); with one server that is the only copy anyway.
import { createRequire } from 'node:module';
import { startZooKeeperEnsemble, type ZooKeeperEnsembleHandle } from '../../cluster/zookeeper-ensemble.ts';
import { startZooKeeper, type ZooKeeperHandle } from '../../cluster/zookeeper-server.ts';
import type { WatchedProcess } from '../cpu.ts';
import type { KvPeer, KvSession } from './types.ts';

// The part of node-zookeeper-client used here (it ships no types).
interface ZkError extends Error {
  code: number;
}
type Callback<A extends unknown[]> = (error: ZkError | null | undefined, ...results: A) => void;
interface ZkClient {
  connect(): void;
  close(): void;
  once(event: 'connected', listener: () => void): void;
  create(path: string, data: Buffer | null, mode: number, callback: Callback<[string]>): void;
  remove(path: string, version: number, callback: Callback<[]>): void;
  getData(path: string, callback: Callback<[Buffer | undefined]>): void;
  getChildren(path: string, callback: Callback<[string[]]>): void;
  setData(path: string, data: Buffer, version: number, callback: Callback<[unknown]>): void;
  transaction(): ZkTransaction;
}
interface ZkTransaction {
  check(path: string, version: number): ZkTransaction;
  setData(path: string, data: Buffer, version: number): ZkTransaction;
  commit(callback: Callback<[unknown]>): void;
}
interface ZkModule {
  createClient(connectString: string, options: { sessionTimeout: number; spinDelay: number; retries: number }): ZkClient;
  Exception: Record<'NO_NODE' | 'NODE_EXISTS', number>;
  CreateMode: Record<'PERSISTENT', number>;
}
const zk = createRequire(import.meta.url)('node-zookeeper-client') as ZkModule;
const ROOT = '/bench';

const asBuffer = (v: Uint8Array) => (Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength));

function call<A extends unknown[]>(start: (cb: Callback<A>) => void): Promise<A> {
  return new Promise((resolve, reject) => start((err, ...results) => (err ? reject(err) : resolve(results))));
}

class ZkSession implements KvSession {
  constructor(private readonly client: ZkClient) {}

  async put(key: string, value: Uint8Array): Promise<void> {
    const path = `${ROOT}/${key}`;
    const data = asBuffer(value);
    try {
      await call<[unknown]>((cb) => this.client.setData(path, data, -1, cb));
    } catch (err) {
      if ((err as ZkError).code !== zk.Exception.NO_NODE) throw err;
      try {
        await call<[string]>((cb) => this.client.create(path, data, zk.CreateMode.PERSISTENT, cb));
      } catch (err2) {
        if ((err2 as ZkError).code !== zk.Exception.NODE_EXISTS) throw err2;
        await call<[unknown]>((cb) => this.client.setData(path, data, -1, cb));
      }
    }
  }

  async get(key: string): Promise<Uint8Array | null> {
    try {
      const [data] = await call<[Buffer | undefined]>((cb) => this.client.getData(`${ROOT}/${key}`, cb));
      return data ?? new Uint8Array(0);
    } catch (err) {
      if ((err as ZkError).code === zk.Exception.NO_NODE) return null;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await call<[]>((cb) => this.client.remove(`${ROOT}/${key}`, -1, cb));
    } catch (err) {
      if ((err as ZkError).code !== zk.Exception.NO_NODE) throw err;
    }
  }

  /** A multi: the guard's version checked (it is never set after it is created), then setData of each key (loaded before). */
  async txn(guard: string, keys: string[], value: Uint8Array): Promise<void> {
    let multi = this.client.transaction().check(`${ROOT}/${guard}`, 0);
    for (const key of keys) multi = multi.setData(`${ROOT}/${key}`, asBuffer(value), -1);
    await call<[unknown]>((cb) => multi.commit(cb));
  }

  /** ZooKeeper has no range read: every child's name, sorted here, then getData of each in range. */
  async scan(startKey: string, count: number): Promise<number> {
    const [children] = await call<[string[]]>((cb) => this.client.getChildren(ROOT, cb));
    const keys = children.filter((k) => k >= startKey).sort().slice(0, count);
    const values = await Promise.all(keys.map((k) => this.get(k)));
    return values.filter((v) => v !== null).length;
  }
}

async function connectClient(connectString: string): Promise<ZkClient> {
  const client = zk.createClient(connectString, { sessionTimeout: 10_000, spinDelay: 100, retries: 0 });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ZooKeeper ${connectString}: not connected within 15 s`)), 15_000);
    client.once('connected', () => {
      clearTimeout(timer);
      resolve();
    });
    client.connect();
  });
  return client;
}

/** The servers a ZooKeeper peer runs on, and the one its sessions connect to. */
interface ZkServers {
  /** Where every session connects (one server: the load stays on it, as a client's would). */
  connectString: string;
  fourLetterWord(command: string): Promise<string>;
  watched(): WatchedProcess[];
  stop(): Promise<void>;
}

/** The KvPeer on running servers; `about` describes it once the version is known. Stops the servers if it fails. */
async function zooKeeperKv(servers: ZkServers, about: (version: string) => Pick<KvPeer, 'name' | 'description' | 'durability' | 'routing'>): Promise<KvPeer> {
  const clients: ZkClient[] = [];
  const stop = async () => {
    for (const c of clients) c.close();
    await servers.stop();
  };
  try {
    let version = 'unknown';
    try {
      const srvr = await servers.fourLetterWord('srvr');
      version = /Zookeeper version:\s*([^,\n]+)/i.exec(srvr)?.[1]?.replace(/-\$\{[^}]*\}/, '').trim() ?? 'unknown';
    } catch {
      /* stays unknown */
    }
    const first = await connectClient(servers.connectString);
    clients.push(first);
    try {
      await call<[string]>((cb) => first.create(ROOT, null, zk.CreateMode.PERSISTENT, cb));
    } catch (err) {
      if ((err as ZkError).code !== zk.Exception.NODE_EXISTS) throw err;
    }
    const sessions = new Map<number, ZkSession>([[0, new ZkSession(first)]]);
    return {
      id: 'zookeeper',
      ...about(version),
      async session(writer) {
        let s = sessions.get(writer);
        if (!s) {
          const client = await connectClient(servers.connectString);
          clients.push(client);
          s = new ZkSession(client);
          sessions.set(writer, s);
        }
        return s;
      },
      watched: () => servers.watched(),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

export async function startZooKeeperKv(): Promise<KvPeer> {
  const server: ZooKeeperHandle = await startZooKeeper({ forceSync: true, serverLogLevel: 'warn' });
  const servers: ZkServers = {
    connectString: server.connectString,
    fourLetterWord: (command) => server.fourLetterWord(command),
    watched: () => [{ name: 'zk-kv', pid: server.pid }],
    stop: () => server.stop(),
  };
  return zooKeeperKv(servers, (version) => ({
    name: 'ZooKeeper',
    description: `ZooKeeper ${version}, standalone server (its own, not ZiStore's), znodes under ${ROOT}`,
    durability: 'standalone server, forceSync=yes: the transaction log is fsynced before a write is acknowledged (concurrent writes share an fsync)',
    routing: 'setData (create when missing) / getData on the one server; reads are local to the server (no quorum round)',
  }));
}

/**
 * ZooKeeper as a replicated KV store (the durable scenario): a 3-server ensemble
 * (cluster/zookeeper-ensemble.ts, ZooKeeper's default forceSync=yes). Every session connects to
 * the ensemble's leader server, as a client pinned to one server would (the leader spares writes
 * the forward from a follower; etcd and JetStream are also spoken to at their leader); reads are
 * answered by that server from its copy.
 */
export async function startZooKeeperEnsembleKv(): Promise<KvPeer> {
  const ensemble: ZooKeeperEnsembleHandle = await startZooKeeperEnsemble({ size: 3, serverLogLevel: 'warn' });
  const server = await ensemble.leader().catch(() => null);
  if (!server) {
    await ensemble.stop();
    throw new Error('the ZooKeeper ensemble has no leader after it settled');
  }
  const servers: ZkServers = {
    connectString: server.address,
    fourLetterWord: (command) => server.fourLetterWord(command),
    watched: () => ensemble.servers.map((s) => ({ name: `zk-ens${s.id}`, pid: s.pid })),
    stop: () => ensemble.stop(),
  };
  return zooKeeperKv(servers, (version) => ({
    name: 'ZooKeeper ×3',
    description: `ZooKeeper ${version}, 3-server ensemble (its own, not ZiStore's), znodes under ${ROOT}`,
    durability:
      '3 servers, forceSync=yes (ZooKeeper\'s default): the leader commits a write once a majority (2 of 3) has fsynced it to its ' +
      'transaction log (concurrent writes share an fsync)',
    routing: `every session connects to the ensemble's leader server (server ${server.id}); setData (create when missing) / getData; reads answered by that server without a quorum round`,
  }));
}
