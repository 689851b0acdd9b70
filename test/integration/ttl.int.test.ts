// Goal: expiring keys (PROTOCOL.md "Expiring keys") on real node processes, real ZooKeeper and
// nats-server: a key put with a time to live is deleted by the cluster once it has passed, as a
// write of its own that watchers see as `expire`; no node answers a read with it after its
// deadline; a keep-alive restarts the time to live; across a kill -9 of the leader the key
// neither expires early nor stays for ever. Method: the typed client and raw requests at each node.
import { afterEach, describe, expect, it } from 'vitest';
import { ZiClient, ZiStoreError, type WatchEvent } from '../../client/index.ts';
import { eventually } from '../support/raw-client.ts';
import { startServingCluster, stopServingCluster } from '../support/serving-cluster.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

afterEach(stopServingCluster);

describe('expiring keys', () => {
  it('a lock taken by a transaction with a ttl: refused while held, free again once it expires at every node; the other key of the transaction stays', async () => {
    const { nc, store, leader, followers } = await startServingCluster('ttl-txn', { nodes: 3, sessionTimeoutMs: 2000 });
    const client = new ZiClient(nc, { cluster: 'ttl-txn' });
    const TTL = 1200;
    const take = (holder: string) => client.txn([{ op: 'put', key: 'lock', value: holder, ttlMs: TTL }, { op: 'put', key: `owner/${holder}`, value: 'since now' }], [{ key: 'lock', absent: true }]);
    const first = await take('a');
    const ackedAt = performance.now();
    const refused = await take('b').catch((e: unknown) => e);
    expect((refused as ZiStoreError).code).toBe(409);
    await sleep(Math.max(0, ackedAt + TTL - performance.now()));
    for (const node of [leader, ...followers]) {
      expect((await store.get('lock', node)).code, `lock at ${node}`).toBe(404);
      expect((await store.get('owner/a', node)).text, `owner/a at ${node}`).toBe('since now');
    }
    const second = await take('b');
    expect(second.revision).toBeGreaterThan(first.revision);
    // Over raw NATS: the ttl's bounds, and a delete takes none.
    const raw = (ops: unknown) => store.raw('txn', { data: JSON.stringify({ ops }) });
    expect((await raw([{ op: 'put', key: 'x', value: 'dg==', ttl: 0 }])).description).toBe('op 0: ttl must be a number of milliseconds, 1 to 31536000000');
    expect((await raw([{ op: 'put', key: 'x', value: 'dg==', ttl: '10s' }])).code).toBe(400);
    expect((await raw([{ op: 'delete', key: 'x', ttl: 5 }])).description).toBe('op 0: a delete has no value and no ttl');
  });

  it('gone at every node once its time to live has passed (a watcher sees expire); a keep-alive keeps another', async () => {
    const { nc, store, leader, followers } = await startServingCluster('ttl-basic', { nodes: 3, sessionTimeoutMs: 2000 });
    const nodes = [leader, ...followers];
    const client = new ZiClient(nc, { cluster: 'ttl-basic' });
    const TTL = 1500;
    const start = await client.put('lease/start', 'x');
    const kept = await client.put('lease/kept', 'k', { ttlMs: TTL });
    const sentAt = performance.now();
    const put = await client.put('lease/a', 'v', { ttlMs: TTL });
    const ackedAt = performance.now();
    // Present everywhere before its deadline.
    for (const node of nodes) expect((await store.get('lease/a', node)).code, `at ${node}`).toBe(200);
    const keeping = (async () => {
      for (let i = 0; i < 8; i++) {
        await sleep(400);
        await client.keepAlive('lease/kept');
      }
    })();
    // Until the deadline (measured from before the put was sent) it may be read; from it on (measured
    // from the ack, which is after the leader started its clock) no node returns it.
    await sleep(Math.max(0, sentAt + TTL - 300 - performance.now()));
    expect((await store.get('lease/a', leader)).code).toBe(200);
    await sleep(Math.max(0, ackedAt + TTL - performance.now()));
    for (let round = 0; round < 5; round++) {
      for (const node of nodes) expect((await store.get('lease/a', node)).code, `at ${node}, round ${round}`).toBe(404);
      const listed = JSON.parse((await store.raw('scan', { headers: [['Zi-Prefix', 'lease/']] }, followers[round % 2])).text) as { entries: { key: string }[] };
      expect(listed.entries.map((e) => e.key)).not.toContain('lease/a');
    }
    await keeping;
    // Kept alive past three times its time to live, at every node.
    for (const node of nodes) expect((await store.get('lease/kept', node)).text, `at ${node}`).toBe('k');
    // Its expiry is a write of its own: a watcher sees it, after the put.
    const events: WatchEvent[] = [];
    for await (const e of client.watch({ prefix: 'lease/', afterRevision: start.revision, waitMs: 200 })) {
      events.push(e);
      if (e.key === 'lease/a' && e.kind === 'expire') break;
    }
    expect(events.map((e) => `${e.kind} ${e.key}`)).toEqual(['put lease/kept', 'put lease/a', 'expire lease/a']);
    expect(events[2]!.revision).toBeGreaterThan(put.revision);
    // Without keep-alives, it expires too; a keep-alive then finds nothing.
    await eventually(async () => (await store.get('lease/kept', leader)).code === 404, 10_000, 'lease/kept expiring');
    expect((await store.raw('keepalive', { headers: [['Zi-Key', 'lease/kept']] })).code).toBe(404);
    expect((await store.raw('keepalive', { headers: [['Zi-Key', 'lease/start']] })).description).toMatch(/no time to live/);
    expect((await store.raw('put', { headers: [['Zi-Key', 'x'], ['Zi-TTL', 'soon']], data: 'v' })).code).toBe(400);
    expect(kept.revision).toBeGreaterThan(0);
  });

  it('a follower stops answering for a key at its deadline by itself, even while the leader cannot expire it (paused)', async () => {
    const { c, nc, store, leader, followers } = await startServingCluster('ttl-paused', { nodes: 3, sessionTimeoutMs: 4000 });
    const client = new ZiClient(nc, { cluster: 'ttl-paused' });
    const TTL = 1200;
    await client.put('lease/p', 'v', { ttlMs: TTL });
    const ackedAt = performance.now();
    for (const node of followers) expect((await store.get('lease/p', node)).code).toBe(200);
    // The leader freezes just before the deadline; the followers' leases still run for a while.
    await sleep(Math.max(0, ackedAt + TTL - 150 - performance.now()));
    await c.pause(leader);
    try {
      await sleep(Math.max(0, ackedAt + TTL + 20 - performance.now()));
      const replies = await Promise.all(followers.map((node) => store.get('lease/p', node)));
      // Each follower asks the (frozen) leader rather than answering from its copy: never 200.
      for (const [i, r] of replies.entries()) expect(r.code, `at ${followers[i]}: ${r.description}`).not.toBe(200);
    } finally {
      await c.resume(leader);
    }
  });

  it('kill -9 of the leader - the key neither expires early nor stays: the new leader gives it its whole time to live again', async () => {
    const { c, nc, store, leader, followers } = await startServingCluster('ttl-failover', { nodes: 3, sessionTimeoutMs: 2000 });
    const client = new ZiClient(nc, { cluster: 'ttl-failover' });
    const TTL = 4000;
    const sentAt = performance.now();
    await client.put('lock/a', 'holder', { ttlMs: TTL });
    await sleep(300);
    await c.kill(leader);
    // Until its deadline, every read that is answered returns it (some may get 503 during the failover).
    const deadline = sentAt + TTL;
    while (performance.now() < deadline - 200) {
      for (const node of followers) {
        const r = await store.get('lock/a', node);
        if (r.code !== 503) expect(r.code, `at ${node}`).toBe(200);
      }
      await sleep(100);
    }
    // The new leader restarted the countdown when it took over: gone within a time to live of that.
    const waited = await eventually(async () => (await store.get('lock/a', followers[0])).code === 404, TTL + 10_000, 'lock/a expiring after the failover');
    console.log(`time to live ${TTL} ms, leader killed 300 ms after the put: expired ${Math.round(performance.now() - sentAt)} ms after the put`);
    expect(waited).toBeGreaterThan(0);
    for (const node of followers) expect((await store.get('lock/a', node)).code).toBe(404);
  });
});
