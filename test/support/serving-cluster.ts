// A LocalCluster serving, a client connection and its leader, for integration tests that inject
// faults into a 3-node cluster; one per test, stopped by stopServingCluster() in afterEach.
import type { NatsConnection } from 'nats';
import { LocalCluster, type LocalClusterOptions } from '../../cluster/local-cluster.ts';
import { kv } from './raw-client.ts';

let cluster: LocalCluster | null = null;
let nc: NatsConnection | null = null;

export async function startServingCluster(name: string, options: { nodes?: number; sessionTimeoutMs: number; access?: LocalClusterOptions['access']; nodeArgs?: string[]; durable?: LocalClusterOptions['durable'] }) {
  cluster = await LocalCluster.start({ nodes: options.nodes ?? 3, cluster: name, sessionTimeoutMs: options.sessionTimeoutMs, access: options.access, nodeArgs: options.nodeArgs, durable: options.durable });
  await cluster.waitServing(60_000);
  nc = await cluster.connectClient();
  const store = kv(nc, name);
  const leader = (await store.members('n1')).leader!;
  return { c: cluster, nc, store, leader, followers: [...cluster.nodes.keys()].filter((n) => n !== leader) };
}

export async function stopServingCluster(): Promise<void> {
  await nc?.close();
  nc = null;
  await cluster?.stop();
  cluster = null;
}

/** Until a put through any of `nodes` is acknowledged; returns when. */
export async function firstAckedPut(store: ReturnType<typeof kv>, nodes: string[], key: string, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (let i = 0; performance.now() < deadline; i++) {
    const r = await store.raw('put', { headers: [['Zi-Key', key]], data: `probe-${i}`, timeoutMs: 1000 }, nodes[i % nodes.length]).catch(() => null);
    if (r?.code === 200) return performance.now();
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no put acknowledged within ${timeoutMs} ms`);
}
