// Goal: the packed table (the store's compact home for valid small values) behaves like a Map of
// key → {rev, value} under any sequence of sets and deletes, through arena growth, compaction and
// index rebuilds; values handed out are copies; a walk that runs while the table changes still
// meets every record that lives throughout.
// Method: fast-check sequences against a Map model, with few distinct keys (so keys are
// overwritten and deleted often, which forces compactions) and non-ASCII keys.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PackedTable } from '../../actors/packed-table.ts';

type Op = { kind: 'set'; key: string; rev: number; size: number } | { kind: 'delete'; key: string };

const keyArb = fc.oneof(
  fc.integer({ min: 0, max: 300 }).map((i) => `k${i}`),
  fc.constantFrom('é', 'ключ', '鍵/1', '🔑', 'a'.repeat(1024)),
);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('set' as const), key: keyArb, rev: fc.integer({ min: 1, max: 2 ** 40 }), size: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.constant(4096)) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), key: keyArb }) },
);

const valueOf = (rev: number, size: number) => Uint8Array.from({ length: size }, (_, i) => (rev + i) & 0xff);

function contents(t: PackedTable): Map<string, { rev: number; value: Uint8Array }> {
  const out = new Map<string, { rev: number; value: Uint8Array }>();
  for (const e of t.entries()) {
    expect(out.has(e.key)).toBe(false); // a quiet walk meets each record once
    out.set(e.key, { rev: e.rev, value: e.value });
  }
  return out;
}

describe('packed table', () => {
  it('packed table - agrees with a Map model under random sets and deletes', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 3000 }), (ops) => {
        const table = new PackedTable();
        const model = new Map<string, { rev: number; value: Uint8Array }>();
        for (const op of ops) {
          if (op.kind === 'set') {
            const value = valueOf(op.rev, op.size);
            table.set(op.key, op.rev, value);
            model.set(op.key, { rev: op.rev, value });
          } else {
            expect(table.delete(op.key)).toBe(model.delete(op.key));
          }
        }
        expect(table.size).toBe(model.size);
        for (const [key, want] of model) expect(table.get(key)).toEqual(want);
        expect(table.get('never-written')).toBeUndefined();
        expect(contents(table)).toEqual(model);
        // A walk from a revision meets exactly the records above it.
        const since = ops.length > 0 && ops[0]!.kind === 'set' ? ops[0]!.rev : 2 ** 39;
        expect(new Map([...table.entries(since)].map((e) => [e.key, e]))).toEqual(new Map([...model].filter(([, e]) => e.rev > since).map(([key, e]) => [key, { key, ...e }])));
      }),
      { numRuns: 60 },
    );
  });

  it('packed table - values are copies, and oversized values are refused', () => {
    const t = new PackedTable();
    t.set('k', 1, Uint8Array.of(1, 2, 3));
    t.get('k')!.value[0] = 9;
    const walked = [...t.entries()][0]!;
    walked.value[1] = 9;
    expect(t.get('k')).toEqual({ rev: 1, value: Uint8Array.of(1, 2, 3) });
    expect(() => t.set('big', 1, new Uint8Array(4097))).toThrow(RangeError);
    expect(t.has('big')).toBe(false);
  });

  it('packed table - a walk during writes meets every record that lives throughout', () => {
    const t = new PackedTable();
    const stable = new Set<string>();
    for (let i = 0; i < 5000; i++) {
      t.set(`stable-${i}`, i + 1, valueOf(i, 16));
      stable.add(`stable-${i}`);
    }
    for (let i = 0; i < 5000; i++) t.set(`churn-${i}`, 1, valueOf(i, 8));
    const seen = new Set<string>();
    let step = 0;
    for (const e of t.entries()) {
      seen.add(e.key);
      // Meanwhile: overwrite churn keys with other sizes (dead bytes pile up until the arena
      // compacts under the walk), delete some, add new keys, rewrite stable ones in place.
      const i = step++;
      if (i < 5000) {
        for (let j = 0; j < 6; j++) t.set(`churn-${(i + j * 811) % 5000}`, 2 + j, valueOf(i, 8 + 8 * (j % 2)));
        if (i % 3 === 0) t.delete(`churn-${(i * 7) % 5000}`);
        t.set(`new-${i}`, 1, valueOf(i, 12));
        t.set(`stable-${(i * 13) % 5000}`, 10_000 + i, valueOf(i, 16));
      }
    }
    // The walk did outlive at least one compaction (else this test proves little).
    expect((t as unknown as { generation: number }).generation).toBeGreaterThan(0);
    for (const key of stable) expect(seen.has(key), key).toBe(true);
    expect(t.get('stable-13')?.rev).toBeGreaterThan(10_000);
  });
});
