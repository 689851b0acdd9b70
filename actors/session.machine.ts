// The ZooKeeper session as the node sees it (docs/design.md sections 3 and 5):
//
//   connecting ──zk.connected──► connected ◄──zk.connected── suspended
//        ▲                          │ zk.disconnected ──────────►│
//        │ zk.reconnecting          │ zk.expired                  │ zk.expired, or
//        └──────────── expired ◄────┴─────────────────────────────┘ `sessionTimeout` after suspending
//   any state ──zk.close──► closed (final)
//
// Pure: no I/O, no timers of its own (the `sessionTimeout` delay runs on the actor's clock).
// The host (coordination/zk-coordinator.ts) turns client state events into `zk.*` events and
// reacts to the emitted `session.changed` facts.
//
// Why a local expiry: node-zookeeper-client reports nothing but DISCONNECTED while it is cut off
// from the ensemble; EXPIRED arrives only when it reaches a server again, and that client object
// is dead from then on. Expiry is decided by the server, which counts from the last time it
// heard from us; we enter `suspended` only when we notice the link is down, which is later. So
// `sessionTimeout` after suspending, the server has (assuming clocks run at the same rate)
// expired the session already, and it is safe to build a new one.
import { assign, emit, setup } from 'xstate';

export type SessionMachineState = 'connecting' | 'connected' | 'suspended' | 'expired' | 'closed';

export interface SessionInput {
  /** Session timeout requested from ZooKeeper; replaced by the negotiated one on `zk.connected`. */
  sessionTimeoutMs: number;
}

export interface SessionContext {
  sessionTimeoutMs: number;
}

export type SessionEvent =
  /** The client is connected to a server (SYNC_CONNECTED); carries the negotiated timeout when known. */
  | { type: 'zk.connected'; sessionTimeoutMs?: number }
  /** The client lost its connection (DISCONNECTED); the session may still be alive on the servers. */
  | { type: 'zk.disconnected' }
  /** A server told the client its session is expired (EXPIRED). */
  | { type: 'zk.expired' }
  /** After an expiry, the host built a new client; a new session is on its way. */
  | { type: 'zk.reconnecting' }
  /** The host closes the session for good. */
  | { type: 'zk.close' };

export interface SessionChanged {
  type: 'session.changed';
  state: SessionMachineState;
}

export type SessionEmitted = SessionChanged;

export const sessionMachine = setup({
  types: {
    input: {} as SessionInput,
    context: {} as SessionContext,
    events: {} as SessionEvent,
    emitted: {} as SessionEmitted,
  },
  guards: {
    // A non-positive or missing negotiated timeout keeps the one we have.
    carriesTimeout: ({ event }) =>
      event.type === 'zk.connected' && event.sessionTimeoutMs !== undefined && event.sessionTimeoutMs > 0,
  },
  actions: {
    announce: emit((_, params: { state: SessionMachineState }) => ({ type: 'session.changed', state: params.state }) as const),
    adoptNegotiatedTimeout: assign(({ context, event }) => ({
      sessionTimeoutMs:
        event.type === 'zk.connected' && event.sessionTimeoutMs !== undefined && event.sessionTimeoutMs > 0
          ? event.sessionTimeoutMs
          : context.sessionTimeoutMs,
    })),
  },
  delays: {
    sessionTimeout: ({ context }) => context.sessionTimeoutMs,
  },
}).createMachine({
  id: 'session',
  context: ({ input }) => ({ sessionTimeoutMs: input.sessionTimeoutMs }),
  initial: 'connecting',
  on: {
    'zk.close': { target: '.closed' },
  },
  states: {
    connecting: {
      entry: { type: 'announce', params: { state: 'connecting' } },
      on: {
        'zk.connected': { target: 'connected', actions: 'adoptNegotiatedTimeout' },
        // A client that reaches a server after a long outage may learn its session is gone.
        'zk.expired': { target: 'expired' },
        // zk.disconnected: still connecting; nothing changes.
      },
    },
    connected: {
      entry: { type: 'announce', params: { state: 'connected' } },
      on: {
        'zk.disconnected': { target: 'suspended' },
        'zk.expired': { target: 'expired' },
        'zk.connected': { guard: 'carriesTimeout', actions: 'adoptNegotiatedTimeout' },
      },
    },
    suspended: {
      entry: { type: 'announce', params: { state: 'suspended' } },
      after: {
        // Local expiry: the client will not tell us while it is cut off.
        sessionTimeout: { target: 'expired' },
      },
      on: {
        'zk.connected': { target: 'connected', actions: 'adoptNegotiatedTimeout' },
        'zk.expired': { target: 'expired' },
      },
    },
    expired: {
      entry: { type: 'announce', params: { state: 'expired' } },
      on: {
        // Late events of the dead client (zk.connected, zk.disconnected) are ignored here.
        'zk.reconnecting': { target: 'connecting' },
      },
    },
    closed: {
      type: 'final',
      entry: { type: 'announce', params: { state: 'closed' } },
    },
  },
});
