// What the node needs from the world. Adapters live in bus/ (NATS, memory) and
// coordination/ (ZooKeeper, memory); tests and the simulation provide fakes of the same shape.
import type { InspectionEvent } from 'xstate';
import type { ClientOp, ClientReply, ClientRequest, PeerMessage, PeerReply } from './protocol.ts';

/** Time and timers. Real: performance.now + setTimeout; simulation: virtual time. Shape matches XState's clock. */
export interface Clock {
  now(): number;
  setTimeout(fn: (...args: unknown[]) => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The subset of pino the core uses: a structural port, so tests can pass a silent logger. */
export interface Log {
  child(bindings: Record<string, unknown>): Log;
  /** What every line already carries (pino's); a logger without it is given every binding again. */
  bindings?(): Record<string, unknown>;
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  fatal(obj: object, msg?: string): void;
}

/** `log` with `bindings` on every line, leaving out the keys it has already (pino would write them twice). */
export function childLog(log: Log, bindings: Record<string, unknown>): Log {
  const has = log.bindings?.() ?? {};
  const added = Object.fromEntries(Object.entries(bindings).filter(([key]) => !(key in has)));
  return Object.keys(added).length === 0 ? log : log.child(added);
}

/** Answers at once when it can (a local read), else with a promise. */
export type ClientHandler = (request: ClientRequest) => ClientReply | Promise<ClientReply>;
export type PeerHandler = (message: PeerMessage) => Promise<PeerReply>;

/** Messaging. Peer requests are addressed by node id; the adapter maps ids to subjects. */
export interface Bus {
  /** Serve the public client contract (PROTOCOL.md) for this node. */
  serveClients(handler: ClientHandler): Promise<void>;
  /** Serve peer requests addressed to this node. */
  servePeers(handler: PeerHandler): Promise<void>;
  /**
   * Request-reply to one peer. Rejects with BusTimeoutError (no reply in time: unknown outcome),
   * NoRespondersError (nobody listening: the message was not delivered) or BusClosedError.
   */
  request(to: string, message: PeerMessage, timeoutMs: number): Promise<PeerReply>;
  /** Fire and forget (validations, best effort). */
  send(to: string, message: PeerMessage): void;
  /** Publish a message of this node's change feed (watch.ts ChangeFeed); absent: no feed. */
  publishChanges?(after: number, revision: number, data: Uint8Array): void;
  close(): Promise<void>;
}

export type SessionState = 'connecting' | 'connected' | 'suspended' | 'expired';
export type MemberState = 'syncing' | 'serving' | 'suspended' | 'removed';
export type Role = 'leader' | 'follower';

export interface MemberInfo {
  id: string;
  role: Role;
  state: MemberState;
}

/** Facts the coordinator reports. A new session (after expiry) gets a new sessionId. */
export type CoordEvent =
  | { type: 'coord.session'; state: SessionState; sessionId: string }
  | { type: 'coord.members'; ids: string[] }
  | { type: 'coord.elected'; sessionId: string }
  | { type: 'coord.epoch'; epoch: number; leader: string | null };

/** An operator's order to a leader waiting for a complete replica: serve what you hold (data loss accepted). */
export interface UncleanGrant {
  /** The epoch of the waiting leader it applies to, and that leader. */
  epoch: number;
  leader: string;
  /** The last replica set, whose members alone held every acknowledged write. */
  waitingFor: string[];
  by: string;
  /** ISO time of the order. */
  at: string;
}

export interface EpochClaim {
  epoch: number;
  /** ZooKeeper version of the epoch znode after our bump; fences later writes of the replica set. */
  fence: number;
}

/** Coordination: ZooKeeper is the only authority for sessions, leadership and membership. */
export interface Coordinator {
  /**
   * Connects and, for every new session, registers this node (members/<id> ephemeral) and enters
   * the election (election/n_ ephemeral-sequential). Events arrive through the listener.
   */
  start(listener: (event: CoordEvent) => void): void;
  sessionState(): SessionState;
  /**
   * Clock time until which ZooKeeper certainly keeps our session (from the send time of the last
   * answered request, less a drift margin); 0 when not connected. A leader acts only before it.
   * Optional for fakes that model no such delay.
   */
  sessionAliveUntil?(): number;
  /** The session timeout ZooKeeper granted (it clamps the requested one to 2–20 × tickTime); 0 before a session. */
  grantedSessionTimeoutMs?(): number;
  /** Live member ids, as of the last membership watch. */
  memberIds(): string[];
  /** Fresh read of every member's published role and state. */
  readMembers(): Promise<MemberInfo[]>;
  /** Publish this node's role and state in its member znode. */
  publishMember(info: { role: Role; state: MemberState }): Promise<void>;
  /**
   * Leader only: bump the epoch counter by compare-and-set, naming this node the leader. The new
   * epoch is above `above` too (the highest this node knows of): a ZooKeeper that lost its data
   * counts from 0 again, and nodes that knew a later epoch would refuse every leader below it.
   */
  claimEpoch(above?: number): Promise<EpochClaim>;
  /** The epoch and its leader as ZooKeeper records them, read after a request the quorum orders (so no older than any claim made before). */
  readEpoch(): Promise<{ epoch: number; leader: string | null }>;
  /** The replica set as ZooKeeper records it (ids [] and era 0 in a cluster that never had one). */
  readReplicas(): Promise<{ ids: string[]; epoch: number; era: number }>;
  /** Leader only: replace the replica set, atomically checked against the epoch fence. Rejects with DeposedError if fenced off. */
  writeReplicas(ids: string[], claim: EpochClaim, era?: number): Promise<void>;
  /** The operator's latest order to accept data loss, if any (coordination/paths.ts: unclean). */
  readUncleanGrant(): Promise<UncleanGrant | null>;
  /** Leave the election and enter it again at the back of the queue (a leader without a complete copy steps aside). */
  resign(): Promise<void>;
  /** Close the session: ephemeral znodes go at once, so the next election starts without waiting for expiry. */
  stop(): Promise<void>;
}

/**
 * Optional hooks for metrics and the inspector view. Called synchronously on hot paths, so an
 * implementation must be cheap and must not throw.
 */
export interface NodeObserver {
  /** A client request was answered (code 200 for success). */
  request?(op: ClientOp, code: number, ms: number): void;
  /** A batch of invalidations to one replica was acknowledged (or failed: ok false). */
  replication?(peer: string, entries: number, ms: number, ok: boolean): void;
  /** A key's cache entry changed state on this node. */
  entry?(key: string, state: 'absent' | 'valid' | 'invalid', rev: number): void;
  /** A peer message was sent (out) or handled (in). */
  message?(direction: 'in' | 'out', type: PeerMessage['type'], peer: string, keys: readonly string[]): void;
  /** State transfer progress, on the sending (leader) side; `failed` when the transfer was given up. */
  resync?(peer: string, entriesSent: number, done: boolean, failed?: boolean): void;
  /** XState inspection events of this node's actors (XState's `inspect` option). */
  inspect?(event: InspectionEvent): void;
}

/** One key's state as a replica keeps it on disk: its committed value and the write in flight. */
export interface StoredEntry {
  rev: number;
  value: Uint8Array | null;
  pendingRev: number;
  pendingValue: Uint8Array | null;
  /** Times to live (cache-entry.machine.ts); absent in copies written before keys could expire. */
  ttl?: number;
  pendingTtl?: number;
}

/**
 * A replica set as a node last heard of it, kept with its copy: if ZooKeeper's record is ever lost
 * (a fresh ZooKeeper under nodes that kept their data), the nodes rebuild it from these. Newer
 * sets compare higher (newerReplicaSet): by era (one more each time the record was rebuilt, as
 * epochs start again with a fresh ZooKeeper), then epoch, then the order written within the term.
 */
export interface KnownReplicaSet {
  ids: string[];
  era: number;
  epoch: number;
  seq: number;
}

/** Positive when `a` is newer than `b`, 0 for the same set. */
export function replicaSetOrder(a: KnownReplicaSet, b: KnownReplicaSet): number {
  return a.era - b.era || a.epoch - b.epoch || a.seq - b.seq;
}

export function newerReplicaSet(a: KnownReplicaSet | null, b: KnownReplicaSet | null): KnownReplicaSet | null {
  if (a === null || b === null) return a ?? b;
  return replicaSetOrder(a, b) >= 0 ? a : b;
}

/** What a copy on disk knows about itself besides its entries (ReplicaStore's fields of the same names). */
export interface CopyMeta {
  maxRev: number;
  heldThrough: number;
  history: number;
  snapshotRev: number;
  /** The copy holds every write acknowledged while its node was a replica (see ReplicaStore.intact). */
  intact: boolean;
  /** Keys a catch-up rolled back and has not yet brought up to date (ReplicaStore.pendingKeys). */
  rolledBack?: string[];
  /** The newest replica set this node heard of (absent: none yet). */
  replicaSet?: KnownReplicaSet;
  /**
   * Every delete above this revision (and above snapshotRev) is stored as a tombstone entry (no
   * value, its delete's revision), so a restarted leader can still catch a joiner up by revision.
   * Absent in copies written before tombstones were kept: then no delete is known.
   */
  deletesForgottenThrough?: number;
  /** Every node this node has seen registered in the cluster (ReplicaStore.roster). */
  roster?: string[];
  /**
   * The watch history kept with the copy (ChangeLog): it holds every committed change above
   * `floor` up to `stable`, their records written before this meta. Absent in copies written
   * before the history was kept: then none is known. `transferring`: a state transfer was open
   * (its leader's changes not yet in), so what it brought is not covered by the history;
   * `transferCovers`, once its last chunk came: the highest revision it may have brought (absent:
   * any up to the copy's highest).
   */
  watchHistory?: { floor: number; stable: number; transferring?: boolean; transferCovers?: number };
}

/** A committed change as the watch history keeps it on disk, under its revision (a transaction's changes share one). */
export interface StoredChange {
  key: string;
  kind: 'put' | 'delete' | 'expire';
  value: Uint8Array | null;
}

/**
 * What a copy's settled values (committed, nothing in flight, no time to live: most of a copy)
 * add up to: how many, their bytes, the highest revision among them, and those above the watch
 * history's stable revision (key and revision), which the history checks at start.
 */
export interface SettledSummary {
  count: number;
  valueBytes: number;
  maxRev: number;
  aboveStable: [string, number][];
}

/**
 * Where a replica keeps its copy between runs (an embedded engine; none: memory only). Writes
 * are applied in the order given; `flushed` says when they are stored as the policy promises.
 */
export interface ReplicaDisk {
  /**
   * The copy as stored, read once at start (meta null: an empty data dir): what its settled values
   * add up to (they stay on the disk, read as needed), and every other entry. An entry's values
   * may be views on the engine's buffers, valid until the next entry: copy what you keep.
   */
  load(): { meta: CopyMeta | null; settled: SettledSummary; others: Iterable<[string, StoredEntry]>; changes: Iterable<[number, StoredChange[]]> };
  /** The key's state after a change (value null and rev above 0: a tombstone); null once it holds nothing. */
  write(key: string, entry: StoredEntry | null): void;
  /**
   * The key's state as last written (writes not yet stored included: what the node sees), or
   * undefined when it holds nothing. Its values are the caller's.
   */
  read(key: string): StoredEntry | undefined;
  /** Keys with a value as last written, in key order (key-order.ts), from `first` on (inclusive). Do not write while walking. */
  keysFrom(first: string | undefined): Iterable<string>;
  /**
   * Entries as last written, in key order, after the key `after` (undefined: from the first), that
   * changed above `since` (with `since` 0: those with a value): at most `limit` of them, or
   * `maxBytes` of keys and values, looking at a bounded number of entries. `next` is the key to go
   * on after, null at the end. Values are the caller's.
   */
  page(after: string | undefined, since: number, limit: number, maxBytes: number): { entries: [string, StoredEntry][]; next: string | null };
  /** The watch history's changes at `rev` (all of them so far: a later call for the same revision replaces it). */
  writeChanges(rev: number, changes: readonly StoredChange[]): void;
  /** The watch history needs no change at or below `rev` any more. */
  forgetChanges(rev: number): void;
  writeMeta(meta: CopyMeta): void;
  /** Drop every entry (the copy is flushed before a full snapshot). */
  clear(): void;
  /** Resolves once every write so far is stored as the policy promises; rejects on a disk error. */
  flushed(): Promise<void>;
  close(): Promise<void>;
}
