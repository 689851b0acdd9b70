import { describe, expect, it } from 'vitest';
import type { Operation } from '../check/history.ts';
import { checkChangeLogs, type NodeChanges } from '../check/watch-check.ts';

let id = 0;
const put = (key: string, value: string, revision: number | null): Operation => ({
  id: ++id,
  client: 'c',
  input: { op: 'put', key, value },
  call: id,
  ret: id + 0.5,
  output: revision === null ? { status: 'unknown' } : { status: 'ok', revision },
});
const log = (node: string, floor: number, stable: number, changes: [number, string, string | null][]): NodeChanges => ({
  node,
  floor,
  stable,
  changes: changes.map(([rev, key, value]) => ({ rev, key, kind: value === null ? 'delete' : 'put', value })),
});

describe('watch check', () => {
  const history = [put('a', '1', 1), put('b', '2', 2), put('a', '3', null), put('a', '4', 4)];

  it('accepts logs that hold every acknowledged write of their range, and perhaps one of unknown outcome', () => {
    expect(checkChangeLogs(history, [log('n1', 0, 4, [[1, 'a', '1'], [2, 'b', '2'], [3, 'a', '3'], [4, 'a', '4']]), log('n2', 1, 4, [[2, 'b', '2'], [3, 'a', '3'], [4, 'a', '4']])])).toEqual([]);
    expect(checkChangeLogs(history, [log('n1', 0, 4, [[1, 'a', '1'], [2, 'b', '2'], [4, 'a', '4']])])).toEqual([]);
  });

  it('finds a gap, a write never made, a change out of order, and two nodes that disagree', () => {
    expect(checkChangeLogs(history, [log('n1', 0, 2, [[1, 'a', '1']])])).toEqual(['n1 (history 0..2): acknowledged 2:b=2 is missing']);
    expect(checkChangeLogs(history, [log('n1', 3, 4, [[4, 'a', '5']])])[0]).toMatch(/4:a=5 was never written/);
    expect(checkChangeLogs(history, [log('n1', 0, 2, [[2, 'b', '2'], [1, 'a', '1']])])[0]).toMatch(/1:a=1 after 2:b/);
    expect(checkChangeLogs(history, [log('n1', 2, 4, [[3, 'a', '3'], [4, 'a', '4']]), log('n2', 2, 4, [[4, 'a', '4']])])).toEqual(['n1 and n2 differ over revisions 3..4: [3:a=3 4:a=4] vs [4:a=4]']);
  });

  it('takes an expiry as a change of a key some put gave a time to live, and of no other', () => {
    const withTtl: Operation = { ...put('c', '5', 5), input: { op: 'put', key: 'c', value: '5', ttlMs: 100 } };
    const expired = (key: string): NodeChanges => ({ node: 'n1', floor: 4, stable: 6, changes: [{ rev: 5, key: 'c', kind: 'put', value: '5' }, { rev: 6, key, kind: 'expire', value: null }] });
    expect(checkChangeLogs([...history, withTtl], [expired('c')])).toEqual([]);
    expect(checkChangeLogs([...history, withTtl], [expired('a')])).toEqual(['n1 (history 4..6): expiry 6:a=<deleted> of a key no put gave a time to live']);
  });
});
