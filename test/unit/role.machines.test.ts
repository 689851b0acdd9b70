// Goal: the leader's and follower's lifecycles, with their effects replaced by stand-ins
// (.provide) and timers on xstate's SimulatedClock. No network, no real time.
import { describe, expect, it } from 'vitest';
import { createActor, fromCallback, fromPromise, SimulatedClock } from 'xstate';
import { followerMachine } from '../../actors/follower.machine.ts';
import { leaderMachine } from '../../actors/leader.machine.ts';

const flush = () => new Promise((r) => setTimeout(r, 0));

function follower(join: () => Promise<void> = async () => undefined) {
  const clock = new SimulatedClock();
  const machine = followerMachine.provide({
    actors: {
      join: fromPromise(join),
      renewLease: fromCallback(() => () => undefined),
    },
  });
  const actor = createActor(machine, { input: { joinRetryMs: 100, syncWaitMs: 3000 }, clock }).start();
  return { actor, clock };
}

describe('follower machine', () => {
  it('follower - joins a newly known leader, serves only while its lease lasts', async () => {
    const { actor, clock } = follower();
    expect(actor.getSnapshot().value).toBe('waiting');
    actor.send({ type: 'leader.changed', epoch: 2, leader: 'n1' });
    expect(actor.getSnapshot().value).toBe('joining');
    await flush();
    expect(actor.getSnapshot().matches({ replica: 'lapsed' })).toBe(true);
    // Complete only once the leader has recorded it as a replica: its first lease grant.
    expect(actor.getSnapshot().context.complete).toBe(false);
    actor.send({ type: 'lease.granted', until: 900, leftMs: 900 });
    expect(actor.getSnapshot().matches({ replica: 'serving' })).toBe(true);
    expect(actor.getSnapshot().context.complete).toBe(true);
    clock.increment(899);
    expect(actor.getSnapshot().matches({ replica: 'serving' })).toBe(true);
    clock.increment(2);
    expect(actor.getSnapshot().matches({ replica: 'lapsed' })).toBe(true);
  });

  it('follower - ignores a leader change from an older epoch', async () => {
    const { actor } = follower();
    actor.send({ type: 'leader.changed', epoch: 5, leader: 'n1' });
    await flush();
    actor.send({ type: 'leader.changed', epoch: 4, leader: 'n2' });
    expect(actor.getSnapshot().context).toMatchObject({ epoch: 5, leader: 'n1' });
  });

  it('follower - a refused lease means join again; only the flush makes the copy incomplete', async () => {
    const { actor } = follower(() => new Promise(() => undefined));
    actor.send({ type: 'leader.changed', epoch: 1, leader: 'n1' });
    actor.send({ type: 'lease.granted', until: 900, leftMs: 900 });
    expect(actor.getSnapshot().value).toBe('joining');
    const joined = follower();
    joined.actor.send({ type: 'leader.changed', epoch: 1, leader: 'n1' });
    await flush();
    joined.actor.send({ type: 'lease.granted', until: 900, leftMs: 900 });
    joined.actor.send({ type: 'lease.refused' });
    expect(joined.actor.getSnapshot().value).toBe('joining');
    // Not yet admitted: every acknowledged write is still here, a new leader may need them.
    expect(joined.actor.getSnapshot().context.complete).toBe(true);
    joined.actor.send({ type: 'store.flushed' });
    expect(joined.actor.getSnapshot().context.complete).toBe(false);
  });

  it('follower - a new session voids the lease; a complete replica asks again, an incomplete one waits', async () => {
    const { actor } = follower();
    actor.send({ type: 'leader.changed', epoch: 1, leader: 'n1' });
    await flush();
    actor.send({ type: 'lease.granted', until: 900, leftMs: 900 });
    actor.send({ type: 'session.new' });
    expect(actor.getSnapshot().matches({ replica: 'lapsed' })).toBe(true);
    expect(actor.getSnapshot().context.complete).toBe(true);
    const fresh = follower(() => new Promise(() => undefined));
    fresh.actor.send({ type: 'session.new' });
    expect(fresh.actor.getSnapshot().value).toBe('waiting');
  });

  it('follower - a complete replica waits to be synchronised by a new leader before re-joining', async () => {
    const { actor, clock } = follower();
    actor.send({ type: 'leader.changed', epoch: 1, leader: 'n1' });
    await flush();
    actor.send({ type: 'lease.granted', until: 900, leftMs: 900 });
    actor.send({ type: 'leader.changed', epoch: 2, leader: 'n2' });
    expect(actor.getSnapshot().value).toBe('waiting');
    actor.send({ type: 'leader.synced', epoch: 2, leader: 'n2', replica: true });
    expect(actor.getSnapshot().matches({ replica: 'lapsed' })).toBe(true);
    // Not synchronised in time: give up the copy and join from scratch.
    actor.send({ type: 'leader.changed', epoch: 3, leader: 'n3' });
    clock.increment(3001);
    expect(actor.getSnapshot().value).toBe('joining');
  });

  it('follower - a failed join is retried after a pause', async () => {
    let attempts = 0;
    const { actor, clock } = follower(async () => {
      attempts++;
      if (attempts === 1) throw new Error('leader not ready');
    });
    actor.send({ type: 'leader.changed', epoch: 1, leader: 'n1' });
    await flush();
    expect(actor.getSnapshot().value).toBe('retrying');
    clock.increment(100);
    await flush();
    expect(attempts).toBe(2);
    expect(actor.getSnapshot().matches('replica')).toBe(true);
  });
});

function leader(recover: () => Promise<void> = async () => undefined) {
  const ended: string[] = [];
  const machine = leaderMachine.provide({
    actors: {
      claimEpoch: fromPromise(async () => 7),
      recover: fromPromise(recover),
      drain: fromPromise<void>(async () => undefined),
    },
  });
  const actor = createActor(machine, { input: { nodeId: 'n1' } });
  actor.on('leader.ended', (e) => ended.push(e.reason));
  actor.start();
  return { actor, ended };
}

describe('leader machine', () => {
  it('leader - claims an epoch, recovers, then serves', async () => {
    const { actor } = leader();
    expect(actor.getSnapshot().value).toBe('claiming');
    await flush();
    expect(actor.getSnapshot().value).toBe('serving');
    expect(actor.getSnapshot().context.epoch).toBe(7);
  });

  it('leader - a suspended session pauses writes; restored, it serves again; expired, it ends', async () => {
    const { actor, ended } = leader();
    await flush();
    actor.send({ type: 'session.suspended' });
    expect(actor.getSnapshot().value).toBe('paused');
    actor.send({ type: 'session.restored' });
    expect(actor.getSnapshot().value).toBe('serving');
    actor.send({ type: 'session.expired' });
    expect(actor.getSnapshot().status).toBe('done');
    expect(ended).toEqual(['session expired']);
  });

  it('leader - failed recovery ends the term; deposition ends it with the reason', async () => {
    const failed = leader(async () => {
      throw new Error('no');
    });
    await flush();
    expect(failed.ended).toEqual(['recovery failed']);
    const deposed = leader();
    await flush();
    deposed.actor.send({ type: 'deposed', reason: 'epoch 8 claimed by n2' });
    expect(deposed.ended).toEqual(['epoch 8 claimed by n2']);
  });

  it('leader - handover drains, then ends', async () => {
    const { actor, ended } = leader();
    await flush();
    actor.send({ type: 'handover' });
    await flush();
    expect(ended).toEqual(['handover']);
  });
});
