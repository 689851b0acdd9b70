// Goal: the promises of docs/safety.md under the cascades that used to lose acknowledged writes,
// on real ZooKeeper, nats-server and node processes with real faults (connections black-holed by
// the proxies, kill -9): no node without a complete copy leads, a copy survives the loss of its
// session, a leader cut off the bus steps down, the floor on copies, and the operator's way out.
// Method: black-box through the client subjects of PROTOCOL.md; timings printed, bounds loose.
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, kv } from '../support/raw-client.ts';
import { firstAckedPut, startServingCluster, stopServingCluster } from '../support/serving-cluster.ts';
import { missingAt, startWriters } from '../support/load.ts';

const SESSION_TIMEOUT_MS = 2000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const start = (name: string) => startServingCluster(name, { sessionTimeoutMs: SESSION_TIMEOUT_MS });

afterEach(stopServingCluster);

type Store = ReturnType<typeof kv>;

const replicasOf = async (store: Store, node: string) => (await store.members(node)).replicas;


describe('safety', () => {
  it('the four steps: follower removed, a write, every session expired, the stale follower back first: the write survives', async () => {
    const { c, store, leader, followers } = await start('safe-four');
    const [f, g] = followers as [string, string];
    expect((await store.put('k', 'v1', leader)).code).toBe(200);
    // 1. f is cut off NATS until the leader has removed it from the replica set.
    await c.rmiDown(f, 'drop');
    await eventually(async () => !(await replicasOf(store, leader)).includes(f), 15_000, `${leader} removes ${f}`);
    // 2. A write f does not hold.
    expect((await store.put('k', 'v2', leader)).code).toBe(200);
    await c.rmiUp(f);
    // 3. All three cut off ZooKeeper for longer than the session timeout.
    for (const id of [leader, f, g]) await c.zkDown(id, 'drop');
    await sleep(SESSION_TIMEOUT_MS * 2);
    // 4. f comes back first, the others a second later.
    await c.zkUp(f);
    await sleep(1000);
    await c.zkUp(leader);
    await c.zkUp(g);
    await firstAckedPut(store, [leader, f, g], 'probe', 30_000);
    for (const id of [leader, f, g]) {
      await eventually(async () => (await store.get('k', id)).code === 200, 15_000, `${id} serves k`);
      expect((await store.get('k', id)).text, `k at ${id}`).toBe('v2');
    }
  });

  it('a leader cut off NATS but not from ZooKeeper steps down: writes resume elsewhere within about two session timeouts, nothing lost', async () => {
    const { c, store, leader, followers } = await start('safe-rmi');
    const writers = startWriters(store, { writers: 2, nodes: () => followers, prefix: 'w' });
    await sleep(800);
    const cutAt = performance.now();
    await c.rmiDown(leader, 'drop');
    const resumedAt = await firstAckedPut(store, followers, 'probe', 20_000);
    console.log(`leader cut off NATS -> first acknowledged write elsewhere: ${Math.round(resumedAt - cutAt)} ms (session timeout ${SESSION_TIMEOUT_MS} ms)`);
    expect(resumedAt - cutAt).toBeLessThan(SESSION_TIMEOUT_MS * 3);
    await sleep(500);
    await writers.stop();
    expect((await store.members(followers[0])).leader).not.toBe(leader);
    await c.rmiUp(leader);
    await c.waitServing(30_000);
    for (const id of [leader, ...followers]) expect(await missingAt(store, id, writers.acked), `at ${id}`).toEqual([]);
  });

  it('the floor on copies: one follower dead, the other cut off: writes answer 503 with the reason, reads go on, writes resume when it is back', async () => {
    const { c, store, leader, followers } = await start('safe-floor');
    const [dead, cut] = followers as [string, string];
    expect((await store.put('k', 'v1', leader)).code).toBe(200);
    await c.kill(dead);
    await eventually(async () => !(await replicasOf(store, leader)).includes(dead), 15_000, `${leader} removes ${dead}`);
    await c.rmiDown(cut, 'drop');
    // A write begun before the leader gave up on `cut` waits for it (its key stays undecided):
    // probe with another key.
    await eventually(async () => (await store.put('p', 'never', leader)).code === 503, 10_000, 'writes refused');
    const refused = await store.put('p', 'never', leader);
    expect(refused.code).toBe(503);
    expect(refused.description + refused.text).toMatch(/copies a write needs/);
    expect((await replicasOf(store, leader)).sort()).toEqual([leader, cut].sort());
    const read = await store.get('k', leader);
    expect(read.code).toBe(200);
    expect(read.text).toBe('v1');
    await c.rmiUp(cut);
    await firstAckedPut(store, [leader], 'k2', 15_000);
    expect((await store.get('k', leader)).text).toBe('v1');
  });

  it('no complete copy left: the cluster waits with the reason, `zistore accept-data-loss --yes` lets it serve again and is recorded', async () => {
    const { c, store, leader, followers } = await start('safe-unclean');
    const [first, second] = followers as [string, string];
    await c.kill(first);
    await eventually(async () => !(await replicasOf(store, leader)).includes(first), 15_000, `${leader} removes ${first}`);
    expect((await store.put('k', 'v1', leader)).code).toBe(200);
    // Every holder of v1 dies: memory-only copies are gone.
    await c.kill(leader);
    await c.kill(second);
    for (const id of [leader, first, second]) await c.restart(id);
    await eventually(
      async () => {
        const r = await store.put('k2', 'x', first).catch(() => null);
        return r?.code === 503 && /waiting for a complete replica/.test(r.description + r.text);
      },
      20_000,
      'writes answer 503 waiting for a complete replica',
    );
    const zk = c.zookeeper.connectString;
    const run = (args: string[]) =>
      new Promise<{ code: number; out: string }>((resolve) => {
        const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'accept-data-loss', '--cluster', 'safe-unclean', '--zk', zk, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr.on('data', (d: Buffer) => (out += d.toString()));
        child.on('close', (code) => resolve({ code: code ?? -1, out }));
      });
    const dry = await run([]);
    expect(dry.code, dry.out).toBe(2);
    expect(dry.out).toMatch(/lost for good/);
    const yes = await run(['--yes']);
    expect(yes.code, yes.out).toBe(0);
    await firstAckedPut(store, [leader, first, second], 'k2', 30_000);
  });
});
