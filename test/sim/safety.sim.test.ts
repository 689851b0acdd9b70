// Goal: an acknowledged write survives cascades of faults that leave no node with both a live
// session and a complete copy for a while (issue "never lose an acknowledged write"): no node
// without a complete copy leads, and a complete copy survives the loss of its ZooKeeper session.
// Method: scripted stories on the simulated 3-node cluster (test/sim/cluster.ts), ending with the
// seed checks (linearizability of the whole history, convergence, invariants). SIM_TRACE=1
// prints a story's trace.
import { describe, expect, it } from 'vitest';
import { acceptDataLoss } from '../../coordination/unclean.ts';
import { ZkClientSim } from '../../coordination/memory-zookeeper.ts';
import { SIM_CLUSTER } from './cluster.ts';
import { report, startStory, verifyStory } from './story.ts';
import { Rng } from './rng.ts';
import type { PeerMessage, PeerReply } from '../../actors/protocol.ts';

describe('safety - cascades', () => {
  it('the four steps: a follower removed, a write, every session expired, the stale follower back first', async () => {
    const c = await startStory();
    const leader = c.leader()!;
    const [f, g] = c.ids.filter((id) => id !== leader) as [string, string];
    expect((await c.put(leader, 'k', 'v1')).output.status).toBe('ok');
    // 1. f is cut off the bus until the leader has removed it from the replica set.
    c.isolate(f);
    const replicas = () => c.node(leader)?.status().replicas ?? [];
    expect(await c.waitFor(() => !replicas().includes(f), 5_000)).toBe(true);
    // 2. A write that f does not hold.
    expect((await c.put(leader, 'k', 'v2')).output.status).toBe('ok');
    c.rejoin(f);
    // 3. Every node is cut off ZooKeeper for longer than the session timeout: every session expires.
    for (const id of c.ids) c.zkPartition(id, 0);
    await c.run(c.sessionTimeoutMs * 2);
    // 4. f comes back first, the others a second later.
    c.zkRestore(f);
    await c.run(1_000);
    c.zkRestore(leader);
    c.zkRestore(g);
    const result = await verifyStory(c, ['k'], 'four steps');
    expect(result.ok, report(result)).toBe(true);
    const read = await c.get(f, 'k');
    expect(read.output).toMatchObject({ status: 'ok', value: 'v2' });
  });

  it('with --min-replicas 1, a leader alone in the replica set loses its session and keeps its copy; the others wait for it', async () => {
    const c = await startStory({ node: { minReplicas: 1 } });
    const leader = c.leader()!;
    const [f, g] = c.ids.filter((id) => id !== leader) as [string, string];
    const replicas = () => c.node(leader)?.status().replicas ?? [];
    // The leader ends up alone in the replica set: f dies, then g is cut off the bus.
    c.crash(f);
    expect(await c.waitFor(() => !replicas().includes(f), 8_000), c.describe()).toBe(true);
    c.isolate(g);
    expect(await c.waitFor(() => replicas().length === 1, 8_000), c.describe()).toBe(true);
    expect((await c.put(leader, 'k', 'only-on-the-leader')).output.status).toBe('ok');
    // The leader's session expires while the process lives on with every write in memory.
    c.zkPartition(leader, 0);
    await c.run(c.sessionTimeoutMs * 2);
    c.rejoin(g);
    c.restart(f);
    // The others cannot lead without a complete copy: they answer 503 and wait.
    await c.run(c.sessionTimeoutMs);
    const during = await c.put(g, 'k2', 'x');
    expect(during.output.status).toBe('unavailable');
    c.zkRestore(leader);
    const result = await verifyStory(c, ['k', 'k2'], 'alone and expired');
    expect(result.ok, report(result)).toBe(true);
    const read = await c.get(g, 'k');
    expect(read.output).toMatchObject({ status: 'ok', value: 'only-on-the-leader' });
  });

  it('the floor on copies: with one follower gone and the other cut off, writes answer 503 and change nothing, reads go on', async () => {
    const c = await startStory();
    const leader = c.leader()!;
    const [gone, cut] = c.ids.filter((id) => id !== leader) as [string, string];
    expect((await c.put(leader, 'k', 'v1')).output.status).toBe('ok');
    // One follower dies: two copies remain, so it may be removed.
    c.crash(gone);
    const replicas = () => c.node(leader)?.status().replicas ?? [];
    expect(await c.waitFor(() => !replicas().includes(gone), 8_000), c.describe()).toBe(true);
    // The other is cut off: removing it would leave one copy, so it stays, and writes stop.
    c.isolate(cut);
    await c.run(c.config.leaseMs * 2);
    expect(replicas()).toContain(cut);
    const write = await c.put(leader, 'k', 'v2');
    expect(write.output.status).toBe('unavailable');
    expect((await c.get(leader, 'k')).output).toMatchObject({ status: 'ok', value: 'v1' });
    c.rejoin(cut);
    const result = await verifyStory(c, ['k'], 'floor');
    expect(result.ok, report(result)).toBe(true);
    expect((await c.put(c.leader()!, 'k', 'v3')).output.status).toBe('ok');
  });

  it('a leader cut off the bus but not from ZooKeeper steps down; writes resume under another leader within two session timeouts', async () => {
    const c = await startStory();
    const leader = c.leader()!;
    const others = c.ids.filter((id) => id !== leader);
    expect((await c.put(leader, 'k', 'v1')).output.status).toBe('ok');
    c.isolate(leader);
    const cutAt = c.now();
    let resumedAt: number | null = null;
    for (let i = 0; i < 100 && resumedAt === null; i++) {
      // A client that gives up after 500 ms and tries the other node, as a real one would.
      const w = await c.settle(c.op('story', others[i % 2]!, { op: 'put', key: 'k', value: `v${i + 2}` }, 500));
      if (w.output.status === 'ok') resumedAt = c.now();
      else await c.run(50);
    }
    expect(resumedAt, c.describe()).not.toBeNull();
    expect(resumedAt! - cutAt).toBeLessThan(c.sessionTimeoutMs * 2);
    expect(c.leader()).not.toBe(leader);
    c.rejoin(leader);
    const result = await verifyStory(c, ['k'], 'leader cut off the bus');
    expect(result.ok, report(result)).toBe(true);
  });

  it('one slow round trip is not a failure: a replica that misses one ack stays in the replica set', async () => {
    const c = await startStory();
    const leader = c.leader()!;
    const f = c.ids.find((id) => id !== leader)!;
    const replicas = () => c.node(leader)?.status().replicas ?? [];
    // One invalidation to f is lost (a round trip slower than the ack timeout); the retry gets through.
    c.cut(leader, f, true);
    const write = c.op('story', leader, { op: 'put', key: 'k', value: 'v1' });
    await c.run(c.config.ackTimeoutMs + 20);
    c.uncut(leader, f);
    expect((await c.settle(write)).output.status).toBe('ok');
    let removed = false;
    for (let t = 0; t < c.config.leaseMs * 3; t += 20) {
      await c.run(20);
      if (!replicas().includes(f)) removed = true;
    }
    expect(removed).toBe(false);
    const result = await verifyStory(c, ['k'], 'one slow round trip');
    expect(result.ok, report(result)).toBe(true);
  });

  it('a failed write releases its key: the next write and read of it are answered', async () => {
    const c = await startStory();
    const leader = c.leader()!;
    const f = c.ids.find((id) => id !== leader)!;
    expect((await c.put(leader, 'k', 'v1')).output.status).toBe('ok');
    // f answers the next invalidate with BAD_MESSAGE (as if it could not read it).
    c.net.tamper((from, to, message) => (from === leader && to === f && message.type === 'invalidate' ? { ok: false, code: 'BAD_MESSAGE', epoch: 0, reason: 'unreadable' } : undefined), 1);
    const failed = await c.put(leader, 'k', 'v2');
    expect(failed.output.status).toBe('unknown');
    expect((await c.get(leader, 'k')).output.status).toBe('ok');
    expect((await c.put(leader, 'k', 'v3')).output.status).toBe('ok');
    const result = await verifyStory(c, ['k'], 'failed write');
    expect(result.ok, report(result)).toBe(true);
  });

  it('a copy survives a lost session: the follower catches up with what changed meanwhile, not a full snapshot', async () => {
    // Traced: the leader's log says how each transfer went.
    const c = await startStory({ trace: true });
    const leader = c.leader()!;
    const f = c.ids.find((id) => id !== leader)!;
    const keys = Array.from({ length: 40 }, (_, i) => `k${i}`);
    for (const k of keys) expect((await c.put(leader, k, `${k}-1`)).output.status).toBe('ok');
    // f's lease renewals tell it up to which revision it holds every write.
    await c.run(c.config.leaseMs);
    // f's session expires (its process and copy live on); meanwhile a key is rewritten, one
    // deleted, one created, without f.
    c.zkPartition(f, 0);
    await c.run(c.sessionTimeoutMs * 2);
    const replicas = () => c.node(leader)?.status().replicas ?? [];
    expect(await c.waitFor(() => !replicas().includes(f), 5_000), c.describe()).toBe(true);
    expect((await c.put(leader, 'k1', 'k1-2')).output.status).toBe('ok');
    expect((await c.del(leader, 'k2')).output.status).toBe('ok');
    expect((await c.put(leader, 'new', 'n')).output.status).toBe('ok');
    const linesBefore = c.trace.lines.length;
    c.zkRestore(f);
    expect(await c.waitFor(() => replicas().includes(f) && c.allServing(), 10_000), c.describe()).toBe(true);
    const transfers = c.trace.lines.slice(linesBefore).filter((l) => l.includes(`${leader} `) && / (caught up|joined) /.test(l) && l.includes(`peer=${f}`));
    expect(transfers, transfers.join('\n')).toHaveLength(1);
    expect(transfers[0]).toContain('caught up');
    expect(transfers[0]).toMatch(/entries=3 /);
    expect((await c.get(f, 'k1')).output).toMatchObject({ status: 'ok', value: 'k1-2' });
    expect((await c.get(f, 'k2')).output.status).toBe('not-found');
    expect((await c.get(f, 'new')).output).toMatchObject({ status: 'ok', value: 'n' });
    const result = await verifyStory(c, [...keys, 'new'], 'catch-up');
    expect(result.ok, report(result)).toBe(true);
  });

  it('no complete replica left: the cluster waits with a clear reason until an operator accepts the loss, which is recorded', async () => {
    const c = await startStory();
    const leader = c.leader()!;
    const [f, g] = c.ids.filter((id) => id !== leader) as [string, string];
    const replicas = () => c.node(leader)?.status().replicas ?? [];
    c.crash(f);
    expect(await c.waitFor(() => !replicas().includes(f), 8_000), c.describe()).toBe(true);
    expect((await c.put(leader, 'k', 'v1')).output.status).toBe('ok');
    // Both holders of v1 die (memory-only copies): nobody has a complete copy any more.
    c.crash(leader);
    c.crash(g);
    for (const id of c.ids) c.restart(id);
    await c.run(c.sessionTimeoutMs * 3);
    const waiting = await c.put(f, 'k2', 'x');
    expect(waiting.output.status).toBe('unavailable');
    const newLeader = c.ids.find((id) => c.node(id)?.status().role === 'leader');
    expect(newLeader, c.describe()).toBeDefined();
    // The operator accepts the loss, through a ZooKeeper client of its own.
    const operator = new ZkClientSim(c.zk, 'operator', c.sessionTimeoutMs, c.scheduler.clock, 1000);
    let connected = false;
    operator.onState((state) => (connected = state === 'connected'));
    operator.connect();
    expect(await c.waitFor(() => connected, 1_000)).toBe(true);
    const grant = await c.settle(acceptDataLoss(operator, SIM_CLUSTER, 'story'));
    expect(grant.waitingFor.sort()).toEqual([leader, g].filter((id) => id !== grant.leader).sort());
    let resumed = false;
    for (let i = 0; i < 40 && !resumed; i++) {
      resumed = (await c.put(c.leader() ?? f, 'k2', `x${i}`)).output.status === 'ok';
      if (!resumed) await c.run(200);
    }
    expect(resumed, c.describe()).toBe(true);
    // v1 is gone, as accepted; the record stays in ZooKeeper.
    expect((await c.get(c.leader()!, 'k')).output.status).toBe('not-found');
    expect(JSON.parse(c.zk.peek('/zistore/sim/unclean')!).grants).toHaveLength(1);
  });
});

describe('safety - forged peer messages', () => {
  it('a sync whose epoch ZooKeeper does not record (any NATS client may publish one) is refused: followers keep their leader, writes go on', async () => {
    const c = await startStory();
    const leader = c.leader()!;
    const followers = c.ids.filter((id) => id !== leader);
    expect((await c.put(leader, 'k', 'v1')).output.status).toBe('ok');
    const epoch = c.node(leader)!.status().epoch;
    // Sent as the leader would: an epoch near 2^53 would make every follower refuse every real
    // leader; the next epoch, claimed by nobody, naming another node, would move them to it.
    const forged = [
      ...followers.map((f) => c.net.endpoint(leader)!.request(f, { type: 'sync', from: leader, epoch: Number.MAX_SAFE_INTEGER }, 1_000)),
      c.net.endpoint(followers[1]!)!.request(followers[0]!, { type: 'sync', from: followers[1]!, epoch: epoch + 1 }, 1_000),
    ];
    await c.run(1_000);
    for (const reply of await Promise.all(forged)) expect(reply).toMatchObject({ ok: false, code: 'BAD_MESSAGE' });
    for (const id of c.ids) expect(c.node(id)!.status()).toMatchObject({ epoch, leader });
    expect((await c.put(leader, 'k', 'v2')).output.status).toBe('ok');
    for (const f of followers) expect((await c.get(f, 'k')).output).toMatchObject({ status: 'ok', value: 'v2' });
    const result = await verifyStory(c, ['k'], 'forged sync');
    expect(result.ok, report(result)).toBe(true);
  });
});

/** A well-formed peer message of any kind, in the rogue's own name, with fields drawn by `rng`. */
function rogueMessage(rng: Rng, epoch: number, keys: string[]): PeerMessage {
  const from = 'rogue';
  const e = rng.pick([epoch, epoch, epoch - 1, epoch + 1, Number.MAX_SAFE_INTEGER]);
  const key = rng.pick(keys);
  const rev = rng.pick([rng.int(0, 50), 2 ** 52, Number.MAX_SAFE_INTEGER]);
  const value = rng.chance(0.2) ? null : new TextEncoder().encode(`rogue-${rng.int(0, 999)}`);
  const session = rng.pick(['0', 'rogue', String(rng.int(1, 10))]);
  switch (rng.int(0, 9)) {
    case 0:
      return { type: 'invalidate', from, epoch: e, entries: [{ key, rev, value }], validated: [{ key, rev }] };
    case 1:
      return { type: 'validate', from, epoch: e, validated: [{ key, rev }] };
    case 2:
      return { type: 'sync', from, epoch: e };
    case 3:
      return { type: 'snapshot', from, epoch: e, admission: rng.int(0, 3), seq: rng.int(0, 3), maxRev: rev, done: rng.chance(0.5), entries: [{ key, rev, value }] };
    case 4:
      return { type: 'forward', from, epoch: e, commands: [{ key, value: value ?? new Uint8Array(1), ...(rng.chance(0.3) ? { ifRevision: rng.int(0, 20) } : {}) }] };
    case 5:
      return { type: 'read', from, epoch: e, keys: [key] };
    case 7:
      return { type: 'scan', from, epoch: e, query: { prefix: rng.chance(0.5) ? '' : key, from: null, to: null, after: null, limit: rng.int(1, 100), form: rng.pick(['keys', 'values', 'count'] as const) } };
    case 8:
      return { type: 'txn', from, epoch: e, txn: { compare: rng.chance(0.5) ? [{ key, revision: rng.int(1, 20) }] : [], ops: [{ op: 'put', key, value: value ?? new Uint8Array(1) }] } };
    case 6:
      return { type: 'join', from, epoch: e, session, attempt: rng.int(0, 3), since: rng.int(0, 50), history: rng.pick([0, epoch, e]), pending: [key] };
    default:
      return { type: 'lease', from, epoch: e, session };
  }
}

describe('safety - a rogue peer', () => {
  // On NATS an identity may send peer messages only in its own name (cluster/security.ts); the
  // memory network enforces the same. A rogue with an identity of its own, but neither a cluster
  // member nor ZooKeeper's leader, sends every kind of well-formed message, with epochs, revisions
  // and sessions drawn at random, while clients write and read at every node.
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    it(`seed ${seed}: no node crashes, every reply to the rogue refuses or answers as to a client, the history stays linearizable`, async () => {
      const c = await startStory({ seed });
      const rng = new Rng(seed, 'rogue');
      const rogue = c.net.attach('rogue');
      const keys = ['a', 'b', 'c'];
      const leader = c.leader()!;
      const epoch = c.node(leader)!.status().epoch;
      const replies: Promise<PeerReply | Error>[] = [];
      for (let round = 0; round < 30; round++) {
        for (let i = 0; i < 10; i++) {
          const to = rng.pick(c.ids);
          const message = rogueMessage(rng, epoch, keys);
          if (rng.chance(0.3)) rogue.send(to, message);
          else replies.push(rogue.request(to, message, 500).catch((err: Error) => err));
        }
        const node = rng.pick(c.ids);
        const key = rng.pick(keys);
        if (rng.chance(0.5)) await c.put(node, key, `v${round}`);
        else await c.get(node, key);
      }
      await c.run(1_000);
      const answered = (await Promise.all(replies)).filter((r): r is PeerReply => !(r instanceof Error));
      // Heard and refused: the leader's messages, syncs, joins and leases from a non-member.
      expect(answered.filter((r) => !r.ok).length).toBeGreaterThan(50);
      for (const r of answered) if (r.ok) expect(r.type).toBe('replies');
      for (const id of c.ids) expect(c.node(id)!.status()).toMatchObject({ epoch, leader });
      const result = await verifyStory(c, keys, `rogue peer ${seed}`);
      expect(result.ok, report(result)).toBe(true);
    });
  }
});
