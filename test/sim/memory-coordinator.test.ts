// Goal: the memory coordinator shows the node what the ZooKeeper coordinator shows it (the cases
// of test/integration/zk-coordinator.int.test.ts, on virtual time): event order on a new
// session, election by lowest sequence, suspension and local expiry, server-side expiry learned on
// reconnection, compare-and-set epochs, the DeposedError fence, member data, restarts that replace
// stale znodes, resign, fail-fast operations, and the sessionAliveUntil bound.
// Method: a MemoryZooKeeper and coordinators on one Scheduler; faults through the hooks.
import { describe, expect, it } from 'vitest';
import type { CoordEvent } from '../../actors/ports.ts';
import { CoordinationError, DeposedError, NotConnectedError } from '../../coordination/errors.ts';
import { createMemoryCoordinator, MemoryZooKeeper, type MemoryCoordinator } from '../../coordination/memory-zookeeper.ts';
import { clusterPaths } from '../../coordination/paths.ts';
import { Rng } from './rng.ts';
import { NodeClock, Scheduler } from './scheduler.ts';

const SESSION_TIMEOUT_MS = 2000;
const CLUSTER = 'c';
const paths = clusterPaths(CLUSTER);

interface Probe {
  id: string;
  coord: MemoryCoordinator;
  clock: NodeClock;
  events: { atMs: number; event: CoordEvent }[];
}

function world(seed = 1) {
  const scheduler = new Scheduler();
  const zk = new MemoryZooKeeper({ clock: scheduler.clock, random: new Rng(seed, 'zk').asFunction() });
  const probe = (id: string, start = true): Probe => {
    const clock = new NodeClock(id, scheduler);
    const coord = createMemoryCoordinator({ zk, cluster: CLUSTER, nodeId: id, clock: clock.clock, sessionTimeoutMs: SESSION_TIMEOUT_MS });
    const p: Probe = { id, coord, clock, events: [] };
    if (start) coord.start((event) => p.events.push({ atMs: scheduler.now(), event }));
    return p;
  };
  const run = (ms: number) => scheduler.runFor(ms);
  const until = async (what: string, cond: () => boolean, maxMs = 5_000) => {
    if (!(await scheduler.runUntilTrue(cond, maxMs))) throw new Error(`${what}: not within ${maxMs} ms`);
  };
  /** Start probes one after another, each connected before the next starts (election order = start order). */
  const inOrder = async (...ids: string[]): Promise<Probe[]> => {
    const out: Probe[] = [];
    for (const id of ids) {
      const p = probe(id);
      await until(`${id} connected`, () => p.coord.sessionState() === 'connected');
      out.push(p);
    }
    return out;
  };
  /** Runs the world until `work` settles. */
  const settle = async <T>(work: Promise<T>, maxMs = 10_000): Promise<T> => {
    let out: { ok: true; v: T } | { ok: false; e: unknown } | null = null;
    work.then(
      (v) => (out = { ok: true, v }),
      (e: unknown) => (out = { ok: false, e }),
    );
    await until('settle', () => out !== null, maxMs);
    const o = out as unknown as { ok: true; v: T } | { ok: false; e: unknown };
    if (!o.ok) throw o.e;
    return o.v;
  };
  return { scheduler, zk, probe, inOrder, run, until, settle };
}

const sessions = (p: Probe) => p.events.filter((e) => e.event.type === 'coord.session') as { atMs: number; event: Extract<CoordEvent, { type: 'coord.session' }> }[];
const lastMembers = (p: Probe) => [...p.events].reverse().find((e) => e.event.type === 'coord.members')?.event as Extract<CoordEvent, { type: 'coord.members' }> | undefined;
const electedCount = (p: Probe) => p.events.filter((e) => e.event.type === 'coord.elected').length;
const isElected = (p: Probe) => {
  const last = [...p.events].reverse().find((e) => e.event.type === 'coord.elected');
  return last !== undefined && (last.event as { sessionId: string }).sessionId === p.coord.currentSessionId() && p.coord.sessionState() === 'connected';
};
const connected = (p: Probe) => p.coord.sessionState() === 'connected';

describe('memory coordinator', () => {
  it('memory coordinator - announces connected only after its znodes exist, then the facts', async () => {
    const w = world();
    const a = w.probe('a');
    await w.until('a connected', () => connected(a));
    const types = a.events.map((e) => e.event.type);
    expect(types).toEqual(['coord.session', 'coord.session', 'coord.members', 'coord.epoch', 'coord.elected']);
    expect(sessions(a).map((e) => e.event.state)).toEqual(['connecting', 'connected']);
    // At the instant of the announcement the znodes were there.
    expect(w.zk.peekStat(paths.member('a'))?.ephemeralOwner).toBe(a.coord.currentSessionId());
    expect(w.zk.children(paths.election)).toHaveLength(1);
    expect(lastMembers(a)?.ids).toEqual(['a']);
    expect(a.coord.memberIds()).toEqual(['a']);
    expect(await w.settle(a.coord.readEpoch())).toEqual({ epoch: 0, leader: null });
    expect(await w.settle(a.coord.readReplicas())).toEqual({ ids: [], epoch: 0 });
    expect(await w.settle(a.coord.readMembers())).toEqual([{ id: 'a', role: 'follower', state: 'syncing' }]);
  });

  it('memory coordinator - lowest sequence wins the election', async () => {
    const w = world();
    const a = w.probe('a');
    await w.until('a', () => connected(a));
    const b = w.probe('b');
    const c = w.probe('c');
    await w.until('all see three', () => [a, b, c].every((p) => lastMembers(p)?.ids.length === 3));
    await w.run(300);
    expect([a, b, c].map(isElected)).toEqual([true, false, false]);
    expect([a, b, c].map(electedCount)).toEqual([1, 0, 0]);
  });

  it('memory coordinator - stopping the leader elects the next one at once', async () => {
    const w = world();
    const [a, b, c] = (await w.inOrder('a', 'b', 'c')) as [Probe, Probe, Probe];
    await w.until('a elected', () => isElected(a));
    const stoppedAt = w.scheduler.now();
    await w.settle(a.coord.stop());
    await w.settle(a.coord.stop()); // idempotent
    await w.until('b elected', () => isElected(b), 200);
    expect(w.scheduler.now() - stoppedAt).toBeLessThan(100);
    await w.until('c sees a leave', () => lastMembers(c)?.ids.join() === 'b,c', 200);
    expect(isElected(c)).toBe(false);
    expect(a.coord.sessionState()).toBe('expired');
    await expect(a.coord.readEpoch()).rejects.toBeInstanceOf(NotConnectedError);
  });

  it('memory coordinator - a silent link suspends, expires locally, then re-registers with a new session', async () => {
    const w = world();
    const [c, a, b] = (await w.inOrder('c', 'a', 'b')) as [Probe, Probe, Probe];
    const oldSession = c.coord.currentSessionId();
    await w.until('a sees three', () => lastMembers(a)?.ids.length === 3);
    expect(isElected(c)).toBe(true);

    const cutAt = w.scheduler.now();
    w.zk.partition('c', { detectAfterMs: (SESSION_TIMEOUT_MS * 2) / 3 });
    await w.until('c suspended', () => c.coord.sessionState() === 'suspended');
    const suspended = sessions(c).at(-1)!;
    expect(suspended.event.sessionId).toBe(oldSession);
    expect(suspended.atMs - cutAt).toBeCloseTo((SESSION_TIMEOUT_MS * 2) / 3, 5);
    await expect(c.coord.readEpoch()).rejects.toBeInstanceOf(NotConnectedError);

    // The server expires the old session (one timeout after it last heard from c): a takes over.
    await w.until('a sees c leave', () => lastMembers(a)?.ids.join() === 'a,b', SESSION_TIMEOUT_MS * 2);
    expect(w.scheduler.now() - cutAt).toBeLessThanOrEqual(SESSION_TIMEOUT_MS + 10);
    await w.until('a elected', () => isElected(a), 100);
    expect(isElected(b)).toBe(false);

    // Still cut off, c decides expiry itself one session timeout after suspending.
    await w.until('c expired', () => sessions(c).some((e) => e.event.state === 'expired'), SESSION_TIMEOUT_MS * 2);
    const expired = sessions(c).find((e) => e.event.state === 'expired')!;
    expect(expired.event.sessionId).toBe(oldSession);
    expect(expired.atMs - suspended.atMs).toBeCloseTo(SESSION_TIMEOUT_MS, 5);

    w.zk.restore('c');
    await w.until('c connected again', () => connected(c));
    expect(c.coord.currentSessionId()).not.toBe(oldSession);
    await w.until('a sees c again', () => lastMembers(a)?.ids.length === 3);
    expect(sessions(c).map((e) => e.event.state)).toEqual(['connecting', 'connected', 'suspended', 'expired', 'connecting', 'connected']);
    await w.run(200);
    expect(isElected(c)).toBe(false);
    expect(isElected(a)).toBe(true);
  });

  it('memory coordinator - an expiry reported by the server on reconnection builds a new session', async () => {
    const w = world();
    const [c, a] = (await w.inOrder('c', 'a')) as [Probe, Probe];
    await w.until('a sees c', () => lastMembers(a)?.ids.length === 2);
    const oldSession = c.coord.currentSessionId();
    w.zk.partition('c', { detectAfterMs: 100 });
    await w.until('c suspended', () => c.coord.sessionState() === 'suspended');
    const suspendedAt = w.scheduler.now();
    await w.until('a sees c leave', () => lastMembers(a)?.ids.join() === 'a', SESSION_TIMEOUT_MS * 2);
    w.zk.restore('c'); // before c's own local expiry
    await w.until('c expired', () => sessions(c).some((e) => e.event.state === 'expired'));
    expect(w.scheduler.now() - suspendedAt).toBeLessThan(SESSION_TIMEOUT_MS);
    await w.until('c connected again', () => connected(c) && c.coord.currentSessionId() !== oldSession);
    await w.until('a sees c again', () => lastMembers(a)?.ids.length === 2);
  });

  it('memory coordinator - expireNow: the client learns on its next contact and builds a new session', async () => {
    const w = world();
    const a = w.probe('a');
    await w.until('a', () => connected(a));
    const old = a.coord.currentSessionId();
    w.zk.expireNow('a');
    await w.until('new session', () => connected(a) && a.coord.currentSessionId() !== old);
    expect(sessions(a).map((e) => e.event.state)).toEqual(['connecting', 'connected', 'suspended', 'expired', 'connecting', 'connected']);
    expect(w.zk.liveSessions('a')).toEqual([a.coord.currentSessionId()]);
  });

  it('memory coordinator - claimEpoch increments by compare-and-set', async () => {
    const w = world();
    const [a, b] = [w.probe('a'), w.probe('b')];
    await w.until('both', () => connected(a) && connected(b));
    const first = await w.settle(a.coord.claimEpoch());
    expect(first.epoch).toBe(1);
    expect(first.fence).toBeGreaterThanOrEqual(1);
    expect(await w.settle(a.coord.claimEpoch())).toEqual({ epoch: 2, fence: first.fence + 1 });
    const [x, y] = await w.settle(Promise.all([a.coord.claimEpoch(), b.coord.claimEpoch()]));
    expect(new Set([x.epoch, y.epoch])).toEqual(new Set([3, 4]));
    expect(x.fence).not.toBe(y.fence);
    const winner = x.epoch === 4 ? 'a' : 'b';
    expect(await w.settle(b.coord.readEpoch())).toEqual({ epoch: 4, leader: winner });
    await w.until('b hears epoch 4', () => b.events.some((e) => e.event.type === 'coord.epoch' && e.event.epoch === 4 && e.event.leader === winner));
  });

  it('memory coordinator - writeReplicas with a stale fence rejects with DeposedError', async () => {
    const w = world();
    const [a, b] = [w.probe('a'), w.probe('b')];
    await w.until('both', () => connected(a) && connected(b));
    const claimA = await w.settle(a.coord.claimEpoch());
    await w.settle(a.coord.writeReplicas(['a', 'b'], claimA));
    expect(await w.settle(b.coord.readReplicas())).toEqual({ ids: ['a', 'b'], epoch: claimA.epoch });
    const claimB = await w.settle(b.coord.claimEpoch());
    const stale = w.settle(a.coord.writeReplicas(['a'], claimA));
    await expect(stale).rejects.toBeInstanceOf(DeposedError);
    await expect(stale).rejects.toMatchObject({ name: 'DeposedError', path: paths.epoch });
    expect(await w.settle(a.coord.readReplicas())).toEqual({ ids: ['a', 'b'], epoch: claimA.epoch });
    await w.settle(b.coord.writeReplicas(['b'], claimB));
    expect(await w.settle(a.coord.readReplicas())).toEqual({ ids: ['b'], epoch: claimB.epoch });
    await expect(a.coord.writeReplicas(['a'], { epoch: 1, fence: 0 })).rejects.toBeInstanceOf(RangeError);
  });

  it('memory coordinator - readMembers reflects publishMember, and a new session re-creates it with the latest info', async () => {
    const w = world();
    const [a, b] = [w.probe('a'), w.probe('b')];
    await w.until('both', () => connected(a) && connected(b));
    await w.settle(a.coord.publishMember({ role: 'leader', state: 'serving' }));
    await w.settle(b.coord.publishMember({ role: 'follower', state: 'suspended' }));
    expect(await w.settle(b.coord.readMembers())).toEqual([
      { id: 'a', role: 'leader', state: 'serving' },
      { id: 'b', role: 'follower', state: 'suspended' },
    ]);
    await expect(a.coord.publishMember({ role: 'boss' as 'leader', state: 'serving' })).rejects.toBeInstanceOf(RangeError);
    w.zk.partition('b');
    await w.until('b suspended', () => b.coord.sessionState() === 'suspended');
    await expect(b.coord.publishMember({ role: 'follower', state: 'removed' })).rejects.toBeInstanceOf(NotConnectedError);
    await w.until('b expired', () => sessions(b).some((e) => e.event.state === 'expired'), SESSION_TIMEOUT_MS * 2);
    w.zk.restore('b');
    await w.until('b back', () => connected(b));
    expect(await w.settle(a.coord.readMembers())).toContainEqual({ id: 'b', role: 'follower', state: 'removed' });
  });

  it('memory coordinator - a restarted node replaces the znodes its old session left', async () => {
    const w = world();
    const old = w.probe('x');
    await w.until('old x', () => connected(old));
    const y = w.probe('y');
    await w.until('y', () => connected(y));
    const oldSession = old.coord.currentSessionId();
    old.coord.crash(); // the old process dies; its session lives on in the server for a while
    old.clock.kill();
    const startedAt = w.scheduler.now();
    const fresh = w.probe('x');
    await w.until('fresh x', () => connected(fresh));
    expect(w.scheduler.now() - startedAt).toBeLessThan(SESSION_TIMEOUT_MS / 4);
    expect(fresh.coord.currentSessionId()).not.toBe(oldSession);
    expect(w.zk.peekStat(paths.member('x'))?.ephemeralOwner).toBe(fresh.coord.currentSessionId());
    expect(w.zk.children(paths.election)).toHaveLength(2);
    // The old x headed the line; with its znode gone, y (next) leads, not the fresh x (last).
    await w.until('y elected', () => isElected(y), 500);
    expect(isElected(fresh)).toBe(false);
    await w.settle(fresh.coord.publishMember({ role: 'leader', state: 'serving' }));
    await w.run(SESSION_TIMEOUT_MS + 500); // the old session surely expired: the fresh znodes stay
    expect(w.zk.liveSessions('x')).toEqual([fresh.coord.currentSessionId()]);
    expect(await w.settle(y.coord.readMembers())).toEqual([
      { id: 'x', role: 'leader', state: 'serving' },
      { id: 'y', role: 'follower', state: 'syncing' },
    ]);
    expect(y.coord.memberIds()).toEqual(['x', 'y']);
  });

  it('memory coordinator - resign moves this node to the back of the line', async () => {
    const w = world();
    const a = w.probe('a');
    await w.until('a', () => isElected(a));
    const b = w.probe('b');
    await w.until('b', () => connected(b));
    await w.settle(a.coord.resign());
    await w.until('b elected', () => isElected(b), 500);
    await w.run(200);
    expect(electedCount(a)).toBe(1);
    await w.settle(b.coord.resign());
    await w.until('a elected again', () => electedCount(a) === 2, 500);
    expect(await w.settle(a.coord.readMembers())).toHaveLength(2);
  });

  it('memory coordinator - operations fail fast while not connected; stop, then start again throws', async () => {
    const w = world();
    w.zk.partition('a');
    const a = w.probe('a');
    expect(a.coord.sessionState()).toBe('connecting');
    await expect(a.coord.readEpoch()).rejects.toBeInstanceOf(NotConnectedError);
    await expect(a.coord.claimEpoch()).rejects.toBeInstanceOf(NotConnectedError);
    await expect(a.coord.readMembers()).rejects.toBeInstanceOf(NotConnectedError);
    await expect(a.coord.resign()).rejects.toBeInstanceOf(CoordinationError);
    await w.settle(a.coord.stop(), 100);
    expect(a.coord.sessionState()).toBe('expired');
    expect(() => a.coord.start(() => {})).toThrow();
  });

  it('memory coordinator - sessionAliveUntil trails the last answered probe and stops while cut off', async () => {
    const w = world();
    const a = w.probe('a');
    await w.until('a', () => connected(a));
    await w.run(1_000);
    const bound = a.coord.sessionAliveUntil!();
    expect(bound).toBeGreaterThan(w.scheduler.now());
    expect(bound).toBeLessThanOrEqual(w.scheduler.now() + SESSION_TIMEOUT_MS * 0.9);
    w.zk.partition('a', { detectAfterMs: 1_000 }); // silent: the client does not know yet
    await w.run(900);
    expect(a.coord.sessionState()).toBe('connected');
    const frozen = a.coord.sessionAliveUntil!();
    await w.run(90);
    expect(a.coord.sessionAliveUntil!()).toBe(frozen); // no probe gets through
    await w.run(100);
    expect(a.coord.sessionState()).toBe('suspended');
    expect(a.coord.sessionAliveUntil!()).toBe(0);
  });

  it('memory coordinator - a ZooKeeper server cut from its quorum cannot extend the session bound', async () => {
    const w = world();
    const a = w.probe('a');
    await w.until('a', () => connected(a));
    await w.run(1_000);
    const cutAt = w.scheduler.now();
    // The server answers reads for 5 s more (a stale view); the quorum expires the session within one timeout.
    w.zk.isolateServer('a', 5_000);
    let maxBound = 0;
    for (let t = 0; t < 4_800; t += 50) {
      await w.run(50);
      if (a.coord.sessionState() === 'connected') maxBound = Math.max(maxBound, a.coord.sessionAliveUntil!());
    }
    expect(w.zk.liveSessions('a')).toEqual([]); // the quorum expired it
    expect(a.coord.sessionState()).toBe('connected'); // the node cannot know yet
    // What the node relies on never reaches past the expiry the quorum decided.
    expect(maxBound).toBeLessThanOrEqual(cutAt + SESSION_TIMEOUT_MS);
    expect(a.coord.sessionAliveUntil!()).toBeLessThan(w.scheduler.now());
    // Once the server notices, the client reconnects to the quorum and learns of the expiry.
    await w.until('a new session', () => connected(a) && sessions(a).some((e) => e.event.state === 'expired'));
  });

  it('memory coordinator - the same seed gives the same events at the same times', async () => {
    const run = async () => {
      const w = world(42);
      const ps = ['a', 'b', 'c'].map((id) => w.probe(id));
      await w.run(500);
      w.zk.partition('a', { detectAfterMs: 300 });
      await w.run(3_000);
      w.zk.restore('a');
      await w.run(2_000);
      return ps.map((p) => p.events);
    };
    expect(await run()).toEqual(await run());
  });
});
