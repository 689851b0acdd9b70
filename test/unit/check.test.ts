import { describe, it, expect } from 'vitest';
import { applyUnknown, checkHistory, checkKeyHistory, expandMultiKey, formatFailure, formatOperations, initialState, step } from '../check/index.ts';
import type { CheckFailure, CheckResult, KvInput, KvOutput, KvState, Operation, TxnInput } from '../check/index.ts';

// ---------------------------------------------------------------------------
// History builder

type Span = [call: number, ret: number | null];

class H {
  readonly ops: Operation[] = [];
  private add(client: string, input: KvInput, [call, ret]: Span, output: KvOutput): this {
    this.ops.push({ id: this.ops.length + 1, client, input, call, ret, output });
    return this;
  }
  put(c: string, key: string, value: string, span: Span, output: KvOutput, ifRevision?: number): this {
    const input: KvInput = ifRevision === undefined ? { op: 'put', key, value } : { op: 'put', key, value, ifRevision };
    return this.add(c, input, span, output);
  }
  putTtl(c: string, key: string, value: string, ttlMs: number, span: Span, output: KvOutput): this {
    return this.add(c, { op: 'put', key, value, ttlMs }, span, output);
  }
  keepAlive(c: string, key: string, span: Span, output: KvOutput): this {
    return this.add(c, { op: 'keepalive', key }, span, output);
  }
  get(c: string, key: string, span: Span, output: KvOutput): this {
    return this.add(c, { op: 'get', key }, span, output);
  }
  del(c: string, key: string, span: Span, output: KvOutput, ifRevision?: number): this {
    const input: KvInput = ifRevision === undefined ? { op: 'delete', key } : { op: 'delete', key, ifRevision };
    return this.add(c, input, span, output);
  }
  txn(c: string, txn: TxnInput, span: Span, output: KvOutput): this {
    return this.add(c, { op: 'txn', key: '', txn }, span, output);
  }
  scan(c: string, prefix: string, span: Span, entries: [key: string, value: string, revision: number][]): this {
    return this.add(c, { op: 'scan', key: prefix }, span, { status: 'ok', entries: entries.map(([key, value, revision]) => ({ key, value, revision })) });
  }
}

const ok = (revision: number): KvOutput => ({ status: 'ok', revision });
const val = (value: string, revision: number): KvOutput => ({ status: 'ok', value, revision });
const NF: KvOutput = { status: 'not-found' };
const CONFLICT: KvOutput = { status: 'conflict' };
const UNKNOWN: KvOutput = { status: 'unknown' };
const UNAVAILABLE: KvOutput = { status: 'unavailable' };

function expectFailure(r: CheckResult): CheckFailure {
  expect(r.ok).toBe(false);
  if (r.ok !== false) throw new Error('expected a failure');
  return r;
}

// ---------------------------------------------------------------------------
// Random linearizable histories from a simulated atomic store

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Planned {
  id: number;
  client: number;
  kind: 'get' | 'put' | 'delete';
  key: string;
  call: number;
  lin: number;
  ret: number;
  conditional: boolean;
  fate: 'normal' | 'unknown' | 'unavailable';
}

/**
 * Each client issues operations one after another; every operation gets a
 * random interval and a linearization point inside it. Outputs are computed
 * by applying operations to an atomic store in linearization-point order, so
 * the history is linearizable by construction.
 */
function randomHistory(opts: { seed: number; ops: number; keys: number; clients: number; unknownRate?: number; unavailableRate?: number }): Operation[] {
  const rnd = mulberry32(opts.seed);
  const planned: Planned[] = [];
  const clock = new Array<number>(opts.clients).fill(0);
  for (let id = 1; id <= opts.ops; id++) {
    const client = Math.floor(rnd() * opts.clients);
    const call = (clock[client] as number) + rnd() * 2;
    const lin = call + rnd() * 6;
    const ret = lin + rnd() * 6;
    clock[client] = ret;
    const x = rnd();
    const kind = x < 0.45 ? 'get' : x < 0.85 ? 'put' : 'delete';
    const y = rnd();
    const fate = y < (opts.unknownRate ?? 0) ? 'unknown' : y < (opts.unknownRate ?? 0) + (opts.unavailableRate ?? 0) ? 'unavailable' : 'normal';
    planned.push({ id, client, kind, key: `k${Math.floor(rnd() * opts.keys)}`, call, lin, ret, conditional: rnd() < 0.35, fate });
  }
  planned.sort((a, b) => a.lin - b.lin);
  const store = new Map<string, { value: string; rev: number }>();
  const seen = new Map<string, number>(); // client/key -> last revision the client saw
  let counter = 0;
  const out: Operation[] = [];
  for (const p of planned) {
    const cur = store.get(p.key);
    const lastSeen = seen.get(`${p.client}/${p.key}`) ?? 0;
    // Conditional writes use what this client last saw (sometimes stale), or 0.
    const ifRevision = p.conditional && p.kind !== 'get' ? (rnd() < 0.7 ? lastSeen : 0) : undefined;
    let input: KvInput;
    let output: KvOutput;
    const applies = p.fate === 'normal' || (p.fate === 'unknown' && rnd() < 0.5);
    const condHolds = ifRevision === undefined || (ifRevision === 0 ? cur === undefined : cur?.rev === ifRevision);
    if (p.kind === 'get') {
      input = { op: 'get', key: p.key };
      output = cur ? { status: 'ok', value: cur.value, revision: cur.rev } : { status: 'not-found' };
    } else if (p.kind === 'put') {
      const value = `v${p.id}`;
      input = ifRevision === undefined ? { op: 'put', key: p.key, value } : { op: 'put', key: p.key, value, ifRevision };
      if (!condHolds) output = { status: 'conflict' };
      else if (!applies) output = { status: 'ok' }; // replaced below
      else {
        counter++;
        store.set(p.key, { value, rev: counter });
        output = { status: 'ok', revision: counter };
      }
    } else {
      input = ifRevision === undefined ? { op: 'delete', key: p.key } : { op: 'delete', key: p.key, ifRevision };
      if (cur === undefined) output = { status: 'not-found' };
      else if (!condHolds) output = { status: 'conflict' };
      else if (!applies) output = { status: 'ok' };
      else {
        counter++;
        store.delete(p.key);
        output = { status: 'ok', revision: counter };
      }
    }
    if (p.fate === 'normal' && output.status === 'ok' && p.kind !== 'get') {
      seen.set(`${p.client}/${p.key}`, output.revision as number);
    }
    if (p.kind === 'get' && output.status === 'ok') seen.set(`${p.client}/${p.key}`, output.revision as number);
    if (p.fate === 'unknown') output = { status: 'unknown' };
    if (p.fate === 'unavailable') output = { status: 'unavailable' };
    const ret = p.fate === 'unknown' && rnd() < 0.5 ? null : p.ret;
    out.push({ id: p.id, client: `c${p.client}`, input, call: p.call, ret, output });
  }
  return out.sort((a, b) => a.id - b.id);
}

/**
 * Exhaustive reference checker for tiny single-key histories: tries every
 * order that respects real time, with unknown-outcome ops optional.
 */
function bruteForceLinearizable(history: Operation[], maxUnknownDelay = Infinity): boolean {
  const ops = history.filter(
    (o) => o.output.status !== 'unavailable' && !(o.input.op === 'get' && (o.ret === null || o.output.status === 'unknown')),
  );
  const unknown = ops.map((o) => o.ret === null || o.output.status === 'unknown');
  const placed = ops.map(() => false);
  const search = (s: KvState): boolean => {
    if (ops.every((_, i) => unknown[i] || placed[i])) return true;
    for (let i = 0; i < ops.length; i++) {
      if (placed[i]) continue;
      const op = ops[i] as Operation;
      // Every known op that returned strictly before this call must come first.
      if (ops.some((a, j) => !placed[j] && !unknown[j] && (a.ret as number) < op.call)) continue;
      // An unknown-outcome op cannot take effect after an op called past its deadline.
      if (unknown[i] && ops.some((b, j) => placed[j] && b.call > op.call + maxUnknownDelay)) continue;
      let next: KvState | null;
      if (unknown[i]) next = applyUnknown(s, op.input);
      else {
        const r = step(s, op.input, op.output);
        next = r.ok ? r.state : null;
      }
      if (next === null) continue;
      placed[i] = true;
      const found = search(next);
      placed[i] = false;
      if (found) return true;
    }
    return false;
  };
  return search(initialState);
}

// ---------------------------------------------------------------------------

describe('linearizable histories', () => {
  it('checker - sequential put then get is ok', () => {
    const h = new H().put('c1', 'k', 'a', [0, 1], ok(1)).get('c1', 'k', [2, 3], val('a', 1));
    expect(checkHistory(h.ops)).toEqual({ ok: true });
  });

  it('checker - malformed times are rejected up front', () => {
    const h = new H().put('c1', 'k', 'a', [5, 1], ok(1));
    expect(() => checkHistory(h.ops)).toThrow(RangeError);
  });

  it('checker - empty history is ok', () => {
    expect(checkHistory([])).toEqual({ ok: true });
  });

  it('checker - concurrent puts with overlapping gets are ok', () => {
    const h = new H()
      .put('c1', 'k', 'a', [0, 10], ok(1))
      .put('c2', 'k', 'b', [2, 12], ok(2))
      .get('c3', 'k', [1, 11], NF)
      .get('c3', 'k', [11.5, 11.8], val('a', 1))
      .get('c4', 'k', [3, 13], val('b', 2))
      .get('c3', 'k', [14, 15], val('b', 2));
    expect(checkHistory(h.ops)).toEqual({ ok: true });
  });

  it('checker - unknown-outcome put that was later read is ok', () => {
    const h = new H()
      .put('c1', 'k', 'a', [0, 1], ok(1))
      .put('c1', 'k', 'x', [2, 50], UNKNOWN)
      .get('c2', 'k', [60, 61], val('x', 7))
      // The revision observed by the get pins the unknown put down.
      .put('c2', 'k', 'y', [62, 63], ok(9), 7)
      .get('c2', 'k', [64, 65], val('y', 9));
    expect(checkHistory(h.ops)).toEqual({ ok: true });
  });

  it('checker - put with no reply may take effect long after its call', () => {
    const h = new H()
      .put('c1', 'k', 'x', [0, null], UNKNOWN)
      .get('c2', 'k', [10, 11], NF)
      .get('c2', 'k', [20, 21], NF)
      .get('c2', 'k', [30, 31], val('x', 3));
    expect(checkHistory(h.ops)).toEqual({ ok: true });
  });

  it('checker - unknown put never read is ok', () => {
    const h = new H()
      .put('c1', 'k', 'a', [0, 1], ok(1))
      .put('c1', 'k', 'b', [2, 3], UNKNOWN)
      .put('c2', 'k', 'c', [2.5, null], UNKNOWN)
      .get('c2', 'k', [4, 5], val('a', 1))
      .get('c1', 'k', [10, 11], val('a', 1));
    expect(checkHistory(h.ops)).toEqual({ ok: true });
  });

  it('checker - unknown delete may or may not have happened', () => {
    const took = new H().put('c1', 'k', 'a', [0, 1], ok(1)).del('c1', 'k', [2, 3], UNKNOWN).get('c2', 'k', [4, 5], NF);
    const didNot = new H().put('c1', 'k', 'a', [0, 1], ok(1)).del('c1', 'k', [2, 3], UNKNOWN).get('c2', 'k', [4, 5], val('a', 1));
    expect(checkHistory(took.ops)).toEqual({ ok: true });
    expect(checkHistory(didNot.ops)).toEqual({ ok: true });
  });

  it('checker - chain of unknown delete then create-if-absent explains a read', () => {
    const h = new H()
      .put('c1', 'k', 'a', [0, 1], ok(1))
      .del('c1', 'k', [2, null], UNKNOWN)
      .put('c2', 'k', 'b', [3, 4], UNKNOWN, 0)
      .get('c3', 'k', [10, 11], val('b', 6));
    expect(checkHistory(h.ops)).toEqual({ ok: true });
  });

  it('checker - unknown conditional put succeeds against an unobserved revision', () => {
    // The unknown put of "x" got some revision >= 2; the CAS names revision 4,
    // which is consistent with it.
    const h = new H()
      .put('c1', 'k', 'a', [0, 1], ok(1))
      .put('c1', 'k', 'x', [2, 3], UNKNOWN)
      .put('c2', 'k', 'y', [4, 5], ok(6), 4)
      .get('c2', 'k', [7, 8], val('y', 6));
    expect(checkHistory(h.ops)).toEqual({ ok: true });
  });

  it('checker - conditional puts succeed and conflict as the revision dictates', () => {
    const h = new H()
      .put('c1', 'k', 'a', [0, 1], ok(1), 0)
      .put('c2', 'k', 'b', [2, 3], CONFLICT, 0)
      .put('c1', 'k', 'c', [4, 5], ok(3), 1)
      .put('c2', 'k', 'd', [6, 7], CONFLICT, 1)
      .put('c2', 'k', 'e', [8, 9], CONFLICT, 99)
      .get('c1', 'k', [10, 11], val('c', 3));
    expect(checkHistory(h.ops)).toEqual({ ok: true });
  });

  it('checker - concurrent compare-and-set: one wins, one conflicts', () => {
    const h = new H()
      .put('c1', 'k', 'a', [0, 1], ok(1))
      .put('c1', 'k', 'b', [2, 6], CONFLICT, 1)
      .put('c2', 'k', 'c', [3, 5], ok(2), 1)
      .get('c3', 'k', [7, 8], val('c', 2));
    expect(checkHistory(h.ops)).toEqual({ ok: true });
  });

  it('checker - deletes, not-found and re-creation are ok', () => {
    const h = new H()
      .del('c1', 'k', [0, 1], NF)
      .put('c1', 'k', 'a', [2, 3], ok(1))
      .del('c2', 'k', [4, 5], CONFLICT, 7)
      .del('c2', 'k', [6, 7], ok(2), 1)
      .get('c1', 'k', [8, 9], NF)
      .del('c1', 'k', [10, 11], NF)
      .del('c1', 'k', [12, 13], CONFLICT, 2) // conditional delete of a missing key: conflict accepted
      .del('c1', 'k', [13, 13.5], NF, 2) // ... and so is not-found
      .put('c2', 'k', 'b', [14, 15], ok(5), 0)
      .get('c1', 'k', [16, 17], val('b', 5));
    expect(checkHistory(h.ops)).toEqual({ ok: true });
  });

  it('checker - many keys interleaved are checked independently', () => {
    const h = new H();
    let rev = 0;
    for (let i = 0; i < 10; i++) {
      const t = i * 3;
      for (let k = 0; k < 5; k++) {
        rev++;
        h.put(`c${k}`, `k${k}`, `v${i}`, [t + k * 0.1, t + 2], ok(rev));
      }
      for (let k = 0; k < 5; k++) h.get(`c${k}`, `k${k}`, [t + 2.5, t + 2.9], val(`v${i}`, rev - 4 + k));
    }
    expect(checkHistory(h.ops)).toEqual({ ok: true });
  });

  it('checker - unavailable operations are ignored', () => {
    const h = new H()
      .put('c1', 'k', 'a', [0, 1], ok(1))
      .put('c1', 'k', 'b', [2, 3], UNAVAILABLE)
      .del('c2', 'k', [2, 3], UNAVAILABLE)
      .get('c2', 'k', [4, 5], val('a', 1));
    expect(checkHistory(h.ops)).toEqual({ ok: true });
  });

  it('checker - events at the same instant count as concurrent', () => {
    const h = new H().put('c1', 'k', 'a', [0, 5], ok(1)).get('c2', 'k', [5, 6], NF);
    expect(checkHistory(h.ops)).toEqual({ ok: true });
  });

  it('checker - acknowledged write without a revision leaves the revision open', () => {
    const h = new H()
      .put('c1', 'k', 'a', [0, 1], ok(2))
      .put('c1', 'k', 'b', [2, 3], { status: 'ok' })
      .get('c2', 'k', [4, 5], val('b', 6));
    expect(checkHistory(h.ops)).toEqual({ ok: true });
  });
});

describe('non-linearizable histories', () => {
  it('checker - stale read is rejected', () => {
    const h = new H()
      .put('c1', 'k', 'a', [0, 1], ok(1))
      .put('c1', 'k', 'b', [2, 3], ok(2))
      .get('c2', 'k', [4, 5], val('a', 1));
    const f = expectFailure(checkHistory(h.ops));
    expect(f.kind).toBe('not-linearizable');
    expect(f.key).toBe('k');
    expect(f.explanation).toContain('no linearization');
  });

  it('checker - lost write is rejected', () => {
    const h = new H()
      .put('c1', 'k', 'a', [0, 1], ok(1))
      .put('c2', 'k', 'b', [2, 3], ok(2))
      .get('c3', 'k', [4, 5], val('b', 2))
      .put('c1', 'k', 'c', [6, 7], ok(5))
      .get('c2', 'k', [8, 9], val('b', 2));
    const f = expectFailure(checkHistory(h.ops));
    expect(f.kind).toBe('not-linearizable');
  });

  it('checker - acknowledged write that vanishes is rejected', () => {
    const h = new H().put('c1', 'k', 'a', [0, 1], ok(1)).get('c2', 'k', [2, 3], NF);
    expect(expectFailure(checkHistory(h.ops)).key).toBe('k');
  });

  it('checker - read of a never-written value is rejected', () => {
    const h = new H().put('c1', 'k', 'a', [0, 1], ok(1)).get('c2', 'k', [0.5, 3], val('zzz', 1));
    expectFailure(checkHistory(h.ops));
  });

  it('checker - read of a key that was never written is rejected', () => {
    const h = new H().get('c2', 'k', [0, 1], val('a', 1));
    expectFailure(checkHistory(h.ops));
  });

  it('checker - read with the right value but wrong revision is rejected', () => {
    const h = new H().put('c1', 'k', 'a', [0, 1], ok(3)).get('c2', 'k', [2, 3], val('a', 4));
    const f = expectFailure(checkHistory(h.ops));
    expect(f.explanation).toContain('"a"@rev4');
  });

  it('checker - compare-and-set that succeeds twice from the same revision is rejected', () => {
    const h = new H()
      .put('c1', 'k', 'a', [0, 1], ok(1))
      .put('c1', 'k', 'b', [2, 4], ok(2), 1)
      .put('c2', 'k', 'c', [2.5, 5], ok(3), 1);
    expectFailure(checkHistory(h.ops));
  });

  it('checker - create-if-absent that succeeds twice is rejected', () => {
    const h = new H().put('c1', 'k', 'a', [0, 2], ok(1), 0).put('c2', 'k', 'b', [0, 2], ok(2), 0);
    expectFailure(checkHistory(h.ops));
  });

  it('checker - conflict when the revision matched is rejected', () => {
    const h = new H().put('c1', 'k', 'a', [0, 1], ok(1)).put('c1', 'k', 'b', [2, 3], CONFLICT, 1);
    const f = expectFailure(checkHistory(h.ops));
    expect(f.explanation).toContain('conflict although the revision matched');
  });

  it('checker - delete that returns ok on a missing key is rejected', () => {
    const h = new H().del('c1', 'k', [0, 1], ok(1));
    const f = expectFailure(checkHistory(h.ops));
    expect(f.explanation).toContain('does not exist');
  });

  it('checker - delete that returns not-found on an existing key is rejected', () => {
    const h = new H().put('c1', 'k', 'a', [0, 1], ok(1)).del('c1', 'k', [2, 3], NF);
    expectFailure(checkHistory(h.ops));
  });

  it('checker - value of an unknown put cannot disappear once read', () => {
    const h = new H()
      .put('c1', 'k', 'a', [0, 1], ok(1))
      .put('c1', 'k', 'b', [2, null], UNKNOWN)
      .get('c2', 'k', [3, 4], val('b', 5))
      .get('c2', 'k', [5, 6], val('a', 1));
    expectFailure(checkHistory(h.ops));
  });

  it('checker - unknown put cannot be read before it was called', () => {
    const h = new H().get('c2', 'k', [0, 1], val('x', 1)).put('c1', 'k', 'x', [2, null], UNKNOWN);
    expectFailure(checkHistory(h.ops));
  });

  it('checker - revision going backwards in real time is rejected', () => {
    const h = new H().put('c1', 'k1', 'a', [0, 1], ok(5)).put('c2', 'k2', 'b', [2, 3], ok(3));
    const f = expectFailure(checkHistory(h.ops));
    expect(f.kind).toBe('revision-order');
    expect(f.ops.map((o) => o.id)).toEqual([1, 2]);
    expect(f.explanation).toContain('rev=5');
  });

  it('checker - concurrent writes may get revisions in either order', () => {
    const h = new H().put('c1', 'k1', 'a', [0, 3], ok(5)).put('c2', 'k2', 'b', [1, 2], ok(3));
    expect(checkHistory(h.ops)).toEqual({ ok: true });
  });

  it('checker - duplicate revisions are rejected', () => {
    const h = new H().put('c1', 'k1', 'a', [0, 2], ok(4)).put('c2', 'k2', 'b', [1, 3], ok(4));
    const f = expectFailure(checkHistory(h.ops));
    expect(f.kind).toBe('duplicate-revision');
    expect(f.explanation).toContain('rev=4');
  });

  it('checker - per-key revisions must grow in linearization order', () => {
    // The read after both puts shows "a" won, so "a" was written last, yet it
    // has the smaller revision.
    const h = new H()
      .put('c1', 'k', 'a', [0, 3], ok(5))
      .put('c2', 'k', 'b', [1, 2], ok(6))
      .get('c3', 'k', [4, 5], val('a', 5));
    const f = expectFailure(checkHistory(h.ops));
    expect(f.kind).toBe('not-linearizable');
  });

  it('checker - put revision not above a revision observed earlier on the key is rejected', () => {
    const h = new H()
      .put('c1', 'k', 'a', [0, null], UNKNOWN)
      .get('c2', 'k', [1, 2], val('a', 10))
      .put('c2', 'k', 'b', [3, 4], ok(3)) // concurrent with nothing acknowledged, so only the model catches it
      .get('c2', 'k', [5, 6], val('b', 3));
    expectFailure(checkHistory(h.ops));
  });
});

describe('failure reports', () => {
  it('checker - report names the failing key and is smaller than the history', () => {
    const h = new H();
    let rev = 0;
    // Unrelated, linearizable traffic on other keys and on the failing key.
    for (let i = 0; i < 30; i++) {
      const t = i * 10;
      rev++;
      h.put('c1', `other${i % 5}`, `o${i}`, [t, t + 1], ok(rev));
      h.get('c2', `other${i % 5}`, [t + 2, t + 3], val(`o${i}`, rev));
      rev++;
      h.put('c3', 'bad', `x${i}`, [t + 4, t + 5], ok(rev));
      h.get('c3', 'bad', [t + 6, t + 7], val(`x${i}`, rev));
    }
    // The violation: a read of an overwritten value.
    h.put('c1', 'bad', 'new', [400, 401], ok(++rev));
    h.get('c2', 'bad', [402, 403], val('x29', rev - 1));
    const r = checkHistory(h.ops);
    const f = expectFailure(r);
    expect(f.key).toBe('bad');
    expect(f.keyOpCount).toBe(62);
    expect(f.totalOpCount).toBe(122);
    expect(f.shrunk).toBe(true);
    expect(f.ops.length).toBeLessThan(f.keyOpCount);
    expect(f.ops.length).toBeLessThanOrEqual(3);
    // The shrunk core still fails on its own.
    expect(checkKeyHistory(f.ops).result).toBe('fail');
    const text = formatFailure(f);
    expect(text).toContain('"bad"');
    expect(text).toContain('get(bad) -> ok "x29"');
    expect(text).toContain('put(bad, "x29")');
    expect(text).toContain('put(bad, "new")');
    expect(text).toContain('no linearization');
    expect(text.split('\n').length).toBe(f.ops.length + 2);
  });

  it('checker - explanation comes from the longest partial linearization', () => {
    const h = new H()
      .put('c1', 'k1', 'a', [0, 1], ok(5))
      .put('c2', 'k1', 'b', [2, 3], ok(7))
      .get('c3', 'k1', [4, 5], val('a', 5));
    const f = expectFailure(checkHistory(h.ops, { shrink: false }));
    expect(f.explanation).toBe('no linearization: after [op1, op2] the model has k1="b"@rev7 but op3 get returned "a"@rev5');
    expect(f.linearized?.map((o) => o.id)).toEqual([1, 2]);
  });

  it('checker - the smallest failing key is reported', () => {
    const h = new H();
    for (let i = 0; i < 5; i++) h.get('c1', 'big', [i * 2, i * 2 + 1], NF);
    h.get('c1', 'big', [20, 21], val('ghost', 1));
    h.get('c2', 'small', [0, 1], val('ghost', 2));
    expect(expectFailure(checkHistory(h.ops)).key).toBe('small');
  });

  it('checker - operations are rendered one per line, sorted by call time', () => {
    const h = new H()
      .get('c1', 'k1', [20, 21], val('b', 7))
      .put('c2', 'k1', 'b', [12, 15.5], ok(7))
      .del('c3', 'k1', [30, null], UNKNOWN, 7);
    const lines = formatOperations(h.ops);
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^ {2}\[c2\] put\(k1, "b"\) -> ok rev=7 +call=12\.0 ret=15\.5 +op2$/);
    expect(lines[1]).toMatch(/^ {2}\[c1\] get\(k1\) -> ok "b" rev=7 +call=20\.0 ret=21\.0 +op1$/);
    expect(lines[2]).toMatch(/^ {2}\[c3\] delete\(k1, if=7\) -> unknown +call=30\.0 ret=\? +op3$/);
  });

  it('checker - revision failures are formatted with both operations', () => {
    const h = new H().put('c1', 'k1', 'a', [0, 1], ok(5)).put('c2', 'k2', 'b', [2, 3], ok(3));
    const text = formatFailure(expectFailure(checkHistory(h.ops)));
    expect(text).toContain('revisions are not ordered with real time');
    expect(text).toContain('put(k1, "a")');
    expect(text).toContain('put(k2, "b")');
  });
});

describe('budget and scale', () => {
  it('checker - exhausted step budget yields unknown', () => {
    const h = new H()
      .put('c1', 'k', 'a', [0, 10], ok(1))
      .put('c2', 'k', 'b', [0, 10], ok(2))
      .get('c3', 'k', [11, 12], val('b', 2));
    expect(checkHistory(h.ops, { maxSteps: 1 })).toEqual({ ok: 'unknown', reason: 'budget', key: 'k' });
  });

  it('checker - 2,000-op random linearizable history over 20 keys with 4 clients is ok', () => {
    const ops = randomHistory({ seed: 42, ops: 2000, keys: 20, clients: 4 });
    expect(ops).toHaveLength(2000);
    // Sanity: the generator really produces overlapping operations.
    const sorted = [...ops].sort((a, b) => a.call - b.call);
    const overlaps = sorted.filter((op, i) => i > 0 && op.call < ((sorted[i - 1] as Operation).ret ?? Infinity)).length;
    expect(overlaps).toBeGreaterThan(500);
    expect(checkHistory(ops, { budgetMs: 60_000 })).toEqual({ ok: true });
  });

  it('checker - random history with unknown and unavailable outcomes is ok', () => {
    for (const seed of [1, 2, 3]) {
      const ops = randomHistory({ seed, ops: 1000, keys: 20, clients: 4, unknownRate: 0.03, unavailableRate: 0.03 });
      expect(checkHistory(ops, { budgetMs: 60_000 })).toEqual({ ok: true });
    }
  });

  it('checker - maxUnknownDelay bounds when an unknown-outcome op can take effect', () => {
    const h = new H()
      .put('c1', 'k', 'a', [0, 1], ok(1))
      .put('c1', 'k', 'x', [2, null], UNKNOWN)
      .get('c2', 'k', [60, 61], val('a', 1))
      .get('c2', 'k', [100, 101], val('x', 3));
    expect(checkHistory(h.ops)).toEqual({ ok: true });
    expect(checkHistory(h.ops, { maxUnknownDelay: 200 })).toEqual({ ok: true });
    const f = expectFailure(checkHistory(h.ops, { maxUnknownDelay: 50 }));
    expect(f.explanation).toContain('"x"@rev3');
  });

  it('checker - hot single key with many unknown outcomes is ok', () => {
    const ops = randomHistory({ seed: 5, ops: 2000, keys: 1, clients: 6, unknownRate: 0.05 });
    expect(checkHistory(ops, { budgetMs: 60_000 })).toEqual({ ok: true });
    // The generator applies unknown-outcome ops within 6 time units of their call.
    expect(checkHistory(ops, { budgetMs: 60_000, maxUnknownDelay: 6 })).toEqual({ ok: true });
  });

  it('checker - agrees with brute force on small random histories', () => {
    const rnd = mulberry32(99);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
    let linearizable = 0;
    let rejected = 0;
    for (let seed = 0; seed < 600; seed++) {
      const base = randomHistory({ seed, ops: 5 + Math.floor(rnd() * 5), keys: 1, clients: 3, unknownRate: 0.3 });
      // Perturb some outputs and conditions so that many histories are wrong.
      const ops = base.map((o): Operation => {
        if (rnd() < 0.15) {
          const outputs: KvOutput[] = [
            NF,
            CONFLICT,
            UNKNOWN,
            { status: 'ok' },
            ok(1 + Math.floor(rnd() * 6)),
            val(`v${1 + Math.floor(rnd() * 8)}`, 1 + Math.floor(rnd() * 6)),
          ];
          return { ...o, output: pick(outputs) };
        }
        if (rnd() < 0.1 && (o.input.op === 'put' || o.input.op === 'delete')) return { ...o, input: { ...o.input, ifRevision: Math.floor(rnd() * 5) } };
        return o;
      });
      const maxUnknownDelay = pick([0.5, 3, Infinity]);
      const result = checkHistory(ops, { shrink: false, maxUnknownDelay });
      if (result.ok === 'unknown') throw new Error('budget exhausted on a tiny history');
      if (result.ok === false && result.kind !== 'not-linearizable') continue; // global revision check fired first
      const expected = bruteForceLinearizable(ops, maxUnknownDelay);
      expect({ seed, maxUnknownDelay, ok: result.ok }).toEqual({ seed, maxUnknownDelay, ok: expected });
      if (expected) linearizable++;
      else rejected++;
    }
    // Both verdicts are well represented.
    expect(linearizable).toBeGreaterThan(100);
    expect(rejected).toBeGreaterThan(100);
  });

  it('checker - corrupting one read of a random history is detected', () => {
    const ops = randomHistory({ seed: 7, ops: 2000, keys: 20, clients: 4 });
    const victim = ops.find((o, i) => i > 1000 && o.input.op === 'get' && o.output.status === 'ok') as Operation;
    const corrupted = ops.map((o) => (o === victim ? { ...o, output: { status: 'ok' as const, value: 'corrupt', revision: 1 } } : o));
    const f = expectFailure(checkHistory(corrupted, { budgetMs: 60_000 }));
    expect(f.key).toBe(victim.input.key);
    expect(f.ops.some((o) => o.id === victim.id)).toBe(true);
    expect(f.ops.length).toBeLessThanOrEqual(2);
  });
});

describe('scans (multi-key reads)', () => {
  it('check - a scan that matches one point in time passes', () => {
    const h = new H()
      .put('w', 'a', '1', [0, 1], ok(1))
      .put('w', 'b', '1', [2, 3], ok(2))
      .scan('r', '', [0, 10], [['a', '1', 1]])
      .scan('r', '', [4, 10], [['a', '1', 1], ['b', '1', 2]])
      .del('w', 'a', [11, 12], ok(3))
      .scan('r', '', [13, 14], [['b', '1', 2]]);
    expect(checkHistory(h.ops)).toEqual({ ok: true });
  });

  it('check - a torn scan fails: it shows b, written after a was acknowledged, but not a', () => {
    // Each key alone could be read at some point within the scan; no single point shows both.
    const h = new H().put('w', 'a', '1', [0, 1], ok(1)).put('w', 'b', '1', [2, 3], ok(2)).scan('r', '', [0, 10], [['b', '1', 2]]);
    const f = expectFailure(checkHistory(h.ops));
    expect(f.kind).toBe('not-linearizable');
    expect(f.key).toBe('a');
    expect(formatFailure(f)).toContain('scan op3');
  });

  it('check - a scan missing a write acknowledged before it began fails; keys outside its prefix are not its business', () => {
    const stale = new H().put('w', 'p/a', '1', [0, 1], ok(1)).scan('r', 'p/', [2, 3], []);
    expect(expectFailure(checkHistory(stale.ops)).key).toBe('p/a');
    const other = new H().put('w', 'q/a', '1', [0, 1], ok(1)).scan('r', 'p/', [2, 3], []);
    expect(checkHistory(other.ops)).toEqual({ ok: true });
  });

  it('check - a scan that shows a value nobody wrote, or a deleted key, fails', () => {
    const invented = new H().put('w', 'a', '1', [0, 1], ok(1)).scan('r', '', [2, 3], [['a', '2', 1]]);
    expect(expectFailure(checkHistory(invented.ops)).key).toBe('a');
    const resurrected = new H().put('w', 'a', '1', [0, 1], ok(1)).del('w', 'a', [2, 3], ok(2)).scan('r', '', [4, 5], [['a', '1', 1]]);
    expect(expectFailure(checkHistory(resurrected.ops)).key).toBe('a');
  });

  it('check - a scan without an answer had no effect', () => {
    const h = new H().put('w', 'a', '1', [0, 1], ok(1));
    h.ops.push({ id: 9, client: 'r', input: { op: 'scan', key: '' }, call: 2, ret: null, output: UNKNOWN });
    h.ops.push({ id: 10, client: 'r', input: { op: 'scan', key: '' }, call: 2, ret: 3, output: UNAVAILABLE });
    expect(checkHistory(h.ops)).toEqual({ ok: true });
  });
});

describe('expiring keys', () => {
  it('check - a value put with a time to live may be gone once it ran out, never before', () => {
    const expired = new H().putTtl('a', 'k', 'v', 100, [0, 10], ok(1)).get('b', 'k', [50, 60], val('v', 1)).get('b', 'k', [200, 210], NF);
    expect(checkHistory(expired.ops)).toEqual({ ok: true });
    // Still there after its time: a failover starts the time again; the checker allows it.
    expect(checkHistory(new H().putTtl('a', 'k', 'v', 100, [0, 10], ok(1)).get('b', 'k', [500, 510], val('v', 1)).ops)).toEqual({ ok: true });
    const early = new H().putTtl('a', 'k', 'v', 100, [0, 10], ok(1)).get('b', 'k', [50, 60], NF);
    expect(expectFailure(checkHistory(early.ops)).kind).toBe('not-linearizable');
    // A put whose outcome is unknown may have been written, and then expired.
    expect(checkHistory(new H().putTtl('a', 'k', 'v', 100, [0, null], UNKNOWN).get('b', 'k', [50, 60], val('v', 1)).get('b', 'k', [200, 210], NF).ops)).toEqual({ ok: true });
  });

  it('check - a keep-alive writes nothing: it succeeds on a value with a time to live, says "no time to live" of any other, 404 of a missing key', () => {
    const plain = new H().put('a', 'k', 'p', [0, 10], ok(1));
    expect(checkHistory(new H().putTtl('a', 'k', 'v', 1000, [0, 10], ok(1)).keepAlive('b', 'k', [20, 30], ok(1)).get('a', 'k', [40, 50], val('v', 1)).ops)).toEqual({ ok: true });
    expect(checkHistory(plain.keepAlive('b', 'k', [20, 30], { status: 'no-ttl' }).keepAlive('b', 'x', [20, 30], NF).ops)).toEqual({ ok: true });
    expect(expectFailure(checkHistory(new H().put('a', 'k', 'p', [0, 10], ok(1)).keepAlive('b', 'k', [20, 30], ok(1)).ops)).kind).toBe('not-linearizable');
    expect(expectFailure(checkHistory(new H().putTtl('a', 'k', 'v', 1000, [0, 10], ok(1)).keepAlive('b', 'k', [20, 30], { status: 'no-ttl' }).ops)).kind).toBe('not-linearizable');
    // It answers with the key's revision (no clash with the put's, above): any other fails.
    expect(checkHistory(new H().putTtl('a', 'k', 'v', 1000, [0, 10], ok(1)).keepAlive('b', 'k', [20, 30], ok(2)).ops).ok).toBe(false);
  });

  it('check - an expiry deletes the value it was put with: not a newer write, and nothing comes back after it', () => {
    const newer = new H().putTtl('a', 'k', 'v1', 100, [0, 10], ok(1)).put('a', 'k', 'v2', [20, 30], ok(2)).get('b', 'k', [200, 210], NF);
    expect(expectFailure(checkHistory(newer.ops)).kind).toBe('not-linearizable');
    const back = new H().putTtl('a', 'k', 'v', 100, [0, 10], ok(1)).get('b', 'k', [200, 210], NF).get('b', 'k', [300, 310], val('v', 1));
    expect(expectFailure(checkHistory(back.ops)).kind).toBe('not-linearizable');
    // The expiry is a write with a revision of its own: the next write's is higher still.
    const after = (rev: number) => new H().putTtl('a', 'k', 'v', 100, [0, 10], ok(5)).get('b', 'k', [200, 210], NF).put('a', 'k', 'w', [300, 310], { status: 'ok' }).get('b', 'k', [400, 410], val('w', rev));
    expect(checkHistory(after(7).ops)).toEqual({ ok: true });
    expect(expectFailure(checkHistory(after(6).ops)).kind).toBe('not-linearizable');
  });
});

describe('expiring keys: no read past the time to live', () => {
  const history = (readAt: number) => new H().putTtl('a', 'k', 'v', 100, [0, 10], ok(1)).get('b', 'k', [readAt, readAt + 5], val('v', 1)).ops;

  it('check - a read that began after the time to live ran out, with no leader change since, fails', () => {
    expect(checkHistory(history(105), { takeovers: [] })).toEqual({ ok: true });
    const late = expectFailure(checkHistory(history(120), { takeovers: [] }));
    expect(late.kind).toBe('expired-read');
    expect(formatFailure(late)).toMatch(/past its time to live: op1 put it with ttl=100 ms/);
    // A scan sees it too.
    expect(expectFailure(checkHistory(new H().putTtl('a', 'k', 'v', 100, [0, 10], ok(1)).scan('b', '', [200, 205], [['k', 'v', 1]]).ops, { takeovers: [] })).kind).toBe('expired-read');
    // Without the leaders' takeovers the check is not made.
    expect(checkHistory(history(120))).toEqual({ ok: true });
  });

  it('check - a leader change restarts the time: a takeover before the read returned, after the put was sent, counts', () => {
    expect(checkHistory(history(120), { takeovers: [50] })).toEqual({ ok: true });
    // Taken over while the read was on its way: it may have been answered after.
    expect(checkHistory(history(300), { takeovers: [302] })).toEqual({ ok: true });
    expect(expectFailure(checkHistory(history(300), { takeovers: [50, 400] })).kind).toBe('expired-read');
    // Times read from logs may be off by the slack: a takeover just after the read returned may still count.
    expect(expectFailure(checkHistory(history(300), { takeovers: [310] })).kind).toBe('expired-read');
    expect(checkHistory(history(300), { takeovers: [310], takeoverSlackMs: 10 })).toEqual({ ok: true });
    // A keep-alive of that value restarts it too; one whose outcome is unknown may have, at any time.
    expect(checkHistory(new H().putTtl('a', 'k', 'v', 100, [0, 10], ok(1)).keepAlive('a', 'k', [90, 95], ok(1)).get('b', 'k', [150, 155], val('v', 1)).ops, { takeovers: [] })).toEqual({ ok: true });
    expect(checkHistory(new H().putTtl('a', 'k', 'v', 100, [0, 10], ok(1)).keepAlive('a', 'k', [90, null], UNKNOWN).get('b', 'k', [400, 405], val('v', 1)).ops, { takeovers: [] })).toEqual({ ok: true });
    expect(expectFailure(checkHistory(new H().putTtl('a', 'k', 'v', 100, [0, 10], ok(1)).keepAlive('a', 'k', [90, 95], ok(1)).get('b', 'k', [200, 205], val('v', 1)).ops, { takeovers: [] })).kind).toBe('expired-read');
    // One before the put was sent restarts nothing.
    expect(expectFailure(checkHistory(history(120), { takeovers: [-5] })).kind).toBe('expired-read');
  });
});

describe('transactions (multi-key writes)', () => {
  const both: TxnInput = { compare: [], ops: [{ op: 'put', key: 'a', value: 'A' }, { op: 'put', key: 'b', value: 'B' }] };

  it('check - a transaction\'s writes are seen together, at its revision, by later reads and scans', () => {
    const h = new H()
      .put('w', 'a', '0', [0, 1], ok(1))
      .txn('t', { compare: [{ key: 'a', revision: 1 }, { key: 'b', absent: true }], ops: both.ops }, [2, 3], ok(2))
      .get('r', 'b', [4, 5], val('B', 2))
      .scan('r', '', [6, 7], [['a', 'A', 2], ['b', 'B', 2]])
      .txn('t', { compare: [{ key: 'a', value: 'A' }], ops: [{ op: 'delete', key: 'a' }, { op: 'delete', key: 'zz' }] }, [8, 9], ok(3))
      .get('r', 'a', [10, 11], NF);
    expect(checkHistory(h.ops)).toEqual({ ok: true });
  });

  it('check - a transaction whose compare could not hold fails; one answered 409 had no effect', () => {
    const stale = new H().put('w', 'a', '0', [0, 1], ok(1)).put('w', 'a', '1', [2, 3], ok(2)).txn('t', { compare: [{ key: 'a', revision: 1 }], ops: both.ops }, [4, 5], ok(3));
    expect(expectFailure(checkHistory(stale.ops)).key).toBe('a');
    const refused = new H().txn('t', both, [0, 1], CONFLICT).get('r', 'a', [2, 3], val('A', 1));
    expect(expectFailure(checkHistory(refused.ops)).key).toBe('a');
  });

  it('check - a transaction answered 409 with one compare: that compare failed, or the answer was wrong', () => {
    // Revision compares: refused while the key stood at that revision all along is a violation;
    // refused after another write moved it (or when the key never had that revision) is fine.
    const cmp = (c: TxnInput['compare'][number]): TxnInput => ({ compare: [c], ops: both.ops });
    const wronglyRefused = new H().put('w', 'a', '0', [0, 1], ok(1)).txn('t', cmp({ key: 'a', revision: 1 }), [2, 3], CONFLICT);
    expect(expectFailure(checkHistory(wronglyRefused.ops)).key).toBe('a');
    const moved = new H().put('w', 'a', '0', [0, 1], ok(1)).put('w', 'a', '1', [2, 3], ok(2)).txn('t', cmp({ key: 'a', revision: 1 }), [4, 5], CONFLICT);
    expect(checkHistory(moved.ops)).toEqual({ ok: true });
    // Racing the write that moved it: the refusal may fall after it.
    const racing = new H().put('w', 'a', '0', [0, 1], ok(1)).put('w', 'a', '1', [2, 6], ok(2)).txn('t', cmp({ key: 'a', revision: 1 }), [3, 4], CONFLICT);
    expect(checkHistory(racing.ops)).toEqual({ ok: true });
    // `absent`: refused while the key was missing all along is a violation; refused once it exists is fine.
    expect(expectFailure(checkHistory(new H().txn('t', cmp({ key: 'a', absent: true }), [0, 1], CONFLICT).ops)).key).toBe('a');
    expect(checkHistory(new H().put('w', 'a', '0', [0, 1], ok(1)).txn('t', cmp({ key: 'a', absent: true }), [2, 3], CONFLICT).ops)).toEqual({ ok: true });
    // Two compares, and a reply that does not say which one failed: nothing is concluded.
    const two = new H().put('w', 'a', '0', [0, 1], ok(1)).txn('t', { compare: [{ key: 'a', revision: 1 }, { key: 'b', absent: true }], ops: both.ops }, [2, 3], CONFLICT);
    expect(checkHistory(two.ops)).toEqual({ ok: true });
  });

  it('check - a transaction answered 409 naming its first failed compare: the compares before it held, that one did not', () => {
    const compare: TxnInput['compare'] = [{ key: 'a', revision: 1 }, { key: 'b', absent: true }];
    const refused = (failedCompare: number) => new H().put('w', 'a', '0', [0, 1], ok(1)).txn('t', { compare, ops: both.ops }, [2, 3], { status: 'conflict', failedCompare });
    // `a` was at 1 and `b` absent: neither compare failed, whichever the reply names.
    expect(expectFailure(checkHistory(refused(0).ops)).key).toBe('a');
    expect(expectFailure(checkHistory(refused(1).ops)).key).toBe('b');
    // `b` exists: the second failed, and the first held.
    const bExists = (failedCompare: number) => refused(failedCompare).put('w', 'b', '0', [0, 1], ok(2));
    expect(checkHistory(bExists(1).ops)).toEqual({ ok: true });
    // `a` moved to 3 while `b` exists: the first failed, and a reply naming the second claims the first held.
    const aMoved = (failedCompare: number) => bExists(failedCompare).put('w', 'a', '1', [0, 1], ok(3));
    expect(checkHistory(aMoved(0).ops)).toEqual({ ok: true });
    expect(expectFailure(checkHistory(aMoved(1).ops)).key).toBe('a');
  });

  it('check - a scan that shows one key of a transaction and an older revision of another is torn', () => {
    const h = new H().put('w', 'b', 'old', [0, 1], ok(1)).txn('t', both, [2, 5], ok(2)).scan('r', '', [3, 6], [['a', 'A', 2], ['b', 'old', 1]]);
    const f = expectFailure(checkHistory(h.ops));
    expect(f.kind).toBe('torn-transaction');
    expect(f.key).toBe('b');
    // Key by key it passes: each of the scan's reads can be placed on its own side of the transaction.
    const parts = expandMultiKey(h.ops);
    for (const key of ['a', 'b']) expect(checkKeyHistory(parts.filter((op) => op.input.key === key)).result).toBe('ok');
  });
});

