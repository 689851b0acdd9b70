import { describe, expect, it } from 'vitest';
import { Expiries } from '../../actors/expiries.ts';

describe('expiries', () => {
  it('keeps one deadline per key and gives the due ones, earliest first', () => {
    const e = new Expiries();
    e.set('a', 30);
    e.set('b', 10);
    e.set('c', 20);
    e.set('a', 5); // a keep-alive or a new put replaces the deadline
    expect(e.next()).toBe(5);
    expect(e.due(20)).toEqual(['a', 'b', 'c']);
    expect(e.due(9)).toEqual(['a']);
    e.delete('a');
    expect(e.deadline('a')).toBeUndefined();
    expect(e.due(100)).toEqual(['b', 'c']);
    expect(e.size).toBe(2);
  });
});
