import { describe, expect, it } from 'vitest';
import { ReplicaStore } from '../../actors/replica-store.ts';

const v = (s: string) => new TextEncoder().encode(s);

describe('replica store', () => {
  it('replica store - counts keys and bytes, drops deleted entries, tracks the highest revision', () => {
    const s = new ReplicaStore();
    s.apply('a', { type: 'fill', rev: 3, value: v('xyz') });
    s.apply('b', { type: 'invalidate', rev: 4, value: v('12') });
    expect(s.size).toBe(1);
    s.apply('b', { type: 'validate', rev: 4 });
    expect(s.size).toBe(2);
    expect(s.valueBytes).toBe(5);
    s.apply('a', { type: 'invalidate', rev: 9, value: null });
    s.apply('a', { type: 'validate', rev: 9 });
    expect(s.get('a')).toBeUndefined();
    expect(s.size).toBe(1);
    expect(s.maxRev).toBe(9);
  });

  it('replica store - readers of an invalid key wake on validate', async () => {
    const s = new ReplicaStore();
    s.apply('k', { type: 'invalidate', rev: 1, value: v('new') });
    const waiting = s.settled('k');
    expect(waiting).not.toBeNull();
    let woke = false;
    void waiting!.then(() => (woke = true));
    await Promise.resolve();
    expect(woke).toBe(false);
    s.apply('k', { type: 'validate', rev: 1 });
    await waiting;
    expect(woke).toBe(true);
    expect(s.settled('k')).toBeNull();
  });

  it('replica store - tombstones while syncing keep a stale snapshot fill out', () => {
    const s = new ReplicaStore();
    s.keepTombstones = true;
    s.apply('k', { type: 'invalidate', rev: 8, value: null });
    s.apply('k', { type: 'validate', rev: 8 });
    s.apply('k', { type: 'fill', rev: 5, value: v('old') });
    expect(s.get('k')?.value).toBeNull();
    s.purgeTombstones();
    expect(s.get('k')).toBeUndefined();
  });

  it('replica store - a delete cannot come back: an older invalidate or fill arriving late is ignored', () => {
    const s = new ReplicaStore();
    s.apply('k', { type: 'fill', rev: 3, value: v('v3') });
    s.apply('k', { type: 'invalidate', rev: 7, value: null });
    s.apply('k', { type: 'validate', rev: 7 });
    expect(s.get('k')).toBeUndefined();
    // Reordered across a reconnect: the invalidate of rev 5 arrives after the delete of rev 7.
    expect(s.apply('k', { type: 'invalidate', rev: 5, value: v('v5') })).toBe(false);
    expect(s.apply('k', { type: 'fill', rev: 6, value: v('v6') })).toBe(false);
    expect(s.pending()).toEqual([]);
    expect(s.get('k')).toBeUndefined();
    // A newer write of the key is taken as usual.
    expect(s.apply('k', { type: 'invalidate', rev: 9, value: v('v9') })).toBe(true);
  });

  it('replica store - tombstones are bounded; below the newest forgotten one, an unknown key takes no invalidate', () => {
    const s = new ReplicaStore();
    for (let i = 1; i <= 70_000; i++) {
      s.apply(`k${i}`, { type: 'invalidate', rev: i, value: null });
      s.apply(`k${i}`, { type: 'fill', rev: i, value: v('x') });
      s.apply(`k${i}`, { type: 'invalidate', rev: 100_000 + i, value: null });
      s.apply(`k${i}`, { type: 'validate', rev: 100_000 + i });
    }
    expect(s.size).toBe(0);
    // k1's tombstone (rev 100001) was forgotten; a stale invalidate of it is still refused.
    expect(s.apply('k1', { type: 'invalidate', rev: 100_500, value: v('stale') })).toBe(false);
    // k70000's tombstone is still known.
    expect(s.apply('k70000', { type: 'invalidate', rev: 100_001, value: v('stale') })).toBe(false);
    expect(s.apply('k70000', { type: 'invalidate', rev: 200_000, value: v('new') })).toBe(true);
  });

  it('replica store - a catch-up sends the keys the watch history names when it holds every change since; else it walks the copy', () => {
    const s = new ReplicaStore();
    for (let i = 1; i <= 50; i++) s.apply(`k${i}`, { type: 'fill', rev: i, value: v(`v${i}`) });
    const write = (key: string, rev: number, value: Uint8Array | null) => {
      s.apply(key, { type: 'invalidate', rev, value });
      s.apply(key, { type: 'validate', rev });
    };
    write('k3', 51, v('new3'));
    write('k7', 52, null);
    write('k60', 53, v('v60'));
    write('k3', 54, v('newer3'));
    write('k9', 55, v('after')); // after the admission (through 54): it reaches the joiner as a write
    const show = (e: { key: string; rev: number; value: Uint8Array | null }) => `${e.key}@${e.rev}:${e.value === null ? 'deleted' : new TextDecoder().decode(e.value)}`;
    const catchUp = (since: number) => [...s.chunks(2, 1 << 20, since, 54)].flat().map(show).sort();
    expect(s.changes.floor).toBe(50); // the fills came in no validate
    // From the history: the keys changed in 51..54, as they stand, and nothing else.
    expect(catchUp(50)).toEqual(['k3@54:newer3', 'k60@53:v60', 'k7@52:deleted']);
    expect(catchUp(52)).toEqual(['k3@54:newer3', 'k60@53:v60']);
    // Below the history's floor: a walk of the copy (which meets k9 too; the leader drops it).
    expect(catchUp(49)).toEqual(['k3@54:newer3', 'k50@50:v50', 'k60@53:v60', 'k7@52:deleted', 'k9@55:after']);
  });

  it('replica store - snapshot chunks respect entry and byte bounds and skip pending-only keys', () => {
    const s = new ReplicaStore();
    for (let i = 0; i < 10; i++) s.apply(`k${i}`, { type: 'fill', rev: i + 1, value: new Uint8Array(100) });
    s.apply('p', { type: 'invalidate', rev: 50, value: v('p') });
    const chunks = [...s.chunks(4, 1_000_000)];
    expect(chunks.map((c) => c.length)).toEqual([4, 4, 2]);
    // A chunk closes at the first entry that reaches the byte bound (~118 bytes per entry here).
    expect([...s.chunks(100, 250)].map((c) => c.length)).toEqual([3, 3, 3, 1]);
    expect(s.pending()).toEqual([{ key: 'p', rev: 50, value: v('p') }]);
  });

  it('replica store - a catch-up: the changes since the held revision, deletes included, and the rolled-back keys as they stand', () => {
    const leader = new ReplicaStore();
    const follower = new ReplicaStore();
    const both = (key: string, event: Parameters<ReplicaStore['apply']>[1]) => {
      leader.apply(key, { ...event });
      follower.apply(key, { ...event });
    };
    for (let i = 1; i <= 5; i++) both(`k${i}`, { type: 'fill', rev: i, value: v(`v${i}`) });
    // A write of k2 (rev 6) the follower acked, whose validate it lost; then a newer write of k2
    // (rev 7) replaced it as pending before the leader's term ended (7 was never committed).
    both('k2', { type: 'invalidate', rev: 6, value: v('v2b') });
    leader.apply('k2', { type: 'validate', rev: 6 });
    follower.apply('k2', { type: 'invalidate', rev: 7, value: v('v2c') });
    // A new key in flight at the follower only.
    follower.apply('kx', { type: 'invalidate', rev: 8, value: v('x') });
    follower.heldThrough = 6; // a lease granted after rev 6 was settled at the leader
    expect(follower.pendingKeys().sort()).toEqual(['k2', 'kx']);
    // Meanwhile, without the follower: k3 deleted, k6 created.
    leader.apply('k3', { type: 'invalidate', rev: 9, value: null });
    leader.apply('k3', { type: 'validate', rev: 9 });
    leader.apply('k6', { type: 'invalidate', rev: 10, value: v('v6') });
    leader.apply('k6', { type: 'validate', rev: 10 });
    expect(leader.deletesKnownAbove).toBe(0);
    const lastRevBefore = 10;
    const changes = [...[...leader.chunks(100, 1_000_000, follower.heldThrough)].flat(), ...follower.pendingKeys().map((k) => leader.stateOf(k, lastRevBefore))];
    const show = (e: { key: string; rev: number; value: Uint8Array | null }) => `${e.key}@${e.rev}:${e.value === null ? 'deleted' : new TextDecoder().decode(e.value)}`;
    expect(changes.map(show).sort()).toEqual(['k2@6:v2b', 'k3@9:deleted', 'k6@10:v6', 'kx@10:deleted']);
    follower.rollBackTo(follower.heldThrough);
    expect(follower.pending()).toEqual([]);
    // Without the rolled-back keys sent as they stand, k2 would stay at rev 2 here.
    expect(follower.committedRevision('k2')).toBe(2);
    follower.keepTombstones = true;
    for (const e of changes) follower.apply(e.key, { type: 'fill', rev: e.rev, value: e.value });
    follower.purgeTombstones();
    const copy = (s: ReplicaStore) => [...s.chunks(100, 1_000_000)].flat().map(show).sort();
    expect(copy(follower)).toEqual(copy(leader));
    expect(follower.committedRevision('k3')).toBeNull();
    // A flushed copy knows no deletes until its snapshot is complete; then those above the snapshot.
    follower.clear();
    expect(follower.deletesKnownAbove).toBe(Number.MAX_SAFE_INTEGER);
    expect(follower.heldThrough).toBe(0);
    follower.snapshotComplete(8);
    expect(follower.deletesKnownAbove).toBe(8);
  });

  it('replica store - a rolled-back key whose write is in flight at the leader is sent below that write, which then lands (F12)', () => {
    const leader = new ReplicaStore();
    const joiner = new ReplicaStore();
    // A new key's write (rev 6) in flight at both: the leader re-commits it, the joiner rolls it back.
    leader.apply('k', { type: 'invalidate', rev: 6, value: v('x') });
    joiner.apply('k', { type: 'invalidate', rev: 6, value: v('x') });
    const sent = leader.stateOf('k', 7); // 7: the last revision given before the admission
    expect(sent).toEqual({ key: 'k', rev: 5, value: null });
    joiner.rollBackTo(5);
    joiner.keepTombstones = true;
    joiner.apply('k', { type: 'fill', rev: sent.rev, value: sent.value });
    joiner.purgeTombstones();
    // The recommit reaches the joiner after its catch-up: at rev 7 the delete would have outranked it.
    joiner.apply('k', { type: 'invalidate', rev: 6, value: v('x') });
    joiner.apply('k', { type: 'validate', rev: 6 });
    leader.apply('k', { type: 'validate', rev: 6 });
    expect(joiner.get('k')).toMatchObject({ state: 'valid', rev: 6 });
    expect(leader.get('k')).toMatchObject({ state: 'valid', rev: 6 });
  });

  it('replica store - a packed small value keeps every byte and its revision, and behaves like a record', () => {
    const s = new ReplicaStore();
    const bytes = Uint8Array.from({ length: 256 }, (_, i) => i); // every byte value, at the packing limit
    const big = new Uint8Array(257).fill(7); // one byte over: kept as bytes
    const rev = 2 ** 53 - 1;
    s.apply('small', { type: 'fill', rev, value: bytes });
    s.apply('big', { type: 'fill', rev: 5, value: big });
    expect(s.get('small')).toEqual({ state: 'valid', rev, value: bytes, ttl: 0, pendingRev: 0, pendingValue: null, pendingTtl: 0 });
    expect(s.get('big')?.value).toEqual(big);
    // A copy: changing what a reader got leaves the store as it was.
    s.get('small')!.value![0] = 99;
    expect(s.get('small')!.value![0]).toBe(0);
    // Older events are ignored, a newer write goes through invalid and back to packed.
    expect(s.apply('small', { type: 'fill', rev: rev - 1, value: v('old') })).toBe(false);
    expect(s.apply('small', { type: 'validate', rev })).toBe(false);
    s.apply('k', { type: 'fill', rev: 10, value: v('one') });
    s.apply('k', { type: 'invalidate', rev: 11, value: v('two') });
    expect(s.isInvalid('k')).toBe(true);
    expect(s.pending()).toEqual([{ key: 'k', rev: 11, value: v('two') }]);
    s.apply('k', { type: 'validate', rev: 11 });
    expect(s.isInvalid('k')).toBe(false);
    expect(s.get('k')).toMatchObject({ state: 'valid', rev: 11, value: v('two') });
    expect(s.valueBytes).toBe(256 + 257 + 3);
    const snapshot = [...s.chunks(100, 1 << 20)].flat();
    expect(new Map(snapshot.map((e) => [e.key, e.rev]))).toEqual(new Map([['small', rev], ['big', 5], ['k', 11]]));
    expect(snapshot).toHaveLength(3);
  });

  it('replica store - a state-transfer walk meets every committed key while writes move entries around', () => {
    const s = new ReplicaStore();
    for (let i = 0; i < 100; i++) s.apply(`k${i}`, { type: 'fill', rev: i + 1, value: v(`value-${i}`) });
    const walk = s.chunks(10, 1 << 20);
    const seen = new Map<string, number>();
    const take = (chunk: IteratorResult<{ key: string; rev: number }[]>) => {
      if (!chunk.done) for (const e of chunk.value) seen.set(e.key, Math.max(seen.get(e.key) ?? 0, e.rev));
    };
    take(walk.next());
    // Mid-walk: a write in flight, writes validated with a new size (table → map → table is held
    // off), a delete, and a new key.
    s.apply('k50', { type: 'invalidate', rev: 200, value: v('in flight') });
    for (const key of ['k3', 'k99']) {
      s.apply(key, { type: 'invalidate', rev: 201, value: v('a longer value than before') });
      s.apply(key, { type: 'validate', rev: 201 });
    }
    s.apply('k60', { type: 'invalidate', rev: 202, value: null });
    s.apply('k60', { type: 'validate', rev: 202 });
    for (let chunk = walk.next(); !chunk.done; chunk = walk.next()) take(chunk);
    for (let i = 0; i < 100; i++) if (i !== 60) expect(seen.has(`k${i}`), `k${i}`).toBe(true);
    expect(seen.get('k50')).toBe(51); // the committed value, not the one in flight
    expect(seen.get('k99')).toBe(201);
    expect(s.get('k99')).toMatchObject({ state: 'valid', rev: 201, value: v('a longer value than before') });
    expect(s.get('k60')).toBeUndefined();
    expect(s.size).toBe(99);
  });
});
