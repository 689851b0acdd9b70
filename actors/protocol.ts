// Messages between clients and nodes, and between nodes. Plain data only.
import type { KnownReplicaSet, MemberState, Role } from './ports.ts';
import type { ScanQuery } from './scan.ts';
import type { Txn } from './txn.ts';

export type ClientOp = 'get' | 'put' | 'delete' | 'members' | 'scan' | 'txn' | 'watch' | 'keepalive';

/** The headers of the client contract (PROTOCOL.md), for nodes and the typed client alike. */
export const KEY_HEADER = 'Zi-Key';
export const REVISION_HEADER = 'Zi-Revision';
export const IF_REVISION_HEADER = 'Zi-If-Revision';
/** A put's time to live, ms (PROTOCOL.md "Expiring keys"). */
export const TTL_HEADER = 'Zi-TTL';
/** On a transaction's 409: the index of the first compare that does not hold (PROTOCOL.md "Transactions"). */
export const FAILED_COMPARE_HEADER = 'Zi-Failed-Compare';
export const MAX_TTL_MS = 365 * 24 * 3600 * 1000;
/** A time to live a write may carry: whole milliseconds, 1 to MAX_TTL_MS. */
export const isTtl = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 1 && x <= MAX_TTL_MS;

/** A client request as the bus received it. Header names keep their exact case. */
export interface ClientRequest {
  op: ClientOp;
  headers: ReadonlyMap<string, readonly string[]>;
  data: Uint8Array;
}

/** PROTOCOL.md error codes. */
export type ErrorCode = 400 | 404 | 409 | 410 | 413 | 500 | 503 | 504;

export type ClientReply =
  | { ok: true; revision?: number; data?: Uint8Array }
  | { ok: false; code: ErrorCode; description: string; failedCompare?: number };

export interface MembersView {
  cluster: string;
  node: string;
  epoch: number;
  leader: string | null;
  /** `keys`: on the answering node's own entry only, how many keys its copy holds. */
  members: { id: string; role: Role; state: MemberState; keys?: number }[];
  replicas: string[];
}

/** A write as the leader runs it. `value` null means delete. */
export interface WriteCommand {
  key: string;
  value: Uint8Array | null;
  /** Zi-If-Revision; 0 = the key must not exist. */
  ifRevision?: number;
  /** A put's time to live, ms (Zi-TTL); absent: it does not expire. */
  ttl?: number;
  /** Not a write: a keep-alive, which restarts the time to live of the key's value. */
  keepAlive?: true;
}

/** A committed value in a state transfer; null (a delete) only in a catch-up. */
export interface SnapshotEntry {
  key: string;
  rev: number;
  value: Uint8Array | null;
  /** Time to live of the value, ms (cache-entry.machine.ts); absent: none. */
  ttl?: number;
}

/** Committed changes in (after, through], in revision order (change-log.ts). */
export interface ChangeTransfer {
  after: number;
  through: number;
  changes: { rev: number; key: string; kind: 'put' | 'delete' | 'expire'; value: Uint8Array | null }[];
}

export interface KeyRevision {
  key: string;
  rev: number;
}

export interface PendingEntry {
  key: string;
  rev: number;
  value: Uint8Array | null;
  /** Time to live of a put, ms, or EXPIRY on the cluster's delete of an expired key (cache-entry.machine.ts); absent: 0. */
  ttl?: number;
  /**
   * A put with a time to live that a new leader commits again (its recovery): the time to live
   * runs from that leader's takeover, which a replica did not see, so a replica must not answer
   * for the key on its own (reads of it go to the leader).
   */
  recommit?: true;
}

/** Every peer message names its sender and the epoch it belongs to (fencing). */
export type PeerMessage =
  // follower -> leader
  | { type: 'forward'; from: string; epoch: number; commands: WriteCommand[] }
  | { type: 'read'; from: string; epoch: number; keys: string[] }
  /** A client's scan that the follower could not answer from its own copy (ClientFront.scan). */
  | { type: 'scan'; from: string; epoch: number; query: ScanQuery }
  /** A client's transaction, for the leader to run. */
  | { type: 'txn'; from: string; epoch: number; txn: Txn }
  /**
   * `attempt` tells a duplicate of a join request (same attempt) from a new one. `since` (0: none)
   * and `history`: the joiner's copy holds every write committed up to `since` in that history
   * (ReplicaStore.heldThrough), so it may catch up with what changed since, plus the keys it rolls
   * back (`pending`: its writes in flight) as they stand.
   */
  /**
   * `changesAfter`: the joiner's change log is complete up to it (ChangeLog.stable); the leader
   * sends what it has after. `changesFloor`: the joiner's change log starts above it (its floor
   * rose); a leader whose log starts lower sends its older changes too.
   */
  | { type: 'join'; from: string; epoch: number; session: string; attempt: number; since: number; history: number; pending: string[]; changesAfter?: number; changesFloor?: number }
  | { type: 'lease'; from: string; epoch: number; session: string }
  // leader -> follower
  // Writes in flight (batched per replica), with validations of earlier writes riding along.
  | { type: 'invalidate'; from: string; epoch: number; entries: PendingEntry[]; validated: KeyRevision[] }
  | { type: 'validate'; from: string; epoch: number; validated: KeyRevision[] }
  /**
   * `changesThrough`: the new leader's change log starts above it (its floor); a replica of the
   * same `history` (ReplicaStore.history) that holds older changes up to it sends them in its
   * reply (`synced.changes`), complete copy or not: committed changes are the same at every copy.
   */
  | { type: 'sync'; from: string; epoch: number; changesThrough?: number; history?: number }
  /** `admission` names the admission the chunk belongs to: a joiner takes chunks of its own only. */
  /**
   * The last chunk (`done`) may carry the leader's committed changes in (`changes.after`,
   * `changes.through`]: the joiner's change log goes on from them rather than losing its history.
   * `historyFollows`: the leader cannot vouch for them yet (writes of the previous term still to
   * be re-committed); a `history` message brings them later. `inFlight`: those writes still to be
   * re-committed, which the joiner holds in flight as any replica does (they may have been
   * acknowledged). `lastRevBefore`: the last revision given before the admission, the last the
   * transfer covers (every later one reached the joiner as a write, as did those in flight).
   */
  | { type: 'snapshot'; from: string; epoch: number; admission: number; seq: number; entries: SnapshotEntry[]; done: boolean; maxRev: number; changes?: ChangeTransfer; historyFollows?: boolean; lastRevBefore?: number; inFlight?: PendingEntry[] }
  /** The changes a `historyFollows` snapshot promised; absent: the leader has none to give after all. */
  | { type: 'history'; from: string; epoch: number; admission: number; changes?: ChangeTransfer };

export type PeerReply =
  | { ok: true; type: 'ack' }
  /** `since` 0: flush the copy, a full snapshot follows; above 0: roll back to it, the changes since follow. */
  | { ok: true; type: 'admitted'; admission: number; since: number; history: number }
  /** A lease, and the revision up to which the follower holds every committed write. */
  | { ok: true; type: 'leased'; heldThrough: number; replicaSet: KnownReplicaSet | null }
  | { ok: true; type: 'replies'; replies: ClientReply[] }
  /**
   * `changes`: this replica's changes up to the sync's `changesThrough`, when it holds older ones than the leader.
   * `committedBeneath`: for each write in `pending`, the revision of its key's committed state (a
   * delete's too; none: left out). A replica that missed that write's validate still holds it in
   * flight: the new leader validates it there before it re-commits a newer write of the key.
   */
  | { ok: true; type: 'synced'; maxRev: number; pending: PendingEntry[]; committedBeneath?: KeyRevision[]; serving: boolean; replicaSet: KnownReplicaSet | null; roster?: string[]; changes?: ChangeTransfer }
  | { ok: false; code: PeerErrorCode; epoch: number; reason: string };

export type PeerErrorCode = 'STALE_EPOCH' | 'NOT_LEADER' | 'NOT_READY' | 'NOT_REPLICA' | 'BAD_MESSAGE';

/** The 400 of a keep-alive of a value put without a time to live (PROTOCOL.md "Expiring keys"). */
export const NO_TTL_DESCRIPTION = 'the key has no time to live (put it with Zi-TTL)';

export const MAX_KEY_BYTES = 1024;
export const MAX_VALUE_BYTES = 1024 * 1024;
