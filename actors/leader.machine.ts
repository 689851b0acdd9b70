// The leader's term: claim an epoch in ZooKeeper, recover the group's state, serve, and
// end by being deposed or by handing over. The work of each step is an injected actor
// (actors/node.ts provides them from the ports), so the machine itself does no I/O.
import { assign, emit, fromPromise, setup } from 'xstate';

export interface LeaderContext {
  nodeId: string;
  epoch: number;
  reason: string | null;
}

export type LeaderEvent =
  | { type: 'session.suspended' }
  | { type: 'session.restored' }
  | { type: 'session.expired' }
  | { type: 'deposed'; reason: string }
  | { type: 'handover' };

export type LeaderEmitted =
  | { type: 'leader.serving'; epoch: number }
  | { type: 'leader.ended'; epoch: number; reason: string };

export const leaderMachine = setup({
  types: {
    input: {} as { nodeId: string },
    context: {} as LeaderContext,
    events: {} as LeaderEvent,
    emitted: {} as LeaderEmitted,
  },
  actors: {
    claimEpoch: fromPromise<number>(async () => {
      throw new Error('actor not provided: claimEpoch');
    }),
    recover: fromPromise<void, { epoch: number }>(async () => {
      throw new Error('actor not provided: recover');
    }),
    drain: fromPromise<void>(async () => {
      throw new Error('actor not provided: drain');
    }),
  },
  actions: {
    announceServing: emit(({ context }) => ({ type: 'leader.serving' as const, epoch: context.epoch })),
    announceEnd: emit(({ context }) => ({ type: 'leader.ended' as const, epoch: context.epoch, reason: context.reason ?? 'unknown' })),
    noteReason: assign({ reason: (_, params: { reason: string }) => params.reason }),
  },
}).createMachine({
  id: 'leader',
  context: ({ input }) => ({ nodeId: input.nodeId, epoch: 0, reason: null }),
  initial: 'claiming',
  on: {
    'session.expired': { target: '.ended', actions: { type: 'noteReason', params: { reason: 'session expired' } } },
    deposed: { target: '.ended', actions: { type: 'noteReason', params: ({ event }) => ({ reason: event.reason }) } },
  },
  states: {
    claiming: {
      on: { 'session.suspended': { target: 'ended', actions: { type: 'noteReason', params: { reason: 'session suspended while claiming' } } } },
      invoke: {
        src: 'claimEpoch',
        onDone: { target: 'recovering', actions: assign({ epoch: ({ event }) => event.output }) },
        onError: { target: 'ended', actions: { type: 'noteReason', params: { reason: 'epoch claim failed' } } },
      },
    },
    recovering: {
      on: { 'session.suspended': { target: 'ended', actions: { type: 'noteReason', params: { reason: 'session suspended while recovering' } } } },
      invoke: {
        src: 'recover',
        input: ({ context }) => ({ epoch: context.epoch }),
        onDone: { target: 'serving' },
        onError: { target: 'ended', actions: { type: 'noteReason', params: { reason: 'recovery failed' } } },
      },
    },
    serving: {
      entry: 'announceServing',
      on: {
        // Thesis 3.3 case 3: no write starts without a live session; we stop at once on suspension.
        'session.suspended': 'paused',
        handover: 'handingOver',
      },
    },
    paused: {
      on: { 'session.restored': 'serving', handover: 'handingOver' },
    },
    handingOver: {
      invoke: {
        src: 'drain',
        onDone: { target: 'ended', actions: { type: 'noteReason', params: { reason: 'handover' } } },
        onError: { target: 'ended', actions: { type: 'noteReason', params: { reason: 'handover' } } },
      },
    },
    ended: { type: 'final', entry: 'announceEnd' },
  },
});
