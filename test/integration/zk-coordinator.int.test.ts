// Goal: the production coordinator keeps the Coordinator contract on a real server
// (test/support/coordinator-contract.ts, the same suite as in the simulation), and rides real
// link faults: suspension and local expiry on a silent link, a new session with re-registration,
// server-side expiry, replacement of a restarted node's leftovers, the session bound.
// Method: one real standalone ZooKeeper (tickTime 200 ms) on 127.0.0.1 for the file, a separate
// cluster name per test, and an in-process TCP proxy to cut or black-hole one node's link.
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CoordEvent, Coordinator } from '../../actors/ports.ts';
import { startTcpProxy, type TcpProxyHandle } from '../../cluster/tcp-proxy.ts';
import { startZooKeeper, type ZooKeeperHandle } from '../../cluster/zookeeper-server.ts';
import {
  CoordinationError,
  CoordinationTimeoutError,
  DeposedError,
  errors,
  NotConnectedError,
  SessionExpiredError,
} from '../../coordination/errors.ts';
import { clusterPaths } from '../../coordination/paths.ts';
import { createZkCoordinator } from '../../coordination/zk-coordinator.ts';
import { coordinatorContract } from '../support/coordinator-contract.ts';

const SESSION_TIMEOUT_MS = 1500;
const OP_TIMEOUT_MS = 1000;
const log = pino({ level: process.env.LOG_LEVEL ?? 'silent' });

let zk: ZooKeeperHandle;
const running: Coordinator[] = [];
const proxies: TcpProxyHandle[] = [];
let clusterCount = 0;

beforeAll(async () => {
  zk = await startZooKeeper({ tickTimeMs: 200, serverLogLevel: 'warn', forceSync: false });
}, 60_000);

afterEach(async () => {
  await Promise.all(running.splice(0).map((c) => c.stop()));
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
});

afterAll(async () => {
  await zk?.stop();
});

// --- helpers -------------------------------------------------------------------------------

interface Probe {
  id: string;
  coord: Coordinator;
  events: Array<{ atMs: number; event: CoordEvent }>;
}

function newCluster(): string {
  clusterCount += 1;
  return `c${process.pid}-${clusterCount}`;
}

function probe(cluster: string, id: string, connectString = zk.connectString): Probe {
  const events: Probe['events'] = [];
  const coord = createZkCoordinator({
    connectString,
    cluster,
    nodeId: id,
    sessionTimeoutMs: SESSION_TIMEOUT_MS,
    opTimeoutMs: OP_TIMEOUT_MS,
    log: log.child({ test: cluster }),
  });
  running.push(coord);
  coord.start((event) => events.push({ atMs: performance.now(), event }));
  return { id, coord, events };
}

async function proxyToZk(): Promise<TcpProxyHandle> {
  const proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: zk.port } });
  proxies.push(proxy);
  return proxy;
}

async function waitFor<T>(what: string, check: () => T | undefined | null | false, timeoutMs = 5000): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined && value !== null && value !== false) return value;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

type SessionEvent = Extract<CoordEvent, { type: 'coord.session' }>;

function sessionEvents(p: Probe): Array<{ atMs: number; event: SessionEvent }> {
  return p.events.filter((e): e is { atMs: number; event: SessionEvent } => e.event.type === 'coord.session');
}

function lastSession(p: Probe): SessionEvent | undefined {
  return sessionEvents(p).at(-1)?.event;
}

/** Resolves with the sessionId once `p` reports connected (optionally: a session other than `not`). */
function connected(p: Probe, not?: string, timeoutMs = 5000): Promise<string> {
  return waitFor(`${p.id} connected`, () => {
    const s = lastSession(p);
    return s?.state === 'connected' && s.sessionId !== not ? s.sessionId : undefined;
  }, timeoutMs);
}

/** Elected in its current connected session. */
function isElected(p: Probe): boolean {
  const s = lastSession(p);
  if (s?.state !== 'connected') return false;
  return p.events.some((e) => e.event.type === 'coord.elected' && e.event.sessionId === s.sessionId);
}

function lastMembers(p: Probe): string[] | undefined {
  const e = p.events.filter((x) => x.event.type === 'coord.members').at(-1)?.event;
  return e?.type === 'coord.members' ? e.ids : undefined;
}

const sameIds = (a: string[] | undefined, b: string[]): boolean => a !== undefined && a.join() === b.join();

// A raw client to look at the znodes themselves.
interface RawStat {
  ephemeralOwner: Buffer;
}
interface RawClient {
  connect(): void;
  close(): void;
  once(event: 'connected', fn: () => void): void;
  getChildren(path: string, cb: (err: Error | null, children: string[]) => void): void;
  exists(path: string, cb: (err: Error | null, stat: RawStat | null) => void): void;
}
const rawZk = createRequire(import.meta.url)('node-zookeeper-client') as {
  createClient(cs: string, o: object): RawClient;
};

async function withRaw<T>(fn: (c: RawClient) => Promise<T>): Promise<T> {
  const c = rawZk.createClient(zk.connectString, { sessionTimeout: 4000, retries: 0 });
  await new Promise<void>((resolve) => {
    c.once('connected', resolve);
    c.connect();
  });
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}
const rawChildren = (c: RawClient, path: string): Promise<string[]> =>
  new Promise((resolve, reject) => c.getChildren(path, (err, children) => (err ? reject(err) : resolve(children))));
const rawOwner = (c: RawClient, path: string): Promise<string | null> =>
  new Promise((resolve, reject) =>
    c.exists(path, (err, stat) => (err ? reject(err) : resolve(stat === null ? null : stat.ephemeralOwner.toString('hex')))),
  );

// --- tests ---------------------------------------------------------------------------------

describe('zk coordinator', () => {
  coordinatorContract('zk coordinator', () => ({
    newCluster,
    probe: (cluster: string, id: string) => {
      const p = probe(cluster, id);
      return { id: p.id, coord: p.coord, events: p.events };
    },
    until: async (what: string, cond: () => boolean, maxMs = 5000) => {
      await waitFor(what, cond, maxMs);
    },
    settle: (work) => work,
    pass: (ms: number) => sleep(ms),
    now: () => performance.now(),
    handoverMs: 2000,
  }));

  it('zk coordinator - the member and election znodes of a new session belong to it', async () => {
    const cluster = newCluster();
    const paths = clusterPaths(cluster);
    const a = probe(cluster, 'a');
    const sessionId = await connected(a);
    await withRaw(async (c) => {
      expect(await rawOwner(c, paths.member('a'))).toBe(sessionId);
      expect(await rawChildren(c, paths.election)).toHaveLength(1);
    });
  });

  it('zk coordinator - error classes keep name, path and cause', () => {
    const cause = new Error('zk said no');
    const cases: Array<[Error & { path?: string }, string]> = [
      [new CoordinationError('x', { path: '/p', cause }), 'CoordinationError'],
      [new SessionExpiredError('x', { path: '/p', cause }), 'SessionExpiredError'],
      [new NotConnectedError('x', { path: '/p', cause }), 'NotConnectedError'],
      [new DeposedError('x', { path: '/p', cause }), 'DeposedError'],
      [new CoordinationTimeoutError('x', { path: '/p', cause, timeoutMs: 5 }), 'CoordinationTimeoutError'],
    ];
    for (const [err, name] of cases) {
      expect(err.name).toBe(name);
      expect(err.path).toBe('/p');
      expect(err.cause).toBe(cause);
      expect(err).toBeInstanceOf(CoordinationError);
      expect(errors[name as keyof typeof errors]).toBe(err.constructor);
    }
  });

  it('zk coordinator - a silent link suspends, expires locally, then re-registers with a new session', async () => {
    const cluster = newCluster();
    const proxy = await proxyToZk();
    const c = probe(cluster, 'c', proxy.address);
    const oldSession = await connected(c);
    const a = probe(cluster, 'a');
    await connected(a);
    const b = probe(cluster, 'b');
    await connected(b);
    await waitFor('c elected', () => isElected(c));
    await waitFor('a sees three', () => sameIds(lastMembers(a), ['a', 'b', 'c']));

    const cutAtMs = performance.now();
    proxy.cut('drop');
    // Noticed within the read timeout (2/3 of the session timeout) plus a watchdog tick.
    const suspended = await waitFor('c suspended', () => sessionEvents(c).find((e) => e.event.state === 'suspended'), 3000);
    expect(suspended.event.sessionId).toBe(oldSession);
    expect(suspended.atMs - cutAtMs).toBeLessThan(SESSION_TIMEOUT_MS);
    expect(c.coord.sessionState()).toBe('suspended');
    const failFastAtMs = performance.now();
    await expect(c.coord.readReplicas()).rejects.toBeInstanceOf(NotConnectedError);
    expect(performance.now() - failFastAtMs).toBeLessThan(100);

    // The server expires the old session: the others see c leave and a takes over.
    await waitFor('a sees c leave', () => sameIds(lastMembers(a), ['a', 'b']), 4000);
    await waitFor('a elected', () => isElected(a), 2000);
    expect(isElected(b)).toBe(false);

    // Still cut off, c decides expiry itself, one session timeout after suspending.
    const expired = await waitFor('c expired', () => sessionEvents(c).find((e) => e.event.state === 'expired'), 4000);
    expect(expired.event.sessionId).toBe(oldSession);
    expect(expired.atMs - suspended.atMs).toBeGreaterThanOrEqual(SESSION_TIMEOUT_MS - 50);
    expect(expired.atMs - suspended.atMs).toBeLessThan(SESSION_TIMEOUT_MS + 1000);

    proxy.restore();
    const newSession = await connected(c, oldSession, 5000);
    expect(newSession).not.toBe(oldSession);
    await waitFor('a sees c again', () => sameIds(lastMembers(a), ['a', 'b', 'c']), 3000);
    await waitFor('c sees everyone', () => sameIds(c.coord.memberIds(), ['a', 'b', 'c']), 3000);
    expect(sessionEvents(c).map((e) => e.event.state)).toEqual(['connecting', 'connected', 'suspended', 'expired', 'connecting', 'connected']);
    await sleep(200);
    expect(isElected(c)).toBe(false);
    expect(isElected(a)).toBe(true);
  });

  it('zk coordinator - an expiry reported by the server on reconnection builds a new session', async () => {
    const cluster = newCluster();
    const proxy = await proxyToZk();
    const c = probe(cluster, 'c', proxy.address);
    const oldSession = await connected(c);
    const a = probe(cluster, 'a');
    await connected(a);
    await waitFor('a sees c', () => sameIds(lastMembers(a), ['a', 'c']));

    proxy.cut('drop');
    const suspended = await waitFor('c suspended', () => sessionEvents(c).find((e) => e.event.state === 'suspended'), 3000);
    // Reconnect as soon as the server has expired the session, before c's local expiry.
    await waitFor('a sees c leave', () => sameIds(lastMembers(a), ['a']), 4000);
    proxy.restore();
    const expired = await waitFor('c expired', () => sessionEvents(c).find((e) => e.event.state === 'expired'), 3000);
    expect(expired.atMs - suspended.atMs).toBeLessThan(SESSION_TIMEOUT_MS);
    const newSession = await connected(c, oldSession);
    expect(newSession).not.toBe(oldSession);
    await waitFor('a sees c again', () => sameIds(lastMembers(a), ['a', 'c']), 3000);
  });

  it('zk coordinator - the session bound grows from quorum-ordered probes and stops while the link drops everything', async () => {
    const proxy = await proxyToZk();
    const a = probe(newCluster(), 'a', proxy.address);
    await connected(a);
    const bound = await waitFor('a session bound', () => {
      const until = a.coord.sessionAliveUntil!();
      return until > performance.now() ? until : undefined;
    });
    expect(bound).toBeLessThanOrEqual(performance.now() + SESSION_TIMEOUT_MS * 0.9);
    proxy.cut('drop');
    const cutAt = performance.now();
    await sleep(SESSION_TIMEOUT_MS / 2);
    // No probe gets through: the bound stays where the last answered one put it.
    expect(a.coord.sessionAliveUntil!()).toBeLessThanOrEqual(cutAt + SESSION_TIMEOUT_MS * 0.9);
  });

  it('zk coordinator - a new session re-creates the member znode with the latest published info', async () => {
    const cluster = newCluster();
    const proxy = await proxyToZk();
    const c = probe(cluster, 'c', proxy.address);
    const a = probe(cluster, 'a');
    const oldSession = await connected(c);
    await connected(a);
    await c.coord.publishMember({ role: 'follower', state: 'serving' });
    proxy.cut('close');
    await waitFor('c suspended', () => lastSession(c)?.state === 'suspended', 3000);
    // Remembered while cut off, though it cannot be written now.
    await expect(c.coord.publishMember({ role: 'follower', state: 'removed' })).rejects.toBeInstanceOf(NotConnectedError);
    await waitFor('c expired', () => sessionEvents(c).some((e) => e.event.state === 'expired'), 5000);
    proxy.restore();
    await connected(c, oldSession);
    expect(await a.coord.readMembers()).toContainEqual({ id: 'c', role: 'follower', state: 'removed' });
  });

  it('zk coordinator - a restarted node replaces the znodes its old session left', async () => {
    const cluster = newCluster();
    const paths = clusterPaths(cluster);
    const proxy = await proxyToZk();
    const old = probe(cluster, 'x', proxy.address);
    const oldSession = await connected(old);
    const y = probe(cluster, 'y');
    await connected(y);

    // The old process hangs (its session lives on in the server for a while); a new one starts.
    proxy.cut('drop');
    const startedAtMs = performance.now();
    const fresh = probe(cluster, 'x');
    const freshSession = await connected(fresh);
    // Well before the old session could expire: the stale znodes were replaced, not waited out.
    expect(performance.now() - startedAtMs).toBeLessThan(SESSION_TIMEOUT_MS);
    expect(freshSession).not.toBe(oldSession);
    await withRaw(async (raw) => {
      expect(await rawOwner(raw, paths.member('x'))).toBe(freshSession);
      expect(await rawChildren(raw, paths.election)).toHaveLength(2);
    });
    // The old x headed the line; with its znode gone, y (next) leads, not the fresh x (last).
    await waitFor('y elected', () => isElected(y), 2000);
    expect(isElected(fresh)).toBe(false);
    await old.coord.stop();

    await fresh.coord.publishMember({ role: 'leader', state: 'serving' });
    // After the old session has surely expired, the fresh znodes are still there.
    await sleep(SESSION_TIMEOUT_MS + 500);
    expect(await y.coord.readMembers()).toEqual([
      { id: 'x', role: 'leader', state: 'serving' },
      { id: 'y', role: 'follower', state: 'syncing' },
    ]);
    expect(y.coord.memberIds()).toEqual(['x', 'y']);
  });

  it('zk coordinator - operations fail fast while not connected', async () => {
    const cluster = newCluster();
    const proxy = await proxyToZk();
    proxy.cut('close');
    const a = probe(cluster, 'a', proxy.address);
    expect(a.coord.sessionState()).toBe('connecting');
    const startedAtMs = performance.now();
    await expect(a.coord.readReplicas()).rejects.toBeInstanceOf(NotConnectedError);
    await expect(a.coord.claimEpoch()).rejects.toBeInstanceOf(NotConnectedError);
    await expect(a.coord.readMembers()).rejects.toBeInstanceOf(NotConnectedError);
    expect(performance.now() - startedAtMs).toBeLessThan(100);
    const stopAtMs = performance.now();
    await a.coord.stop();
    expect(performance.now() - stopAtMs).toBeLessThan(OP_TIMEOUT_MS + 500);
    expect(a.coord.sessionState()).toBe('expired');
    expect(() => a.coord.start(() => {})).toThrow();
  });
});
