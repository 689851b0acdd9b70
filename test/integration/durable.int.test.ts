// Goal: with --data-dir a node's copy outlives its process: kill -9 of every node during writes
// and of ZooKeeper, then restarts in another order, lose no acknowledged write and revisions go
// on above the highest acknowledged one, and the nodes back after the first leader recovered
// catch up with it by revision (no full snapshot); a node restarted alone catches up with what changed
// (the leader sends far fewer entries than a full snapshot); with a ZooKeeper that lost its data,
// the node left out of the last replica set waits rather than serve; a backup taken while serving
// restores a new cluster; a data dir of another node is refused at start with the way out.
// Method: real `zistore node` processes (LocalCluster, durable: fsync always), a real ZooKeeper
// killed and restarted on its data dir, a real nats-server; writers record every acknowledged put.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { LocalCluster } from '../../cluster/local-cluster.ts';
import { makeTempDir, removeTempDir } from '../../cluster/temp-dir.ts';
import { eventually, kv } from '../support/raw-client.ts';
import type { NatsConnection } from 'nats';

const SESSION_TIMEOUT_MS = 2000;
let cluster: LocalCluster | null = null;
let nc: NatsConnection | null = null;

let tmp: string | null = null;
const CLI = join(import.meta.dirname, '..', '..', 'cli', 'zistore.js');

beforeEach(async () => {
  tmp = await makeTempDir('durable');
});

afterEach(async (context) => {
  if (context.task.result?.state === 'fail') console.log(cluster?.logTails(undefined, 40));
  await nc?.close();
  nc = null;
  await cluster?.stop();
  cluster = null;
  if (tmp !== null) await removeTempDir(tmp);
  tmp = null;
});

/** Runs a `zistore` command to its end (without blocking the event loop); its stdout. */
async function zistore(...args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, ...args], { timeout: 30_000 });
  return stdout;
}

async function start(name: string, nodes = 3, durable: 'always' | 'interval' = 'always'): Promise<{ c: LocalCluster; store: ReturnType<typeof kv> }> {
  cluster = await LocalCluster.start({ nodes, cluster: name, sessionTimeoutMs: SESSION_TIMEOUT_MS, durable, faults: 'none' });
  await cluster.waitServing(60_000);
  nc = await cluster.connectClient();
  return { c: cluster, store: kv(nc, name) };
}

/** The JSON log lines of a node with this message. */
function logLines(c: LocalCluster, id: string, msg: string): Record<string, unknown>[] {
  return readFileSync(c.nodes.get(id)!.logFile, 'utf8')
    .split('\n')
    .filter((l) => l.includes(`"msg":"${msg}"`))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('durable replicas', () => {
  it('kill -9 of every node during writes and of ZooKeeper, restarts in another order: no acknowledged write lost, revisions go on', async () => {
    const { c, store } = await start('durable-crash');
    const ids = [...c.nodes.keys()];
    /** Highest acknowledged revision and its value, per key. */
    const acked = new Map<string, { rev: number; value: string }>();
    let writing = true;
    const writer = async (w: number) => {
      for (let i = 0; writing; i++) {
        const key = `k${(w * 7 + i) % 12}`;
        const value = `w${w}-${i}`;
        const r = await store.raw('put', { headers: [['Zi-Key', key]], data: value, timeoutMs: 2000 }, ids[i % ids.length]).catch(() => null);
        if (r?.code === 200 && r.revision !== null && r.revision > (acked.get(key)?.rev ?? 0)) acked.set(key, { rev: r.revision, value });
      }
    };
    const writers = [0, 1, 2, 3].map(writer);
    await new Promise((r) => setTimeout(r, 1500));
    await Promise.all(ids.map((id) => c.kill(id)));
    writing = false;
    await Promise.all(writers);
    await c.restartZooKeeper();
    const highest = Math.max(...[...acked.values()].map((a) => a.rev));
    expect(acked.size).toBeGreaterThan(5);

    // The last of the first run's order first, alone until it leads; the others then one after
    // the other. Every node kept a complete copy: they catch up with the leader by revision
    // (only what it holds beyond them), none takes a full snapshot.
    const transfers = () => ids.map((id) => ({ full: logLines(c, id, 'joined').length, byRevision: logLines(c, id, 'caught up').length }));
    const before = transfers();
    const [first, ...rest] = [...ids].reverse();
    await c.restart(first!);
    // It leads alone once the sessions of the killed processes have expired (a leader that hears
    // none of the members ZooKeeper lists would step down).
    const alone = async () => {
      const view = await store.members(first!).catch(() => null);
      return view?.leader === first && view.members.length === 1 && view.members[0]!.state === 'serving';
    };
    await eventually(alone, 30_000, `${first} leads alone`);
    for (const id of rest) {
      await c.restart(id);
      await new Promise((r) => setTimeout(r, 500));
    }
    await c.waitServing(60_000);
    const transfersAfter = transfers();
    for (const [i, id] of ids.entries()) {
      expect(transfersAfter[i]!.full, `full snapshots of ${id}`).toBe(before[i]!.full);
      if (rest.includes(id)) expect(transfersAfter[i]!.byRevision, `catch-ups of ${id}`).toBeGreaterThan(before[i]!.byRevision);
    }
    for (const [key, want] of acked) {
      for (const id of ids) {
        const got = await store.get(key, id);
        expect(got.code, `${key} at ${id}`).toBe(200);
        // The last acknowledged write, or a later one whose ack was lost in the crash.
        expect(got.revision!, `${key} at ${id}`).toBeGreaterThanOrEqual(want.rev);
        if (got.revision === want.rev) expect(got.text).toBe(want.value);
      }
    }
    const after = await store.put('after-restart', 'x');
    expect(after.code).toBe(200);
    expect(after.revision!).toBeGreaterThan(highest);
  });

  it('SIGTERM of every node, one after the other, then restarts: every key is back, revisions go on', async () => {
    const { c, store } = await start('durable-sigterm');
    const ids = [...c.nodes.keys()];
    let highest = 0;
    for (let i = 0; i < 50; i++) {
      const r = await store.put(`key-${i}`, `v${i}`);
      expect(r.code).toBe(200);
      highest = Math.max(highest, r.revision!);
    }
    for (const id of ids) await c.stopNode(id);
    for (const id of ids) await c.restart(id);
    await c.waitServing(60_000);
    for (const id of ids) for (let i = 0; i < 50; i++) expect((await store.get(`key-${i}`, id)).text, `key-${i} at ${id}`).toBe(`v${i}`);
    const after = await store.put('after', 'x');
    expect(after.code).toBe(200);
    expect(after.revision!).toBeGreaterThan(highest);
  });

  it('a node restarted alone keeps its copy and catches up with what changed, not a full snapshot', async () => {
    const { c, store } = await start('durable-catch-up');
    const leader = (await store.members()).leader!;
    const f = [...c.nodes.keys()].find((id) => id !== leader)!;
    const value = 'x'.repeat(100);
    for (let batch = 0; batch < 10; batch++) {
      const puts = Array.from({ length: 100 }, (_, i) => store.put(`key-${batch * 100 + i}`, value));
      for (const r of await Promise.all(puts)) expect(r.code).toBe(200);
    }
    // The follower learns up to which revision it holds everything with each lease (every 250 ms):
    // let one pass, or the catch-up also resends the writes of the last quarter second.
    await new Promise((r) => setTimeout(r, 600));
    await c.kill(f);
    // To the leader by name: NATS may not yet know f's connection is gone and could hand a
    // request on the shared subject to its dead subscription (lost, a client timeout).
    for (let i = 0; i < 20; i++) expect((await store.put(`key-${i}`, 'changed', leader)).code).toBe(200);
    expect((await store.delete('key-999', leader)).code).toBe(200);
    await c.restart(f);
    await c.waitServing(60_000);
    const transfers = logLines(c, leader, 'caught up').filter((l) => l.peer === f);
    const fulls = logLines(c, leader, 'joined').filter((l) => l.peer === f && Number(l.entries) > 0);
    expect(fulls, 'a full snapshot was sent').toEqual([]);
    expect(transfers.length).toBeGreaterThanOrEqual(1);
    const sent = Number(transfers.at(-1)!.entries);
    expect(sent).toBeGreaterThanOrEqual(21);
    expect(sent).toBeLessThan(100);
    // Keys' and values' bytes: the catch-up's against what a full snapshot of the store would send.
    const sentBytes = Number(transfers.at(-1)!.bytes);
    const snapshotBytes = Array.from({ length: 999 }, (_, i) => `key-${i}`.length + (i < 20 ? 'changed'.length : value.length)).reduce((a, b) => a + b, 0);
    expect(sentBytes).toBeGreaterThan(0);
    expect(sentBytes).toBeLessThan(snapshotBytes / 10);
    expect((await store.get('key-0', f)).text).toBe('changed');
    expect((await store.get('key-999', f)).code).toBe(404);
    expect((await store.get('key-500', f)).text).toBe(value);
    console.log(`catch-up after a restart: ${sent} entries sent instead of 1000, ${sentBytes} bytes of keys and values instead of a full snapshot's ${snapshotBytes}`);
  });

  it('kill -9 of every node and a ZooKeeper that lost its data: the node left out of the last replica set, back first, waits; nothing acknowledged is lost', async () => {
    const { c, store } = await start('durable-zk-lost');
    const leader = (await store.members()).leader!;
    const [stale, other] = [...c.nodes.keys()].filter((id) => id !== leader) as [string, string];
    expect((await store.put('k', 'v1', leader)).code).toBe(200);
    await c.kill(stale);
    await eventually(async () => !(await store.members(leader)).replicas.includes(stale), 15_000, `${stale} removed from the replica set`);
    const v2 = await store.put('k', 'v2', leader);
    expect(v2.code).toBe(200);
    await Promise.all([c.kill(leader), c.kill(other)]);
    await c.restartZooKeeper({ loseData: true });
    await c.restart(stale);
    // Alone with an empty ZooKeeper it still remembers a replica set naming the others: it waits
    // for them rather than serve its v1 (503, never a stale 200).
    await new Promise((r) => setTimeout(r, 4000));
    const alone = await store.get('k', stale);
    expect(alone.code, alone.text).toBe(503);
    await c.restart(other);
    await c.restart(leader);
    await c.waitServing(60_000);
    for (const id of c.nodes.keys()) expect((await store.get('k', id)).text, `k at ${id}`).toBe('v2');
    const after = await store.put('after', 'x');
    expect(after.code).toBe(200);
    expect(after.revision!).toBeGreaterThan(v2.revision!);
  });

  it.each(['always', 'interval'] as const)('a backup of a serving follower (--fsync %s), restored as a new cluster on a fresh ZooKeeper: every write acknowledged before it is there, revisions go on', async (fsync) => {
    const { c, store } = await start('durable-backup', 3, fsync);
    const leader = (await store.members()).leader!;
    const f = [...c.nodes.keys()].find((id) => id !== leader)!;
    const before = new Map<string, string>();
    for (let batch = 0; batch < 4; batch++) {
      const puts = Array.from({ length: 50 }, (_, i) => {
        const key = `key-${batch * 50 + i}`;
        before.set(key, `v-${key}`);
        return store.put(key, `v-${key}`, leader);
      });
      for (const r of await Promise.all(puts)) expect(r.code).toBe(200);
    }
    // Writes go on during the backup: it is taken from a node that serves.
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) await store.put(`during-${i % 20}`, String(i), leader);
    })();
    const backupDir = join(tmp!, 'backup');
    const backup = await zistore('backup', '--data-dir', c.nodeDataDir(f), '--out', backupDir);
    writing = false;
    await writer;
    expect(backup).toMatch(new RegExp(`backed up node ${f} of cluster durable-backup: \\d+ entries up to revision \\d+`));
    const backupRev = Number(/up to revision (\d+)/.exec(backup)![1]);
    await cluster!.stop();
    cluster = null;

    // A new cluster (its own ZooKeeper, NATS and data dirs); n1 restored from the backup, the
    // others empty and started first: they must wait for n1 rather than start the cluster empty.
    cluster = await LocalCluster.start({ nodes: 0, cluster: 'restored', sessionTimeoutMs: SESSION_TIMEOUT_MS, durable: 'always', faults: 'none' });
    const restore = await zistore('restore', '--from', backupDir, '--data-dir', cluster.nodeDataDir('n1'), '--id', 'n1', '--cluster', 'restored', '--zk', cluster.zkConnectString);
    expect(restore).toContain('recorded in ZooKeeper as its replica set');
    await cluster.addNode('n2');
    await cluster.addNode('n3');
    await new Promise((r) => setTimeout(r, 1000));
    await cluster.addNode('n1');
    await cluster.waitServing(60_000);
    nc = await cluster.connectClient();
    const restored = kv(nc, 'restored');
    for (const id of cluster.nodes.keys()) {
      for (const [key, value] of before) expect((await restored.get(key, id)).text, `${key} at ${id}`).toBe(value);
    }
    const after = await restored.put('after-restore', 'x');
    expect(after.code).toBe(200);
    expect(after.revision!).toBeGreaterThan(backupRev);
  });

  it("a data dir of another node is refused at start, naming the file and --reset-data", async () => {
    const { c } = await start('durable-owner', 1);
    const dir = c.nodeDataDir('n1');
    const run = spawnSync(
      process.execPath,
      [CLI, 'node', '--id', 'other', '--cluster', 'durable-owner', '--zk', c.zkConnectString, '--nats', c.natsUrl, '--data-dir', dir],
      { encoding: 'utf8', timeout: 30_000 },
    );
    expect(run.status).not.toBe(0);
    expect(run.stderr).toMatch(/holds node n1 of cluster durable-owner.*--reset-data/);
    expect(run.stderr).toContain(join(dir, 'data.mdb'));
  });
});
