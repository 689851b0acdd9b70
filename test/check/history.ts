/**
 * History format consumed by the linearizability checker.
 *
 * This is the contract between whatever records client operations (the
 * nemesis runner, the simulator, integration tests) and the checker. Keep it
 * stable: producers construct these objects directly.
 */

/**
 * What a client asked the store to do. Every operation touches exactly one key, but a scan: it
 * reads every key starting with `key` (a prefix; '' for all) at one point in time, and the
 * checker splits it into one get per key before the search (expandScans).
 */
export type KvInput =
  | { op: 'get'; key: string }
  /** Restarts the time to live of the key's value (PROTOCOL.md "Expiring keys"); writes nothing. */
  | { op: 'keepalive'; key: string; ifRevision?: undefined }
  /** `ifRevision: 0` means "the key must not exist". */
  /**
   * `ttlMs`: the put's time to live (Zi-TTL). The checker adds the cluster's delete of that value
   * (`expire`) as a write that may happen at any time from `call + ttlMs` on, or never.
   */
  | { op: 'put'; key: string; value: string; ifRevision?: number; ttlMs?: number }
  | { op: 'delete'; key: string; ifRevision?: number }
  | { op: 'scan'; key: string; ifRevision?: undefined }
  /** Added by the checker, never sent: the cluster deletes the key if it still holds `value` (a put with a time to live); see expandExpiries. */
  | { op: 'expire'; key: string; value: string; ifRevision?: undefined }
  /** Compares, then writes at one revision if all hold; `key` is unused (''). Split by expandMultiKey. */
  | { op: 'txn'; key: string; ifRevision?: undefined; txn: TxnInput };

/** What a client may send: every operation but the checker's own (`expire`). */
export type ClientInput = Exclude<KvInput, { op: 'expire' }>;

/** A transaction as the client sent it (values as strings). */
export interface TxnInput {
  compare: ({ key: string; revision: number } | { key: string; absent: true } | { key: string; value: string })[];
  ops: ({ op: 'put'; key: string; value: string } | { op: 'delete'; key: string })[];
}

/** One key a scan returned. */
export interface ScanEntryOutput {
  key: string;
  value: string;
  revision: number;
}

/** What the client observed. */
export type KvOutput =
  /** get: value + revision; put/delete: revision of the write; scan: every key of the range that exists, and the reply's revision. */
  | { status: 'ok'; value?: string; revision?: number; entries?: ScanEntryOutput[] }
  /** get or delete of a missing key (HTTP 404). */
  | { status: 'not-found' }
  /** keepalive of a value put without a time to live (HTTP 400, "the key has no time to live"). */
  | { status: 'no-ttl' }
  /** Zi-If-Revision mismatch, or a transaction's compare that does not hold: failedCompare, the first (HTTP 409). */
  | { status: 'conflict'; failedCompare?: number }
  /** HTTP 503: the store guarantees the operation had no effect. */
  | { status: 'unavailable' }
  /** 504, timeout or no reply: the operation may or may not have taken effect. */
  | { status: 'unknown' };

export interface Operation {
  /** Unique within a history; used in reports ("op12"). */
  id: number;
  /** Logical client / process name; used in reports only. */
  client: string;
  input: KvInput;
  /** Time the request was issued (any monotonic clock, e.g. performance.now()). */
  call: number;
  /** Time the reply was received, or null when no reply arrived. */
  ret: number | null;
  output: KvOutput;
}

/** Why a history was rejected. */
export type FailureKind =
  /** A scan showed one write of a transaction and an older revision of another key it wrote. */
  | 'torn-transaction'
  /** No sequential order of one key's operations explains what clients saw. */
  | 'not-linearizable'
  /** Two acknowledged writes were given the same revision. */
  | 'duplicate-revision'
  /** A write that started after another write had finished got a smaller revision. */
  | 'revision-order'
  /** A read saw a value past its time to live (and past any leader change that restarted it). */
  | 'expired-read';

export interface CheckFailure {
  ok: false;
  kind: FailureKind;
  /** The key whose history fails (for cross-key revision failures: the key of the first op). */
  key: string;
  /**
   * A small set of operations that on its own already fails the check, sorted
   * by call time. For 'not-linearizable' this is the key's history, greedily
   * shrunk when shrinking is enabled; for revision failures the two culprits.
   */
  ops: Operation[];
  /** One-line human explanation. */
  explanation: string;
  /** Number of operations on `key` in the checked history (unavailable ops excluded). */
  keyOpCount: number;
  /** Number of operations in the checked history (unavailable ops excluded). */
  totalOpCount: number;
  /** True when `ops` is smaller than the key's full history. */
  shrunk: boolean;
  /**
   * For 'not-linearizable': the longest prefix of a linearization of `ops`
   * that the search found, in linearization order.
   */
  linearized?: Operation[];
}

export interface CheckUnknown {
  ok: 'unknown';
  reason: 'budget';
  /** The key being searched when the budget ran out. */
  key?: string;
}

export type CheckResult = { ok: true } | CheckFailure | CheckUnknown;

export interface CheckOptions {
  /** Wall-clock budget for the search itself (default 10 000 ms). */
  budgetMs?: number;
  /** Upper bound on search steps across all keys (default: unlimited). */
  maxSteps?: number;
  /** Shrink the failing key history before reporting (default true). */
  shrink?: boolean;
  /** Wall-clock budget for shrinking, on top of `budgetMs` (default 5 000 ms). */
  shrinkBudgetMs?: number;
  /**
   * Assume an operation with unknown outcome takes effect no later than
   * `call + maxUnknownDelay` (same units as `call`/`ret`), or never.
   * Default: Infinity, i.e. it may take effect at any later time, which is
   * what the history format promises. A hot key with many unknown outcomes can
   * then exhaust the budget (every such op stays a candidate for the rest of
   * the search); a finite bound that the store actually guarantees (e.g. the
   * longest a request can linger before it is applied or abandoned) keeps the
   * search small. A bound the store does not guarantee can cause false alarms.
   */
  maxUnknownDelay?: number;
  /**
   * When a leader began to serve, each time one did (same clock as `call`/`ret`). With them, no
   * read may see a value past the time to live PROTOCOL.md promises (checkExpiredReads).
   */
  takeovers?: readonly number[];
  /**
   * How far `takeovers` may be off from the history's clock (times read from node logs): a
   * takeover counts for a read that returned up to this long before it, and restarts the time
   * from up to this long after it. Default 0.
   */
  takeoverSlackMs?: number;
}
