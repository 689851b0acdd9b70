/**
 * Linearizability checker for ZiStore histories.
 *
 * Strategy
 * --------
 * 1. Drop `unavailable` operations (guaranteed no effect) and gets with an
 *    unknown outcome (no effect, nothing observed).
 * 2. Cheap cluster-wide revision checks over acknowledged writes:
 *    revisions are unique, and a write that started after another write
 *    finished has a larger revision.
 * 3. Per key (operations on different keys commute, so a history is
 *    linearizable iff every key's sub-history is), a Wing & Gong style
 *    backtracking search with Lowe's memoisation: the history is a linked
 *    list of call/return events in time order; the search repeatedly picks a
 *    pending call that the model accepts, removes it (and its return) from
 *    the list, and backtracks when it reaches a return whose operation has not
 *    been placed yet. Visited (set of placed operations, model state) pairs
 *    are cached, since the rest of the search depends only on them.
 *
 *    Operations with unknown outcome (status `unknown`, or no reply even if
 *    a status was filled in) have no return event: they may take effect at
 *    any point after their call, or never. The search may place them (with
 *    the effect of succeeding) but is done as soon as every operation with a
 *    known outcome has been placed. Left alone, such operations make the
 *    search enumerate subsets of themselves, so some refinements keep it
 *    tractable (see `searchKey` and `decideKey`): the cache prunes a
 *    configuration when one with the same known ops, fewer optional ops and
 *    a looser revision bound already failed; in a run of consecutive
 *    unknown-outcome placements only the first may be an unconditional
 *    write; and before the unrestricted search, quick searches assume such
 *    ops take effect within a few multiples of the key's longest latency
 *    (a success there is a success, a failure falls through). The option
 *    `maxUnknownDelay` makes such a bound a hard assumption instead.
 * 4. On failure, the smallest failing key (keys are tried smallest first) is
 *    shrunk greedily: chunks, then single operations, are removed as long as
 *    the remainder still fails, so the report shows a small core.
 *
 * Events at equal times are treated as overlapping (calls sort before
 * returns), which errs on the side of accepting a history when clock
 * resolution cannot order two operations.
 */

import type { CheckFailure, CheckOptions, CheckResult, KvInput, KvOutput, Operation } from './history.ts';
import { applyUnknown, covers, describeState, initialState, shapeKey, step } from './kv-model.ts';
import type { KvState } from './kv-model.ts';
import { describeOp, formatInput } from './format.ts';

const DEFAULT_BUDGET_MS = 10_000;
const DEFAULT_SHRINK_BUDGET_MS = 5_000;

/** True when the operation's effect (and reply) is unknown. */
export function hasUnknownOutcome(op: Operation): boolean {
  return op.ret === null || op.output.status === 'unknown';
}

/** A get or a keep-alive: it tells what one key holds and writes nothing. */
const readsOnly = (op: Operation): boolean => op.input.op === 'get' || op.input.op === 'keepalive';

/** A write whose effect does not depend on what the key holds (an expiry does: it deletes one value). */
function unconditionalWrite(op: Operation): boolean {
  return op.input.op !== 'get' && op.input.op !== 'keepalive' && op.input.op !== 'expire' && op.input.ifRevision === undefined;
}

/** Operations the checker actually considers. */
export function relevantOps(ops: readonly Operation[]): Operation[] {
  return ops.filter((op) => {
    if (op.output.status === 'unavailable') return false;
    if (readsOnly(op) && hasUnknownOutcome(op)) return false;
    return true;
  });
}

// ---------------------------------------------------------------------------
// Budget

class Budget {
  steps = 0;
  constructor(
    private readonly deadline: number,
    private readonly maxSteps: number,
    private readonly parent: Budget | null = null,
  ) {}

  /** Count one step; false once the budget is exhausted. */
  tick(): boolean {
    this.steps++;
    if (this.parent !== null) this.parent.steps++;
    if (this.steps > this.maxSteps) return false;
    if ((this.steps & 1023) === 0 && performance.now() > this.deadline) return false;
    return true;
  }

  expired(): boolean {
    return this.steps > this.maxSteps || performance.now() > this.deadline;
  }

  /** A budget limited to `fraction` of what is left of this one; its steps count here too. */
  slice(fraction: number): Budget {
    const now = performance.now();
    const deadline = this.deadline === Infinity ? Infinity : now + Math.max(0, this.deadline - now) * fraction;
    const steps = this.maxSteps === Infinity ? Infinity : Math.floor(Math.max(0, this.maxSteps - this.steps) * fraction);
    return new Budget(deadline, steps, this);
  }
}

// ---------------------------------------------------------------------------
// Per-key search

interface EventNode {
  isCall: boolean;
  /** Index into the key's operation array; -1 for the list head. */
  idx: number;
  time: number;
  /**
   * For a call: its closing event, if any. Known-outcome ops close with their
   * return; unknown-outcome ops only with a finite `maxUnknownDelay`, at
   * call + delay (a deadline: place the op before it or drop it).
   */
  ret: EventNode | null;
  /** For a closing event: its call. */
  call: EventNode | null;
  prev: EventNode | null;
  next: EventNode | null;
}

type SearchOutcome =
  | { kind: 'ok' }
  | { kind: 'fail'; longest: number[] }
  | { kind: 'budget' };

/** Small deterministic PRNG for Zobrist hashing of the placed-operation set. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

function buildEvents(ops: readonly Operation[], unknown: readonly boolean[], maxUnknownDelay: number): EventNode {
  const events: EventNode[] = [];
  ops.forEach((op, idx) => {
    const call: EventNode = { isCall: true, idx, time: op.call, ret: null, call: null, prev: null, next: null };
    events.push(call);
    const end = unknown[idx] ? op.call + maxUnknownDelay : (op.ret as number);
    if (end !== Infinity) {
      const ret: EventNode = { isCall: false, idx, time: end, ret: null, call, prev: null, next: null };
      call.ret = ret;
      events.push(ret);
    }
  });
  events.sort((a, b) => {
    if (a.time !== b.time) return a.time - b.time;
    if (a.isCall !== b.isCall) return a.isCall ? -1 : 1;
    return a.idx - b.idx;
  });
  const head: EventNode = { isCall: false, idx: -1, time: -Infinity, ret: null, call: null, prev: null, next: null };
  let last = head;
  for (const e of events) {
    last.next = e;
    e.prev = last;
    last = e;
  }
  return head;
}

function unlink(e: EventNode): void {
  (e.prev as EventNode).next = e.next;
  if (e.next) e.next.prev = e.prev;
}

function relink(e: EventNode): void {
  (e.prev as EventNode).next = e;
  if (e.next) e.next.prev = e;
}

function lift(call: EventNode): void {
  unlink(call);
  if (call.ret) unlink(call.ret);
}

function unlift(call: EventNode): void {
  if (call.ret) relink(call.ret);
  relink(call);
}

interface Frame {
  call: EventNode;
  prevState: KvState;
  /** Pass in which the call was found, to resume the scan after backtracking. */
  pass: 0 | 1;
  /** True when the op was dropped at its deadline rather than placed. */
  dropped: boolean;
}

/**
 * Search for a linearization of one key's operations.
 *
 * The scan walks the event list from the head. Every call before the first
 * pending closing event is a candidate; placing one (the model accepts it
 * and the configuration is new) removes its events and restarts the scan.
 * Reaching a return means some op that had to be placed was not: backtrack.
 * Reaching the deadline of an unknown-outcome op means it can no longer
 * take effect: drop it (a forced move, so backtracking skips over it).
 */
function searchKey(ops: readonly Operation[], budget: Budget, maxUnknownDelay = Infinity): SearchOutcome {
  const n = ops.length;
  const unknown = ops.map(hasUnknownOutcome);
  let remainingKnown = unknown.filter((u) => !u).length;
  if (remainingKnown === 0) return { kind: 'ok' };

  const head = buildEvents(ops, unknown, maxUnknownDelay);
  const words = (n + 31) >>> 5;
  /** Operations removed from the list: placed, or dropped at their deadline. */
  const bits = new Uint32Array(words);
  /** Which indices are known-outcome operations. */
  const knownMask = new Uint32Array(words);
  unknown.forEach((u, i) => {
    if (!u) knownMask[i >>> 5] = (knownMask[i >>> 5] as number) | (1 << (i & 31));
  });
  // Zobrist hash over the placed *known* operations only, see `remember`.
  const rnd = mulberry32(0x5eed);
  const z1 = Array.from({ length: n }, rnd);
  const z2 = Array.from({ length: n }, rnd);
  let h1 = 0;
  let h2 = 0;
  const valueIds = new Map<string, number>();
  const valueId = (v: string): number => {
    let id = valueIds.get(v);
    if (id === undefined) {
      id = valueIds.size;
      valueIds.set(v, id);
    }
    return id;
  };
  /**
   * Explored configurations. A configuration is (placed known-outcome ops K,
   * removed unknown-outcome ops U, model state s, whether the last placed op
   * had unknown outcome). A stored (K, U', s', c) that failed rules out
   * (K, U, s, c) when U' ⊆ U and s' covers s: the ops in U \ U' are optional
   * and still pending there, and a looser revision bound accepts everything
   * a tighter one does, so any completion of the latter completes the former.
   * Entries are bucketed by (hash of K, shape of s, c); the search is depth
   * first, so an entry that is still on the current path is covered by the
   * exploration in progress.
   */
  const cache = new Map<string, { bits: Uint32Array; state: KvState }[]>();
  const dominated = (stored: Uint32Array): boolean => {
    for (let w = 0; w < words; w++) {
      const cur = bits[w] as number;
      const old = stored[w] as number;
      // Nothing removed in `stored` may be pending now, and no known op may be extra now.
      if ((old & ~cur) !== 0 || (cur & ~old & (knownMask[w] as number)) !== 0) return false;
    }
    return true;
  };
  /** Record the current configuration; false when an explored one dominates it. */
  const remember = (s: KvState, chained: boolean): boolean => {
    const key = `${h1}:${h2}:${shapeKey(s, valueId)}:${chained ? 1 : 0}`;
    const seen = cache.get(key);
    if (seen === undefined) {
      cache.set(key, [{ bits: bits.slice(), state: s }]);
      return true;
    }
    for (const e of seen) if (covers(e.state, s) && dominated(e.bits)) return false;
    seen.push({ bits: bits.slice(), state: s });
    return true;
  };
  const flip = (idx: number): void => {
    bits[idx >>> 5] = (bits[idx >>> 5] as number) ^ (1 << (idx & 31));
    if (!unknown[idx]) {
      h1 = (h1 ^ (z1[idx] as number)) >>> 0;
      h2 = (h2 ^ (z2[idx] as number)) >>> 0;
    }
  };

  // Candidates before the first pending closing event are tried in two
  // passes: known-outcome calls first, then unknown-outcome ones. Any order
  // is complete; this one reaches configurations with few optional ops
  // placed first, which makes the dominance pruning above effective.
  //
  // Runs of consecutive unknown-outcome placements are further restricted:
  // only the first op of a run may be unconditional. An unconditional put
  // (or delete) later in a run overwrites whatever the ops before it in the
  // run did, leaving only a tighter revision bound, so dropping that prefix
  // (and, for a delete of a key the prefix created, the delete too) gives a
  // linearization that is at least as permissive. Without this rule the
  // search would enumerate every subset of pending unknown-outcome writes.
  const stack: Frame[] = [];
  let state = initialState;
  let longest: number[] = [];
  let longestKnown = -1;
  let placedKnown = 0;
  let entry = head.next;
  let pass: 0 | 1 = 0;
  /** Whether the last placed (not dropped) op had unknown outcome. */
  let chained = false;
  const chainedAt = (): boolean => {
    for (let i = stack.length - 1; i >= 0; i--) {
      const f = stack[i] as Frame;
      if (!f.dropped) return unknown[f.call.idx] as boolean;
    }
    return false;
  };

  for (;;) {
    if (remainingKnown === 0) return { kind: 'ok' };
    if (!budget.tick()) return { kind: 'budget' };
    if (entry !== null && entry.isCall) {
      const idx = entry.idx;
      const op = ops[idx] as Operation;
      if (unknown[idx] !== (pass === 1) || (pass === 1 && chained && unconditionalWrite(op))) {
        entry = entry.next;
        continue;
      }
      let next: KvState | null;
      if (unknown[idx]) {
        next = applyUnknown(state, op.input);
      } else {
        const r = step(state, op.input, op.output);
        next = r.ok ? r.state : null;
      }
      if (next !== null) {
        flip(idx);
        if (remember(next, unknown[idx] as boolean)) {
          stack.push({ call: entry, prevState: state, pass, dropped: false });
          state = next;
          chained = unknown[idx] as boolean;
          lift(entry);
          if (!unknown[idx]) {
            remainingKnown--;
            placedKnown++;
            if (placedKnown > longestKnown) {
              longestKnown = placedKnown;
              longest = stack.filter((f) => !f.dropped).map((f) => f.call.idx);
            }
          }
          entry = head.next;
          pass = 0;
          continue;
        }
        flip(idx);
      }
      entry = entry.next;
      continue;
    }
    // Reached the first pending closing event (or, defensively, the end).
    if (pass === 0) {
      pass = 1;
      entry = head.next;
      continue;
    }
    if (entry !== null && entry.call !== null && unknown[entry.idx]) {
      // Deadline of an unknown-outcome op that was not placed: it never happened.
      const call = entry.call;
      flip(call.idx);
      stack.push({ call, prevState: state, pass, dropped: true });
      lift(call);
      entry = head.next;
      pass = 0;
      continue;
    }
    // Every candidate failed: backtrack past any forced drops.
    let frame = stack.pop();
    while (frame !== undefined && frame.dropped) {
      unlift(frame.call);
      flip(frame.call.idx);
      frame = stack.pop();
    }
    if (frame === undefined) return { kind: 'fail', longest };
    const call = frame.call;
    unlift(call);
    flip(call.idx);
    state = frame.prevState;
    if (!unknown[call.idx]) {
      remainingKnown++;
      placedKnown--;
    }
    chained = chainedAt();
    entry = call.next;
    pass = frame.pass;
  }
}

/**
 * Decide one key. With an unbounded `maxUnknownDelay` and unknown-outcome ops
 * present, first try cheap searches that assume such ops take effect within a
 * few multiples of the key's longest observed latency. Those searches only
 * restrict the linearizations allowed, so success is final; failure is not,
 * and the unrestricted search runs on what is left of the budget.
 */
function decideKey(ops: readonly Operation[], budget: Budget, maxUnknownDelay: number): SearchOutcome {
  if (maxUnknownDelay !== Infinity || !ops.some(hasUnknownOutcome)) return searchKey(ops, budget, maxUnknownDelay);
  let latency = 0;
  for (const op of ops) if (!hasUnknownOutcome(op)) latency = Math.max(latency, (op.ret as number) - op.call);
  for (const factor of [4, 64]) {
    const r = searchKey(ops, budget.slice(0.25), latency * factor);
    if (r.kind === 'ok') return r;
  }
  return searchKey(ops, budget, Infinity);
}

/**
 * Where the search got stuck: the model state after the longest partial
 * linearization, and the blocking operation: among the known-outcome
 * operations missing from it, the one that returns first (its return is
 * where the search had to give up).
 */
function stuckAt(ops: readonly Operation[], longest: readonly number[]): { state: KvState; blocker: Operation | null } {
  let state = initialState;
  for (const idx of longest) {
    const op = ops[idx] as Operation;
    if (hasUnknownOutcome(op)) {
      state = applyUnknown(state, op.input) ?? state;
    } else {
      const r = step(state, op.input, op.output);
      if (r.ok) state = r.state;
    }
  }
  const placed = new Set(longest);
  let blocker: Operation | null = null;
  ops.forEach((op, idx) => {
    if (placed.has(idx) || hasUnknownOutcome(op)) return;
    if (blocker === null || (op.ret as number) < (blocker.ret as number)) blocker = op;
  });
  return { state, blocker };
}

/** Explain a failure from the longest partial linearization. */
function explain(key: string, ops: readonly Operation[], longest: readonly number[]): string {
  const { state, blocker } = stuckAt(ops, longest);
  const where =
    longest.length === 0
      ? `in the initial state ${describeState(key, state)}`
      : `after [${longest.map((i) => `op${(ops[i] as Operation).id}`).join(', ')}] the model has ${describeState(key, state)}`;
  if (blocker === null) return `no linearization: ${where}`;
  const r = step(state, blocker.input, blocker.output);
  if (!r.ok) return `no linearization: ${where} but op${blocker.id} ${r.reason}`;
  return `no linearization: ${where}, and no order of the pending operations lets op${blocker.id} ${describeOp(blocker)} be placed before it returns`;
}

// ---------------------------------------------------------------------------
// Cluster-wide revision checks

interface AckedWrite {
  op: Operation;
  rev: number;
  ret: number;
}

function ackedWrites(ops: readonly Operation[]): AckedWrite[] {
  const out: AckedWrite[] = [];
  for (const op of ops) {
    if (readsOnly(op) || op.input.op === 'scan' || op.ret === null || op.output.status !== 'ok') continue;
    // A transaction that wrote nothing answers with no revision of its own.
    const rev = op.output.revision;
    if (typeof rev !== 'number') continue;
    out.push({ op, rev, ret: op.ret });
  }
  return out;
}

function byCall(a: Operation, b: Operation): number {
  return a.call - b.call || a.id - b.id;
}

function revisionFailure(
  kind: 'duplicate-revision' | 'revision-order',
  a: Operation,
  b: Operation,
  explanation: string,
  ops: readonly Operation[],
): CheckFailure {
  const key = a.input.key;
  const keyOpCount = ops.filter((o) => o.input.key === key).length;
  return {
    ok: false,
    kind,
    key,
    ops: [a, b].sort(byCall),
    explanation,
    keyOpCount,
    totalOpCount: ops.length,
    shrunk: keyOpCount > 2,
  };
}

/** Unique revisions and real-time order of revisions over acknowledged writes. */
export function checkRevisions(ops: readonly Operation[]): CheckFailure | null {
  const writes = ackedWrites(ops);
  const byRev = new Map<number, Operation>();
  for (const w of writes) {
    const other = byRev.get(w.rev);
    if (other !== undefined) {
      const [a, b] = [other, w.op].sort(byCall) as [Operation, Operation];
      return revisionFailure(
        'duplicate-revision',
        a,
        b,
        `duplicate revision: op${a.id} ${formatInput(a.input)} and op${b.id} ${formatInput(b.input)} were both acknowledged with rev=${w.rev}`,
        ops,
      );
    }
    byRev.set(w.rev, w.op);
  }
  // Sweep writes in call order; `best` is the highest-revision write that
  // returned strictly before the current write was called.
  const calls = [...writes].sort((a, b) => byCall(a.op, b.op));
  const rets = [...writes].sort((a, b) => a.ret - b.ret || a.op.id - b.op.id);
  let j = 0;
  let best: AckedWrite | null = null;
  for (const w of calls) {
    while (j < rets.length && (rets[j] as AckedWrite).ret < w.op.call) {
      const r = rets[j] as AckedWrite;
      if (best === null || r.rev > best.rev) best = r;
      j++;
    }
    if (best !== null && best.rev >= w.rev) {
      const a = best.op;
      const b = w.op;
      return revisionFailure(
        'revision-order',
        a,
        b,
        `revision went backwards: op${a.id} ${formatInput(a.input)} got rev=${best.rev} and returned at ${fmtTime(best.ret)}, ` +
          `but op${b.id} ${formatInput(b.input)}, called later at ${fmtTime(b.call)}, got rev=${w.rev}`,
        ops,
      );
    }
  }
  return null;
}

function fmtTime(t: number): string {
  return t.toFixed(1);
}

// ---------------------------------------------------------------------------
// Shrinking

/**
 * Greedy shrinking: remove chunks of operations (halving the chunk size down
 * to single operations) while the remainder still fails *in the same way*.
 *
 * Any failing subset would be a valid counterexample, but an unconstrained
 * shrinker tends to manufacture a different, less useful failure (drop the
 * put and a stale read becomes "read of a value nobody wrote"; drop the puts
 * before a delete and it becomes "delete of a missing key"). So a candidate
 * is accepted only if
 * - the search still gets stuck on the same operation, with the key
 *   existing (or missing) in the model at that point, as originally, and
 * - every successful read still has at least one write of the value it read
 *   (when the full history has one).
 */
function shrink(
  ops: Operation[],
  target: { blocker: Operation | null; state: KvState },
  budget: Budget,
  maxUnknownDelay: number,
): Operation[] {
  const written = new Set<string>();
  for (const op of ops) if (op.input.op === 'put') written.add(op.input.value);
  const explained = (cand: Operation[]): boolean => {
    const have = new Set<string>();
    for (const op of cand) if (op.input.op === 'put') have.add(op.input.value);
    for (const op of cand) {
      if (op.input.op !== 'get' || op.output.status !== 'ok') continue;
      const v = op.output.value;
      if (v !== undefined && written.has(v) && !have.has(v)) return false;
    }
    return true;
  };
  const sameFailure = (cand: Operation[], longest: number[]): boolean => {
    if (target.blocker === null) return true;
    const at = stuckAt(cand, longest);
    return at.blocker?.id === target.blocker.id && at.state.exists === target.state.exists;
  };
  const fails = (cand: Operation[]): boolean => {
    if (budget.expired() || !explained(cand)) return false;
    const r = decideKey(cand, budget, maxUnknownDelay);
    return r.kind === 'fail' && sameFailure(cand, r.longest);
  };
  let cur = ops;
  let chunk = Math.max(1, Math.floor(cur.length / 2));
  for (;;) {
    let changed = false;
    let i = 0;
    while (i < cur.length && !budget.expired()) {
      const cand = cur.slice(0, i).concat(cur.slice(i + chunk));
      if (cand.length > 0 && fails(cand)) {
        cur = cand;
        changed = true;
      } else {
        i += chunk;
      }
    }
    if (budget.expired()) break;
    if (chunk > 1) chunk = Math.max(1, Math.floor(chunk / 2));
    else if (!changed) break;
  }
  return cur;
}

// ---------------------------------------------------------------------------
// Entry points

export interface KeyCheck {
  result: 'ok' | 'fail' | 'budget';
  explanation?: string;
  linearized?: Operation[];
}

/** Check one key's operations (all must have the same key). Exposed for tests and tools. */
export function checkKeyHistory(ops: readonly Operation[], opts: CheckOptions = {}): KeyCheck {
  validate(ops);
  const budget = new Budget(performance.now() + (opts.budgetMs ?? DEFAULT_BUDGET_MS), opts.maxSteps ?? Infinity);
  const sorted = relevantOps(ops).sort(byCall);
  const r = decideKey(sorted, budget, opts.maxUnknownDelay ?? Infinity);
  if (r.kind !== 'fail') return { result: r.kind };
  const key = sorted[0]?.input.key ?? '';
  return {
    result: 'fail',
    explanation: explain(key, sorted, r.longest),
    linearized: r.longest.map((i) => sorted[i] as Operation),
  };
}

/**
 * A scan shows the store at one point. Once it shows a write of a transaction (its revision), that
 * point is after the transaction, when every key the transaction wrote is at its revision or
 * later, or gone: a key of it shown at an older revision is a torn transaction. (Absence proves
 * nothing: a later delete may explain it.)
 */
export function checkTornTransactions(history: readonly Operation[]): CheckFailure | null {
  const txns = new Map<number, Operation & { input: { op: 'txn' } }>();
  for (const op of history) {
    if (op.input.op === 'txn' && op.output.status === 'ok' && op.output.revision !== undefined) txns.set(op.output.revision, op as Operation & { input: { op: 'txn' } });
  }
  if (txns.size === 0) return null;
  for (const scan of history) {
    if (scan.input.op !== 'scan' || scan.output.status !== 'ok') continue;
    const shown = new Map((scan.output.entries ?? []).map((e) => [e.key, e.revision]));
    for (const rev of new Set(shown.values())) {
      const txn = txns.get(rev);
      if (txn === undefined) continue;
      for (const o of txn.input.txn.ops) {
        const seen = shown.get(o.key);
        if (seen === undefined || seen >= rev) continue;
        return {
          ok: false,
          kind: 'torn-transaction',
          key: o.key,
          ops: [txn, scan].sort(byCall),
          explanation: `op${scan.id} ${formatInput(scan.input)} shows a write of op${txn.id} ${formatInput(txn.input)} (rev=${rev}) but ${o.key} at rev=${seen}, older than that transaction`,
          keyOpCount: 2,
          totalOpCount: history.length,
          shrunk: false,
        };
      }
    }
  }
  return null;
}

/** Each transaction as single-key operations (below), then each scan as gets (expandScans). */
export function expandMultiKey(history: readonly Operation[]): Operation[] {
  return expandScans(expandTxns(history));
}

/**
 * Each transaction as single-key operations with its interval. Answered: a put per put, at the
 * transaction's revision; a delete per delete whose effect is unknown (a delete of a missing key
 * writes nothing); a get per compare (a revision, not-found, or a value). 409: no effect; the
 * compares before the first that failed (the reply names it; with one compare, that one) held, as
 * above, and that one did not (a conflicting conditional put for a revision, a get that found the
 * key for `absent`; a failed value compare has no such operation). 503: no effect, left out.
 * Unknown outcome: its writes with unknown outcomes. What this cannot see (all writes at one
 * point) checkTornTransactions looks at.
 */
export function expandTxns(history: readonly Operation[]): Operation[] {
  if (!history.some((op) => op.input.op === 'txn')) return [...history];
  let nextId = Math.max(...history.map((op) => op.id)) + 1;
  const out: Operation[] = [];
  for (const op of history) {
    if (op.input.op !== 'txn') {
      out.push(op);
      continue;
    }
    const part = (input: KvInput, output: KvOutput): Operation => ({ id: nextId++, client: `${op.client} (txn op${op.id})`, input, call: op.call, ret: op.ret, output });
    const { compare, ops } = op.input.txn;
    const status = op.output.status;
    const held = (c: (typeof compare)[number]) =>
      part({ op: 'get', key: c.key }, 'revision' in c ? { status: 'ok', revision: c.revision } : 'absent' in c ? { status: 'not-found' } : { status: 'ok', value: c.value });
    const failed = op.output.status === 'conflict' ? (op.output.failedCompare ?? (compare.length === 1 ? 0 : undefined)) : undefined;
    if (failed !== undefined && failed < compare.length) {
      for (const c of compare.slice(0, failed)) out.push(held(c));
      const c = compare[failed]!;
      // The model's revision 0 stands for a missing key; a transaction's compare names a revision of a key that exists.
      if ('revision' in c && c.revision > 0) out.push(part({ op: 'put', key: c.key, ifRevision: c.revision, value: '' }, { status: 'conflict' }));
      else if ('absent' in c) out.push(part({ op: 'get', key: c.key }, { status: 'ok' }));
    }
    if (status === 'ok') for (const c of compare) out.push(held(c));
    if (status !== 'ok' && status !== 'unknown') continue;
    for (const o of ops) {
      if (o.op === 'put') out.push(part({ op: 'put', key: o.key, value: o.value }, status === 'ok' ? { status: 'ok', revision: op.output.revision } : { status: 'unknown' }));
      else out.push(part({ op: 'delete', key: o.key }, { status: 'unknown' }));
    }
  }
  return out;
}

/**
 * Each answered scan as one get per key of its range: the value it returned, or not-found for a
 * key it did not return (every key any operation of the history names counts). The per-key
 * search then checks each against that key's history. What ties the keys to one point in time:
 * the scan's point is at or after the call of every write it observed (a write is seen only once
 * it took effect), so each get is called no earlier than the latest of those calls, never later
 * than the scan returned. A scan that showed a write it could not have seen yet then fails on
 * the key it missed. Scans that got no answer had no effect and are left out.
 */
export function expandScans(history: readonly Operation[]): Operation[] {
  if (!history.some((op) => op.input.op === 'scan')) return [...history];
  const writeCalls = new Map<number, number>();
  const keys = new Set<string>();
  let nextId = 0;
  for (const op of history) {
    nextId = Math.max(nextId, op.id + 1);
    if (op.input.op === 'scan') continue;
    keys.add(op.input.key);
    if (!readsOnly(op) && op.output.status === 'ok' && op.output.revision !== undefined) writeCalls.set(op.output.revision, op.call);
  }
  const out: Operation[] = [];
  for (const op of history) {
    if (op.input.op !== 'scan') {
      out.push(op);
      continue;
    }
    if (op.output.status !== 'ok' || op.ret === null) continue;
    const prefix = op.input.key;
    const entries = op.output.entries ?? [];
    let call = op.call;
    for (const e of entries) call = Math.max(call, writeCalls.get(e.revision) ?? call);
    call = Math.min(call, op.ret);
    const returned = new Map(entries.map((e) => [e.key, e]));
    for (const key of new Set([...keys, ...returned.keys()])) {
      if (!key.startsWith(prefix)) continue;
      const e = returned.get(key);
      out.push({
        id: nextId++,
        client: `${op.client} (scan op${op.id})`,
        input: { op: 'get', key },
        call,
        ret: op.ret,
        output: e === undefined ? { status: 'not-found' } : { status: 'ok', value: e.value, revision: e.revision },
      });
    }
  }
  return out;
}

/**
 * Each put with a time to live that may have taken effect brings the cluster's delete of its
 * value: from `call + ttlMs` on (the deadline runs from when the leader commits the write), at
 * any time or never (a newer write, a keep-alive, or a leader change, which starts the time again,
 * may put it off). Values are unique per put, so the expiry names the write it ends. When it
 * must have happened is checkExpiredReads' business.
 */
export function expandExpiries(history: readonly Operation[]): Operation[] {
  let nextId = Math.max(0, ...history.map((op) => op.id)) + 1;
  const out = [...history];
  for (const op of history) {
    if (op.input.op !== 'put' || op.input.ttlMs === undefined || op.output.status === 'unavailable' || op.output.status === 'conflict') continue;
    out.push({ id: nextId++, client: 'expiry', input: { op: 'expire', key: op.input.key, value: op.input.value }, call: op.call + op.input.ttlMs, ret: null, output: { status: 'unknown' } });
  }
  return out;
}

/**
 * No read returns a value past its time to live (PROTOCOL.md "Expiring keys"): a read that began
 * more than `ttlMs` after its acknowledged put returned, after the last leader takeover between the
 * put's call and the read's return (a new leader gives the key its whole time again), and after
 * the last keep-alive of that value before the read returned, must not see that value.
 * `takeovers`: when a leader began to serve, each time one did, give or take `slackMs`.
 */
export function checkExpiredReads(history: readonly Operation[], takeovers: readonly number[], slackMs = 0): CheckFailure | null {
  /** Acknowledged puts with a time to live, by key and value (values are unique per put). */
  const puts = new Map<string, { op: Operation; ret: number; ttl: number; rev: number | undefined }>();
  for (const op of history) {
    if (op.input.op !== 'put' || op.input.ttlMs === undefined || op.output.status !== 'ok' || op.ret === null) continue;
    puts.set(`${op.input.key}=${op.input.value}`, { op, ret: op.ret, ttl: op.input.ttlMs, rev: op.output.revision });
  }
  if (puts.size === 0) return null;
  const sorted = [...takeovers].sort((a, b) => a - b);
  const keepAlives = new Map<string, Operation[]>();
  for (const op of history) {
    if (op.input.op !== 'keepalive' || !(op.output.status === 'ok' || hasUnknownOutcome(op))) continue;
    const ofKey = keepAlives.get(op.input.key);
    if (ofKey === undefined) keepAlives.set(op.input.key, [op]);
    else ofKey.push(op);
  }
  const reads = (op: Operation): { key: string; value: string }[] => {
    if (op.output.status !== 'ok') return [];
    if (op.input.op === 'get' && op.output.value !== undefined) return [{ key: op.input.key, value: op.output.value }];
    if (op.input.op === 'scan') return (op.output.entries ?? []).map((e) => ({ key: e.key, value: e.value }));
    return [];
  };
  for (const read of history) {
    const readEnd = read.ret ?? Infinity;
    for (const seen of reads(read)) {
      const put = puts.get(`${seen.key}=${seen.value}`);
      if (put === undefined) continue;
      let due = put.ret + put.ttl;
      // A takeover before the read returned may have restarted the time (the read may take effect that late).
      for (const t of sorted) if (t + slackMs >= put.op.call && t - slackMs <= readEnd) due = Math.max(due, t + slackMs + put.ttl);
      // So may a keep-alive of this value; one whose outcome is unknown, at any time.
      let unbounded = false;
      for (const k of keepAlives.get(seen.key) ?? []) {
        if (k.call > readEnd || k.call < put.op.call) continue;
        if (hasUnknownOutcome(k)) unbounded = true;
        else if (k.output.status === 'ok' && (k.output.revision === undefined || put.rev === undefined || k.output.revision === put.rev)) due = Math.max(due, k.ret! + put.ttl);
      }
      if (unbounded || read.call <= due) continue;
      const keyOpCount = history.filter((o) => o.input.key === seen.key).length;
      return {
        ok: false,
        kind: 'expired-read',
        key: seen.key,
        ops: [put.op, read],
        explanation:
          `op${read.id} ${formatInput(read.input)}, called at ${fmtTime(read.call)}, saw ${seen.key}=${JSON.stringify(seen.value)} past its time to live: ` +
          `op${put.op.id} put it with ttl=${put.ttl} ms, acknowledged at ${fmtTime(put.ret)}; the last leader takeover or keep-alive that restarted it left it until ${fmtTime(due)}`,
        keyOpCount,
        totalOpCount: history.length,
        shrunk: keyOpCount > 2,
      };
    }
  }
  return null;
}

/** Reject malformed histories up front rather than report nonsense. */
function validate(history: readonly Operation[]): void {
  for (const op of history) {
    if (!Number.isFinite(op.call)) throw new RangeError(`op${op.id}: call time must be a finite number`);
    if (op.ret !== null && !(op.ret >= op.call)) throw new RangeError(`op${op.id}: ret (${op.ret}) precedes call (${op.call})`);
  }
}

/**
 * Check a history for linearizability against the key-value model.
 * Returns `{ ok: true }`, a failure with a small explained counterexample, or
 * `{ ok: 'unknown' }` if the search budget ran out before a verdict.
 */
export function checkHistory(history: readonly Operation[], opts: CheckOptions = {}): CheckResult {
  validate(history);
  // Revisions are checked before transactions are split: all of one transaction's writes share one.
  const revFailure = checkRevisions(relevantOps(history)) ?? checkTornTransactions(history);
  if (revFailure !== null) return revFailure;
  const expired = opts.takeovers === undefined ? null : checkExpiredReads(history, opts.takeovers, opts.takeoverSlackMs);
  if (expired !== null) return expired;
  const ops = relevantOps(expandExpiries(expandMultiKey(history)));
  const budget = new Budget(performance.now() + (opts.budgetMs ?? DEFAULT_BUDGET_MS), opts.maxSteps ?? Infinity);

  const delay = opts.maxUnknownDelay ?? Infinity;
  const shrinkMs = opts.shrinkBudgetMs ?? DEFAULT_SHRINK_BUDGET_MS;

  const byKey = new Map<string, Operation[]>();
  for (const op of ops) {
    let list = byKey.get(op.input.key);
    if (list === undefined) {
      list = [];
      byKey.set(op.input.key, list);
    }
    list.push(op);
  }
  // Smallest keys first: the first failure found is the smallest failing key.
  const keys = [...byKey.entries()].sort((a, b) => a[1].length - b[1].length || (a[0] < b[0] ? -1 : 1));

  for (const [key, list] of keys) {
    list.sort(byCall);
    const r = decideKey(list, budget, delay);
    if (r.kind === 'ok') continue;
    // The budget is shared, so once it is spent no further key can be decided.
    if (r.kind === 'budget') return { ok: 'unknown', reason: 'budget', key };
    let core = list;
    if (opts.shrink !== false) {
      const shrinkBudget = new Budget(performance.now() + shrinkMs, Infinity);
      core = shrink(list, stuckAt(list, r.longest), shrinkBudget, delay);
    }
    // Re-run on the core for an explanation that matches what is shown.
    const final = core === list ? r : decideKey(core, new Budget(performance.now() + shrinkMs, Infinity), delay);
    const longest = final.kind === 'fail' ? final.longest : r.longest;
    const shown = final.kind === 'fail' ? core : list;
    return {
      ok: false,
      kind: 'not-linearizable',
      key,
      ops: shown,
      explanation: explain(key, shown, longest),
      keyOpCount: list.length,
      totalOpCount: ops.length,
      shrunk: shown.length < list.length,
      linearized: longest.map((i) => shown[i] as Operation),
    };
  }
  return { ok: true };
}
