// Goal: the cache-entry machine ignores stale messages (they arrive out of order on different
// subjects), and the hand-compiled stepEntry used on the hot path behaves exactly like it.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { initialTransition, transition } from 'xstate';
import { cacheEntryMachine, stepEntry, type EntryEvent, type EntryRecord } from '../../actors/cache-entry.machine.ts';

const v = (s: string) => new TextEncoder().encode(s);

function runMachine(events: EntryEvent[]) {
  let [snapshot] = initialTransition(cacheEntryMachine);
  for (const e of events) [snapshot] = transition(cacheEntryMachine, snapshot, e);
  return { state: snapshot.value as string, ...snapshot.context };
}

function runStep(events: EntryEvent[]): EntryRecord {
  const entry: EntryRecord = { state: 'absent', rev: 0, value: null, ttl: 0, pendingRev: 0, pendingValue: null, pendingTtl: 0 };
  for (const e of events) stepEntry(entry, e);
  return entry;
}

describe('cache entry', () => {
  it('cache entry - invalidate then validate applies the pending value', () => {
    const s = runMachine([{ type: 'fill', rev: 1, value: v('a') }, { type: 'invalidate', rev: 2, value: v('b') }]);
    expect(s.state).toBe('invalid');
    expect(s.value).toEqual(v('a'));
    const t = runMachine([{ type: 'fill', rev: 1, value: v('a') }, { type: 'invalidate', rev: 2, value: v('b') }, { type: 'validate', rev: 2 }]);
    expect(t).toMatchObject({ state: 'valid', rev: 2, value: v('b'), pendingRev: 0 });
  });

  it('cache entry - a stale fill after an invalidation is ignored', () => {
    // The snapshot (fill rev 3) arrives after the invalidation of rev 5 was already seen.
    const s = runMachine([{ type: 'invalidate', rev: 5, value: v('new') }, { type: 'fill', rev: 3, value: v('old') }, { type: 'validate', rev: 5 }]);
    expect(s).toMatchObject({ state: 'valid', rev: 5, value: v('new') });
  });

  it('cache entry - a stale fill after a delete does not resurrect the key', () => {
    const s = runMachine([
      { type: 'fill', rev: 1, value: v('a') },
      { type: 'invalidate', rev: 4, value: null },
      { type: 'validate', rev: 4 },
      { type: 'fill', rev: 1, value: v('a') },
    ]);
    expect(s).toMatchObject({ state: 'absent', rev: 4, value: null });
  });

  it('cache entry - a validate for another revision, or an old invalidate, changes nothing', () => {
    const s = runMachine([{ type: 'invalidate', rev: 7, value: v('x') }, { type: 'validate', rev: 6 }, { type: 'invalidate', rev: 6, value: v('y') }]);
    expect(s).toMatchObject({ state: 'invalid', pendingRev: 7, pendingValue: v('x') });
  });

  it('cache entry - abort returns to the value in place before the write', () => {
    expect(runMachine([{ type: 'fill', rev: 1, value: v('a') }, { type: 'invalidate', rev: 2, value: v('b') }, { type: 'abort', rev: 2 }])).toMatchObject({
      state: 'valid',
      rev: 1,
      value: v('a'),
    });
    expect(runMachine([{ type: 'invalidate', rev: 2, value: v('b') }, { type: 'abort', rev: 2 }]).state).toBe('absent');
  });

  it('cache entry - a catch-up fill of a delete makes the key absent, and a stale one is ignored', () => {
    expect(runMachine([{ type: 'fill', rev: 1, value: v('a') }, { type: 'fill', rev: 4, value: null }])).toMatchObject({ state: 'absent', rev: 4, value: null });
    expect(runMachine([{ type: 'fill', rev: 5, value: v('b') }, { type: 'fill', rev: 4, value: null }])).toMatchObject({ state: 'valid', rev: 5 });
  });

  it('cache entry - stepEntry matches the machine on random event sequences', () => {
    const values = [v('a'), v('b'), v('c')];
    const event = fc.oneof(
      fc.record({ type: fc.constant('fill' as const), rev: fc.integer({ min: 1, max: 8 }), value: fc.constantFrom(null, ...values), ttl: fc.constantFrom(0, 5000) }),
      fc.record({ type: fc.constant('invalidate' as const), rev: fc.integer({ min: 1, max: 8 }), value: fc.constantFrom(null, ...values), ttl: fc.constantFrom(0, 5000, -1) }),
      fc.record({ type: fc.constant('validate' as const), rev: fc.integer({ min: 1, max: 8 }) }),
      fc.record({ type: fc.constant('abort' as const), rev: fc.integer({ min: 1, max: 8 }) }),
    );
    fc.assert(
      fc.property(fc.array(event, { maxLength: 30 }), (events) => {
        const m = runMachine(events as EntryEvent[]);
        const s = runStep(events as EntryEvent[]);
        expect({ state: s.state, rev: s.rev, value: s.value, ttl: s.ttl, pendingRev: s.pendingRev, pendingValue: s.pendingValue, pendingTtl: s.pendingTtl }).toEqual(m);
      }),
      { numRuns: 2000 },
    );
  });
});
