// Goal: the session machine follows connecting → connected ↔ suspended → expired → connecting,
// expires locally when suspended for longer than the session timeout, and announces every
// change. Method: pure transition()/initialTransition() for the event-driven edges; an actor on
// xstate's SimulatedClock for the delay.
import { describe, expect, it } from 'vitest';
import { createActor, initialTransition, SimulatedClock, transition } from 'xstate';
import { sessionMachine, type SessionEmitted, type SessionEvent } from '../../actors/session.machine.ts';

type Snapshot = ReturnType<typeof initialTransition<typeof sessionMachine>>[0];

const input = { sessionTimeoutMs: 1000 };

/** The `session.changed` states announced by a list of actions. */
function announced(actions: ReadonlyArray<{ type: string; params?: unknown }>): string[] {
  return actions
    .filter((a) => a.type === 'xstate.emit')
    .map((a) => (a.params as { event: SessionEmitted }).event)
    .map((e) => {
      expect(e.type).toBe('session.changed');
      return e.state;
    });
}

function run(events: SessionEvent[]): { snapshot: Snapshot; states: string[] } {
  const [s0, a0] = initialTransition(sessionMachine, input);
  const states = announced(a0);
  let snapshot = s0;
  for (const event of events) {
    const [next, actions] = transition(sessionMachine, snapshot, event);
    snapshot = next;
    states.push(...announced(actions));
  }
  return { snapshot, states };
}

describe('session machine (pure)', () => {
  it('session - starts connecting and announces it', () => {
    const [s0, actions] = initialTransition(sessionMachine, input);
    expect(s0.value).toBe('connecting');
    expect(s0.context.sessionTimeoutMs).toBe(1000);
    expect(announced(actions)).toEqual(['connecting']);
  });

  it('session - connected, suspended on disconnect, connected again on reconnect', () => {
    const { snapshot, states } = run([{ type: 'zk.connected' }, { type: 'zk.disconnected' }, { type: 'zk.connected' }]);
    expect(snapshot.value).toBe('connected');
    expect(states).toEqual(['connecting', 'connected', 'suspended', 'connected']);
  });

  it('session - expired reported by the server from connected or suspended', () => {
    expect(run([{ type: 'zk.connected' }, { type: 'zk.expired' }]).snapshot.value).toBe('expired');
    const viaSuspended = run([{ type: 'zk.connected' }, { type: 'zk.disconnected' }, { type: 'zk.expired' }]);
    expect(viaSuspended.snapshot.value).toBe('expired');
    expect(viaSuspended.states).toEqual(['connecting', 'connected', 'suspended', 'expired']);
  });

  it('session - a new client after expiry goes back to connecting, then connected', () => {
    const { snapshot, states } = run([
      { type: 'zk.connected' },
      { type: 'zk.expired' },
      { type: 'zk.reconnecting' },
      { type: 'zk.connected' },
    ]);
    expect(snapshot.value).toBe('connected');
    expect(states).toEqual(['connecting', 'connected', 'expired', 'connecting', 'connected']);
  });

  it('session - ignores late events of a dead client while expired', () => {
    const base = run([{ type: 'zk.connected' }, { type: 'zk.expired' }]);
    for (const event of [{ type: 'zk.connected' }, { type: 'zk.disconnected' }, { type: 'zk.expired' }] as const) {
      const [next, actions] = transition(sessionMachine, base.snapshot, event);
      expect(next.value).toBe('expired');
      expect(announced(actions)).toEqual([]);
    }
  });

  it('session - a disconnect while connecting changes nothing', () => {
    const { snapshot, states } = run([{ type: 'zk.disconnected' }]);
    expect(snapshot.value).toBe('connecting');
    expect(states).toEqual(['connecting']);
  });

  it('session - adopts the negotiated session timeout', () => {
    const { snapshot } = run([{ type: 'zk.connected', sessionTimeoutMs: 4000 }]);
    expect(snapshot.context.sessionTimeoutMs).toBe(4000);
    // A duplicate connected event without a usable timeout keeps it.
    const [same] = transition(sessionMachine, snapshot, { type: 'zk.connected', sessionTimeoutMs: 0 });
    expect(same.context.sessionTimeoutMs).toBe(4000);
  });

  it('session - close is final from every state', () => {
    const paths: SessionEvent[][] = [
      [],
      [{ type: 'zk.connected' }],
      [{ type: 'zk.connected' }, { type: 'zk.disconnected' }],
      [{ type: 'zk.connected' }, { type: 'zk.expired' }],
    ];
    for (const events of paths) {
      const { snapshot, states } = run([...events, { type: 'zk.close' }]);
      expect(snapshot.value).toBe('closed');
      expect(snapshot.status).toBe('done');
      expect(states.at(-1)).toBe('closed');
    }
  });

  it('session - suspending schedules the local expiry timer', () => {
    const connected = run([{ type: 'zk.connected', sessionTimeoutMs: 1500 }]).snapshot;
    const [, actions] = transition(sessionMachine, connected, { type: 'zk.disconnected' });
    const delayed = actions.filter((a) => a.type === 'xstate.raise');
    expect(delayed).toHaveLength(1);
    expect((delayed[0]!.params as { delay?: number }).delay).toBe(1500);
  });
});

describe('session machine (simulated clock)', () => {
  function start(sessionTimeoutMs = 1000) {
    const clock = new SimulatedClock();
    const actor = createActor(sessionMachine, { input: { sessionTimeoutMs }, clock });
    const states: string[] = [];
    actor.on('session.changed', (e) => states.push(e.state));
    actor.start();
    return { clock, actor, states };
  }

  it('session - expires locally when suspended longer than the session timeout', () => {
    const { clock, actor, states } = start(1000);
    actor.send({ type: 'zk.connected' });
    actor.send({ type: 'zk.disconnected' });
    clock.increment(999);
    expect(actor.getSnapshot().value).toBe('suspended');
    clock.increment(1);
    expect(actor.getSnapshot().value).toBe('expired');
    expect(states).toEqual(['connecting', 'connected', 'suspended', 'expired']);
    actor.stop();
  });

  it('session - reconnecting in time cancels the local expiry', () => {
    const { clock, actor, states } = start(1000);
    actor.send({ type: 'zk.connected' });
    actor.send({ type: 'zk.disconnected' });
    clock.increment(900);
    actor.send({ type: 'zk.connected' });
    clock.increment(5000);
    expect(actor.getSnapshot().value).toBe('connected');
    // A second suspension gets a fresh, full timeout.
    actor.send({ type: 'zk.disconnected' });
    clock.increment(999);
    expect(actor.getSnapshot().value).toBe('suspended');
    clock.increment(1);
    expect(actor.getSnapshot().value).toBe('expired');
    expect(states).toEqual(['connecting', 'connected', 'suspended', 'connected', 'suspended', 'expired']);
    actor.stop();
  });

  it('session - the local expiry uses the negotiated timeout', () => {
    const { clock, actor } = start(1000);
    actor.send({ type: 'zk.connected', sessionTimeoutMs: 3000 });
    actor.send({ type: 'zk.disconnected' });
    clock.increment(2999);
    expect(actor.getSnapshot().value).toBe('suspended');
    clock.increment(1);
    expect(actor.getSnapshot().value).toBe('expired');
    actor.stop();
  });

  it('session - no local expiry while connecting or connected', () => {
    const { clock, actor } = start(1000);
    clock.increment(10_000);
    expect(actor.getSnapshot().value).toBe('connecting');
    actor.send({ type: 'zk.connected' });
    clock.increment(10_000);
    expect(actor.getSnapshot().value).toBe('connected');
    actor.stop();
  });

  it('session - closing while suspended cancels the local expiry', () => {
    const { clock, actor, states } = start(1000);
    actor.send({ type: 'zk.connected' });
    actor.send({ type: 'zk.disconnected' });
    actor.send({ type: 'zk.close' });
    clock.increment(5000);
    expect(actor.getSnapshot().value).toBe('closed');
    expect(actor.getSnapshot().status).toBe('done');
    expect(states).toEqual(['connecting', 'connected', 'suspended', 'closed']);
  });
});
