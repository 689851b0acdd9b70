// Goal: ChangeList (the change log's stable changes, packed into typed arrays and one buffer)
// gives back every change it keeps exactly as pushed (kind, key as Unicode, value bytes, delete as
// null), finds revisions by binary search, and counts its bytes, through growth and compaction of
// its index and its buffer while changes leave from the oldest end.
// Method: fast-check sequences of pushes (ascending revisions, values of 0 bytes to 40 KiB, keys
// with non-ASCII characters) and shifts against an array model.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CHANGE_OVERHEAD_BYTES, ChangeList } from '../../actors/change-list.ts';
import type { Change } from '../../actors/change-log.ts';

type Op = { op: 'push'; gap: number; key: string; kind: Change['kind']; size: number } | { op: 'shift'; n: number };

const key = fc.oneof(fc.integer({ min: 0, max: 500 }).map((i) => `k/${i}`), fc.constantFrom('é', 'ключ/1', '鍵', '🔑', ''));
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 30,
    arbitrary: fc.record({
      op: fc.constant('push' as const),
      gap: fc.integer({ min: 0, max: 3 }),
      key,
      kind: fc.constantFrom<Change['kind']>('put', 'delete', 'expire'),
      size: fc.oneof({ weight: 30, arbitrary: fc.integer({ min: 0, max: 64 }) }, { weight: 1, arbitrary: fc.constant(40_000) }),
    }),
  },
  // Fewer changes leave than come, so the index (1,024 to start with) and the buffer (64 KiB) fill.
  { weight: 1, arbitrary: fc.record({ op: fc.constant('shift' as const), n: fc.integer({ min: 1, max: 30 }) }) },
);

/** A value whose bytes depend on its size and revision. */
const valueOf = (size: number, rev: number) => {
  const v = new Uint8Array(size).fill(rev & 0xff);
  if (size > 0) v[size - 1] = size & 0xff;
  return v;
};

const bytesOf = (c: Change) => Buffer.byteLength(c.key) + (c.value?.byteLength ?? 0) + CHANGE_OVERHEAD_BYTES;

describe('ChangeList', () => {
  it('gives back what was pushed, in order, through growth and compaction', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1000, maxLength: 4000 }), (ops) => {
        const list = new ChangeList();
        const model: Change[] = [];
        let rev = 0;
        for (const o of ops) {
          if (o.op === 'push') {
            rev += o.gap; // equal revisions: a transaction's changes
            const value = o.kind === 'put' ? valueOf(o.size, rev) : null;
            const change: Change = { rev, key: o.key, kind: o.kind, value, at: rev * 10 };
            list.push(change);
            if (value !== null) value.fill(0); // the list keeps its own copy
            model.push({ ...change, value: value === null ? null : valueOf(o.size, rev) });
          } else for (let i = 0; i < o.n && model.length > 0; i++) (list.shift(), model.shift());
        }
        expect(list.length).toBe(model.length);
        expect(list.bytes).toBe(model.reduce((n, c) => n + bytesOf(c), 0));
        expect(model.map((_, i) => [list.rev(i), list.at(i)])).toEqual(model.map((c) => [c.rev, c.at]));
        // Values compared as base64 text (vitest compares typed arrays byte by byte, slowly).
        const plain = (c: Change) => ({ ...c, value: c.value === null ? null : Buffer.from(c.value).toString('base64') });
        expect(model.map((_, i) => plain(list.get(i)))).toEqual(model.map(plain));
        const above: number[] = [];
        const found: number[] = [];
        for (let r = -1, first = 0; r <= rev + 1; r++) {
          while (first < model.length && model[first]!.rev <= r) first++;
          above.push(first);
          found.push(list.indexAbove(r));
        }
        expect(found).toEqual(above);
      }),
      { numRuns: 25 },
    );
  });

  it('hands out copies: a change read stays as read when the list moves on', () => {
    const list = new ChangeList();
    list.push({ rev: 1, key: 'a', kind: 'put', value: new Uint8Array([1, 2, 3]), at: 0 });
    const read = list.get(0);
    list.shift();
    for (let r = 2; r < 5000; r++) list.push({ rev: r, key: `k${r}`, kind: 'put', value: new Uint8Array(32).fill(9), at: r });
    expect(read.value).toEqual(new Uint8Array([1, 2, 3]));
    expect(list.get(0).rev).toBe(2);
    list.clear();
    expect([list.length, list.bytes, list.indexAbove(0)]).toEqual([0, 0, 0]);
    list.push({ rev: 7, key: 'b', kind: 'delete', value: null, at: 1 });
    expect(list.get(0)).toEqual({ rev: 7, key: 'b', kind: 'delete', value: null, at: 1 });
  });
});
