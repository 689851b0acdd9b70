// A follower's standing with the current leader. Only `replica.serving` may answer reads from
// the local copy: the node is a complete replica and holds a lease the leader renews over NATS.
// Joining (flush, then state transfer) and lease renewal are injected actors.
import { assign, emit, fromCallback, fromPromise, setup } from 'xstate';

export interface FollowerContext {
  epoch: number;
  leader: string | null;
  /** When the lease ends, on the node's clock: the one record of it (ZiNode.canServe reads it). */
  leaseUntil: number;
  /** Lease time left when the last grant arrived (the timer that ends `serving`). */
  leaseLeftMs: number;
  joinRetryMs: number;
  /** How long a complete replica waits for a new leader to synchronise it before it re-joins from scratch. */
  syncWaitMs: number;
  /** This node holds every committed write of the current term (it joined, or a new leader kept it). */
  complete: boolean;
}

export type FollowerEvent =
  | { type: 'leader.changed'; epoch: number; leader: string | null }
  /** A new leader synchronised us; `replica` says whether it kept us in its replica set. */
  | { type: 'leader.synced'; epoch: number; leader: string; replica: boolean }
  | { type: 'lease.granted'; until: number; leftMs: number }
  | { type: 'lease.refused' }
  | { type: 'session.new' }
  /**
   * The copy was flushed, or rolled back for a catch-up (a leader admitted us and the transfer
   * begins): writes it acked may be gone from it. Only this makes the
   * node incomplete: a refused lease or a re-join that has not been admitted yet leaves every
   * acknowledged write in place, and a new leader may need them.
   */
  | { type: 'store.flushed' };

export type FollowerEmitted = { type: 'follower.state'; state: string };

export const followerMachine = setup({
  types: {
    input: {} as { joinRetryMs: number; syncWaitMs: number; complete?: boolean },
    context: {} as FollowerContext,
    events: {} as FollowerEvent,
    emitted: {} as FollowerEmitted,
  },
  actors: {
    join: fromPromise<void, { epoch: number; leader: string }>(async () => {
      throw new Error('actor not provided: join');
    }),
    renewLease: fromCallback<FollowerEvent, { epoch: number; leader: string }>(() => {
      throw new Error('actor not provided: renewLease');
    }),
  },
  guards: {
    isNewerEpoch: ({ context, event }) => 'epoch' in event && event.epoch > context.epoch,
    isCurrentEpoch: ({ context, event }) => 'epoch' in event && event.epoch === context.epoch,
    keptAsReplica: ({ event }) => event.type === 'leader.synced' && event.replica,
    hasLeader: ({ context }) => context.leader !== null,
    mustJoin: ({ context }) => context.leader !== null && !context.complete,
    isCompleteWithLeader: ({ context }) => context.leader !== null && context.complete,
  },
  actions: {
    adoptLeader: assign(({ event }) => {
      const e = event as Extract<FollowerEvent, { type: 'leader.changed' | 'leader.synced' }>;
      return { epoch: e.epoch, leader: e.leader };
    }),
    markComplete: assign({ complete: true }),
    markIncomplete: assign({ complete: false }),
    noteLease: assign(({ event }) => (event.type === 'lease.granted' ? { leaseUntil: event.until, leaseLeftMs: event.leftMs } : {})),
    announce: emit((_, params: { state: string }) => ({ type: 'follower.state' as const, state: params.state })),
  },
  delays: {
    leaseLeft: ({ context }) => context.leaseLeftMs,
    joinRetry: ({ context }) => context.joinRetryMs,
    syncWait: ({ context }) => context.syncWaitMs,
  },
}).createMachine({
  id: 'follower',
  context: ({ input }) => ({
    epoch: 0,
    leader: null,
    leaseUntil: 0,
    leaseLeftMs: 0,
    joinRetryMs: input.joinRetryMs,
    syncWaitMs: input.syncWaitMs,
    complete: input.complete ?? false,
  }),
  initial: 'waiting',
  on: {
    'leader.changed': { guard: 'isNewerEpoch', target: '.waiting', actions: 'adoptLeader' },
    'leader.synced': [
      { guard: 'keptAsReplica', target: '.replica.lapsed', actions: 'adoptLeader' },
      { target: '.joining', actions: 'adoptLeader' },
    ],
    // A new session: the leader may have skipped us and our lease is void. If we still count as a
    // replica, asking for a lease tells (a refusal sends us to join); otherwise wait for a leader.
    // The copy itself stays complete: a replica is only skipped once the smaller replica set is
    // recorded in ZooKeeper, so a node still listed there holds every acknowledged write.
    'store.flushed': { actions: 'markIncomplete' },
    'session.new': [{ guard: 'isCompleteWithLeader', target: '.replica.lapsed', reenter: true }, { target: '.waiting' }],
  },
  states: {
    // A leader change: an incomplete node joins at once; a complete replica waits for the new
    // leader to synchronise it (it may hold writes the new leader needs), then joins anyway.
    waiting: {
      entry: { type: 'announce', params: { state: 'syncing' } },
      always: { guard: 'mustJoin', target: 'joining' },
      after: { syncWait: { guard: 'hasLeader', target: 'joining' } },
    },
    joining: {
      entry: { type: 'announce', params: { state: 'syncing' } },
      invoke: {
        src: 'join',
        input: ({ context }) => ({ epoch: context.epoch, leader: context.leader! }),
        // Complete only once the leader has recorded us as a replica (its first lease grant).
        onDone: { target: 'replica' },
        onError: 'retrying',
      },
    },
    retrying: {
      after: { joinRetry: 'joining' },
    },
    replica: {
      initial: 'lapsed',
      invoke: { src: 'renewLease', input: ({ context }) => ({ epoch: context.epoch, leader: context.leader! }) },
      on: { 'lease.refused': { target: 'joining' } },
      states: {
        lapsed: {
          entry: { type: 'announce', params: { state: 'syncing' } },
          on: { 'lease.granted': { target: 'serving', actions: ['noteLease', 'markComplete'] } },
        },
        serving: {
          entry: { type: 'announce', params: { state: 'serving' } },
          on: { 'lease.granted': { target: 'serving', reenter: true, actions: 'noteLease' } },
          after: { leaseLeft: 'lapsed' },
        },
      },
    },
  },
});
