/**
 * Sequential specification of one key of the store.
 *
 * The checker searches for an order of a key's operations that this model
 * accepts, so everything here is about a single key (operations on different
 * keys are independent; cluster-wide revision properties are checked
 * separately in linearizability.ts).
 *
 * Every key starts out missing: histories must be recorded against an empty
 * store or use keys that nothing else wrote before.
 *
 * ## Revisions
 *
 * Every successful put or delete gets a fresh revision from one cluster-wide,
 * growing counter. Writes to *other* keys consume revisions too, so within a
 * key revisions are strictly increasing but not contiguous. The model
 * therefore never predicts a revision, it only constrains it:
 *
 * - `rev` with `exact: true` is the revision of the last write to this key
 *   (0 for a key that was never written).
 * - `rev` with `exact: false` means "some revision >= rev". This happens after
 *   a write whose revision was not observed: an operation with unknown outcome
 *   that the search decided took effect, or an acknowledged write whose reply
 *   carried no revision. The bound is the smallest legal value: one more than
 *   the previous (exact or lower-bound) revision.
 *
 * A later observation pins an inexact revision down: a get returning
 * revision r (r must be >= the bound) or a conditional write succeeding with
 * ifRevision r. A conditional write that *conflicts* while the revision is
 * inexact only tells us "rev != r"; the model does not track exclusions and
 * keeps the bound, which can only make the checker more permissive, never
 * produce a false alarm.
 *
 * When the key does not exist, `rev` still remembers the last write (the
 * delete), so a later put must get a larger revision; for ifRevision
 * comparisons a missing key counts as revision 0.
 *
 * ## Status codes
 *
 * - put: ok | conflict (only when conditional and the condition fails).
 * - delete: ok (key exists, condition holds) | not-found (key missing) |
 *   conflict (key exists, condition fails). A *conditional* delete of a
 *   missing key may answer either not-found or conflict: both leave the key
 *   alone and the contract does not say which check comes first.
 * - get: ok with value and revision | not-found.
 * - A reply without a revision (or a get ok without a value) is accepted as
 *   "not observed" for that field.
 */

import type { KvInput, KvOutput } from './history.ts';

export interface KvState {
  readonly exists: boolean;
  /** Current value; null when the key does not exist. */
  readonly value: string | null;
  /** Revision of the last write (exact) or a lower bound on it. */
  readonly rev: number;
  readonly exact: boolean;
  /** The value was put with a time to live (a keep-alive of it succeeds). Values are unique per put, so the value tells it too. */
  readonly ttl?: boolean;
}

export const initialState: KvState = { exists: false, value: null, rev: 0, exact: true };

/** Result of applying one operation: the next state, or why it cannot happen now. */
export type StepResult = { ok: true; state: KvState } | { ok: false; reason: string };

type Condition = { kind: 'match'; state: KvState } | { kind: 'mismatch' } | { kind: 'maybe'; matched: KvState };

function checkCondition(s: KvState, ifRevision: number | undefined): Condition {
  if (ifRevision === undefined) return { kind: 'match', state: s };
  if (ifRevision === 0) return s.exists ? { kind: 'mismatch' } : { kind: 'match', state: s };
  if (!s.exists) return { kind: 'mismatch' };
  if (s.exact) return s.rev === ifRevision ? { kind: 'match', state: s } : { kind: 'mismatch' };
  if (ifRevision < s.rev) return { kind: 'mismatch' };
  // The revision is only known to be >= s.rev: it may or may not be ifRevision.
  return { kind: 'maybe', matched: { ...s, rev: ifRevision, exact: true } };
}

/** State after a write that took effect, given the (possibly unobserved) revision it got. */
function afterWrite(prev: KvState, exists: boolean, value: string | null, revision: number | undefined, ttl = false): StepResult {
  const minNext = prev.rev + 1;
  const withTtl = ttl ? { ttl: true } : {};
  if (revision === undefined) return { ok: true, state: { exists, value, rev: minNext, exact: false, ...withTtl } };
  if (revision < minNext) {
    return {
      ok: false,
      reason: `got rev=${revision}, which is not greater than the key's previous revision ${prev.exact ? '' : '>='}${prev.rev}`,
    };
  }
  return { ok: true, state: { exists, value, rev: revision, exact: true, ...withTtl } };
}

function condText(ifRevision: number | undefined): string {
  return ifRevision === undefined ? '' : ` (if=${ifRevision})`;
}

/** Apply an operation whose output is known. */
export function step(s: KvState, input: KvInput, output: KvOutput): StepResult {
  switch (input.op) {
    case 'get': {
      if (output.status === 'not-found') {
        return s.exists ? { ok: false, reason: 'get returned not-found' } : { ok: true, state: s };
      }
      if (output.status !== 'ok') return { ok: false, reason: `get returned ${output.status}, which a get cannot return` };
      const seen = describeRead(output.value, output.revision);
      if (!s.exists) return { ok: false, reason: `get returned ${seen}` };
      if (output.value !== undefined && output.value !== s.value) return { ok: false, reason: `get returned ${seen}` };
      const r = output.revision;
      if (r === undefined) return { ok: true, state: s };
      if (s.exact) return r === s.rev ? { ok: true, state: s } : { ok: false, reason: `get returned ${seen}` };
      if (r < s.rev) return { ok: false, reason: `get returned ${seen}` };
      return { ok: true, state: { ...s, rev: r, exact: true } };
    }
    case 'put': {
      const cond = checkCondition(s, input.ifRevision);
      const what = `put${condText(input.ifRevision)}`;
      if (output.status === 'ok') {
        if (cond.kind === 'mismatch') return { ok: false, reason: `${what} succeeded although the revision did not match` };
        const base = cond.kind === 'match' ? cond.state : cond.matched;
        const next = afterWrite(base, true, input.value, output.revision, input.ttlMs !== undefined);
        return next.ok ? next : { ok: false, reason: `${what} ${next.reason}` };
      }
      if (output.status === 'conflict') {
        if (input.ifRevision === undefined) return { ok: false, reason: 'unconditional put returned conflict' };
        if (cond.kind === 'match') return { ok: false, reason: `${what} returned conflict although the revision matched` };
        return { ok: true, state: s };
      }
      return { ok: false, reason: `put returned ${output.status}, which a put cannot return` };
    }
    case 'delete': {
      const what = `delete${condText(input.ifRevision)}`;
      if (output.status === 'not-found') {
        return s.exists ? { ok: false, reason: `${what} returned not-found although the key exists` } : { ok: true, state: s };
      }
      if (output.status === 'conflict') {
        if (input.ifRevision === undefined) return { ok: false, reason: 'unconditional delete returned conflict' };
        if (!s.exists) return { ok: true, state: s };
        const cond = checkCondition(s, input.ifRevision);
        if (cond.kind === 'match') return { ok: false, reason: `${what} returned conflict although the revision matched` };
        return { ok: true, state: s };
      }
      if (output.status === 'ok') {
        if (!s.exists) return { ok: false, reason: `${what} returned ok although the key does not exist` };
        const cond = checkCondition(s, input.ifRevision);
        if (cond.kind === 'mismatch') return { ok: false, reason: `${what} succeeded although the revision did not match` };
        const base = cond.kind === 'match' ? cond.state : cond.matched;
        const next = afterWrite(base, false, null, output.revision);
        return next.ok ? next : { ok: false, reason: `${what} ${next.reason}` };
      }
      return { ok: false, reason: `delete returned ${output.status}, which a delete cannot return` };
    }
    case 'scan':
    case 'txn':
      return { ok: false, reason: `a ${input.op} must be split into single-key operations first (expandMultiKey)` };
    case 'expire':
      return { ok: false, reason: 'an expiry has no reply: its outcome is always unknown' };
    case 'keepalive': {
      // Writes nothing: it tells what the key holds, as a get without the value.
      if (output.status === 'not-found') return s.exists ? { ok: false, reason: 'keepalive returned not-found although the key exists' } : { ok: true, state: s };
      if (output.status === 'no-ttl') return s.exists && s.ttl !== true ? { ok: true, state: s } : { ok: false, reason: s.exists ? 'keepalive said the value has no time to live, but it has' : 'keepalive said the value has no time to live, but the key does not exist' };
      if (output.status !== 'ok') return { ok: false, reason: `keepalive returned ${output.status}, which a keepalive cannot return` };
      if (!s.exists || s.ttl !== true) return { ok: false, reason: `keepalive succeeded although ${s.exists ? 'the value has no time to live' : 'the key does not exist'}` };
      return step(s, { op: 'get', key: input.key }, { status: 'ok', revision: output.revision });
    }
  }
}

/**
 * Apply an operation with unknown outcome, assuming it took effect.
 * Returns null when it cannot have had an effect in this state (a get, a
 * failed condition, a delete of a missing key): linearizing it here would be
 * the same as not linearizing it at all, so the search skips it.
 */
export function applyUnknown(s: KvState, input: KvInput): KvState | null {
  if (input.op === 'get' || input.op === 'keepalive' || input.op === 'scan' || input.op === 'txn') return null;
  // The cluster expires a value, not whatever the key holds by then (a newer write has its own time to live).
  if (input.op === 'expire' && !(s.exists && s.value === input.value)) return null;
  if (input.op === 'delete' && !s.exists) return null;
  const cond = checkCondition(s, input.ifRevision);
  if (cond.kind === 'mismatch') return null;
  const base = cond.kind === 'match' ? cond.state : cond.matched;
  const r = afterWrite(base, input.op === 'put', input.op === 'put' ? input.value : null, undefined, input.op === 'put' && input.ttlMs !== undefined);
  return r.ok ? r.state : null;
}

/**
 * Identity of a state except for its revision, for memoisation. `valueId`
 * maps a value string to a small number so long values do not bloat keys.
 * States with the same shape are compared with `covers`.
 */
export function shapeKey(s: KvState, valueId: (v: string) => number): string {
  return s.exists ? `e${valueId(s.value ?? '')}` : 'a';
}

/**
 * True when every continuation the model accepts from `b` it also accepts
 * from `a` (both of the same shape). For an existing key a lower bound
 * covers any revision at or above it (it can still be pinned to that exact
 * value); exact revisions only cover themselves. For a missing key the
 * revision only bounds the next write from below, so smaller is looser.
 */
export function covers(a: KvState, b: KvState): boolean {
  if (!a.exists) return a.rev <= b.rev;
  if (a.exact) return b.exact && a.rev === b.rev;
  return a.rev <= b.rev;
}

export function quote(v: string, max = 40): string {
  const q = JSON.stringify(v);
  return q.length <= max ? q : `${q.slice(0, max - 4)}..."`;
}

function describeRead(value: string | undefined, revision: number | undefined): string {
  const v = value === undefined ? '(no value)' : quote(value);
  return revision === undefined ? v : `${v}@rev${revision}`;
}

/** Human form of a model state, e.g. `k1="a"@rev5` or `k1 absent (last write rev7)`. */
export function describeState(key: string, s: KvState): string {
  const rev = `${s.exact ? '' : '>='}${s.rev}`;
  if (s.exists) return `${key}=${quote(s.value ?? '')}@rev${rev}`;
  if (s.exact && s.rev === 0) return `${key} absent (never written)`;
  return `${key} absent (deleted at rev${rev})`;
}
