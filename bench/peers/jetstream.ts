// NATS JetStream KV peer: a bucket with 3 replicas (file storage) on a three-server NATS
// cluster with JetStream (cluster/nats-server.ts startNatsCluster), through nats.js
// `js.views.kv`. Each session has its own connection to the server that leads the bucket's
// stream (like ZiStore's client writing to its leader); gets are direct gets
// ($JS.API.DIRECT.GET, answered by any replica without the stream leader) when the server
// supports them (nats-server ≥ 2.9), which the bench checks and reports.
import { connect, KvWatchInclude, type KV, type NatsConnection } from 'nats';
import { startNatsCluster, type NatsClusterHandle } from '../../cluster/nats-server.ts';
import type { WatchedProcess } from '../cpu.ts';
import type { KvPeer, KvSession } from './types.ts';

const BUCKET = 'bench';
const CLUSTER_NAME = 'benchjs';

class JetStreamSession implements KvSession {
  constructor(private readonly kv: KV) {}

  async put(key: string, value: Uint8Array): Promise<void> {
    await this.kv.put(key, value);
  }

  async get(key: string): Promise<Uint8Array | null> {
    const e = await this.kv.get(key);
    return e && e.operation === 'PUT' ? e.value : null;
  }

  async delete(key: string): Promise<void> {
    await this.kv.delete(key);
  }

  /** JetStream KV has no range read: every key of the bucket (keys()), sorted here, then a get of each in range. */
  async scan(startKey: string, count: number): Promise<number> {
    const all: string[] = [];
    for await (const k of await this.kv.keys()) if (k >= startKey) all.push(k);
    const keys = all.sort().slice(0, count);
    const values = await Promise.all(keys.map((k) => this.get(k)));
    return values.filter((v) => v !== null).length;
  }

  /** kv.watch on the subject wildcard `<prefix>>`, updates only (no replay of the current values). */
  async watch(prefix: string, onChange: (key: string) => void): Promise<() => Promise<void>> {
    const changes = await this.kv.watch({ key: `${prefix}>`, include: KvWatchInclude.UpdatesOnly });
    const running = (async () => {
      for await (const e of changes) if (e.operation === 'PUT') onChange(e.key);
    })();
    return async () => {
      changes.stop();
      await running;
    };
  }
}

export async function startJetStreamKv(): Promise<KvPeer> {
  const cluster: NatsClusterHandle = await startNatsCluster({ size: 3, jetstream: true, name: CLUSTER_NAME });
  const connections: NatsConnection[] = [];
  const stop = async () => {
    for (const nc of connections) await nc.close().catch(() => undefined);
    await cluster.stop();
  };
  try {
    const admin = await connect({ servers: cluster.urls, name: 'zistore-bench-js-admin' });
    connections.push(admin);
    const version = admin.info?.version ?? 'unknown';
    await admin.jetstream().views.kv(BUCKET, { replicas: 3, history: 1 });
    const jsm = await admin.jetstreamManager();
    // The bucket's stream leader may take a moment to be elected.
    let leaderName: string | undefined;
    let allowDirect = false;
    const deadline = Date.now() + 20_000;
    while (!leaderName) {
      const info = await jsm.streams.info(`KV_${BUCKET}`);
      leaderName = info.cluster?.leader;
      allowDirect = info.config.allow_direct === true;
      if (!leaderName) {
        if (Date.now() > deadline) throw new Error('JetStream: the KV stream has no leader after 20 s');
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const leader = cluster.servers.find((s) => s.serverName === leaderName);
    if (!leader) throw new Error(`JetStream: stream leader ${leaderName} is not one of our servers`);
    const sessions = new Map<number, JetStreamSession>();
    return {
      id: 'jetstream',
      name: 'JetStream KV',
      description: `nats-server ${version} ×3 (JetStream cluster), KV bucket '${BUCKET}' R3 file storage, nats.js views.kv`,
      durability:
        'file storage, 3 replicas: a put is acknowledged once a majority (2 of 3) has appended it to its Raft log; ' +
        'nats-server writes to the OS page cache and fsyncs every 2 minutes (its default sync interval), not per write',
      routing: `each session connects to the server leading the bucket's stream (${leader.serverName}); gets are ${allowDirect ? 'direct gets (any replica answers)' : 'stream-leader gets (direct get unavailable)'}`,
      async session(writer) {
        let s = sessions.get(writer);
        if (!s) {
          const nc = await connect({ servers: leader.url, name: `zistore-bench-js-${writer}` });
          connections.push(nc);
          s = new JetStreamSession(await nc.jetstream().views.kv(BUCKET, { bindOnly: true }));
          sessions.set(writer, s);
        }
        return s;
      },
      watched: (): WatchedProcess[] => cluster.servers.map((s, i) => ({ name: `js${i + 1}`, pid: s.pid })),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
