// Goal: writes to one key run one at a time in arrival order, even when one fails; writes to
// other keys do not wait for them.
import { describe, expect, it } from 'vitest';
import { deferred } from '../../actors/time.ts';
import { KeyTurns } from '../../actors/key-turns.ts';

describe('key turns', () => {
  it('key turns - one key in order, a failure releases the turn, other keys run alongside', async () => {
    const turns = new KeyTurns();
    const log: string[] = [];
    const gates = [deferred<void>(), deferred<void>(), deferred<void>()];
    const step = (name: string, gate: Promise<void>, fail = false) => async () => {
      log.push(`${name} start`);
      await gate;
      log.push(`${name} end`);
      if (fail) throw new Error(name);
      return name;
    };
    const a1 = turns.run('a', step('a1', gates[0]!.promise, true));
    const a2 = turns.run('a', step('a2', gates[1]!.promise));
    const a3 = turns.run('a', step('a3', Promise.resolve()));
    const b1 = turns.run('b', step('b1', Promise.resolve()));
    expect(await b1).toBe('b1'); // not held up by key a
    expect(turns.busy).toBe(1);
    gates[1]!.resolve(); // a2 may not start before a1 ends, open gate or not
    await Promise.resolve();
    expect(log).toEqual(['a1 start', 'b1 start', 'b1 end']);
    gates[0]!.resolve();
    await expect(a1).rejects.toThrow('a1');
    expect(await a2).toBe('a2');
    expect(await a3).toBe('a3');
    expect(log).toEqual(['a1 start', 'b1 start', 'b1 end', 'a1 end', 'a2 start', 'a2 end', 'a3 start', 'a3 end']);
    expect(turns.busy).toBe(0);
  });

  it('key turns - runAll holds every key: a write of any of them waits, and two overlapping groups run one after the other', async () => {
    const turns = new KeyTurns();
    const log: string[] = [];
    const gate = deferred<void>();
    const group1 = turns.runAll(['a', 'b'], async () => {
      log.push('ab start');
      await gate.promise;
      log.push('ab end');
    });
    const single = turns.run('b', async () => void log.push('b'));
    const group2 = turns.runAll(['b', 'c'], async () => void log.push('bc'));
    const other = turns.run('d', async () => void log.push('d'));
    await other;
    expect(log).toEqual(['ab start', 'd']);
    gate.resolve();
    await Promise.all([group1, single, group2]);
    expect(log).toEqual(['ab start', 'd', 'ab end', 'b', 'bc']);
    expect(turns.busy).toBe(0);
  });

  it('key turns - shared turns run together; a write waits for them, and shared turns behind it wait for the write', async () => {
    const turns = new KeyTurns();
    const log: string[] = [];
    const gates = [deferred<void>(), deferred<void>()];
    const reader = (name: string, gate: Promise<void>) => turns.run('g', async () => {
      log.push(`${name} start`);
      await gate;
      log.push(`${name} end`);
    }, true);
    const r1 = reader('r1', gates[0]!.promise);
    const r2 = reader('r2', gates[1]!.promise);
    const w = turns.run('g', async () => void log.push('w'));
    const r3 = reader('r3', Promise.resolve());
    await Promise.resolve();
    expect(log).toEqual(['r1 start', 'r2 start']);
    gates[0]!.resolve();
    await r1;
    expect(log).toEqual(['r1 start', 'r2 start', 'r1 end']);
    gates[1]!.resolve();
    await Promise.all([r2, w, r3]);
    expect(log).toEqual(['r1 start', 'r2 start', 'r1 end', 'r2 end', 'w', 'r3 start', 'r3 end']);
    expect(turns.busy).toBe(0);
  });
});

