// Goal: a replica's copy kept in LMDB comes back as it was: committed values, writes in flight,
// deletes gone, the copy's meta; a data dir of another node or cluster is refused with the way
// out; --reset-data starts empty; a damaged entry (checksum) or engine file is named, not served.
// Method: a real LMDB environment in a temp dir, through ReplicaStore as the node uses it.
import { afterEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { compareKeys } from '../../actors/key-order.ts';
import type { Clock } from '../../actors/ports.ts';
import { ReplicaStore } from '../../actors/replica-store.ts';
import { MemoryDisk } from '../../storage/memory-disk.ts';
import { parseFsync } from '../../storage/fsync-policy.ts';
import { DataDirError, LmdbDisk, READ_CACHE_ENTRIES, RESERVE_MAX_BYTES, decodeChanges, encodeChanges, reserveShortfall } from '../../storage/lmdb-disk.ts';

const v = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | null | undefined) => (b == null ? null : new TextDecoder().decode(b));

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'zistore-lmdb-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const options = (dir: string) => ({ dir, cluster: 'c1', nodeId: 'n1', fsync: 'always' as const });

/** A new data dir whose copy holds k=value, closed. */
async function dirHoldingOneKey(): Promise<string> {
  const dir = tempDir();
  const disk = LmdbDisk.open(options(dir));
  disk.write('k', { rev: 1, value: v('value'), pendingRev: 0, pendingValue: null });
  await disk.flushed();
  await disk.close();
  return dir;
}

/** The node's view of a data dir: its disk, and a store that took the copy in. */
function openStore(dir: string): { disk: LmdbDisk; store: ReplicaStore } {
  const disk = LmdbDisk.open(options(dir));
  const store = new ReplicaStore();
  store.attachDisk(disk);
  return { disk, store };
}

describe('lmdb disk', () => {
  it('lmdb disk - a copy comes back as it was: values, writes in flight, deletes, meta', async () => {
    const dir = tempDir();
    const disk = LmdbDisk.open(options(dir));
    const store = new ReplicaStore();
    store.attachDisk(disk);
    store.apply('a', { type: 'fill', rev: 1, value: v('one') });
    store.apply('b', { type: 'fill', rev: 2, value: v('two') });
    store.apply('b', { type: 'invalidate', rev: 3, value: null });
    store.apply('b', { type: 'validate', rev: 3 }); // b deleted
    store.apply('a', { type: 'invalidate', rev: 4, value: v('uno') }); // in flight
    store.apply('c', { type: 'invalidate', rev: 5, value: v('three') }); // in flight, new key
    store.apply('t', { type: 'fill', rev: 2, value: v('lease'), ttl: 5000 }); // expires
    store.apply('t', { type: 'invalidate', rev: 6, value: v('lease2'), ttl: 7000 }); // in flight, expires
    store.heldThrough = 3;
    store.history = 7;
    store.intact = true;
    await store.durable();
    await disk.close();

    const again = LmdbDisk.open(options(dir));
    const back = new ReplicaStore();
    back.attachDisk(again);
    expect(text(back.get('a')?.value)).toBe('one');
    expect(back.get('a')).toMatchObject({ state: 'invalid', rev: 1, pendingRev: 4 });
    expect(text(back.get('a')?.pendingValue)).toBe('uno');
    expect(back.get('b')).toBeUndefined();
    expect(back.get('c')).toMatchObject({ state: 'invalid', pendingRev: 5 });
    // Times to live come back with their values; entries without one are stored as before.
    expect(back.get('t')).toMatchObject({ state: 'invalid', rev: 2, ttl: 5000, pendingRev: 6, pendingTtl: 7000 });
    expect(text(back.get('t')?.pendingValue)).toBe('lease2');
    expect(back.get('a')).toMatchObject({ ttl: 0, pendingTtl: 0 });
    expect(back.maxRev).toBe(6);
    expect(back.heldThrough).toBe(3);
    expect(back.history).toBe(7);
    expect(back.intact).toBe(true);
    // The delete of b is kept as a tombstone: a catch-up from below it still learns of it.
    expect(back.deletesKnownAbove).toBe(0);
    expect(back.stateOf('b', 99)).toEqual({ key: 'b', rev: 3, value: null });
    expect([...back.chunks(100, 1 << 20, 2)].flat()).toContainEqual({ key: 'b', rev: 3, value: null });
    // A flush empties the disk too.
    back.clear();
    await back.durable();
    await again.close();
    const flushed = LmdbDisk.open(options(dir));
    const empty = new ReplicaStore();
    empty.attachDisk(flushed);
    expect([...empty.keys()]).toEqual([]);
    expect(empty.intact).toBe(false);
    await flushed.close();
  });

  it('lmdb disk - a large copy comes back whole and in key order, whatever order the disk hands it out in', async () => {
    // Keys whose order by code point differs from UTF-16 order, control characters, and most
    // keys small and settled (the bulk path) mixed with the others (in flight, large, expiring).
    const odd = ['\u0001x', '\u001bz', 'a', 'a\u0000', '\uE000', '\u{1F600}', '\u{10FFFF}', 'é', 'Z'];
    const keys = [...odd, ...Array.from({ length: 3000 }, (_, i) => `k${(i * 7919) % 3000}`)];
    const valueOf = (key: string) => v(key.startsWith('k1') ? `${key}:${'x'.repeat(300)}` : `${key}=`);
    const fill = (store: ReplicaStore) => {
      keys.forEach((key, i) => store.apply(key, { type: 'fill', rev: i + 1, value: valueOf(key), ...(key === 'k7' ? { ttl: 60_000 } : {}) }));
      store.apply('k5', { type: 'invalidate', rev: keys.length + 1, value: v('next') });
    };
    const expectWhole = (back: ReplicaStore) => {
      expect(back.size).toBe(keys.length);
      expect([...back.keysFrom(undefined)]).toEqual([...keys].sort(compareKeys));
      for (const key of keys) expect(text(back.get(key)?.value)).toBe(text(valueOf(key)));
      expect(back.get('k5')).toMatchObject({ state: 'invalid', pendingRev: keys.length + 1 });
      expect(back.get('k7')).toMatchObject({ ttl: 60_000 });
      expect(back.maxRev).toBe(keys.length + 1);
    };

    const dir = tempDir();
    const disk = LmdbDisk.open(options(dir));
    const store = new ReplicaStore();
    store.attachDisk(disk);
    fill(store);
    await store.durable();
    await disk.close();
    const again = LmdbDisk.open(options(dir));
    const back = new ReplicaStore();
    back.attachDisk(again);
    expectWhole(back);
    await again.close();

    // A disk that hands entries out in no order (the simulation's, in insertion order).
    const clock: Clock = { now: () => 0, setTimeout: (fn) => setTimeout(fn, 0), clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout) };
    const memoryDisk = new MemoryDisk(clock, 0);
    const first = new ReplicaStore();
    first.attachDisk(memoryDisk);
    fill(first);
    await first.durable();
    const fromMemory = new ReplicaStore();
    fromMemory.attachDisk(memoryDisk);
    expectWhole(fromMemory);
  });

  for (const fsync of ['always', 'interval'] as const) {
    it(`lmdb disk - fsync ${fsync}: reads see every write at once, before its commit and after it; a clear hides the engine's entries until it commits`, async () => {
      // The node serves settled values from the disk, so a read must never miss a write not yet
      // committed, nor find an older value once the engine holds the write.
      const entry = (rev: number, value: string | null) => ({ rev, value: value === null ? null : v(value), pendingRev: 0, pendingValue: null });
      const disk = LmdbDisk.open({ ...options(tempDir()), fsync });
      const keys = () => [...disk.keysFrom(undefined)];
      disk.write('a', entry(1, 'one'));
      disk.write('c', entry(2, 'three'));
      disk.write('e', entry(3, 'five'));
      expect(text(disk.read('a')?.value)).toBe('one');
      expect(keys()).toEqual(['a', 'c', 'e']);
      await disk.flushed();
      expect(disk.read('c')).toMatchObject({ rev: 2 });
      // Over committed entries: a new key, a tombstone (no value), a key removed, a key rewritten.
      disk.write('b', entry(4, 'two'));
      disk.write('c', entry(5, null));
      disk.write('e', null);
      disk.write('a', entry(6, 'uno'));
      expect(keys()).toEqual(['a', 'b']);
      expect([...disk.keysFrom('b')]).toEqual(['b']);
      expect(text(disk.read('a')?.value)).toBe('uno');
      expect(disk.read('c')).toMatchObject({ rev: 5, value: null });
      expect(disk.read('e')).toBeUndefined();
      // Written again before the first commit is done: the newer stays.
      const committing = disk.flushed();
      disk.write('a', entry(7, 'eins'));
      await committing;
      await disk.flushed();
      expect(text(disk.read('a')?.value)).toBe('eins');
      expect(keys()).toEqual(['a', 'b']);
      // A flush of the copy, then a write: only that write is there, before and after the commit.
      disk.clear();
      expect(disk.read('a')).toBeUndefined();
      disk.write('d', entry(8, 'four'));
      expect(keys()).toEqual(['d']);
      await disk.flushed();
      expect(keys()).toEqual(['d']);
      expect(disk.read('b')).toBeUndefined();
      await disk.close();
    });
  }

  for (const fsync of ['always', 'interval'] as const) {
    it(`lmdb disk - fsync ${fsync}: of the metas written between two commits the newest is stored, with every write made before it, and a clear among them`, async () => {
      const dir = tempDir();
      const meta = (maxRev: number) => ({ maxRev, heldThrough: maxRev, history: 1, snapshotRev: 0, intact: true });
      const entry = (rev: number, value: string) => ({ rev, value: v(value), pendingRev: 0, pendingValue: null });
      const disk = LmdbDisk.open({ ...options(dir), fsync });
      disk.write('old', entry(1, 'gone'));
      await disk.flushed();
      disk.writeMeta(meta(1));
      disk.clear();
      disk.write('a', entry(2, 'two'));
      disk.writeMeta(meta(2));
      disk.write('b', entry(3, 'three'));
      disk.writeMeta(meta(3));
      await disk.flushed();
      await disk.close();
      const again = LmdbDisk.open({ ...options(dir), fsync });
      const copy = again.load();
      expect(copy.meta).toMatchObject({ maxRev: 3 });
      expect([...again.keysFrom(undefined)]).toEqual(['a', 'b']);
      await again.close();
    });
  }

  it('lmdb disk - entries read from the engine stay decoded, bounded; a write, a clear and a caller changing what it got never leave a stale one', async () => {
    const entry = (rev: number, value: string) => ({ rev, value: v(value), pendingRev: 0, pendingValue: null });
    const disk = LmdbDisk.open({ ...options(tempDir()), fsync: 'interval' });
    const count = READ_CACHE_ENTRIES + 100;
    for (let i = 0; i < count; i++) disk.write(`k${i}`, entry(i + 1, `v${i}`));
    await disk.flushed();
    for (let i = 0; i < count; i++) expect(text(disk.read(`k${i}`)?.value)).toBe(`v${i}`);
    const held = (disk as unknown as { recentReads: Map<string, unknown> }).recentReads;
    expect(held.size).toBe(READ_CACHE_ENTRIES);
    expect(held.has('k0')).toBe(false);
    expect(held.has(`k${count - 1}`)).toBe(true);
    // The caller owns what it gets: changing it changes nothing held.
    disk.read(`k${count - 1}`)!.value![0] = 0;
    expect(text(disk.read(`k${count - 1}`)?.value)).toBe(`v${count - 1}`);
    // Rewritten after it was read: the new value, before its commit and after.
    disk.write(`k${count - 1}`, entry(count + 1, 'new'));
    expect(text(disk.read(`k${count - 1}`)?.value)).toBe('new');
    await disk.flushed();
    expect(disk.read(`k${count - 1}`)).toMatchObject({ rev: count + 1 });
    expect(text(disk.read(`k${count - 1}`)?.value)).toBe('new');
    disk.clear();
    await disk.flushed();
    expect(disk.read(`k${count - 2}`)).toBeUndefined();
    await disk.close();
  });

  it('lmdb disk - a transfer pages through the entries as last written: values for a full copy, changes above a revision (deletes too) for a catch-up', async () => {
    const disk = LmdbDisk.open(options(tempDir()));
    for (let i = 0; i < 10; i++) disk.write(`k${i}`, { rev: i + 1, value: i === 4 ? null : v(`v${i}`), pendingRev: 0, pendingValue: null });
    await disk.flushed();
    disk.write('k2', { rev: 11, value: v('new'), pendingRev: 0, pendingValue: null }); // not committed yet
    disk.write('k9', { rev: 12, value: v('newer'), pendingRev: 0, pendingValue: null });
    const walk = (since: number, limit: number) => {
      const pages: string[][] = [];
      for (let after: string | undefined; ; ) {
        const { entries, next } = disk.page(after, since, limit, 1 << 20);
        pages.push(entries.map(([key, e]) => `${key}@${e.rev}${e.value === null ? '-' : ''}`));
        if (next === null) return pages;
        after = next;
      }
    };
    expect(walk(0, 4).flat()).toEqual(['k0@1', 'k1@2', 'k2@11', 'k3@4', 'k5@6', 'k6@7', 'k7@8', 'k8@9', 'k9@12']);
    expect(walk(0, 4)[0]).toHaveLength(4);
    expect(walk(4, 100).flat()).toEqual(['k2@11', 'k4@5-', 'k5@6', 'k6@7', 'k7@8', 'k8@9', 'k9@12']);
    // Few of many entries changed: a page looks at 8 entries for each it may hold, so may be empty.
    expect(walk(10, 1)).toEqual([['k2@11'], ['k9@12'], []]);
    expect(walk(11, 1)).toEqual([[], ['k9@12'], []]);
    // Bounded by bytes too.
    expect(disk.page(undefined, 0, 100, 1).entries).toHaveLength(1);
    await disk.close();
  });

  it("lmdb disk - another node's or cluster's data dir is refused with the way out; --reset-data starts empty", async () => {
    const dir = tempDir();
    const disk = LmdbDisk.open(options(dir));
    const store = new ReplicaStore();
    store.attachDisk(disk);
    store.apply('a', { type: 'fill', rev: 1, value: v('one') });
    await store.durable();
    await disk.close();
    expect(() => LmdbDisk.open({ ...options(dir), nodeId: 'n2' })).toThrow(DataDirError);
    expect(() => LmdbDisk.open({ ...options(dir), cluster: 'other' })).toThrow(/holds node n1 of cluster c1.*--reset-data/);
    const reset = LmdbDisk.open({ ...options(dir), nodeId: 'n2', reset: true });
    const fresh = new ReplicaStore();
    fresh.attachDisk(reset);
    expect(fresh.get('a')).toBeUndefined();
    await reset.close();
    expect(() => LmdbDisk.open(options(dir))).toThrow(/holds node n2/);
  });

  it('lmdb disk - a damaged entry stops the start with the file named, and an unusable dir is named', async () => {
    const dir = tempDir();
    const disk = LmdbDisk.open(options(dir));
    await disk.close();
    // Write a record the node could not have written, straight through the engine.
    const raw = open({ path: dir, maxDbs: 4 });
    await raw.openDB<Buffer, string>('entries', { encoding: 'binary' }).put('k', Buffer.from([1, 2, 3]));
    await raw.close();
    // The check at open walks every entry: the node does not start on it.
    expect(() => LmdbDisk.open(options(dir))).toThrow(/data dir .* is damaged: key "k": entry of 3 bytes is shorter than its header.*--reset-data/);
    // One byte of a stored value changed behind the engine's back: the entry's checksum says so.
    const flipped = await dirHoldingOneKey();
    const rawFlip = open({ path: flipped, maxDbs: 4 });
    const entries = rawFlip.openDB<Buffer, string>('entries', { encoding: 'binary' });
    const bytes = Buffer.from(entries.get('k')!);
    bytes[bytes.length - 1] ^= 1;
    await entries.put('k', bytes);
    await rawFlip.close();
    expect(() => LmdbDisk.open(options(flipped))).toThrow(/is damaged: key "k": checksum mismatch/);
    // The engine's own pages overwritten (its header): a child process walks the file first, so
    // the crash that reading it causes is a message here, not the end of this process.
    const wrecked = await dirHoldingOneKey();
    const fd = openSync(join(wrecked, 'data.mdb'), 'r+');
    writeSync(fd, Buffer.alloc(8192, 0xa5), 0, 8192, 0);
    closeSync(fd);
    expect(() => LmdbDisk.open(options(wrecked))).toThrow(/data\.mdb\) is damaged: .*--reset-data/);
    // A dir that cannot be made: below a plain file.
    const file = join(tempDir(), 'a-file');
    writeFileSync(file, 'not a dir');
    expect(() => LmdbDisk.open(options(join(file, 'data')))).toThrow(/cannot open the data dir .*a-file\/data/);
  });

  it('lmdb disk - deletes stay on disk as tombstones, bounded like those in memory; a key written again keeps its record', async () => {
    const dir = tempDir();
    const disk = LmdbDisk.open(options(dir));
    const store = new ReplicaStore();
    store.attachDisk(disk);
    const count = 70_000; // above the store's bound of 65,536 tombstones
    const key = (i: number) => `k${i}`;
    let rev = 0;
    store.apply('again', { type: 'fill', rev: ++rev, value: v('old') });
    store.apply('again', { type: 'invalidate', rev: ++rev, value: null });
    store.apply('again', { type: 'validate', rev }); // the oldest delete: forgotten first
    store.apply('again', { type: 'invalidate', rev: ++rev, value: v('back') });
    store.apply('again', { type: 'validate', rev });
    for (let i = 0; i < count; i++) store.apply(key(i), { type: 'fill', rev: ++rev, value: v('x') });
    const firstDelete = rev + 1;
    for (let i = 0; i < count; i++) {
      store.apply(key(i), { type: 'invalidate', rev: ++rev, value: null });
      store.apply(key(i), { type: 'validate', rev });
    }
    const forgotten = store.deletesKnownAbove;
    // 70,001 deletes ('again' first): the oldest 4,465 are forgotten, 'again' and 4,464 of the k's.
    expect(forgotten).toBe(firstDelete + (count - 65_536) - 1);
    await store.durable();
    await disk.close();
    const again = LmdbDisk.open(options(dir));
    const back = new ReplicaStore();
    back.attachDisk(again);
    expect(back.deletesKnownAbove).toBe(forgotten);
    expect(text(back.get('again')?.value)).toBe('back');
    expect(back.size).toBe(1);
    // Every delete above the bound is still known to a catch-up; the forgotten ones left the disk.
    const since = [...back.chunks(100_000, 64 << 20, forgotten)].flat();
    expect(since.filter((e) => e.value === null)).toHaveLength(65_536);
    expect(back.stateOf(key(count - 1), Number.MAX_SAFE_INTEGER)).toEqual({ key: key(count - 1), rev, value: null });
    const raw = open({ path: dir, maxDbs: 4 });
    expect(raw.openDB('entries', { encoding: 'binary' }).getKeysCount()).toBe(65_536 + 1);
    await raw.close();
    await again.close();
  });

  it('lmdb disk - fsync interval: a write acked (flushed) survives a kill -9 of the process; the policy may change across restarts', async () => {
    const dir = tempDir();
    // A child process stores k=v1 under `interval=60000` (no sync in its lifetime), says so once
    // flushed() resolves, then kills itself: what it acked must be there.
    const lmdbDisk = new URL('../../storage/lmdb-disk.ts', import.meta.url).pathname;
    const script = `
      import { LmdbDisk } from ${JSON.stringify(lmdbDisk)};
      const disk = LmdbDisk.open({ dir: ${JSON.stringify(dir)}, cluster: 'c1', nodeId: 'n1', fsync: 'interval', syncIntervalMs: 60000 });
      disk.write('k', { rev: 1, value: new TextEncoder().encode('v1'), pendingRev: 0, pendingValue: null });
      await disk.flushed();
      process.stdout.write('acked\\n');
      process.kill(process.pid, 'SIGKILL');`;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(child.stderr).toBe('');
    expect(child.stdout).toBe('acked\n');
    expect(child.signal).toBe('SIGKILL');
    const always = LmdbDisk.open(options(dir));
    const store = new ReplicaStore();
    store.attachDisk(always);
    expect(text(store.get('k')?.value)).toBe('v1');
    store.apply('k', { type: 'fill', rev: 2, value: v('v2') });
    await store.durable();
    await always.close();
    const interval = LmdbDisk.open({ ...options(dir), fsync: 'interval', syncIntervalMs: 5 });
    const again = new ReplicaStore();
    again.attachDisk(interval);
    expect(text(again.get('k')?.value)).toBe('v2');
    await interval.close();
  });

  it.each(['always', 'interval'] as const)('lmdb disk - fsync %s: a change nobody waits for commits with the next flush, or on its own within LAZY_COMMIT_MS; a kill -9 loses nothing', async (fsync) => {
    const dir = tempDir();
    const lmdbDisk = new URL('../../storage/lmdb-disk.ts', import.meta.url).pathname;
    const script = `
      import { LmdbDisk, LAZY_COMMIT_MS } from ${JSON.stringify(lmdbDisk)};
      import { open } from 'lmdb';
      const disk = LmdbDisk.open({ dir: ${JSON.stringify(dir)}, cluster: 'c1', nodeId: 'n1', fsync: ${JSON.stringify(fsync)} });
      const entry = (rev, text) => ({ rev, value: new TextEncoder().encode(text), pendingRev: 0, pendingValue: null });
      disk.write('validated', entry(1, 'a'));
      await new Promise((resolve) => setImmediate(resolve));
      disk.write('k', entry(2, 'b'));
      await disk.flushed();
      process.stdout.write('acked\\n');
      disk.write('lazy', entry(3, 'c'));
      // Nobody flushes it: wait (2 s at most) until the engine has committed it by itself.
      // The engine's own view (the disk's reads see the write at once).
      const engine = open({ path: ${JSON.stringify(dir)}, maxDbs: 4 }).openDB('entries', { encoding: 'binary' });
      const committed = () => engine.get('lazy') !== undefined;
      for (let waited = 0; waited < 2000 && !committed(); waited += LAZY_COMMIT_MS) await new Promise((resolve) => setTimeout(resolve, LAZY_COMMIT_MS));
      process.kill(process.pid, 'SIGKILL');`;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(child.stderr).toBe('');
    expect(child.stdout).toBe('acked\n');
    expect(child.signal).toBe('SIGKILL');
    const { disk, store } = openStore(dir);
    expect([text(store.get('validated')?.value), text(store.get('k')?.value), text(store.get('lazy')?.value)]).toEqual(['a', 'b', 'c']);
    await disk.close();
  });

  it('lmdb disk - the watch history comes back with the copy: every change between floor and stable, the committed ones above it, writes in flight still undecided', async () => {
    const dir = tempDir();
    const { disk, store } = openStore(dir);
    const write = (key: string, rev: number, value: Uint8Array | null, validate = true) => {
      store.apply(key, { type: 'invalidate', rev, value });
      if (validate) store.apply(key, { type: 'validate', rev });
    };
    write('a', 1, v('one'));
    write('b', 2, v('two'));
    // A transaction: two keys at one revision.
    write('a', 3, v('uno'), false);
    write('b', 3, null, false);
    store.apply('a', { type: 'validate', rev: 3 });
    store.apply('b', { type: 'validate', rev: 3 });
    write('c', 5, v('five')); // 4 is still in flight below it: 5 stays above stable
    write('d', 4, v('four'), false);
    await store.durable();
    const seen = (s: ReplicaStore) => [...s.changes.since(0)].map((c) => `${c.rev} ${c.kind} ${c.key}=${text(c.value)}`);
    expect(seen(store)).toEqual(['1 put a=one', '2 put b=two', '3 put a=uno', '3 delete b=null']);
    expect([store.changes.floor, store.changes.stable]).toEqual([0, 3]);
    await disk.close();

    const { disk: reopened, store: again } = openStore(dir);
    expect([again.changes.floor, again.changes.stable]).toEqual([0, 3]);
    expect(seen(again)).toEqual(seen(store));
    // The write in flight at 4 is decided now: committed, so 4 and the recorded 5 become stable.
    again.apply('d', { type: 'validate', rev: 4 });
    expect(seen(again).slice(4)).toEqual(['4 put d=four', '5 put c=five']);
    expect(again.changes.stable).toBe(5);

    // Retention lifts the floor: the records below it leave the disk too.
    again.changes.retention = { ...again.changes.retention, maxChanges: 2 };
    again.apply('e', { type: 'invalidate', rev: 6, value: v('six') });
    again.apply('e', { type: 'validate', rev: 6 });
    await again.durable();
    expect(again.changes.floor).toBe(4);
    await reopened.close();
    const root = open({ path: dir, maxDbs: 4, noSubdir: false, readOnly: true });
    expect([...root.openDB<Buffer, number>('changes', { encoding: 'binary' }).getKeys()]).toEqual([5, 6]);
    await root.close();
  });

  /**
   * A copy that committed a@1, then began a catch-up that brought b@2 (a write it never saw), then
   * took `after` at 3 as a write, as usual; the node stops with the leader's changes still to
   * come, `covered` (the last chunk's `lastRevBefore`) said or not. Reopened, with a lease that
   * says the copy holds every write up to 3.
   */
  async function restartedInTransfer(after: string, covered?: number): Promise<ReplicaStore> {
    const dir = tempDir();
    const { disk, store } = openStore(dir);
    store.apply('a', { type: 'invalidate', rev: 1, value: v('one') });
    store.apply('a', { type: 'validate', rev: 1 });
    store.changes.beginTransfer();
    store.apply('b', { type: 'fill', rev: 2, value: v('two') });
    if (covered !== undefined) store.changes.transferCovers(covered);
    store.apply(after, { type: 'invalidate', rev: 3, value: v('three') });
    store.apply(after, { type: 'validate', rev: 3 });
    await store.durable();
    expect(store.changes.stable).toBe(1);
    await disk.close();
    const { disk: reopened, store: again } = openStore(dir);
    again.changes.held(3);
    await reopened.close();
    return again;
  }

  it('lmdb disk - a state transfer open when the node stopped: its history starts above the copy (F17)', async () => {
    // Nothing up to the copy's highest revision may be vouched for: the history would go from 1
    // to 3 without revision 2.
    const again = await restartedInTransfer('b');
    expect(again.changes.floor).toBe(3);
    expect([...again.changes.since(0)].map((c) => c.rev)).toEqual([]);
  });

  it('lmdb disk - an open transfer whose last chunk came: its history starts above what the transfer covered, the writes after it kept (F23)', async () => {
    const again = await restartedInTransfer('c', 2);
    expect(again.changes.floor).toBe(2);
    expect([...again.changes.since(0)].map((c) => `${c.rev} ${c.key}`)).toEqual(['3 c']);
  });

  it("lmdb disk - history lost by an open transfer is taken back from another copy's changes, below the ones held, and kept across a restart", async () => {
    const dir = tempDir();
    const { disk, store } = openStore(dir);
    store.changes.beginTransfer();
    store.apply('a', { type: 'fill', rev: 1, value: v('one') });
    store.apply('b', { type: 'fill', rev: 2, value: v('two') });
    store.changes.endTransfer(null, store.maxRev);
    store.apply('c', { type: 'invalidate', rev: 3, value: v('three') });
    store.apply('c', { type: 'validate', rev: 3 });
    expect([store.changes.floor, store.changes.stable]).toEqual([2, 3]);
    // A copy that kept them, as its sync reply sends them.
    const keeper = new ReplicaStore();
    for (const [key, rev] of [['a', 1], ['b', 2]] as const) {
      keeper.apply(key, { type: 'invalidate', rev, value: v(key) });
      keeper.apply(key, { type: 'validate', rev });
    }
    const older = keeper.changes.transferable(keeper.changes.floor, store.changes.floor, 1 << 20)!;
    // Changes that do not meet the ones held, or while a transfer is open, are not taken.
    expect(store.changes.backfill({ ...older, through: 1 })).toBe(false);
    store.changes.beginTransfer();
    expect(store.changes.backfill(older)).toBe(false);
    store.changes.endTransfer(null, 2);
    expect(store.changes.backfill(older)).toBe(true);
    const history = (s: ReplicaStore) => [...s.changes.since(0)].map((c) => `${c.rev}:${c.key}:${text(c.value)}`);
    expect(store.changes.floor).toBe(0);
    expect(history(store)).toEqual(['1:a:a', '2:b:b', '3:c:three']);
    await store.durable();
    await disk.close();
    const { disk: reopened, store: again } = openStore(dir);
    expect([again.changes.floor, again.changes.stable]).toEqual([0, 3]);
    expect(history(again)).toEqual(['1:a:a', '2:b:b', '3:c:three']);
    await reopened.close();
  });

  it('lmdb disk - a change the copy holds above the stable revision without its record lifts the floor over it; a damaged record stops the start', async () => {
    const dir = tempDir();
    const { disk, store } = openStore(dir);
    store.apply('a', { type: 'invalidate', rev: 1, value: v('one') });
    store.apply('a', { type: 'validate', rev: 1 });
    await store.durable();
    // As if the last commit had kept the entry of revision 2 but not its record.
    disk.write('b', { rev: 2, value: v('two'), pendingRev: 0, pendingValue: null });
    await disk.flushed();
    await disk.close();
    const { disk: reopened, store: again } = openStore(dir);
    expect([again.changes.floor, again.changes.stable]).toEqual([2, 2]);
    expect([...again.changes.since(0)]).toEqual([]);
    await reopened.close();

    const record = encodeChanges(7, [{ key: 'k', kind: 'expire', value: null }, { key: 'ключ', kind: 'put', value: v('значение') }]);
    expect(decodeChanges(7, record).map((c) => [c.key, c.kind, text(c.value)])).toEqual([['k', 'expire', null], ['ключ', 'put', 'значение']]);
    expect(() => decodeChanges(8, record)).toThrow(/checksum/);
    const root = open({ path: dir, maxDbs: 4, noSubdir: false });
    const damaged = Buffer.from(record);
    damaged[damaged.byteLength - 1]! ^= 1;
    await root.openDB<Buffer, number>('changes', { encoding: 'binary' }).put(7, damaged);
    await root.close();
    const broken = LmdbDisk.open(options(dir));
    expect(() => new ReplicaStore().attachDisk(broken)).toThrow(/record of revision 7: checksum mismatch.*--reset-data/);
    await broken.close();
  });

  it('lmdb disk - a commit must leave the reserve free: 5 % of the file system (at most 64 MiB) plus twice its own size', () => {
    const MiB = 1024 * 1024;
    const small = { bsize: 4096, blocks: (100 * MiB) / 4096 };
    // 100 MiB file system: the reserve is 5 MiB, plus twice the commit.
    expect(reserveShortfall({ ...small, bavail: (6 * MiB) / 4096 }, MiB / 2)).toBeNull();
    expect(reserveShortfall({ ...small, bavail: (6 * MiB) / 4096 }, MiB / 2 + 1)).toBe(`ENOSPC: ${6 * MiB} bytes free on its file system, a commit of ${MiB / 2 + 1} bytes needs ${6 * MiB + 2} (the reserve kept so that the engine never meets a full disk)`);
    // 1 TiB file system: the share is capped.
    const big = { bsize: 4096, blocks: (1024 * 1024 * MiB) / 4096 };
    expect(reserveShortfall({ ...big, bavail: RESERVE_MAX_BYTES / 4096 }, 0)).toBeNull();
    expect(reserveShortfall({ ...big, bavail: RESERVE_MAX_BYTES / 4096 - 1 }, 0)).toMatch(/^ENOSPC: /);
  });

  it('lmdb disk - --fsync takes always, interval or interval=MS', () => {
    expect(parseFsync('always')).toEqual({ fsync: 'always' });
    expect(parseFsync('interval')).toEqual({ fsync: 'interval' });
    expect(parseFsync('interval=250')).toEqual({ fsync: 'interval', syncIntervalMs: 250 });
    expect(parseFsync('interval=0')).toMatch(/1 to 60000/);
    expect(parseFsync('interval=')).toMatch(/must be always, interval or interval=MS/);
    expect(parseFsync('sometimes')).toMatch(/must be always, interval or interval=MS/);
  });
});
