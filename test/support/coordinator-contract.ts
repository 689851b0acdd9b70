// The Coordinator contract (actors/ports.ts), one suite for every implementation: the production
// coordinator on a real ZooKeeper (test/integration/zk-coordinator.int.test.ts) and on the
// simulation's in-memory ZooKeeper (test/sim/memory-coordinator.test.ts). Cases that need faults
// specific to one world (black-holed sockets, server-side expiry hooks) stay in those files.
import { expect, it } from 'vitest';
import type { CoordEvent, Coordinator } from '../../actors/ports.ts';
import { DeposedError } from '../../coordination/errors.ts';
import { clusterPaths } from '../../coordination/paths.ts';

export interface ContractProbe {
  id: string;
  coord: Coordinator;
  events: Array<{ atMs: number; event: CoordEvent }>;
}

/** One world per test: a ZooKeeper (real or simulated) and a way to let time pass in it. */
export interface CoordinatorWorld {
  /** A cluster name no other test of this world uses. */
  newCluster(): string;
  /** A started coordinator for node `id` that records its events. */
  probe(cluster: string, id: string): ContractProbe;
  /** Lets time pass until `cond` holds; throws after `maxMs`. */
  until(what: string, cond: () => boolean, maxMs?: number): Promise<void>;
  /** Lets time pass until `work` settles, and settles like it. */
  settle<T>(work: Promise<T>): Promise<T>;
  pass(ms: number): Promise<void>;
  now(): number;
  /** How soon the next in line must lead after the leader stops (ms). */
  handoverMs: number;
}

const sessionEvents = (p: ContractProbe) => p.events.flatMap((e) => (e.event.type === 'coord.session' ? [e.event] : []));
export const isConnected = (p: ContractProbe) => sessionEvents(p).at(-1)?.state === 'connected';
export const lastMembers = (p: ContractProbe): string[] | undefined =>
  p.events.flatMap((e) => (e.event.type === 'coord.members' ? [e.event.ids] : [])).at(-1);
export const electedCount = (p: ContractProbe) => p.events.filter((e) => e.event.type === 'coord.elected').length;
/** Elected in its current connected session. */
export function isElected(p: ContractProbe): boolean {
  const session = sessionEvents(p).at(-1);
  if (session?.state !== 'connected') return false;
  return p.events.some((e) => e.event.type === 'coord.elected' && e.event.sessionId === session.sessionId);
}

export function coordinatorContract(name: string, newWorld: () => Promise<CoordinatorWorld> | CoordinatorWorld): void {
  const connectedProbes = async (w: CoordinatorWorld, cluster: string, ...ids: string[]): Promise<ContractProbe[]> => {
    // One after another, each connected before the next starts: election order = start order.
    const out: ContractProbe[] = [];
    for (const id of ids) {
      const p = w.probe(cluster, id);
      await w.until(`${id} connected`, () => isConnected(p));
      out.push(p);
    }
    return out;
  };

  it(`${name} - announces connected only after its znodes exist, then the facts`, async () => {
    const w = await newWorld();
    const [a] = (await connectedProbes(w, w.newCluster(), 'a')) as [ContractProbe];
    const types = a.events.map((e) => e.event.type);
    expect(types.slice(types.lastIndexOf('coord.session'))).toEqual(['coord.session', 'coord.members', 'coord.epoch', 'coord.elected']);
    expect(sessionEvents(a).map((e) => e.state)).toEqual(['connecting', 'connected']);
    expect(lastMembers(a)).toEqual(['a']);
    expect(a.coord.memberIds()).toEqual(['a']);
    expect(a.events.flatMap((e) => (e.event.type === 'coord.epoch' ? [e.event] : [])).at(-1)).toMatchObject({ epoch: 0, leader: null });
    expect(await w.settle(a.coord.readReplicas())).toEqual({ ids: [], epoch: 0, era: 0 });
    expect(await w.settle(a.coord.readMembers())).toEqual([{ id: 'a', role: 'follower', state: 'syncing' }]);
    expect(await w.settle(a.coord.readUncleanGrant())).toBeNull();
  });

  it(`${name} - lowest sequence wins the election`, async () => {
    const w = await newWorld();
    const probes = await connectedProbes(w, w.newCluster(), 'a', 'b', 'c');
    await w.until('everyone sees three members', () => probes.every((p) => lastMembers(p)?.join() === 'a,b,c'));
    await w.pass(300);
    expect(probes.map(isElected)).toEqual([true, false, false]);
    expect(probes.map(electedCount)).toEqual([1, 0, 0]);
  });

  it(`${name} - stopping the leader elects the next one quickly`, async () => {
    const w = await newWorld();
    const [a, b, c] = (await connectedProbes(w, w.newCluster(), 'a', 'b', 'c')) as [ContractProbe, ContractProbe, ContractProbe];
    await w.until('a elected', () => isElected(a));
    const stoppedAt = w.now();
    await w.settle(a.coord.stop());
    await w.settle(a.coord.stop()); // idempotent
    await w.until('b elected', () => isElected(b), w.handoverMs);
    expect(w.now() - stoppedAt).toBeLessThan(w.handoverMs);
    await w.until('c sees a leave', () => lastMembers(c)?.join() === 'b,c', w.handoverMs);
    expect(isElected(c)).toBe(false);
    expect(a.coord.sessionState()).toBe('expired');
    await expect(a.coord.readReplicas()).rejects.toMatchObject({ name: 'NotConnectedError' });
  });

  it(`${name} - claimEpoch increments by compare-and-set`, async () => {
    const w = await newWorld();
    const [a, b] = (await connectedProbes(w, w.newCluster(), 'a', 'b')) as [ContractProbe, ContractProbe];
    const first = await w.settle(a.coord.claimEpoch());
    expect(first.epoch).toBe(1);
    expect(first.fence).toBeGreaterThanOrEqual(1);
    expect(await w.settle(a.coord.claimEpoch())).toEqual({ epoch: 2, fence: first.fence + 1 });
    const [x, y] = await w.settle(Promise.all([a.coord.claimEpoch(), b.coord.claimEpoch()]));
    expect(new Set([x.epoch, y.epoch])).toEqual(new Set([3, 4]));
    expect(x.fence).not.toBe(y.fence);
    const winner = x.epoch === 4 ? 'a' : 'b';
    await w.until('b hears epoch 4', () => b.events.some((e) => e.event.type === 'coord.epoch' && e.event.epoch === 4 && e.event.leader === winner));
    // Above an epoch the claimer knows of (a ZooKeeper that lost its data counts from 0 again).
    expect((await w.settle(a.coord.claimEpoch(10))).epoch).toBe(11);
    expect((await w.settle(b.coord.claimEpoch(3))).epoch).toBe(12);
    // Read through the quorum: what a node checks a new leader's sync against.
    expect(await w.settle(a.coord.readEpoch())).toEqual({ epoch: 12, leader: 'b' });
  });

  it(`${name} - writeReplicas with a stale fence rejects with DeposedError`, async () => {
    const w = await newWorld();
    const cluster = w.newCluster();
    const [a, b] = (await connectedProbes(w, cluster, 'a', 'b')) as [ContractProbe, ContractProbe];
    const claimA = await w.settle(a.coord.claimEpoch());
    await w.settle(a.coord.writeReplicas(['a', 'b'], claimA));
    expect(await w.settle(b.coord.readReplicas())).toEqual({ ids: ['a', 'b'], epoch: claimA.epoch, era: 0 });
    const claimB = await w.settle(b.coord.claimEpoch());
    const stale = w.settle(a.coord.writeReplicas(['a'], claimA));
    await expect(stale).rejects.toBeInstanceOf(DeposedError);
    await expect(stale).rejects.toMatchObject({ name: 'DeposedError', path: clusterPaths(cluster).epoch });
    expect(await w.settle(a.coord.readReplicas())).toEqual({ ids: ['a', 'b'], epoch: claimA.epoch, era: 0 });
    // The era (how often the record was rebuilt from the nodes) is kept with the set.
    await w.settle(b.coord.writeReplicas(['b'], claimB, 2));
    expect(await w.settle(a.coord.readReplicas())).toEqual({ ids: ['b'], epoch: claimB.epoch, era: 2 });
    await expect(a.coord.writeReplicas(['a'], { epoch: 1, fence: 0 })).rejects.toBeInstanceOf(RangeError);
  });

  it(`${name} - readMembers reflects publishMember`, async () => {
    const w = await newWorld();
    const [a, b] = (await connectedProbes(w, w.newCluster(), 'a', 'b')) as [ContractProbe, ContractProbe];
    await w.settle(a.coord.publishMember({ role: 'leader', state: 'serving' }));
    await w.settle(b.coord.publishMember({ role: 'follower', state: 'suspended' }));
    expect(await w.settle(b.coord.readMembers())).toEqual([
      { id: 'a', role: 'leader', state: 'serving' },
      { id: 'b', role: 'follower', state: 'suspended' },
    ]);
    await expect(a.coord.publishMember({ role: 'boss' as 'leader', state: 'serving' })).rejects.toBeInstanceOf(RangeError);
  });

  it(`${name} - resign moves this node to the back of the line`, async () => {
    const w = await newWorld();
    const [a, b] = (await connectedProbes(w, w.newCluster(), 'a', 'b')) as [ContractProbe, ContractProbe];
    await w.until('a elected', () => isElected(a));
    await w.settle(a.coord.resign());
    await w.until('b elected', () => isElected(b), w.handoverMs);
    await w.pass(200);
    expect(electedCount(a)).toBe(1);
    await w.settle(b.coord.resign());
    await w.until('a elected again', () => electedCount(a) === 2, w.handoverMs);
    expect(await w.settle(a.coord.readMembers())).toHaveLength(2);
  });
}
