// Goal: the public client contract (PROTOCOL.md) on a real cluster: real ZooKeeper, real
// nats-server, three node processes. Method: drive it exactly as an outside client would,
// with raw NATS requests, and assert on data and codes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import type { NatsConnection } from 'nats';
import { LocalCluster } from '../../cluster/local-cluster.ts';
import { eventually, kv, raw } from '../support/raw-client.ts';
import type { ScanResult } from '../../actors/scan.ts';
import { ZiClient } from '../../client/index.ts';

const SESSION_TIMEOUT_MS = 2000;
let cluster: LocalCluster;
let nc: NatsConnection;
let store: ReturnType<typeof kv>;
const NODES = ['n1', 'n2', 'n3'];

beforeAll(async () => {
  cluster = await LocalCluster.start({ nodes: 3, cluster: 'contract', sessionTimeoutMs: SESSION_TIMEOUT_MS });
  await cluster.waitServing(60_000);
  nc = await cluster.connectClient();
  store = kv(nc, 'contract');
});

afterAll(async () => {
  await nc?.close();
  const pids = cluster ? cluster.view().map((n) => n.pid) : [];
  const dir = cluster?.dataDir;
  const serverPids = cluster ? [cluster.zookeeper.pid, cluster.nats.pid] : [];
  await cluster?.stop();
  // Stopping leaves no process and no temp directory behind.
  for (const pid of [...pids, ...serverPids]) {
    if (pid !== null) expect(() => process.kill(pid, 0), `pid ${pid} still alive`).toThrow();
  }
  if (dir) expect(existsSync(dir)).toBe(false);
});

describe('contract', () => {
  it('discovery - $SRV.PING.zistore finds every node, $SRV.INFO names cluster and node', async () => {
    const found = new Map<string, { cluster: string; node: string }>();
    const inbox = nc.subscribe('_INBOX.srvinfo.*');
    const done = (async () => {
      for await (const m of inbox) {
        const info = JSON.parse(new TextDecoder().decode(m.data)) as { metadata: { cluster: string; node: string }; id: string };
        if (info.metadata?.cluster === 'contract') found.set(info.metadata.node, info.metadata);
      }
    })();
    nc.publish('$SRV.INFO.zistore', new Uint8Array(0), { reply: '_INBOX.srvinfo.1' });
    let pings = 0;
    const pingSub = nc.subscribe('_INBOX.srvping.*', { callback: () => pings++ });
    nc.publish('$SRV.PING.zistore', new Uint8Array(0), { reply: '_INBOX.srvping.1' });
    await new Promise((r) => setTimeout(r, 700));
    inbox.unsubscribe();
    pingSub.unsubscribe();
    await done;
    expect([...found.keys()].sort()).toEqual(NODES);
    expect(pings).toBe(3);
  });

  it('put/get - read-your-write across nodes, revision grows', async () => {
    const first = await store.put('greeting', 'hello', 'n1');
    expect(first.code).toBe(200);
    expect(first.data.byteLength).toBe(0);
    expect(first.revision).toBeGreaterThan(0);
    for (const node of NODES) {
      const got = await store.get('greeting', node);
      expect(got.code).toBe(200);
      expect(got.text).toBe('hello');
      expect(got.revision).toBe(first.revision);
    }
    const second = await store.put('greeting', 'world', 'n3');
    expect(second.revision).toBeGreaterThan(first.revision!);
    for (const node of NODES) expect((await store.get('greeting', node)).text).toBe('world');
    expect((await store.get('greeting')).text).toBe('world');
  });

  it('put/get - binary values and the 0-byte and 1 MiB bounds', async () => {
    const bytes = new Uint8Array(256).map((_, i) => i);
    expect((await store.put('bin', bytes, 'n2')).code).toBe(200);
    expect(Buffer.from((await store.get('bin', 'n3')).data).equals(Buffer.from(bytes))).toBe(true);
    expect((await store.put('empty', new Uint8Array(0))).code).toBe(200);
    const empty = await store.get('empty', 'n1');
    expect(empty.code).toBe(200);
    expect(empty.data.byteLength).toBe(0);
    const mib = new Uint8Array(1024 * 1024).fill(7);
    expect((await store.put('big', mib, 'n2')).code).toBe(200);
    expect((await store.get('big', 'n1')).data.byteLength).toBe(1024 * 1024);
    const tooBig = await store.put('big', new Uint8Array(1024 * 1024 + 1), 'n1');
    expect(tooBig.code).toBe(413);
    expect((await store.get('big', 'n3')).data.byteLength).toBe(1024 * 1024);
  });

  it('concurrency - writers racing on one key end identical on every node', async () => {
    const results = await Promise.all(
      Array.from({ length: 4 }, (_, w) =>
        (async () => {
          const revs: number[] = [];
          for (let i = 0; i < 15; i++) {
            const r = await store.put('race', `w${w}-${i}`, NODES[(w + i) % 3]);
            expect(r.code).toBe(200);
            revs.push(r.revision!);
          }
          return revs;
        })(),
      ),
    );
    const all = results.flat();
    expect(new Set(all).size).toBe(all.length); // every acknowledged write has its own revision
    const finals = await Promise.all(NODES.map((n) => store.get('race', n)));
    const last = Math.max(...all);
    for (const f of finals) {
      expect(f.revision).toBe(last);
      expect(f.text).toBe(finals[0]!.text);
    }
  });

  it('delete - removes the key everywhere; a missing key is 404', async () => {
    await store.put('doomed', 'x', 'n1');
    const del = await store.delete('doomed', 'n2');
    expect(del.code).toBe(200);
    expect(del.revision).toBeGreaterThan(0);
    for (const node of NODES) expect((await store.get('doomed', node)).code).toBe(404);
    expect((await store.delete('doomed', 'n3')).code).toBe(404);
    expect((await store.get('never-written', 'n1')).code).toBe(404);
  });

  it('conditional - Zi-If-Revision for put and delete', async () => {
    const created = await store.put('cas', 'a', 'n2', 0);
    expect(created.code).toBe(200);
    expect((await store.put('cas', 'b', 'n3', 0)).code).toBe(409);
    const next = await store.put('cas', 'b', 'n1', created.revision!);
    expect(next.code).toBe(200);
    expect((await store.put('cas', 'c', 'n3', created.revision!)).code).toBe(409);
    expect((await store.get('cas', 'n3')).text).toBe('b');
    expect((await store.delete('cas', 'n2', created.revision!)).code).toBe(409);
    expect((await store.delete('cas', 'n2', next.revision!)).code).toBe(200);
    expect((await store.delete('cas', 'n2', next.revision!)).code).toBe(404);
    // A deleted key does not exist: revision 0 may create it again.
    expect((await store.put('cas', 'again', 'n1', 0)).code).toBe(200);
  });

  it('errors - 400 for bad keys and headers, with the services error headers and an empty body', async () => {
    const cases: [string, [string, string][]][] = [
      ['no key', []],
      ['two keys', [['Zi-Key', 'a'], ['Zi-Key', 'b']]],
      ['wrong case', [['zi-key', 'a']]],
      ['control char', [['Zi-Key', 'a\u0001b']]],
      ['too long', [['Zi-Key', 'k'.repeat(1025)]]],
      ['bad if-revision', [['Zi-Key', 'a'], ['Zi-If-Revision', 'abc']]],
    ];
    for (const [what, headers] of cases) {
      const r = await store.raw('put', { headers, data: 'v' }, 'n2');
      expect(r.code, what).toBe(400);
      expect(r.description.length, what).toBeGreaterThan(0);
      expect(r.data.byteLength, what).toBe(0);
    }
    expect((await store.raw('get', { headers: [] })).code).toBe(400);
    expect((await store.put('k'.repeat(1024), 'max-length key', 'n1')).code).toBe(200);
    expect((await store.put('ключ-🔑', 'utf8 key', 'n1')).code).toBe(200);
    expect((await store.get('ключ-🔑', 'n3')).text).toBe('utf8 key');
  });

  it('members - reports cluster, node, leader, epoch, roles, states and replicas', async () => {
    for (const node of NODES) {
      const view = await store.members(node);
      expect(view.cluster).toBe('contract');
      expect(view.node).toBe(node);
      expect(view.epoch).toBeGreaterThan(0);
      expect(NODES).toContain(view.leader);
      expect(view.members.map((m) => m.id)).toEqual(NODES);
      expect(view.members.filter((m) => m.role === 'leader').map((m) => m.id)).toEqual([view.leader]);
      expect(view.members.every((m) => m.state === 'serving')).toBe(true);
      expect([...view.replicas].sort()).toEqual(NODES);
    }
  });

  it('partition - zk-down makes a node answer 503 within the session timeout, zk-up brings it back', async () => {
    const leader = (await store.members('n1')).leader!;
    const victim = NODES.find((n) => n !== leader)!;
    cluster.zkDown(victim);
    const ms = await eventually(async () => (await store.get('greeting', victim)).code === 503, SESSION_TIMEOUT_MS, '503 after zk-down');
    expect(ms).toBeLessThanOrEqual(SESSION_TIMEOUT_MS);
    const put = await store.put('greeting', 'while-cut', victim);
    expect(put.code).toBe(503);
    // The rest of the group goes on once ZooKeeper has dropped the cut node.
    await eventually(async () => (await store.put('during-cut', 'ok', leader)).code === 200, 15_000, 'write during zk-down');
    cluster.zkUp(victim);
    await cluster.waitServing(30_000, [victim]);
    const got = await store.get('during-cut', victim);
    expect(got.code).toBe(200);
    expect(got.text).toBe('ok');
  });
});

describe('contract - scan (an addition)', () => {
  const scan = (headers: Record<string, string>, node?: string) =>
    raw(nc, node ? `zistore.contract.node.${node}.scan` : 'zistore.contract.scan', { headers: Object.entries(headers) });
  const body = (reply: { text: string }) => JSON.parse(reply.text) as ScanResult;

  it('scan - keys by prefix in code-point order at every node, exact bytes, the revision of the snapshot, a count', async () => {
    const keys = ['s/b', 's/a', 's/\u{1f600}', 's/\uff5e', 's/a/1', 's-other'];
    let last = 0;
    for (const [i, key] of keys.entries()) last = (await store.put(key, new Uint8Array([i, 0, 255]), NODES[i % 3])).revision!;
    const inOrder = ['s/a', 's/a/1', 's/b', 's/\uff5e', 's/\u{1f600}'];
    for (const node of NODES) {
      const reply = await scan({ 'Zi-Prefix': 's/', 'Zi-Scan': 'values' }, node);
      expect(reply.code).toBe(200);
      const result = body(reply);
      expect(result.entries!.map((e) => e.key)).toEqual(inOrder);
      expect(result.entries!.map((e) => [...Buffer.from(e.value!, 'base64')])).toEqual(inOrder.map((k) => [keys.indexOf(k), 0, 255]));
      expect(result.revision).toBeGreaterThanOrEqual(last);
      expect(reply.revision).toBe(result.revision);
      expect(result.more).toBe(false);
      const keysOnly = body(await scan({ 'Zi-Prefix': 's/' }, node));
      expect(keysOnly.entries!.every((e) => e.value === undefined && e.revision > 0)).toBe(true);
      expect(body(await scan({ 'Zi-Prefix': 's/', 'Zi-Scan': 'count' }, node))).toEqual({ revision: expect.any(Number), count: 5 });
    }
  });

  it('scan - pages through Zi-Limit and Zi-After; Zi-From and Zi-To bound a range', async () => {
    for (let i = 0; i < 23; i++) expect((await store.put(`page/${String(i).padStart(2, '0')}`, 'x')).code).toBe(200);
    const seen: string[] = [];
    let after: string | undefined;
    for (let page = 0; page < 5; page++) {
      const result = body(await scan({ 'Zi-Prefix': 'page/', 'Zi-Limit': '10', ...(after ? { 'Zi-After': after } : {}) }, NODES[page % 3]));
      seen.push(...result.entries!.map((e) => e.key));
      if (!result.more) break;
      after = result.next;
    }
    expect(seen).toEqual(Array.from({ length: 23 }, (_, i) => `page/${String(i).padStart(2, '0')}`));
    const range = body(await scan({ 'Zi-From': 'page/05', 'Zi-To': 'page/08' }));
    expect(range.entries!.map((e) => e.key)).toEqual(['page/05', 'page/06', 'page/07']);
  });

  it('scan - a write acknowledged at one node is in the next scan at every other (linearizable, followers included)', async () => {
    for (let i = 0; i < 30; i++) {
      const writer = NODES[i % 3]!;
      const put = await store.put(`ryw/${i}`, `v${i}`, writer);
      expect(put.code).toBe(200);
      for (const node of NODES.filter((n) => n !== writer)) {
        const result = body(await scan({ 'Zi-Prefix': 'ryw/', 'Zi-Scan': 'count' }, node));
        expect(result.count).toBe(i + 1);
        expect(result.revision).toBeGreaterThanOrEqual(put.revision!);
      }
    }
  });

  it('scan - malformed headers get 400 with the reason', async () => {
    const refused = async (headers: Record<string, string>) => {
      const r = await scan(headers);
      return `${r.code} ${r.description}`;
    };
    expect(await refused({ 'Zi-Limit': '0' })).toBe('400 Zi-Limit must be 1 to 10000');
    expect(await refused({ 'Zi-Scan': 'everything' })).toBe('400 Zi-Scan must be one of keys, values, count');
    expect(await refused({ 'Zi-From': 'x'.repeat(1025) })).toBe('400 Zi-From: key longer than 1024 bytes');
  });

  it('scan - Zi-Scan-Format: binary gives the same entries as JSON, values as their exact bytes, in the documented layout', async () => {
    // Read as any client would from PROTOCOL.md: f64 revision, u32 count, u8 more, then per entry
    // u32 key length, key, f64 revision, i32 value length (-1: keys only), value; big-endian.
    const parse = (data: Uint8Array) => {
      const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      const out = { revision: b.readDoubleBE(0), more: b.readUInt8(12) === 1, entries: [] as { key: string; revision: number; value?: number[] }[] };
      let at = 13;
      for (let i = b.readUInt32BE(8); i > 0; i--) {
        const keyLength = b.readUInt32BE(at);
        const key = b.toString('utf8', at + 4, at + 4 + keyLength);
        at += 4 + keyLength;
        const revision = b.readDoubleBE(at);
        const valueLength = b.readInt32BE(at + 8);
        at += 12;
        out.entries.push(valueLength < 0 ? { key, revision } : { key, revision, value: [...b.subarray(at, at + valueLength)] });
        at += Math.max(valueLength, 0);
      }
      expect(at).toBe(b.byteLength);
      return out;
    };
    const binKeys = ['bin/\u{1f600}', 'bin/a', 'bin/\u00e9'];
    for (const [i, key] of binKeys.entries()) expect((await store.put(key, new Uint8Array([0xff, i, 0, 0x80]))).code).toBe(200);
    await store.delete('bin/none');
    for (const node of NODES) {
      for (const form of ['values', 'keys']) {
        const json = body(await scan({ 'Zi-Prefix': 'bin/', 'Zi-Scan': form }, node));
        const reply = await scan({ 'Zi-Prefix': 'bin/', 'Zi-Scan': form, 'Zi-Scan-Format': 'binary' }, node);
        expect(reply.code).toBe(200);
        const binary = parse(reply.data);
        expect(binary.revision).toBe(reply.revision);
        expect(binary.more).toBe(false);
        expect(binary.entries).toEqual(json.entries!.map((e) => (e.value === undefined ? { key: e.key, revision: e.revision } : { key: e.key, revision: e.revision, value: [...Buffer.from(e.value, 'base64')] })));
        expect(binary.entries.map((e) => e.key)).toEqual(['bin/a', 'bin/\u00e9', 'bin/\u{1f600}']);
      }
    }
    const firstPage = parse((await scan({ 'Zi-Prefix': 'bin/', 'Zi-Scan': 'values', 'Zi-Scan-Format': 'binary', 'Zi-Limit': '2' })).data);
    expect(firstPage.more).toBe(true);
    expect(firstPage.entries.map((e) => [e.key, e.value])).toEqual([['bin/a', [0xff, 1, 0, 0x80]], ['bin/\u00e9', [0xff, 2, 0, 0x80]]]);
    const refused = await scan({ 'Zi-Scan-Format': 'xml' });
    expect(`${refused.code} ${refused.description}`).toBe('400 Zi-Scan-Format must be one of json, binary');
    expect((await scan({ 'Zi-Scan': 'count', 'Zi-Scan-Format': 'binary' })).code).toBe(400);
  });

  it('scan - the typed client pages by itself (scanAll) and counts', async () => {
    const client = new ZiClient(nc, { cluster: 'contract' });
    const keys: string[] = [];
    for await (const e of client.scanAll({ prefix: 'page/', limit: 7, values: true })) {
      keys.push(e.key);
      expect(new TextDecoder().decode(e.value)).toBe('x');
    }
    expect(keys).toHaveLength(23);
    expect((await client.count({ prefix: 'page/' })).count).toBe(23);
    const first = await client.scan({ prefix: 'page/', limit: 2, node: 'n2' });
    expect(first).toMatchObject({ more: true, next: 'page/01', entries: [{ key: 'page/00' }, { key: 'page/01' }] });
  });
});

describe('contract - transactions (an addition)', () => {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const txn = (body: unknown, node?: string) =>
    raw(nc, node ? `zistore.contract.node.${node}.txn` : 'zistore.contract.txn', { data: typeof body === 'string' ? body : JSON.stringify(body) });

  it('txn - writes every key at one revision, through any node, seen at every node', async () => {
    const first = await txn({ ops: [{ op: 'put', key: 't/a', value: b64('A1') }, { op: 'put', key: 't/b', value: b64('B1') }] }, 'n2');
    expect(first.code).toBe(200);
    const result = JSON.parse(first.text) as { revision: number; written: number };
    expect(result).toEqual({ revision: first.revision, written: 2 });
    for (const node of NODES) {
      for (const [key, value] of [['t/a', 'A1'], ['t/b', 'B1']]) {
        const got = await store.get(key!, node);
        expect([got.text, got.revision]).toEqual([value, result.revision]);
      }
    }
  });

  it('txn - compares: revision, absent and value; one that fails is 409 and writes nothing', async () => {
    const a = await store.get('t/a');
    const ok = await txn(
      {
        compare: [{ key: 't/a', revision: a.revision }, { key: 't/none', absent: true }, { key: 't/b', value: b64('B1') }],
        ops: [{ op: 'put', key: 't/a', value: b64('A2') }, { op: 'delete', key: 't/b' }],
      },
      'n3',
    );
    expect(ok.code).toBe(200);
    expect((await store.get('t/b', 'n1')).code).toBe(404);
    const stale = await txn({ compare: [{ key: 't/a', revision: a.revision }], ops: [{ op: 'put', key: 't/c', value: b64('x') }] }, 'n1');
    expect(`${stale.code} ${stale.description}`).toBe(`409 compare failed: "t/a" is at ${ok.revision}, not ${a.revision}`);
    const present = await txn({ compare: [{ key: 't/a', absent: true }], ops: [{ op: 'put', key: 't/c', value: b64('x') }] });
    expect(present.code).toBe(409);
    const value = await txn({ compare: [{ key: 't/a', value: b64('A1') }], ops: [{ op: 'put', key: 't/c', value: b64('x') }] });
    expect(`${value.code} ${value.description}`).toBe('409 compare failed: "t/a" does not hold the value compared');
    expect((await store.get('t/c', 'n2')).code).toBe(404);
    // The 409 names the first compare that does not hold (Zi-Failed-Compare, from 0), at any node.
    const third = { compare: [{ key: 't/a', revision: ok.revision }, { key: 't/none', absent: true }, { key: 't/a', absent: true }], ops: [{ op: 'put', key: 't/c', value: b64('x') }] };
    for (const node of [undefined, 'n2']) expect((await txn(third, node)).headers.get('Zi-Failed-Compare')).toEqual(['2']);
    expect(stale.headers.get('Zi-Failed-Compare')).toEqual(['0']);
  });

  it('txn - bad bodies and the bounds get 400 or 413 with the reason', async () => {
    const refused = async (body: unknown) => {
      const r = await txn(body);
      return `${r.code} ${r.description}`;
    };
    expect(await refused('not json')).toBe('400 the body must be a JSON object {"compare": [...], "ops": [...]}');
    expect(await refused({ ops: [] })).toBe('400 a transaction needs at least one op');
    expect(await refused({ ops: [{ op: 'put', key: 'x', value: b64('1') }, { op: 'delete', key: 'x' }] })).toBe('400 op 1: key "x" is written twice');
    expect(await refused({ ops: [{ op: 'put', key: 'x', value: 'not base64!' }] })).toBe('400 op 0: value must be base64 (standard alphabet, padded)');
    expect(await refused({ compare: [{ key: 'x', revision: 1, absent: true }], ops: [{ op: 'delete', key: 'x' }] })).toBe('400 compare 0: needs exactly one of revision, absent, value');
    expect(await refused({ ops: Array.from({ length: 129 }, (_, i) => ({ op: 'delete', key: `k${i}` })) })).toBe('400 at most 128 ops and 128 compares');
    const half = b64('x'.repeat(600 * 1024));
    expect(await refused({ ops: [{ op: 'put', key: 'x', value: half }, { op: 'put', key: 'y', value: half }] })).toBe('413 values of a transaction are larger than 1048576 bytes together');
  });

  it('txn - atomic at every node: scans at followers never see one key of a transaction without the other', async () => {
    const leader = (await store.members('n1')).leader!;
    const followers = NODES.filter((n) => n !== leader);
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        const r = await txn({ ops: [{ op: 'put', key: 'pair/x', value: b64(String(i)) }, { op: 'put', key: 'pair/y', value: b64(String(i)) }] });
        expect(r.code).toBe(200);
      }
    })();
    let checked = 0;
    const seen = new Set<string>();
    for (let i = 0; i < 150; i++) {
      const reply = await scan(followers[i % followers.length]!);
      const entries = (JSON.parse(reply.text) as ScanResult).entries ?? [];
      if (entries.length < 2) continue;
      expect(entries.map((e) => [e.value, e.revision])).toEqual([[entries[0]!.value, entries[0]!.revision], [entries[0]!.value, entries[0]!.revision]]);
      checked++;
      seen.add(entries[0]!.value!);
    }
    writing = false;
    await writer;
    expect(checked).toBeGreaterThan(100);
    // The scans ran while the pair kept changing.
    expect(seen.size).toBeGreaterThan(10);

    function scan(node: string) {
      return raw(nc, `zistore.contract.node.${node}.scan`, { headers: [['Zi-Prefix', 'pair/'], ['Zi-Scan', 'values']] });
    }
  });

  it('txn - the typed client: compares and writes, 409 as ZiStoreError', async () => {
    const client = new ZiClient(nc, { cluster: 'contract' });
    const r = await client.txn([{ op: 'put', key: 'typed/a', value: '1' }, { op: 'put', key: 'typed/b', value: new Uint8Array([0, 255]) }], [{ key: 'typed/a', absent: true }]);
    expect(r.written).toBe(2);
    expect([...(await client.get('typed/b', { node: 'n3' }))!.value]).toEqual([0, 255]);
    await expect(client.txn([{ op: 'delete', key: 'typed/a' }], [{ key: 'typed/a', value: '2' }])).rejects.toMatchObject({ code: 409, failedCompare: 0 });
    await expect(client.txn([{ op: 'delete', key: 'typed/a' }], [{ key: 'typed/a', value: '1' }, { key: 'typed/b', absent: true }])).rejects.toMatchObject({ code: 409, failedCompare: 1 });
  });
});
