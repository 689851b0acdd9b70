// Goal: RevisionMap (the change log's writes in flight and staged changes) answers like a Map that
// also gives its lowest key, under any order of sets and deletes, through its compaction.
// Method: fast-check sequences against a Map model; one long in-order run for the compaction path.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RevisionMap } from '../../actors/revision-map.ts';

type Op = { op: 'set'; rev: number; value: number } | { op: 'delete'; rev: number } | { op: 'deleteThrough'; rev: number } | { op: 'clear' };

const rev = fc.integer({ min: 1, max: 60 });
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('set' as const), rev, value: fc.integer() }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('delete' as const), rev }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('deleteThrough' as const), rev }) },
  { weight: 1, arbitrary: fc.constant({ op: 'clear' as const }) },
);

describe('RevisionMap', () => {
  it('answers as a plain map whose lowest key is looked up, whatever the order of its changes', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const map = new RevisionMap<number>();
        const model = new Map<number, number>();
        for (const o of ops) {
          if (o.op === 'set') (map.set(o.rev, o.value), model.set(o.rev, o.value));
          else if (o.op === 'delete') (map.delete(o.rev), model.delete(o.rev));
          else if (o.op === 'deleteThrough') {
            map.deleteThrough(o.rev);
            for (const k of [...model.keys()]) if (k <= o.rev) model.delete(k);
          } else (map.clear(), model.clear());
          expect(map.size).toBe(model.size);
          expect(map.minKey()).toBe(model.size === 0 ? undefined : Math.min(...model.keys()));
        }
        for (let r = 0; r <= 61; r++) {
          expect(map.has(r)).toBe(model.has(r));
          expect(map.get(r)).toBe(model.get(r));
        }
      }),
      { numRuns: 500 },
    );
  });

  it('keeps its order over many revisions taken in order and removed from the low end (the compaction path)', () => {
    const map = new RevisionMap<string>();
    for (let r = 1; r <= 5000; r++) {
      map.set(r, `v${r}`);
      if (r % 3 === 0) map.set(r + 10_000, 'late'); // out of order, above everything
      if (r > 64) map.delete(r - 64);
    }
    expect(map.minKey()).toBe(4937);
    expect(map.get(5000)).toBe('v5000');
    map.deleteThrough(5000);
    expect(map.minKey()).toBe(10_003);
    expect(map.size).toBe(1666);
  });
});
