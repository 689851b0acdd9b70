// Goal: the deployment of docs/deployment.md (and deploy/example.sh) holds up: three
// `zistore node` processes against a real 3-server ZooKeeper ensemble and a real 3-server NATS
// cluster serve, replicate, and keep serving after kill -9 of one ZooKeeper server (a follower,
// then the ensemble's leader) and of the nats-server a node is connected to: the nodes' ZooKeeper
// clients move to another server of the connect string and keep their sessions, their NATS
// clients fail over to another server of the cluster. At the end nothing is left running.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alive, stopStarted } from '../support/started.ts';
import { join } from 'node:path';
import { connect, type ZiClient } from '../../client/index.ts';
import { spawnManaged, type ManagedProcess } from '../../cluster/child-process.ts';
import { startNatsCluster, type NatsClusterHandle, type NatsServerHandle } from '../../cluster/nats-server.ts';
import { makeTempDir } from '../../cluster/temp-dir.ts';
import { startZooKeeperEnsemble, type EnsembleServer, type ZooKeeperEnsembleHandle } from '../../cluster/zookeeper-ensemble.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'cli', 'zistore.js');
const CLUSTER = 'ensemble-test';
const IDS = ['n1', 'n2', 'n3'] as const;
/** "Within a few seconds": the bound asserted for serving again after a fault. */
const RECOVERY_MS = 10_000;
/** The nodes' default ZooKeeper session timeout. */
const SESSION_TIMEOUT_MS = 2000;

let dir = '';
let zk: ZooKeeperEnsembleHandle | null = null;
let nats: NatsClusterHandle | null = null;
const nodes = new Map<string, ManagedProcess>();
let kv: (ZiClient & { close(): Promise<void> }) | null = null;
/** Every pid started here (ZooKeeper JVMs after restarts too): all must be gone at the end. */
const pids = new Set<number>();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Retries `fn` until it resolves (errors and `undefined` mean "not yet"); returns its value and how long it took. */
async function within<T>(timeoutMs: number, what: string, fn: () => Promise<T | undefined>): Promise<{ value: T; ms: number }> {
  const start = Date.now();
  let last = '';
  for (;;) {
    try {
      const value = await fn();
      if (value !== undefined) return { value, ms: Date.now() - start };
      last = 'not yet';
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() - start > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms (last: ${last})`);
    await sleep(100);
  }
}

function client(): ZiClient {
  if (!kv) throw new Error('no client');
  return kv;
}

/** The nats-server a node's NATS connection (named zistore-<cluster>-<id>) is on, from /connz. */
async function natsServerOf(id: string): Promise<NatsServerHandle | undefined> {
  for (const s of nats!.servers) {
    if (!s.isRunning()) continue;
    const connz = (await (await fetch(`${s.monitorUrl}/connz`)).json()) as { connections?: { name?: string }[] };
    if (connz.connections?.some((c) => c.name === `zistore-${CLUSTER}-${id}`)) return s;
  }
  return undefined;
}

async function servingNodes(): Promise<string[]> {
  const serving: string[] = [];
  for (const id of IDS) {
    try {
      const view = await client().members({ node: id, timeoutMs: 1000 });
      if (view.members.find((m) => m.id === id)?.state === 'serving') serving.push(id);
    } catch {
      /* not reachable yet */
    }
  }
  return serving;
}

/** A write at each node in turn, each read back at the other two; returns when the first write was acknowledged. */
async function writeAndReadEverywhere(tag: string): Promise<number> {
  const { ms: firstWriteMs } = await within(RECOVERY_MS, `${tag}: first write`, () => client().put(`${tag}-probe`, 'x', { node: 'n1', timeoutMs: 2000 }));
  for (const writer of IDS) {
    const key = `${tag}-${writer}`;
    const { value } = await within(RECOVERY_MS, `${tag}: put at ${writer}`, () => client().put(key, `from ${writer}`, { node: writer, timeoutMs: 2000 }));
    for (const reader of IDS.filter((r) => r !== writer)) {
      const got = await within(RECOVERY_MS, `${tag}: get at ${reader}`, () => client().get(key, { node: reader, timeoutMs: 2000 }));
      expect(got.value?.text(), `${key} at ${reader}`).toBe(`from ${writer}`);
      expect(got.value?.revision).toBe(value.revision);
    }
  }
  return firstWriteMs;
}

/**
 * A write right after a fault may still be served on the strength of a session the node has not
 * yet heard about: wait past a whole session timeout, then every node must still serve (a node
 * without a live session answers 503) and writes and reads must work everywhere again.
 */
async function stillServingAfterSessionTimeout(tag: string): Promise<void> {
  await sleep(SESSION_TIMEOUT_MS + 500);
  const { ms } = await within(RECOVERY_MS, `${tag}: all serving`, async () => ((await servingNodes()).length === 3 ? true : undefined));
  expect(ms).toBeLessThan(RECOVERY_MS);
  await writeAndReadEverywhere(tag);
}


async function stopEverything(): Promise<void> {
  await kv?.close().catch(() => undefined);
  kv = null;
  // Nodes first (SIGTERM: a graceful stop), then the servers they depend on.
  await stopStarted({ nodes: nodes.values(), nats, zk, dir });
  dir = '';
}

beforeAll(async () => {
  dir = await makeTempDir('ensemble-test');
  zk = await startZooKeeperEnsemble({ size: 3, dir: join(dir, 'zookeeper') });
  for (const s of zk.servers) pids.add(s.pid);
  nats = await startNatsCluster({ size: 3, name: 'ensemble-test' });
  for (const s of nats.servers) pids.add(s.pid);
  // Messages cross servers only once the routes are up.
  for (const s of nats.servers) {
    await within(10_000, `routes of ${s.url}`, async () => {
      const routez = (await (await fetch(`${s.monitorUrl}/routez`)).json()) as { num_routes: number };
      return routez.num_routes >= 2 ? true : undefined;
    });
  }
  const urls = nats.urls;
  for (const [i, id] of IDS.entries()) {
    // Its own server first, the others as fallbacks (the NATS client may shuffle the list).
    const own = [urls[i]!, ...urls.filter((_, j) => j !== i)];
    const proc = await spawnManaged({
      name: `zistore-${id}`,
      command: process.execPath,
      args: [BIN, 'node', '--id', id, '--cluster', CLUSTER, '--zk', zk.connectString, '--nats', own.join(',')],
      cwd: ROOT,
      logFile: join(dir, `${id}.log`),
      stopGraceMs: 8000,
    });
    nodes.set(id, proc);
    pids.add(proc.pid);
  }
  kv = await connect({ servers: urls, cluster: CLUSTER, timeoutMs: 5000 });
});

afterAll(async () => {
  await stopEverything();
});

describe('deployment on a ZooKeeper ensemble and a NATS cluster', () => {
  it('all three nodes serve', async () => {
    const { ms } = await within(60_000, 'all nodes serving', async () => ((await servingNodes()).length === 3 ? true : undefined));
    console.log(`three nodes serving ${ms} ms after they were started (ZooKeeper ${zk!.connectString})`);
    const view = await client().members({ node: 'n1' });
    expect(view.members.map((m) => m.id).sort()).toEqual([...IDS]);
    expect(view.replicas.slice().sort()).toEqual([...IDS]);
  });

  it('a write via n1 is read at n2 and n3', async () => {
    const { revision } = await client().put('greeting', 'hello', { node: 'n1' });
    for (const id of ['n2', 'n3']) {
      const got = await client().get('greeting', { node: id });
      expect(got?.text(), `at ${id}`).toBe('hello');
      expect(got?.revision).toBe(revision);
    }
  });

  it('kill -9 of a ZooKeeper follower and of the nats-server n1 uses: writes and reads go on', async () => {
    const modes = await Promise.all(zk!.servers.map((s) => s.mode()));
    expect(modes.filter((m) => m === 'follower')).toHaveLength(2);
    const zkVictim: EnsembleServer = zk!.servers[modes.indexOf('follower')]!;
    const natsVictim = await natsServerOf('n1');
    expect(natsVictim, 'n1 is connected to one of the nats-servers').toBeDefined();

    await Promise.all([zkVictim.kill(), natsVictim!.kill()]);
    const firstWriteMs = await writeAndReadEverywhere('after-follower');
    console.log(`ZooKeeper follower ${zkVictim.id} + nats-server ${natsVictim!.url} killed: first write after ${firstWriteMs} ms`);
    expect(firstWriteMs).toBeLessThan(RECOVERY_MS);
    await stillServingAfterSessionTimeout('after-follower-late');
    // Written before the faults, still there.
    expect((await client().get('greeting', { node: 'n3' }))?.text()).toBe('hello');
    // n1's NATS client is on another server now.
    const now = await within(RECOVERY_MS, 'n1 on a nats-server', async () => natsServerOf('n1'));
    expect(now.value.url).not.toBe(natsVictim!.url);
    expect((await servingNodes()).length).toBe(3);

    // Bring the ZooKeeper server back for the next test (a 3-server ensemble survives one loss only).
    await zkVictim.restart();
    pids.add(zkVictim.pid);
    await zk!.waitQuorum(30_000);
  });

  it("kill -9 of the ZooKeeper ensemble's leader: sessions survive the election, writes and reads go on", async () => {
    const leader = await zk!.leader();
    expect(leader).not.toBeNull();
    const sessionsBefore = await Promise.all(IDS.map((id) => client().members({ node: id })));
    await leader!.kill();
    const firstWriteMs = await writeAndReadEverywhere('after-leader');
    console.log(`ZooKeeper leader ${leader!.id} killed: first write after ${firstWriteMs} ms`);
    expect(firstWriteMs).toBeLessThan(RECOVERY_MS);
    await stillServingAfterSessionTimeout('after-leader-late');
    await zk!.waitQuorum(RECOVERY_MS);
    expect((await zk!.leader())?.id).not.toBe(leader!.id);
    expect((await client().get('greeting', { node: 'n2' }))?.text()).toBe('hello');
    expect((await client().get('after-follower-n3', { node: 'n1' }))?.text()).toBe('from n3');
    // Same epoch: the ZiStore leader did not change; the nodes reconnected within their sessions.
    const after = await client().members({ node: 'n1' });
    expect(after.epoch).toBe(sessionsBefore[0]!.epoch);
    expect(after.leader).toBe(sessionsBefore[0]!.leader);
  });

  it('stops everything: no process left', async () => {
    const all = [...pids];
    expect(all.length).toBeGreaterThanOrEqual(10); // 3 nodes, 3 nats-servers, 3 + 1 (restarted) ZooKeeper
    await stopEverything();
    expect(all.filter(alive)).toEqual([]);
    for (const p of nodes.values()) expect(p.isRunning()).toBe(false);
    for (const s of zk!.servers) expect(s.isRunning()).toBe(false);
    for (const s of nats!.servers) expect(s.isRunning()).toBe(false);
  });
});
