// Goal: copies kept on disk (issue "durable replicas") keep every acknowledged write through
// crashes of every node at once, in any restart order, even with a ZooKeeper that lost its data
// (the nodes rebuild its replica set record), and a node whose disk fails stops acking without
// stopping the cluster.
// Method: scripted stories on the simulated 3-node cluster with simulated disks (a crash loses
// what was not synced; storage/memory-disk.ts), ending with the seed checks.
import { describe, expect, it } from 'vitest';
import type { SimCluster } from './cluster.ts';
import { isolateUntilRemoved, report, startStory, traceSince, verifyStory } from './story.ts';

/** Every node's watch history starts at revision 0 and holds a change of each of `keys`, in order (`why`: the trace lines that explain a failure). */
function expectWholeHistory(c: SimCluster, keys: string[], why: string): void {
  for (const id of c.ids) expect({ id, floor: c.changesOf(id)!.floor, keys: c.changesOf(id)!.changes.map((ch) => ch.key) }, why).toEqual({ id, floor: 0, keys });
}

/**
 * Durable nodes; `a` and `b` written, and `target` (a follower) stops with a state transfer open
 * (its leader's changes to come) when every node crashes: at restart its floor rises (F17's rule).
 */
async function crashWithTransferOpen(): Promise<{ c: SimCluster; leader: string; target: string; other: string }> {
  const c = await startStory({ diskSyncMs: 2, trace: true });
  const leader = c.leader()!;
  const [target, other] = c.ids.filter((id) => id !== leader) as [string, string];
  expect((await c.put(leader, 'a', 'v1')).output.status).toBe('ok');
  c.node(target)!.store.changes.beginTransfer();
  expect((await c.put(leader, 'b', 'v2')).output.status).toBe('ok');
  await c.run(100);
  for (const id of c.ids) c.crash(id);
  await c.run(300);
  return { c, leader, target, other };
}

describe('durable - stories', () => {
  it('every node crashes at once, and they come back in another order: every acknowledged write is there, revisions go on', async () => {
    const c = await startStory({ diskSyncMs: 2 });
    const leader = c.leader()!;
    const keys = ['a', 'b', 'c'];
    let highest = 0;
    for (const [i, k] of keys.entries()) {
      const put = await c.put(leader, k, `v${i}`);
      expect(put.output.status).toBe('ok');
      if (put.output.status === 'ok') highest = Math.max(highest, put.output.revision ?? 0);
    }
    expect((await c.del(leader, 'b')).output.status).toBe('ok');
    for (const id of c.ids) c.crash(id);
    await c.run(500);
    // The leader last: the others must not serve without it if they lack anything.
    for (const id of [...c.ids.filter((x) => x !== leader), leader]) {
      c.restart(id);
      await c.run(700);
    }
    const result = await verifyStory(c, keys, 'whole-cluster crash');
    expect(result.ok, report(result)).toBe(true);
    for (const id of c.ids) {
      expect((await c.get(id, 'a')).output).toMatchObject({ status: 'ok', value: 'v0' });
      expect((await c.get(id, 'b')).output.status).toBe('not-found');
    }
    const after = await c.put(c.leader()!, 'd', 'x');
    expect(after.output).toMatchObject({ status: 'ok' });
    expect((after.output as { revision: number }).revision).toBeGreaterThan(highest + 1);
  });

  it('every node crashes while a follower still holds the last write in flight; back first, it leads: the others, which hold it committed, catch up by revision', async () => {
    const c = await startStory({ diskSyncMs: 2, trace: true });
    const leader = c.leader()!;
    const [first, other] = c.ids.filter((id) => id !== leader) as [string, string];
    expect((await c.put(leader, 'a', 'v1')).output.status).toBe('ok');
    const last = await c.put(leader, 'b', 'v2');
    expect(last.output.status).toBe('ok');
    const rev = (last.output as { revision: number }).revision;
    // Its validate is still on the way: `first` keeps the write in flight. The leader's next
    // lease grant tells the other follower, and its own copy, that they hold it.
    c.pause(first, 60_000);
    await c.run(400);
    expect(c.storeOf(first)?.get('b')).toMatchObject({ pending: `${rev}:v2` });
    for (const id of c.ids) c.crash(id);
    // The pause's cuts outlive the crash: a restarted process has links again.
    c.zkRestore(first);
    c.unclog(first);
    await c.run(300);
    c.restart(first);
    expect(await c.waitFor(() => c.leader() === first, 10_000), `${first} leads alone`).toBe(true);
    const firstLeads = c.trace.lines.length;
    for (const id of [leader, other]) {
      c.restart(id);
      await c.run(700);
    }
    const result = await verifyStory(c, ['a', 'b'], 'whole-cluster crash with a write in flight at the first leader');
    expect(result.ok, report(result)).toBe(true);
    for (const id of c.ids) expect((await c.get(id, 'b')).output).toMatchObject({ status: 'ok', value: 'v2', revision: rev });
    // Each of the others catches up from the last write's revision: no full snapshot.
    const transfers = traceSince(c, firstLeads, / info (joined|caught up) /);
    expect(transfers.filter((l) => l.includes(' joined ')), transfers.join('\n')).toEqual([]);
    expect(transfers.filter((l) => l.includes(` since=${rev}`)).length, transfers.join('\n')).toBe(2);
    // The watch history survives too: every node can still tell both changes.
    for (const id of c.ids) {
      const log = c.changesOf(id)!;
      expect({ id, floor: log.floor, revs: log.changes.map((ch) => ch.rev) }, c.trace.lines.filter((l) => l.includes('floor')).join('\n')).toEqual({ id, floor: 0, revs: [rev - 1, rev] });
    }
  });

  it('a leader admits a node while a write of the previous term waits to be re-committed, and dies: the joiner, leading next, re-commits it, as a change too (F24)', async () => {
    const c = await startStory({ diskSyncMs: 2, trace: true });
    const leader = c.leader()!;
    const [holder, joiner] = c.ids.filter((id) => id !== leader) as [string, string];
    expect((await c.put(leader, 'a', 'v1')).output.status).toBe('ok');
    // The joiner leaves the replica set; the next write is then held by the leader and `holder` only.
    await isolateUntilRemoved(c, leader, joiner);
    const put = await c.put(leader, 'b', 'v2');
    expect(put.output.status).toBe('ok');
    const rev = (put.output as { revision: number }).revision;
    // Its validate is still on the way: `holder` keeps it in flight, the only copy that does once
    // the leader is gone.
    c.pause(holder, 60_000);
    await c.run(400);
    expect(c.storeOf(holder)?.get('b')).toMatchObject({ pending: `${rev}:v2` });
    for (const id of c.ids) c.crash(id);
    c.zkRestore(holder);
    c.unclog(holder);
    c.rejoin(joiner);
    await c.run(300);
    // Back alone, `holder` leads; the write waits for a second copy to be re-committed.
    c.restart(holder);
    expect(await c.waitFor(() => c.leader() === holder, 10_000), c.describe()).toBe(true);
    // The joiner is admitted and enters the replica set; the leader dies before the re-commit has
    // reached it.
    const admitted = new RegExp(`${holder} +info leader: (joined|caught up) peer=${joiner} `);
    const from = c.trace.lines.length;
    c.restart(joiner);
    expect(await c.waitFor(() => traceSince(c, from, admitted).length > 0, 10_000), c.describe()).toBe(true);
    c.crash(holder);
    expect(await c.waitFor(() => c.leader() === joiner, 10_000), c.describe()).toBe(true);
    c.restart(leader);
    const result = await verifyStory(c, ['a', 'b'], 'a leader that admitted a node while re-committing died');
    expect(result.ok, report(result)).toBe(true);
    for (const id of c.ids) expect((await c.get(id, 'b')).output).toMatchObject({ status: 'ok', value: 'v2', revision: rev });
    // The joiner re-committed it as a change: a watch from before it sees it at every node.
    for (const id of c.ids) {
      const log = c.changesOf(id)!;
      expect({ id, floor: log.floor <= rev - 1, has: log.changes.some((ch) => ch.rev === rev && ch.key === 'b') }, c.trace.lines.filter((l) => l.includes('floor')).join('\n')).toEqual({ id, floor: true, has: true });
    }
  });

  // The follower that leads next (the head of the election's line) is, in turn, each of the two.
  it.each([
    ['missed the validate', 0],
    ['holds the newer write in flight', 1],
  ])('one follower missed the validate of a write, the other holds the next write of that key in flight; the one that %s leads next: the older write is settled before the newer, as a change everywhere, and no floor rises', async (_, missing) => {
    const c = await startStory({ diskSyncMs: 2, trace: true });
    const leader = c.leader()!;
    const followers = c.ids.filter((id) => id !== leader);
    const [missed, holder] = [followers[missing]!, followers[1 - missing]!];
    const putting = c.put(leader, 'k', 'v1');
    // Once `missed` holds v1 in flight nothing more of the leader's reaches it (its ack does reach
    // the leader): it misses v1's validate, and v2.
    expect(await c.waitFor(() => c.storeOf(missed)?.get('k')?.pending?.endsWith(':v1') === true, 2_000), c.describe()).toBe(true);
    c.cut(leader, missed, true);
    const older = await putting;
    expect(older.output.status).toBe('ok');
    const rev = (older.output as { revision: number }).revision;
    void c.put(leader, 'k', 'v2');
    expect(await c.waitFor(() => c.storeOf(holder)?.get('k')?.pending?.endsWith(':v2') === true, 2_000), c.describe()).toBe(true);
    expect(c.storeOf(missed)?.get('k')).toMatchObject({ pending: `${rev}:v1` });
    c.crash(leader);
    expect(await c.waitFor(() => c.leader() === followers[0], 10_000), c.describe()).toBe(true);
    c.restart(leader);
    const result = await verifyStory(c, ['k'], 'a write held in flight by one replica, committed beneath a newer one at another');
    expect(result.ok, report(result)).toBe(true);
    // Not even for a while: a floor that rose comes down only if a replica that kept those changes answers.
    expect(c.trace.lines.filter((l) => / watch history now starts/.test(l))).toEqual([]);
    for (const id of c.ids) expect({ id, floor: c.changesOf(id)!.floor, has: c.changesOf(id)!.changes.some((ch) => ch.rev === rev) }).toEqual({ id, floor: 0, has: true });
  });

  it('a node that stopped in a state transfer lost its watch history; leading after a whole-cluster crash, it takes the history back from a replica (F17)', async () => {
    const { c, leader, target } = await crashWithTransferOpen();
    // Back first, it leads; the others are back before it has recovered, and answer its sync.
    for (const id of [target, ...c.ids.filter((id) => id !== target)]) c.restart(id);
    expect(await c.waitFor(() => c.leader() === target && c.allServing(), 10_000), c.describe()).toBe(true);
    const result = await verifyStory(c, ['a', 'b'], 'whole-cluster crash with a state transfer open');
    expect(result.ok, report(result)).toBe(true);
    const floors = c.trace.lines.filter((l) => / (watch history now|took back)/.test(l)).join('\n');
    expect(floors).toMatch(new RegExp(`${target} .*a state transfer was open when the node stopped`));
    expect(floors).toMatch(new RegExp(`${target} .*took back the oldest changes`));
    for (const id of c.ids) expect({ id, ...c.changesOf(id)!, node: undefined, stable: undefined }, floors).toEqual({ id, ...c.changesOf(leader)!, node: undefined, stable: undefined, floor: 0 });
  });

  it('the same node leads alone, and the others come back only once it serves: it takes the history back from a late member (F21)', async () => {
    const { c, target } = await crashWithTransferOpen();
    // Alone, it recovers without a sync reply from anyone: nobody can give the history back yet.
    c.restart(target);
    expect(await c.waitFor(() => c.leader() === target && c.node(target)!.status().state === 'serving', 15_000), c.describe()).toBe(true);
    expect(c.changesOf(target)!.floor).toBeGreaterThan(0);
    const from = c.trace.lines.length;
    for (const id of c.ids.filter((id) => id !== target)) c.restart(id);
    expect(await c.waitFor(() => c.allServing(), 15_000), c.describe()).toBe(true);
    const result = await verifyStory(c, ['a', 'b'], 'a leader that lost its history, its replicas back late');
    expect(result.ok, report(result)).toBe(true);
    const floors = traceSince(c, from, / (watch history now|took back)/).join('\n');
    expect(floors).toMatch(new RegExp(`${target} .*took back the oldest changes`));
    expectWholeHistory(c, ['a', 'b'], floors);
  });

  it('a node whose floor rose at restart joins a leader that kept every change: its join names its floor, and it gets the older changes back (F22)', async () => {
    const { c, leader, target, other } = await crashWithTransferOpen();
    c.restart(leader);
    c.restart(other);
    expect(await c.waitFor(() => c.leader() === leader && [leader, other].every((id) => c.node(id)?.status().state === 'serving'), 15_000), c.describe()).toBe(true);
    const from = c.trace.lines.length;
    c.restart(target);
    expect(await c.waitFor(() => c.allServing(), 15_000), c.describe()).toBe(true);
    const result = await verifyStory(c, ['a', 'b'], 'a joiner whose floor rose at restart');
    expect(result.ok, report(result)).toBe(true);
    const floors = traceSince(c, from, / (watch history now|took back|caught up)/).join('\n');
    expect(floors).toMatch(new RegExp(`${target} .*a state transfer was open when the node stopped`));
    expectWholeHistory(c, ['a', 'b'], floors);
  });

  it('a leader whose recovery skipped a revision vouches for the history once it has admitted every member, and is paused before its first write: no floor rises (allAdmitted)', async () => {
    // Memory-only nodes, as in the CI nemesis run that found it (F16 follow-up).
    const c = await startStory({ trace: true });
    const leader = c.leader()!;
    const [stayer, joiner] = c.ids.filter((id) => id !== leader) as [string, string];
    expect((await c.put(leader, 'a', 'v1')).output.status).toBe('ok');
    await isolateUntilRemoved(c, leader, joiner);
    const from = c.trace.lines.length;
    c.rejoin(joiner);
    const chunk = new RegExp(`${joiner} +<- ${leader} snapshot .*seq=0`);
    expect(await c.waitFor(() => traceSince(c, from, chunk).length > 0, 10_000), c.describe()).toBe(true);
    // A write only the joiner takes, in flight; then the leader dies.
    c.cut(leader, stayer, true);
    void c.put(leader, 'b', 'v2');
    expect(await c.waitFor(() => c.storeOf(joiner)?.get('b')?.pending?.endsWith(':v2') === true, 2_000), c.describe()).toBe(true);
    c.crash(leader);
    c.uncut(leader, stayer);
    expect(await c.waitFor(() => c.leader() === stayer, 15_000), c.describe()).toBe(true);
    // Its recovery skipped revision 2, which only the joiner (incomplete) held.
    const recovered = new RegExp(`${stayer} +info leader: recovered replicas=\\["${stayer}"\\] nextRev=3 recommit=0`);
    expect(traceSince(c, from, recovered).length > 0, c.describe()).toBe(true);
    c.restart(leader);
    expect(await c.waitFor(() => c.allServing(), 15_000), c.describe()).toBe(true);
    c.pause(stayer, 3_000);
    expect(await c.waitFor(() => c.leader() !== null && c.leader() !== stayer, 15_000), c.describe()).toBe(true);
    const result = await verifyStory(c, ['a', 'b'], 'a leader that admitted every member, paused before its first write');
    expect(result.ok, report(result)).toBe(true);
    const floors = traceSince(c, from, / (watch history now|took back|recovered|joined|caught up)/).join('\n');
    for (const id of c.ids) expect({ id, floor: c.changesOf(id)!.floor }, floors).toEqual({ id, floor: 0 });
  });

  it('a node elected with its state transfer open steps aside (incomplete) and keeps the transfer open: its next join brings the history, no floor rises', async () => {
    const c = await startStory({ diskSyncMs: 2, trace: true });
    const leader = c.leader()!;
    const [target, other] = c.ids.filter((id) => id !== leader) as [string, string];
    expect((await c.put(leader, 'a', 'v1')).output.status).toBe('ok');
    await isolateUntilRemoved(c, leader, target);
    expect((await c.put(leader, 'b', 'v2')).output.status).toBe('ok');
    // Back on the bus, it joins; the others crash once its first chunk came: the transfer stays open.
    const from = c.trace.lines.length;
    c.rejoin(target);
    const chunk = new RegExp(`${target} +<- ${leader} snapshot .*seq=0`);
    expect(await c.waitFor(() => traceSince(c, from, chunk).length > 0, 10_000), c.describe()).toBe(true);
    c.crash(leader);
    c.crash(other);
    // Elected alone, its copy not complete: it waits for a member of the last replica set.
    const waiting = new RegExp(`${target} .*waiting for a complete replica`);
    expect(await c.waitFor(() => traceSince(c, from, waiting).length > 0, 10_000), c.describe()).toBe(true);
    c.restart(other);
    c.restart(leader);
    expect(await c.waitFor(() => c.leader() !== null && c.leader() !== target && c.allServing(), 15_000), c.describe()).toBe(true);
    const result = await verifyStory(c, ['a', 'b'], 'an incomplete node elected with its transfer open');
    expect(result.ok, report(result)).toBe(true);
    const floors = traceSince(c, from, / (watch history now|waiting for a complete|stepping aside)/).join('\n');
    expect(floors).not.toMatch(/watch history now starts/);
    expectWholeHistory(c, ['a', 'b'], floors);
  });

  it('ZooKeeper loses its data in a power cut: the node left out of the last replica set, back first, never serves; every acknowledged write survives', async () => {
    const c = await startStory({ diskSyncMs: 2 });
    const leader = c.leader()!;
    const [stale, other] = c.ids.filter((id) => id !== leader) as [string, string];
    expect((await c.put(leader, 'k', 'v1')).output.status).toBe('ok');
    // Cut off the bus until the leader has removed it: it keeps v1 and a replica set naming it.
    await isolateUntilRemoved(c, leader, stale);
    expect((await c.put(leader, 'k', 'v2')).output.status).toBe('ok');
    c.rejoin(stale);
    for (const id of c.ids) c.crash(id);
    c.zkWipe();
    await c.run(300);
    c.restart(stale);
    await c.run(4000);
    // Alone with a fresh ZooKeeper it remembers a set naming the others: it waits for them.
    expect(c.node(stale)?.describe().state).not.toBe('serving');
    expect((await c.get(stale, 'k')).output.status).toBe('unavailable');
    c.restart(other);
    c.restart(leader);
    const result = await verifyStory(c, ['k'], 'power cut with a ZooKeeper that lost its data');
    expect(result.ok, report(result)).toBe(true);
    for (const id of c.ids) expect((await c.get(id, 'k')).output).toMatchObject({ status: 'ok', value: 'v2' });
  });

  it('a follower whose disk fails acks no more: it leaves the replica set and writes go on', async () => {
    const c = await startStory({ diskSyncMs: 2 });
    const leader = c.leader()!;
    const [f] = c.ids.filter((id) => id !== leader) as [string];
    expect((await c.put(leader, 'k', 'v1')).output.status).toBe('ok');
    c.diskOf(f)!.fail('disk full');
    const replicas = () => c.node(leader)?.status().replicas ?? [];
    const write = await c.put(leader, 'k', 'v2');
    expect(write.output.status).toBe('ok');
    expect(replicas()).not.toContain(f);
    expect(c.trace.problems.some((p) => p.msg.includes('the data dir failed'))).toBe(true);
    expect((await c.put(leader, 'k', 'v3')).output.status).toBe('ok');
  });
});
