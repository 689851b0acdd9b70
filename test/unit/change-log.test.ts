import { describe, expect, it } from 'vitest';
import { ChangeLog } from '../../actors/change-log.ts';
import { ReplicaStore } from '../../actors/replica-store.ts';
import { ChangeFeed, collectChanges, FEED_HEARTBEAT_MS, parseWatch, WatchServer, type WatchQuery } from '../../actors/watch.ts';
import type { ClientReply } from '../../actors/protocol.ts';

const bytes = (s: string) => new TextEncoder().encode(s);
const revs = (log: ChangeLog, after = 0) => [...log.since(after)].map((c) => `${c.rev}:${c.key}:${c.kind}`);

/** A store's commit of one write, as a follower sees it. */
function write(store: ReplicaStore, key: string, rev: number, value: string | null, validate = true): void {
  store.apply(key, { type: 'invalidate', rev, value: value === null ? null : bytes(value) });
  if (validate) store.apply(key, { type: 'validate', rev });
}

describe('ChangeLog', () => {
  it('makes a change watchable once every revision below it is decided', () => {
    const store = new ReplicaStore();
    write(store, 'a', 1, 'x');
    write(store, 'b', 2, 'y', false);
    write(store, 'c', 3, 'z');
    // Revision 2 is still in flight here: 3 waits for it.
    expect(revs(store.changes)).toEqual(['1:a:put']);
    expect(store.changes.stable).toBe(1);
    store.apply('b', { type: 'validate', rev: 2 });
    expect(revs(store.changes)).toEqual(['1:a:put', '2:b:put', '3:c:put']);
    write(store, 'a', 4, null);
    expect(revs(store.changes, 3)).toEqual(['4:a:delete']);
  });

  it("passes a hole (a revision nobody committed) only once the leader's heldThrough covers it", () => {
    const store = new ReplicaStore();
    write(store, 'a', 1, 'x');
    write(store, 'a', 3, 'y');
    expect(store.changes.stable).toBe(1);
    store.changes.held(3);
    expect(revs(store.changes)).toEqual(['1:a:put', '3:a:put']);
    expect(store.changes.floor).toBe(0);
  });

  it('keeps the writes of one revision together (a transaction) until all are committed', () => {
    const store = new ReplicaStore();
    store.apply('a', { type: 'invalidate', rev: 1, value: bytes('1') });
    store.apply('b', { type: 'invalidate', rev: 1, value: bytes('2') });
    store.apply('a', { type: 'validate', rev: 1 });
    expect(store.changes.stable).toBe(0);
    store.apply('b', { type: 'validate', rev: 1 });
    expect(revs(store.changes)).toEqual(['1:a:put', '1:b:put']);
  });

  it('tells the writes of one revision in key order, whatever order their validates came in', () => {
    const logs = [['b', 'c', 'a'], ['c', 'a', 'b']].map((order) => {
      const log = new ChangeLog(() => 0);
      for (let i = 0; i < order.length; i++) log.pending(1);
      for (const key of order) log.committed(1, key, bytes(key));
      return revs(log);
    });
    expect(logs).toEqual([['1:a:put', '1:b:put', '1:c:put'], ['1:a:put', '1:b:put', '1:c:put']]);
  });

  it('raises the floor above a write in flight that a newer one replaced: whether it was committed is unknown', () => {
    const store = new ReplicaStore();
    write(store, 'a', 1, 'x');
    write(store, 'a', 2, 'y', false);
    write(store, 'a', 3, 'z');
    expect(store.changes.floor).toBe(2);
    expect(revs(store.changes)).toEqual(['3:a:put']);
    expect(store.changes.stable).toBe(3);
  });

  it('does not raise the floor for a write its own leader aborted', () => {
    const store = new ReplicaStore();
    write(store, 'a', 1, 'x', false);
    store.apply('a', { type: 'abort', rev: 1 });
    write(store, 'a', 2, 'y');
    store.changes.held(2);
    expect(store.changes.floor).toBe(0);
    expect(revs(store.changes)).toEqual(['2:a:put']);
  });

  it('raises the floor for changes that came without a validate (snapshot, catch-up roll-back, flush)', () => {
    const store = new ReplicaStore();
    write(store, 'a', 1, 'x');
    store.apply('b', { type: 'fill', rev: 5, value: bytes('f') });
    expect(store.changes.floor).toBe(5);
    expect(revs(store.changes)).toEqual([]);
    write(store, 'c', 6, 'y', false);
    store.rollBackTo(5);
    expect(store.changes.floor).toBe(6);
    store.clear();
    expect(store.changes.floor).toBe(6);
    write(store, 'd', 7, 'z');
    expect(revs(store.changes)).toEqual(['7:d:put']);
  });

  it('drops the oldest revisions beyond its retention, raising the floor to them', () => {
    const store = new ReplicaStore();
    let now = 0;
    store.now = () => now;
    store.changes.retention = { maxChanges: 3, maxAgeMs: 1000, maxBytes: 1 << 20 };
    for (let rev = 1; rev <= 5; rev++) write(store, `k${rev}`, rev, 'v');
    expect(revs(store.changes)).toEqual(['3:k3:put', '4:k4:put', '5:k5:put']);
    expect(store.changes.floor).toBe(2);
    now = 1500;
    write(store, 'k6', 6, 'v');
    expect(revs(store.changes)).toEqual(['6:k6:put']);
    expect(store.changes.floor).toBe(5);
  });

  it("a catch-up goes on from the leader's changes instead of losing the history; without them, or past them, the floor rises", () => {
    const leader = new ReplicaStore();
    for (let rev = 1; rev <= 6; rev++) write(leader, `k${rev % 2}`, rev, `v${rev}`);
    leader.changes.held(6);
    const joiner = new ReplicaStore();
    write(joiner, 'k1', 1, 'v1');
    write(joiner, 'k0', 2, 'v2');
    write(joiner, 'k1', 3, 'v3', false); // in flight when it lost touch
    joiner.changes.beginTransfer();
    joiner.rollBackTo(2);
    joiner.apply('k1', { type: 'fill', rev: 5, value: bytes('v5') });
    write(joiner, 'k0', 7, 'v7'); // after the admission: a write it sees itself
    const sent = leader.changes.transferable(joiner.changes.stable, 6, 1 << 20)!;
    expect(sent).toMatchObject({ after: 2, through: 6 });
    joiner.changes.endTransfer(sent, joiner.maxRev);
    expect(joiner.changes.floor).toBe(0);
    expect(revs(joiner.changes)).toEqual(['1:k1:put', '2:k0:put', '3:k1:put', '4:k0:put', '5:k1:put', '6:k0:put', '7:k0:put']);

    // A write above the changes sent that a newer one replaced meanwhile: undecided, the floor rises over it.
    const other = new ReplicaStore();
    other.changes.beginTransfer();
    write(other, 'k9', 8, 'x', false);
    write(other, 'k9', 9, 'y');
    other.changes.endTransfer(leader.changes.transferable(0, 6, 1 << 20), other.maxRev);
    expect(other.changes.floor).toBe(8);
    // A write of an earlier term rolled back above the changes sent: never committed (the leader would hold it), no floor.
    const behind = new ReplicaStore();
    write(behind, 'k1', 1, 'v1');
    write(behind, 'k5', 9, 'x', false);
    behind.changes.beginTransfer();
    behind.rollBackTo(1);
    behind.changes.endTransfer(leader.changes.transferable(behind.changes.stable, 6, 1 << 20), behind.maxRev);
    expect(behind.changes.floor).toBe(0);
    expect(revs(behind.changes)).toEqual(['1:k1:put', '2:k0:put', '3:k1:put', '4:k0:put', '5:k1:put', '6:k0:put']);
    // No changes sent (an older leader): everything the transfer may have brought is below the floor.
    const plain = new ReplicaStore();
    plain.changes.beginTransfer();
    plain.apply('k1', { type: 'fill', rev: 5, value: bytes('v5') });
    plain.changes.endTransfer(null, 6);
    expect(plain.changes.floor).toBe(6);
    // Changes that do not fit go as the newest whole revisions that do.
    expect(leader.changes.transferable(0, 6, 130)).toMatchObject({ after: 4, through: 6 });
  });

  it("a catch-up whose leader's changes never come: the floor stops below the writes it brought in flight, and over no write committed nowhere", () => {
    // The joiner held k1@3 and k2@5 in flight; the leader had given revisions up to 4, and was
    // re-committing k1@3 (it sends it in flight again). k2@5 is above anything the leader gave.
    const joiner = new ReplicaStore();
    write(joiner, 'k1', 1, 'v1');
    write(joiner, 'k1', 3, 'v3', false);
    write(joiner, 'k2', 5, 'x', false);
    joiner.changes.beginTransfer();
    joiner.rollBackTo(1);
    joiner.apply('k0', { type: 'fill', rev: 2, value: bytes('v2') });
    write(joiner, 'k1', 3, 'v3', false);
    joiner.changes.transferCovers(4, [3]);
    expect(joiner.changes.kept).toMatchObject({ transferring: true, transferCovers: 2 });
    // It leads before the leader's changes come, and its recovery re-commits k1@3.
    joiner.changes.endTransfer(null, joiner.maxRev);
    expect(joiner.changes.floor).toBe(2);
    joiner.apply('k1', { type: 'validate', rev: 3 });
    joiner.changes.held(4);
    expect(revs(joiner.changes)).toEqual(['3:k1:put']);

    // The same, but a write rolled back at or below the last revision given did not come back: its
    // outcome is unknown here, and the floor rises over it.
    const other = new ReplicaStore();
    write(other, 'k1', 4, 'v4', false);
    other.changes.beginTransfer();
    other.rollBackTo(0);
    other.changes.transferCovers(4, [3]);
    other.changes.endTransfer(null, other.maxRev);
    expect(other.changes.floor).toBe(4);
  });

  it('a second admission into an open transfer covers what the first left; a flush for a snapshot of the same history leaves only the writes in flight undecided', () => {
    const joiner = new ReplicaStore();
    write(joiner, 'k1', 1, 'v1');
    write(joiner, 'k2', 6, 'x', false);
    joiner.changes.beginTransfer();
    joiner.rollBackTo(1); // a catch-up whose last chunk never came
    joiner.apply('k3', { type: 'fill', rev: 3, value: bytes('v3') });
    joiner.changes.beginTransfer(); // admitted again: a full snapshot of the same history
    joiner.clear(joiner.history);
    joiner.apply('k3', { type: 'fill', rev: 3, value: bytes('v3') });
    joiner.apply('k1', { type: 'fill', rev: 4, value: bytes('v4') });
    write(joiner, 'k2', 6, 'x', false); // the leader's, still to be re-committed
    joiner.changes.transferCovers(6, [6]);
    joiner.changes.endTransfer(null, joiner.maxRev);
    expect(joiner.changes.floor).toBe(5);
    joiner.apply('k2', { type: 'validate', rev: 6 });
    joiner.changes.held(6);
    expect(revs(joiner.changes)).toEqual(['6:k2:put']);

    // A snapshot of another history (an operator accepted data loss): nothing of the copy is known.
    const other = new ReplicaStore();
    write(other, 'k1', 1, 'v1');
    write(other, 'k2', 6, 'x', false);
    other.changes.beginTransfer();
    other.clear(other.history + 1);
    other.changes.transferCovers(3);
    other.changes.endTransfer(null, other.maxRev);
    expect(other.changes.floor).toBe(6);
  });

  it("takes in the leader's changes that start above its own, even when a lease already covers them", () => {
    const log = new ChangeLog(() => 0);
    log.committed(1, 'a', bytes('1'));
    log.pending(2); // still in flight when the lease below came: stable stays at 1
    log.held(10);
    expect(log.stable).toBe(1);
    log.beginTransfer();
    const change = (rev: number) => ({ rev, key: 'b', kind: 'put' as const, value: bytes(String(rev)) });
    log.endTransfer({ after: 5, through: 8, changes: [change(6), change(7), change(8)] }, 8);
    expect(log.floor).toBe(5);
    expect(revs(log)).toEqual(['6:b:put', '7:b:put', '8:b:put']);
    expect(log.stable).toBe(10);
  });

  it("takes back the changes below its floor that a leader's transfer brings, and only those it asked for", () => {
    const change = (rev: number) => ({ rev, key: `k${rev}`, kind: 'put' as const, value: bytes(String(rev)) });
    const risen = () => {
      const log = new ChangeLog(() => 0);
      for (let rev = 1; rev <= 6; rev++) log.committed(rev, `k${rev}`, bytes(String(rev)));
      log.beginTransfer();
      log.endTransfer(null, 6); // a transfer that ended without its leader's changes: the floor rose to 6
      log.committed(7, 'k7', bytes('7'));
      expect({ floor: log.floor, stable: log.stable }).toEqual({ floor: 6, stable: 7 });
      return log;
    };
    const log = risen();
    log.beginTransfer();
    // The leader holds every change from 2 on, through the admission's revision 8.
    log.endTransfer({ after: 1, through: 8, changes: [2, 3, 4, 5, 6, 7, 8].map(change) }, 8);
    expect(log.floor).toBe(1);
    expect(revs(log)).toEqual(['2:k2:put', '3:k3:put', '4:k4:put', '5:k5:put', '6:k6:put', '7:k7:put', '8:k8:put']);
    // Changes that start at or above the floor leave it where it is.
    const same = risen();
    same.beginTransfer();
    same.endTransfer({ after: 6, through: 8, changes: [7, 8].map(change) }, 8);
    expect({ floor: same.floor, revs: revs(same) }).toEqual({ floor: 6, revs: ['7:k7:put', '8:k8:put'] });
  });

  it("ignores a late validate of a change the leader's changes already brought", () => {
    const log = new ChangeLog(() => 0);
    log.beginTransfer();
    log.pending(2); // a re-commit of the last term, sent to the joiner before the leader's changes
    log.endTransfer({ after: 0, through: 2, changes: [{ rev: 1, key: 'a', kind: 'put', value: bytes('1') }, { rev: 2, key: 'b', kind: 'put', value: bytes('2') }] }, 2);
    log.committed(2, 'b', bytes('2'));
    expect({ floor: log.floor, revs: revs(log) }).toEqual({ floor: 0, revs: ['1:a:put', '2:b:put'] });
    // A change below the stable revision the log does not hold was missed: the floor rises over it.
    log.committed(2, 'c', bytes('3'));
    expect(log.floor).toBe(2);
  });

  it('keeps a copy of each value, not a view on the message it came in', () => {
    const store = new ReplicaStore();
    const message = bytes('hello');
    store.apply('a', { type: 'invalidate', rev: 1, value: message });
    store.apply('a', { type: 'validate', rev: 1 });
    message[0] = 0;
    expect(new TextDecoder().decode([...store.changes.since(0)][0]!.value!)).toBe('hello');
  });
});

describe('watch replies', () => {
  const query = (over: Partial<WatchQuery> = {}): WatchQuery => ({ key: null, prefix: '', after: 0, waitMs: 0, limit: 1000, ...over });
  const body = (reply: ReturnType<typeof collectChanges>) => (reply !== null && reply.ok ? JSON.parse(new TextDecoder().decode(reply.data)) : reply);

  it('filters by key or prefix and never splits a revision at the limit', () => {
    const store = new ReplicaStore();
    write(store, 'app/a', 1, 'x');
    store.apply('app/b', { type: 'invalidate', rev: 2, value: bytes('1') });
    store.apply('app/c', { type: 'invalidate', rev: 2, value: null });
    store.apply('app/b', { type: 'validate', rev: 2 });
    store.apply('app/c', { type: 'validate', rev: 2 });
    write(store, 'other', 3, 'y');
    write(store, 'app/a', 4, 'z');
    const page = body(collectChanges(store.changes, query({ prefix: 'app/', limit: 2 }), 0));
    // The limit falls inside revision 2: the reply ends after it, not in it.
    expect(page.events.map((e: { revision: number; key: string; kind: string }) => `${e.revision}:${e.key}:${e.kind}`)).toEqual(['1:app/a:put', '2:app/b:put', '2:app/c:delete']);
    expect(page).toMatchObject({ revision: 2, more: true });
    const rest = body(collectChanges(store.changes, query({ prefix: 'app/' }), 2));
    expect(rest).toMatchObject({ revision: 4, more: false, events: [{ key: 'app/a', revision: 4, kind: 'put', value: Buffer.from('z').toString('base64') }] });
    expect(body(collectChanges(store.changes, query({ key: 'other' }), 0)).events).toHaveLength(1);
    expect(collectChanges(store.changes, query({ key: 'none' }), 0)).toBeNull();
  });

  it('answers every waiting watcher of a change, each for its own query and revision, and none from an older reply', async () => {
    const store = new ReplicaStore();
    let canServe = true;
    const clock = { now: () => performance.now(), setTimeout: (fn: () => void, ms: number) => setTimeout(fn, ms), clearTimeout: (h: unknown) => clearTimeout(h as NodeJS.Timeout) };
    const server = new WatchServer(store.changes, clock, () => canServe);
    const req = (h: Record<string, string>) => ({ op: 'watch' as const, headers: new Map(Object.entries({ 'Zi-Wait': '5000', ...h }).map(([k, v]) => [k, [v]])), data: new Uint8Array(0) });
    const events = async (reply: Promise<ClientReply>) => body((await reply) as ReturnType<typeof collectChanges>).events.map((e: { revision: number; key: string }) => `${e.revision}:${e.key}`);
    write(store, 'app/a', 1, 'x');
    // Many watchers of one prefix after one revision, another prefix, and a watcher further behind.
    const same = Array.from({ length: 5 }, () => server.serve(req({ 'Zi-Prefix': 'app/', 'Zi-After-Revision': '1' })));
    const other = server.serve(req({ 'Zi-Prefix': 'db/', 'Zi-After-Revision': '1' }));
    const behind = server.serve(req({ 'Zi-Prefix': 'app/', 'Zi-After-Revision': '0' }));
    expect(await events(behind)).toEqual(['1:app/a']);
    expect(server.waitingCount).toBe(6);
    write(store, 'app/b', 2, 'y');
    for (const reply of same) expect(await events(reply)).toEqual(['2:app/b']);
    expect(server.waitingCount).toBe(1);
    write(store, 'db/c', 3, 'z');
    expect(await events(other)).toEqual(['3:db/c']);
    // After a new change, the same query and revision get the newer reply.
    write(store, 'app/d', 4, 'w');
    expect(await events(server.serve(req({ 'Zi-Prefix': 'app/', 'Zi-After-Revision': '1', 'Zi-Wait': '0' })))).toEqual(['2:app/b', '4:app/d']);
    canServe = false;
    expect(await server.serve(req({ 'Zi-Prefix': 'app/', 'Zi-After-Revision': '1' }))).toMatchObject({ ok: false, code: 503 });
  });

  it('parses the headers and refuses bad ones with 400', () => {
    const req = (h: Record<string, string>) => ({ op: 'watch' as const, headers: new Map(Object.entries(h).map(([k, v]) => [k, [v]])), data: new Uint8Array(0) });
    expect(parseWatch(req({ 'Zi-Prefix': 'a/', 'Zi-After-Revision': '7', 'Zi-Wait': '100' }))).toEqual({ key: null, prefix: 'a/', after: 7, waitMs: 100, limit: 1000 });
    expect(parseWatch(req({}))).toEqual({ key: null, prefix: '', after: null, waitMs: 0, limit: 1000 });
    const bads: Record<string, string>[] = [{ 'Zi-Key': 'a', 'Zi-Prefix': 'b' }, { 'Zi-Wait': '60001' }, { 'Zi-After-Revision': '-1' }, { 'Zi-Limit': '0' }, { 'Zi-Key': ' a' }];
    for (const bad of bads) {
      expect(parseWatch(req(bad))).toMatchObject({ ok: false, code: 400 });
    }
  });

  it('the change feed: one message per turn, each starting where the last ended; heartbeats while idle; silence while the node cannot serve', async () => {
    const store = new ReplicaStore();
    let now = 0;
    const timers: { at: number; fn: () => void }[] = [];
    const clock = {
      now: () => now,
      setTimeout: (fn: () => void, ms: number) => timers.push({ at: now + ms, fn }),
      clearTimeout: () => undefined,
    };
    const tick = (ms: number) => {
      now += ms;
      for (const t of timers.splice(0).sort((a, b) => a.at - b.at)) {
        if (t.at <= now) t.fn();
        else timers.push(t);
      }
    };
    let canServe = true;
    const sent: { after: number; revision: number; events: string[] }[] = [];
    const feed = new ChangeFeed(store.changes, clock, () => canServe, (after, revision, data) => {
      const b = JSON.parse(new TextDecoder().decode(data)) as { revision: number; events: { revision: number; key: string; kind: string }[] };
      expect(b.revision).toBe(revision);
      sent.push({ after, revision, events: b.events.map((e) => `${e.revision}:${e.key}:${e.kind}`) });
    });
    write(store, 'a', 1, 'x');
    write(store, 'b', 2, 'y');
    await Promise.resolve();
    // Both revisions of the turn in one message, every key.
    expect(sent).toEqual([{ after: 0, revision: 2, events: ['1:a:put', '2:b:put'] }]);
    write(store, 'a', 3, null);
    await Promise.resolve();
    expect(sent.at(-1)).toEqual({ after: 2, revision: 3, events: ['3:a:delete'] });
    // Idle: a heartbeat names where the node stands.
    tick(FEED_HEARTBEAT_MS);
    expect(sent.at(-1)).toEqual({ after: 3, revision: 3, events: [] });
    // A node that cannot serve says nothing; once it can, it goes on from where it was.
    canServe = false;
    write(store, 'c', 4, 'z');
    await Promise.resolve();
    tick(FEED_HEARTBEAT_MS);
    expect(sent).toHaveLength(3);
    canServe = true;
    tick(FEED_HEARTBEAT_MS);
    expect(sent.at(-1)).toEqual({ after: 3, revision: 4, events: ['4:c:put'] });
    feed.close();
  });
});
