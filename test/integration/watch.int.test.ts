// Goal: watches (PROTOCOL.md "Watch") on real node processes, real ZooKeeper and nats-server:
// every change exactly once, in revision order, while the watcher's node and then the leader are
// killed (kill -9) under writes; and the documented 410 once the revision asked for is older than
// every node keeps. Method: writers record each acknowledged write (key, revision, value) and each
// one with an unknown outcome; the typed client's watch must report every acknowledged one once,
// nothing twice, and nothing that was not written.
import { afterEach, describe, expect, it } from 'vitest';
import { connect } from 'nats';
import { ZiClient, ZiStoreError, type WatchEvent } from '../../client/index.ts';
import { startTcpProxy } from '../../cluster/tcp-proxy.ts';
import { eventually, type kv } from '../support/raw-client.ts';
import { startServingCluster, stopServingCluster } from '../support/serving-cluster.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

afterEach(stopServingCluster);

interface Written {
  key: string;
  value: string;
}

/** Writers overwriting a few keys each (so keys have many revisions), some writes deletes. */
function startWriters(store: ReturnType<typeof kv>, nodes: () => string[], writers = 3) {
  const acked = new Map<number, Written & { kind: 'put' | 'delete' }>();
  const unknown: Written[] = [];
  let stopped = false;
  const loops = Array.from({ length: writers }, async (_, w) => {
    for (let i = 0; !stopped; i++) {
      const key = `w/${w}/${i % 4}`;
      const targets = nodes();
      const node = targets[i % targets.length];
      const del = i % 7 === 6;
      const value = del ? '' : `${w}.${i}`;
      const reply = del ? await store.delete(key, node) : await store.put(key, value, node);
      if (reply.code === 200) acked.set(reply.revision!, { key, value, kind: del ? 'delete' : 'put' });
      else if (reply.code !== 503 && reply.code !== 404) unknown.push({ key, value });
      if (reply.code !== 200) await sleep(25);
    }
  });
  return {
    acked,
    unknown,
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

/** Consumes a watch into `events` until stopped. */
function startWatcher(client: ZiClient, options: Parameters<ZiClient['watch']>[0]) {
  const events: WatchEvent[] = [];
  const abort = new AbortController();
  let failure: unknown = null;
  const done = (async () => {
    try {
      for await (const e of client.watch({ ...options, signal: abort.signal })) events.push(e);
    } catch (err) {
      failure = err;
    }
  })();
  return {
    events,
    failure: () => failure,
    async stop() {
      abort.abort();
      await done;
    },
  };
}

/** The watch reached the last acknowledged write and reported every acknowledged write once, in order, and nothing unwritten. */
async function expectEveryAckedChangeOnce(what: string, writers: ReturnType<typeof startWriters>, watcher: ReturnType<typeof startWatcher>): Promise<void> {
  const last = Math.max(...writers.acked.keys());
  await eventually(async () => watcher.failure() !== null || (watcher.events.at(-1)?.revision ?? 0) >= last, 30_000, `the watch reaching revision ${last}`);
  await watcher.stop();
  expect(watcher.failure()).toBeNull();

  const { events } = watcher;
  console.log(`${what}: ${writers.acked.size} acknowledged writes, ${writers.unknown.length} with unknown outcome, ${events.length} events`);
  expect(writers.acked.size).toBeGreaterThan(50);
  // In revision order, nothing twice.
  for (let i = 1; i < events.length; i++) expect(events[i]!.revision, `event ${i}`).toBeGreaterThan(events[i - 1]!.revision);
  const seen = new Map(events.map((e) => [e.revision, e]));
  // Every acknowledged write, as written.
  for (const [revision, w] of writers.acked) {
    const e = seen.get(revision);
    expect(e, `revision ${revision} (${w.key})`).toBeDefined();
    expect({ key: e!.key, kind: e!.kind, value: e!.value === null ? '' : Buffer.from(e!.value).toString() }).toEqual(w);
  }
  // Nothing that was not written: the rest are writes whose outcome the writer did not learn.
  const unknown = new Set(writers.unknown.map((w) => `${w.key}=${w.value}`));
  for (const e of events) {
    if (writers.acked.has(e.revision)) continue;
    expect(unknown.has(`${e.key}=${e.value === null ? '' : Buffer.from(e.value).toString()}`), `event ${e.revision} ${e.key}`).toBe(true);
  }
}

describe('watch', () => {
  it.each([
    ['long polls', false],
    ['the change feed (push)', true],
  ])('kill -9 of the watching node, then of the leader - every acknowledged change exactly once, in revision order (%s)', async (_, push) => {
    const { c, nc, store, leader, followers } = await startServingCluster('watch-kill', { nodes: 3, sessionTimeoutMs: 2000 });
    const [watched, other] = followers as [string, string];
    const client = new ZiClient(nc, { cluster: 'watch-kill', timeoutMs: 2000 });
    const watcher = startWatcher(client, { prefix: 'w/', afterRevision: 0, waitMs: 500, node: watched, push });
    const live = new Set([leader, watched, other]);
    const writers = startWriters(store, () => [...live]);

    await sleep(1500);
    live.delete(watched);
    await c.kill(watched);
    await sleep(2500);
    await c.restart(watched);
    await c.waitServing(30_000, [watched]);
    live.add(watched);
    await sleep(1000);
    live.delete(leader);
    await c.kill(leader);
    await sleep(4000);
    await writers.stop();

    await expectEveryAckedChangeOnce(`watch across two kills (${push ? 'push' : 'long polls'})`, writers, watcher);
  });

  it("push: the watcher's own connection cut twice (the feed's messages meanwhile are lost to it): it fills the gaps, every acknowledged change exactly once", async () => {
    const { c, store } = await startServingCluster('watch-gap', { nodes: 3, sessionTimeoutMs: 2000 });
    const nats = new URL(c.natsUrl);
    const proxy = await startTcpProxy({ target: { host: nats.hostname, port: Number(nats.port) } });
    const own = await connect({ servers: `nats://127.0.0.1:${proxy.port}`, maxReconnectAttempts: -1, reconnectTimeWait: 50 });
    try {
      const client = new ZiClient(own, { cluster: 'watch-gap', timeoutMs: 2000 });
      const watcher = startWatcher(client, { prefix: 'w/', afterRevision: 0, push: true });
      const writers = startWriters(store, () => [...c.nodes.keys()]);
      for (let cut = 0; cut < 2; cut++) {
        await sleep(1000);
        proxy.cut('close');
        await sleep(400);
        proxy.restore();
      }
      await sleep(1000);
      await writers.stop();
      await expectEveryAckedChangeOnce('push watch across two cuts of its connection', writers, watcher);
    } finally {
      await own.close();
      await proxy.stop();
    }
  });

  it.each([
    ['long polls', false],
    ['the change feed (push)', true],
  ])('kill -9 of every node during writes, then restarts (data dirs): the watch goes on from where it was, every acknowledged change exactly once (%s)', async (_, push) => {
    const { c, nc, store } = await startServingCluster('watch-restart', { nodes: 3, sessionTimeoutMs: 2000, durable: 'always' });
    const client = new ZiClient(nc, { cluster: 'watch-restart', timeoutMs: 2000 });
    const watcher = startWatcher(client, { prefix: 'w/', afterRevision: 0, waitMs: 500, push });
    const ids = [...c.nodes.keys()];
    const live = new Set(ids);
    const writers = startWriters(store, () => [...live]);
    await sleep(1500);
    live.clear();
    await Promise.all(ids.map((id) => c.kill(id)));
    await sleep(500);
    await Promise.all(ids.map((id) => c.restart(id)));
    await c.waitServing(60_000);
    for (const id of ids) live.add(id);
    await sleep(1500);
    await writers.stop();
    await expectEveryAckedChangeOnce(`watch across a whole-cluster restart (${push ? 'push' : 'long polls'})`, writers, watcher);
  });

  it('a revision older than every node keeps - 410, also from the typed client, which has tried every node', async () => {
    const { nc, store, leader } = await startServingCluster('watch-old', { nodes: 3, sessionTimeoutMs: 2000, nodeArgs: ['--watch-history', '20'] });
    for (let i = 0; i < 40; i++) expect((await store.put(`k${i % 3}`, `v${i}`, leader)).code).toBe(200);
    const lastRev = (await store.get('k0', leader)).revision!;
    // Each node keeps the last 20 changes: a watch from 30 changes back is refused, one from 10 back is served.
    const old = await store.raw('watch', { headers: [['Zi-After-Revision', String(lastRev - 30)]] }, leader);
    expect(old.code).toBe(410);
    expect(old.description).toMatch(/older than the history this node keeps/);
    const recent = await store.raw('watch', { headers: [['Zi-After-Revision', String(lastRev - 10)], ['Zi-Prefix', 'k']] }, leader);
    expect(recent.code).toBe(200);
    const body = JSON.parse(recent.text) as { revision: number; events: { revision: number }[] };
    expect(body.events.map((e) => e.revision)).toEqual(Array.from({ length: 10 }, (_, i) => lastRev - 9 + i));
    expect(body.revision).toBe(lastRev);

    const client = new ZiClient(nc, { cluster: 'watch-old' });
    const watch = client.watch({ afterRevision: lastRev - 30, waitMs: 200 });
    const err = await watch.next().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ZiStoreError);
    expect((err as ZiStoreError).code).toBe(410);
  });
});
