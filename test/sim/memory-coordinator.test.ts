// Goal: the production coordinator (coordination/coordinator.ts) on the simulation's in-memory
// ZooKeeper keeps the Coordinator contract (test/support/coordinator-contract.ts, the same suite
// as on a real server) and behaves under the faults only the simulation can place exactly:
// suspension and local expiry, server-side expiry learned on reconnection, restarts that replace
// stale znodes, a ZooKeeper server cut from its quorum, fail-fast operations, the session bound.
// Method: a MemoryZooKeeper and coordinators on one Scheduler; faults through the hooks.
import { describe, expect, it } from 'vitest';
import type { CoordEvent } from '../../actors/ports.ts';
import { CoordinationError, NotConnectedError } from '../../coordination/errors.ts';
import { createMemoryCoordinator, MemoryZooKeeper, type MemoryCoordinator } from '../../coordination/memory-zookeeper.ts';
import { clusterPaths } from '../../coordination/paths.ts';
import { coordinatorContract } from '../support/coordinator-contract.ts';
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
const isElected = (p: Probe) => {
  const last = [...p.events].reverse().find((e) => e.event.type === 'coord.elected');
  return last !== undefined && (last.event as { sessionId: string }).sessionId === p.coord.currentSessionId() && p.coord.sessionState() === 'connected';
};
const connected = (p: Probe) => p.coord.sessionState() === 'connected';

describe('memory coordinator', () => {
  coordinatorContract('memory coordinator', () => {
    const w = world();
    return {
      newCluster: () => CLUSTER,
      probe: (_cluster: string, id: string) => w.probe(id),
      until: w.until,
      settle: w.settle,
      pass: w.run,
      now: () => w.scheduler.now(),
      handoverMs: 100,
    };
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
    await expect(c.coord.readReplicas()).rejects.toBeInstanceOf(NotConnectedError);

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

  it('memory coordinator - a new session re-creates the member znode with the latest published info', async () => {
    const w = world();
    const [a, b] = [w.probe('a'), w.probe('b')];
    await w.until('both', () => connected(a) && connected(b));
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

  it('memory coordinator - operations fail fast while not connected; stop, then start again throws', async () => {
    const w = world();
    w.zk.partition('a');
    const a = w.probe('a');
    expect(a.coord.sessionState()).toBe('connecting');
    await expect(a.coord.readReplicas()).rejects.toBeInstanceOf(NotConnectedError);
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
