// Goal: the one deadline mechanism (Deadlines) rejects exactly the works still running when their
// own span has passed (each measured from its own start), leaves settled ones alone, and keeps
// at most one timer armed per span however many works are queued; settledWithin tells whether a
// work settled in time.
// Method: virtual time from the simulation's scheduler; timers counted through the Clock port.
import { describe, expect, it } from 'vitest';
import type { Clock } from '../../actors/ports.ts';
import { DeadlineError, Deadlines, deferred } from '../../actors/time.ts';
import { Scheduler } from '../sim/scheduler.ts';

describe('deadlines', () => {
  it('deadlines - each work gets its own span; settled works are untouched; one timer at a time', async () => {
    const scheduler = new Scheduler();
    const base = scheduler.clockFor(null);
    let armed = 0;
    let maxArmed = 0;
    const live = new Set<unknown>();
    const clock: Clock = {
      now: () => base.now(),
      setTimeout: (fn, ms) => {
        const handle = base.setTimeout(() => {
          live.delete(handle);
          fn();
        }, ms);
        live.add(handle);
        armed++;
        maxArmed = Math.max(maxArmed, live.size);
        return handle;
      },
      clearTimeout: (handle) => {
        live.delete(handle);
        base.clearTimeout(handle);
      },
    };
    const deadlines = new Deadlines(clock);
    const outcomes = new Map<string, string>();
    const start = (name: string) => {
      const work = deferred<string>();
      void deadlines.run(100, name, work.promise).then(
        (v: string) => outcomes.set(name, `ok ${v} @${scheduler.now()}`),
        (e: unknown) => outcomes.set(name, `${e instanceof DeadlineError ? 'deadline' : 'error'} @${scheduler.now()}`),
      );
      return work;
    };
    const a = start('a'); // t=0, due 100
    await scheduler.runFor(30);
    const b = start('b'); // t=30, due 130
    const c = start('c'); // t=30, due 130
    await scheduler.runFor(20);
    a.resolve('A'); // settles in time
    c.reject(new Error('boom'));
    for (let i = 0; i < 200; i++) start(`n${i}`); // t=50, due 150: no timer each
    await scheduler.runFor(100); // t=150
    b.resolve('too late');
    await scheduler.runFor(100);
    expect(outcomes.get('a')).toBe('ok A @50');
    expect(outcomes.get('c')).toBe('error @50');
    expect(outcomes.get('b')).toBe('deadline @130');
    expect(outcomes.get('n0')).toBe('deadline @150');
    expect(outcomes.get('n199')).toBe('deadline @150');
    expect(maxArmed).toBe(1);
    expect(armed).toBeLessThanOrEqual(3);
    expect(live.size).toBe(0); // nothing pending: no timer left behind

    // Two spans: one timer each; settledWithin answers by the time, not by the outcome.
    const slow = deferred<void>();
    const quick = deferred<void>();
    const answers: string[] = [];
    void deadlines.settledWithin(40, slow.promise).then((inTime) => answers.push(`slow ${inTime} @${scheduler.now()}`));
    void deadlines.settledWithin(80, quick.promise).then((inTime) => answers.push(`quick ${inTime} @${scheduler.now()}`));
    await scheduler.runFor(10);
    quick.reject(new Error('failed, but in time'));
    await scheduler.runFor(100);
    expect(answers).toEqual(['quick true @260', 'slow false @290']);
    expect(maxArmed).toBe(2);
    expect(live.size).toBe(0);
  });
});
