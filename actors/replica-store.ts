// Every node holds a full replica: cache entries (most of them packed, see below) plus waiters
// for keys whose write is in flight. Pure data structure, no I/O, no timers.
import { Buffer } from 'node:buffer';
import { ChangeLog } from './change-log.ts';
import { compareKeys } from './key-order.ts';
import { PackedTable } from './packed-table.ts';
import { BTree } from './sorted-btree.ts';
import { EXPIRY, stepEntry, type EntryEvent, type EntryRecord } from './cache-entry.machine.ts';
import { replicaSetOrder, type CopyMeta, type KnownReplicaSet, type ReplicaDisk, type StoredChange, type StoredEntry } from './ports.ts';
import type { KeyRevision, PendingEntry, SnapshotEntry } from './protocol.ts';

type Waiter = () => void;

/**
 * Most keys sit valid with a small value: in memory only, those live in a PackedTable (key,
 * revision and value in one byte arena, ~56 bytes for a 16-byte key and value, nothing for the
 * garbage collector to trace); with a disk, on the disk alone (the engine maps its file: the
 * values are read from there). Everything else (a write in flight, a tombstone, a value that
 * expires, and in memory a large value) is an EntryRecord in a Map, which wins over the table
 * or the disk: a key in flight keeps its committed value there too.
 */
const PACK_MAX_BYTES = 256;
const TOMBSTONES_MAX = 65_536;

const settledValue = (entry: EntryRecord): boolean => entry.state === 'valid' && entry.ttl === 0 && entry.value !== null;
const packable = (entry: EntryRecord): boolean => settledValue(entry) && entry.value!.byteLength <= PACK_MAX_BYTES;

/**
 * Values arrive as views on a received message buffer (no copy on the way in). A large value kept
 * as such a view would pin the whole socket chunk or batch in memory, so a value whose backing
 * buffer is much larger than itself is copied once, here, as it is stored.
 */
function compact(value: Uint8Array): Uint8Array {
  // A small value is copied into the packed table once it is valid; until then it may pin the
  // message it came in (one round trip, or until the next leader settles it).
  if (value.byteLength <= PACK_MAX_BYTES || value.buffer.byteLength <= value.byteLength * 2 + 64) return value;
  // A buffer of its own, not zero-filled first (every byte is overwritten at once).
  const copy = Buffer.allocUnsafeSlow(value.byteLength);
  copy.set(value);
  return new Uint8Array(copy.buffer, 0, copy.byteLength);
}

/** `e` with values of its own (a disk's load may hand out views on its buffers). */
function owned(e: StoredEntry): StoredEntry {
  const copy = (v: Uint8Array | null) => (v === null ? null : Uint8Array.prototype.slice.call(v));
  return { ...e, value: copy(e.value), pendingValue: copy(e.pendingValue) };
}

/** `entries` in chunks of at most `maxEntries`, or about `maxBytes` of keys and values. */
function* inChunks(entries: Iterable<SnapshotEntry>, maxEntries: number, maxBytes: number): Generator<SnapshotEntry[]> {
  let chunk: SnapshotEntry[] = [];
  let bytes = 0;
  for (const e of entries) {
    chunk.push(e);
    bytes += (e.value?.byteLength ?? 0) + e.key.length + 16;
    if (chunk.length >= maxEntries || bytes >= maxBytes) {
      yield chunk;
      chunk = [];
      bytes = 0;
    }
  }
  if (chunk.length > 0) yield chunk;
}

const snapshotOf = (key: string, e: Pick<StoredEntry, 'rev' | 'value' | 'ttl'>): SnapshotEntry => ({ key, rev: e.rev, value: e.value, ...((e.ttl ?? 0) > 0 ? { ttl: e.ttl } : {}) });

export class ReplicaStore {
  private readonly entries = new Map<string, EntryRecord>();
  private readonly packed = new PackedTable();
  /** State transfers walking the store right now: no entry moves into the packed table meanwhile. */
  private walks = 0;
  private readonly waiters = new Map<string, Waiter[]>();
  /** Every key that exists here (a committed value), in key order: what scans walk (in memory only). */
  private readonly ordered = new BTree<string, undefined>(undefined, compareKeys);
  /** Every key with a write in flight here (the entries map holds them, among many valid ones). */
  private readonly inFlight = new Set<string>();
  /** Where the copy is kept between runs (null: memory only). Every change goes there, in order. */
  private disk: ReplicaDisk | null = null;
  /** The disk settled values are read from, once attachDisk has loaded it (null: the packed table). */
  private valuesOnDisk: ReplicaDisk | null = null;
  private metaDirty = false;
  /** The watch history's records of this turn, by revision, written with the meta. */
  private readonly unwrittenRecords = new Map<number, readonly StoredChange[]>();
  private _maxRev = 0;
  private _heldThrough = 0;
  private _history = 0;
  private _intact = false;
  private _replicaSet: KnownReplicaSet | null = null;
  private readonly _roster = new Set<string>();
  /** Keys rolled back by a catch-up that has not completed: the next one must send them as they stand too. */
  private readonly rolledBack = new Set<string>();
  /** While syncing, absent entries are kept as tombstones so that stale snapshot fills are ignored. */
  keepTombstones = false;
  /**
   * Revisions of recent deletes, so that an older invalidate of a deleted key that arrives late
   * (NATS may reorder across a reconnect) cannot bring it back. Bounded: the oldest are forgotten,
   * and an invalidate of a key with no record at or below the newest forgotten revision is ignored
   * (a message delayed past TOMBSTONES_MAX deletes).
   */
  private readonly tombstones = new Map<string, number>();
  private forgottenTombstoneRev = 0;
  /** Deletes at or below this revision may have left no record here: the copy came from a snapshot taken then (or from disk). */
  private snapshotRev = 0;
  /** Highest revision of a committed value or delete in this copy (writes in flight not counted). */
  committedMaxRev = 0;
  valueBytes = 0;
  /** This node's clock (ms): set by the node; the store itself never waits. */
  now: () => number = () => performance.now();
  /** The recent committed changes, in revision order (what watches read). */
  readonly changes = new ChangeLog(() => this.now());
  /**
   * Keys whose value expires, and when this copy stops answering for them on its own: the time
   * it took in the write (its invalidate) plus the time to live. The leader's clock starts later
   * (at the commit, after every ack), so here a key stops being served before the leader could
   * have expired it; a key from a state transfer (time of the write unknown) at once. Reads of a
   * key past it go to the leader, whose own deadline (LeaderTerm) decides.
   */
  private readonly deadlines = new Map<string, number>();
  /** When this copy took the write in flight of each key with a time to live. */
  private readonly pendingSince = new Map<string, number>();
  /** Called after every change of an entry (for the inspector view); must not throw. */
  onEntry: ((key: string, entry: EntryRecord) => void) | null = null;
  /** Number of entries that hold a committed value (keys that exist). */
  liveKeys = 0;

  /** Highest revision this node has seen in any message: deletes leave no entry, so keep it apart. */
  get maxRev(): number {
    return this._maxRev;
  }
  set maxRev(rev: number) {
    this._maxRev = rev;
    this.metaChanged();
  }

  /**
   * Every write committed at or below this revision is in this copy (pending writes included):
   * the leader says so with each lease, and a catch-up after a lost session starts from it.
   */
  get heldThrough(): number {
    return this._heldThrough;
  }
  set heldThrough(rev: number) {
    this._heldThrough = rev;
    this.metaChanged();
  }

  /** The epoch whose leader last accepted data loss in this copy's past (0: never): copies of different histories never catch up from each other. */
  get history(): number {
    return this._history;
  }
  set history(epoch: number) {
    this._history = epoch;
    this.metaChanged();
  }

  /**
   * This copy holds every write acknowledged while its node was a replica: it finished a join or
   * a leader's recovery, and has not been flushed or rolled back since. Kept on disk, so a node
   * restarted on its data dir counts as a complete replica (if it was in the last replica set).
   */
  get intact(): boolean {
    return this._intact;
  }
  set intact(intact: boolean) {
    this._intact = intact;
    this.metaChanged();
  }

  /** The newest replica set this node heard of (kept on disk: ZooKeeper's record can be rebuilt from it). Only moves forward. */
  get knownReplicaSet(): KnownReplicaSet | null {
    return this._replicaSet;
  }
  learnReplicaSet(set: KnownReplicaSet): void {
    if (this._replicaSet !== null && replicaSetOrder(set, this._replicaSet) <= 0) return;
    this._replicaSet = set;
    this.metaChanged();
  }

  /**
   * Every node this node has seen registered in the cluster, kept on disk. If ZooKeeper loses the
   * replica set, a member of the last one is among these: a leader rebuilding the record hears
   * from all of them first (LeaderTerm.rememberedReplicaSet).
   */
  get roster(): readonly string[] {
    return [...this._roster];
  }
  learnMembers(ids: readonly string[]): void {
    const before = this._roster.size;
    for (const id of ids) this._roster.add(id);
    if (this._roster.size !== before) this.metaChanged();
  }

  /**
   * Take in the copy `disk` kept (before anything else happens to this store), then keep every
   * change there. Deletes come back as tombstones; a copy written before tombstones were kept
   * knows no delete at or below its highest revision.
   */
  attachDisk(disk: ReplicaDisk): void {
    const { meta, settled, others: unsettled, changes } = disk.load();
    // Most of a copy is settled values, which stay on the disk: counted, read from there as needed.
    this.liveKeys = settled.count;
    this.valueBytes = settled.valueBytes;
    this.committedMaxRev = settled.maxRev;
    const settledAboveStable = settled.aboveStable.map(([key, rev]): [string, StoredEntry] => [key, { rev, value: null, pendingRev: 0, pendingValue: null }]);
    const deleted: [string, StoredEntry][] = [];
    const others: [string, StoredEntry][] = [];
    for (const [key, e] of unsettled) (e.value === null ? deleted : others).push([key, owned(e)]);
    this._maxRev = Math.max(this._maxRev, this.committedMaxRev);
    // What the loop below tells the change log is replaced by restoreHistory.
    this.changes.beginTransfer();
    for (const [key, e] of others) {
      this.apply(key, { type: 'fill', rev: e.rev, value: e.value, ttl: e.ttl ?? 0 });
      if (e.pendingRev > 0) this.apply(key, { type: 'invalidate', rev: e.pendingRev, value: e.pendingValue, ttl: e.pendingTtl ?? 0 });
    }
    // Tombstones in the order of their deletes, so that the bound forgets the oldest first.
    deleted.sort((a, b) => a[1].rev - b[1].rev);
    for (const [key, e] of deleted) {
      this.remember(key, e.rev);
      if (e.pendingRev > 0) this.apply(key, { type: 'invalidate', rev: e.pendingRev, value: e.pendingValue, ttl: e.pendingTtl ?? 0 });
    }
    // The entries above went through the table as in memory (a write in flight is filled first):
    // the map holds every one of them now. From here on settled values are read from the disk.
    this.packed.clear();
    this.ordered.clear();
    this.valuesOnDisk = disk;
    if (meta !== null) {
      this._maxRev = Math.max(this._maxRev, meta.maxRev);
      this._heldThrough = meta.heldThrough;
      this._history = meta.history;
      this._intact = meta.intact;
      for (const key of meta.rolledBack ?? []) this.rolledBack.add(key);
      this._replicaSet = meta.replicaSet ?? null;
      for (const id of meta.roster ?? []) this._roster.add(id);
    }
    this.restoreHistory(meta, changes, [...others, ...deleted, ...settledAboveStable]);
    if (meta?.deletesForgottenThrough !== undefined) {
      this.snapshotRev = meta.snapshotRev;
      this.forgottenTombstoneRev = Math.max(this.forgottenTombstoneRev, meta.deletesForgottenThrough);
    } else {
      // Written before deletes were kept: none above any revision is known.
      this.snapshotRev = Math.max(meta?.snapshotRev ?? 0, this._maxRev);
    }
    this.disk = disk;
    this.changes.onRecorded = (rev, group) => {
      // Written once per revision with the meta (writeMeta): a transaction's changes come one by one.
      this.unwrittenRecords.set(rev, group);
      this.metaChanged();
    };
    this.changes.onForgotten = (floor) => {
      // Revisions come in order: the first one above the floor ends the look (a straggler below it
      // is written, then skipped at the next start and removed by the next forget).
      for (const rev of this.unwrittenRecords.keys()) {
        if (rev > floor) break;
        this.unwrittenRecords.delete(rev);
      }
      // The meta with the new floor commits before the records it drops are removed.
      this.metaChanged();
      disk.forgetChanges(floor);
    };
    this.changes.listen(() => this.metaChanged());
    // Records a crash left below the restored floor.
    disk.forgetChanges(this.changes.floor);
  }

  /**
   * The watch history kept with the copy: its records up to the stable revision, the committed
   * ones above it, the writes the copy holds in flight. A change the copy holds committed above
   * the stable revision with no record (it came with a snapshot, or its record was lost with the
   * last commit) lifts the floor over it; so does a delete whose tombstone was dropped. A copy
   * written before the history was kept knows none of it: its history starts at its highest revision.
   */
  private restoreHistory(meta: CopyMeta | null, recorded: Iterable<[number, StoredChange[]]>, loaded: [string, StoredEntry][]): void {
    const kept = meta?.watchHistory ?? { floor: this._maxRev, stable: this._maxRev };
    const records = [...recorded];
    const recordedKeys = new Set<string>();
    for (const [rev, group] of records) if (rev > kept.stable) for (const c of group) recordedKeys.add(`${rev} ${c.key}`);
    const tombstonesForgotten = meta?.deletesForgottenThrough ?? 0;
    let unrecorded = tombstonesForgotten > kept.stable ? tombstonesForgotten : 0;
    const inFlight: number[] = [];
    for (const [key, e] of loaded) {
      if (e.rev > kept.stable && e.rev > unrecorded && !recordedKeys.has(`${e.rev} ${key}`)) unrecorded = e.rev;
      if (e.pendingRev > 0) inFlight.push(e.pendingRev);
    }
    this.changes.restore(kept, records, inFlight, unrecorded);
    // The leader's changes for a transfer open when the node stopped never came: the transfer may
    // have brought writes whose revisions the history then skips (F17), up to what its last chunk
    // said it covers, else up to the copy's highest. Writes after it came as writes, recorded.
    if (kept.transferring === true) this.changes.transferLost(kept.transferCovers ?? this._maxRev);
  }

  /** Is the copy kept on a disk (changes then count as held only once durable() resolves)? */
  get onDisk(): boolean {
    return this.disk !== null;
  }

  /** Resolves once every change so far is stored as the disk's policy promises (at once without a disk); rejects on a disk error. */
  durable(): Promise<void> {
    if (this.disk === null) return Promise.resolve();
    this.writeMeta();
    return this.disk.flushed();
  }

  private metaChanged(): void {
    if (this.disk === null || this.metaDirty) return;
    this.metaDirty = true;
    // One meta write for all the changes of this turn, behind the entries they describe.
    queueMicrotask(() => this.writeMeta());
  }

  private writeMeta(): void {
    if (!this.metaDirty || this.disk === null) return;
    this.metaDirty = false;
    // The records first: the meta's stable revision covers them.
    for (const [rev, group] of this.unwrittenRecords) this.disk.writeChanges(rev, group);
    this.unwrittenRecords.clear();
    const meta: CopyMeta = {
      maxRev: this._maxRev,
      heldThrough: this._heldThrough,
      history: this._history,
      snapshotRev: this.snapshotRev,
      deletesForgottenThrough: this.forgottenTombstoneRev,
      roster: [...this._roster],
      watchHistory: this.changes.kept,
      intact: this._intact,
      rolledBack: [...this.rolledBack],
      ...(this._replicaSet !== null ? { replicaSet: this._replicaSet } : {}),
    };
    this.disk.writeMeta(meta);
  }

  /** The entry of `key`, as a copy when it is stored packed (read it, don't keep it). */
  get(key: string): EntryRecord | undefined {
    return this.entries.get(key) ?? this.unpack(key);
  }

  /** A settled value from the table or the disk (a tombstone there is no entry: `tombstones` has it). */
  private unpack(key: string): EntryRecord | undefined {
    if (this.valuesOnDisk !== null) {
      const e = this.valuesOnDisk.read(key);
      return e === undefined || e.value === null ? undefined : { state: 'valid', rev: e.rev, value: e.value, ttl: 0, pendingRev: 0, pendingValue: null, pendingTtl: 0 };
    }
    const p = this.packed.get(key);
    return p === undefined ? undefined : { state: 'valid', rev: p.rev, value: p.value, ttl: 0, pendingRev: 0, pendingValue: null, pendingTtl: 0 };
  }

  /** Revision of `key`'s committed value, or null when the key does not exist. */
  committedRevision(key: string): number | null {
    const entry = this.entries.get(key);
    if (entry !== undefined) return entry.value === null ? null : entry.rev;
    if (this.valuesOnDisk !== null) return this.unpack(key)?.rev ?? null;
    return this.packed.revisionOf(key) ?? null;
  }

  /** Is a write to `key` in flight here? */
  isInvalid(key: string): boolean {
    return this.entries.get(key)?.state === 'invalid';
  }

  apply(key: string, event: EntryEvent): boolean {
    if (event.rev > this._maxRev) {
      this._maxRev = event.rev;
      this.metaChanged();
    }
    // A copy of the event only when its value was copied (not on every write).
    if ((event.type === 'fill' || event.type === 'invalidate') && event.value !== null) {
      const value = compact(event.value);
      if (value !== event.value) event = { ...event, value };
    }
    let entry = this.entries.get(key) ?? this.unpack(key);
    if (entry === undefined) {
      if (event.type === 'validate' || event.type === 'abort') return false;
      const deletedAt = this.tombstones.get(key);
      // A fill is the leader's committed state, not a late message: it needs no tombstone check.
      if (deletedAt === undefined && event.type !== 'fill' && event.rev <= this.forgottenTombstoneRev) return false;
      entry = { state: 'absent', rev: deletedAt ?? 0, value: null, ttl: 0, pendingRev: 0, pendingValue: null, pendingTtl: 0 };
    }
    const before = entry.value;
    const wasInvalid = entry.state === 'invalid';
    const pendingBefore = entry.pendingRev;
    const pendingTtlBefore = entry.pendingTtl;
    const changed = stepEntry(entry, event);
    if (!changed) return false;
    // A delete stays on disk as a tombstone (its revision), bounded like the ones in memory. The
    // entry is written before the change's record: a copy that lost the record with its last
    // commit holds the change without one, which its next start sees (restoreHistory).
    this.disk?.write(key, entry.value === null && entry.pendingRev === 0 && entry.rev === 0 ? null : (entry as StoredEntry));
    this.logChange(key, event, entry, wasInvalid ? pendingBefore : 0, pendingTtlBefore);
    if (entry.ttl !== 0 || entry.pendingTtl !== 0 || (this.deadlines.size > 0 && this.deadlines.has(key)) || (this.pendingSince.size > 0 && this.pendingSince.has(key))) this.track(key, event, entry);
    if (entry.rev > this.committedMaxRev) this.committedMaxRev = entry.rev;
    if (before !== entry.value) {
      if (before !== null) { this.valueBytes -= before.byteLength; this.liveKeys--; }
      if (entry.value !== null) { this.valueBytes += entry.value.byteLength; this.liveKeys++; }
      if (this.valuesOnDisk !== null) {
        // The disk keeps the key order.
      } else if (before === null) this.ordered.set(key, undefined);
      else if (entry.value === null) this.ordered.delete(key);
    }
    if (entry.state === 'invalid') this.inFlight.add(key);
    else if (wasInvalid) this.inFlight.delete(key);
    this.onEntry?.(key, entry);
    if (this.valuesOnDisk !== null ? settledValue(entry) : packable(entry) && this.walks === 0) {
      if (this.valuesOnDisk === null) this.packed.set(key, entry.rev, entry.value!); // in place when the value keeps its size
      this.entries.delete(key);
    } else if (entry.state === 'invalid') {
      // The committed value stays in the table too, shadowed by this entry, so that the
      // validate to come rewrites its record in place rather than appending a new one.
      this.entries.set(key, entry);
    } else {
      if (this.valuesOnDisk === null) this.packed.delete(key);
      if (entry.state === 'absent' && !this.keepTombstones) {
        this.entries.delete(key);
        this.remember(key, entry.rev);
      } else {
        this.entries.set(key, entry);
      }
    }
    if (wasInvalid && entry.state !== 'invalid') this.wake(key);
    return true;
  }

  /** Keep the deadline of a key with a time to live (see `deadlines`) as an applied event leaves it. */
  private track(key: string, event: EntryEvent, entry: EntryRecord): void {
    if (event.type === 'invalidate') {
      // A recommit's time to live ran from a takeover this copy did not see: none of it is left here.
      if (entry.pendingTtl > 0) this.pendingSince.set(key, event.recommit ? -Infinity : this.now());
      else this.pendingSince.delete(key);
      return;
    }
    const since = event.type === 'validate' ? this.pendingSince.get(key) : undefined;
    this.pendingSince.delete(key);
    if (entry.ttl <= 0) this.deadlines.delete(key);
    else if (event.type === 'fill') this.deadlines.set(key, this.now());
    else if (event.type === 'validate') this.deadlines.set(key, (since ?? this.now()) + entry.ttl);
  }

  /** Whether this copy must not answer for `key` on its own any more: its value may have expired (see `deadlines`). */
  expiredHere(key: string): boolean {
    const deadline = this.deadlines.get(key);
    return deadline !== undefined && deadline <= this.now();
  }

  /** Keys with a value that expires (the leader keeps their deadlines when it takes over). */
  keysWithTtl(): IterableIterator<string> {
    return this.deadlines.keys();
  }

  /** Tell the change log what an applied event did; `replaced` is the revision of a write in flight it replaced (0: none). */
  private logChange(key: string, event: EntryEvent, entry: EntryRecord, replaced: number, pendingTtl: number): void {
    if (replaced > 0 && (event.type === 'fill' || event.type === 'invalidate')) this.changes.unknown(replaced);
    switch (event.type) {
      case 'fill':
        return this.changes.missed(event.rev);
      case 'invalidate':
        return this.changes.pending(event.rev);
      case 'validate':
        return this.changes.committed(event.rev, key, entry.value, entry.value !== null ? 'put' : pendingTtl === EXPIRY ? 'expire' : 'delete');
      case 'abort':
        return this.changes.aborted(event.rev);
    }
  }

  /** Resolves when the key is no longer invalid (or at once). The caller bounds the wait. */
  settled(key: string): Promise<void> | null {
    if (!this.isInvalid(key)) return null;
    return new Promise((resolve) => {
      const list = this.waiters.get(key);
      if (list) list.push(resolve);
      else this.waiters.set(key, [resolve]);
    });
  }

  private wake(key: string): void {
    const list = this.waiters.get(key);
    if (!list) return;
    this.waiters.delete(key);
    for (const w of list) w();
  }

  /**
   * Forget everything (a node that rejoins flushes its copy and takes a fresh snapshot). A
   * snapshot of our own `history` leaves the watch history's changes true (ChangeLog.flushed).
   */
  clear(history?: number): void {
    this.entries.clear();
    this.packed.clear();
    this.ordered.clear();
    this.inFlight.clear();
    this.tombstones.clear();
    this.forgottenTombstoneRev = 0;
    this.snapshotRev = Number.MAX_SAFE_INTEGER;
    this.committedMaxRev = 0;
    this.rolledBack.clear();
    this.deadlines.clear();
    this.pendingSince.clear();
    this.disk?.clear();
    this.changes.flushed(this._maxRev, history === this.history);
    this._intact = false;
    this.heldThrough = 0;
    this.valueBytes = 0;
    this.liveKeys = 0;
    for (const key of [...this.waiters.keys()]) this.wake(key);
  }

  /** A snapshot taken at `maxRev` has filled the flushed copy: deletes above it are all recorded. */
  snapshotComplete(maxRev: number): void {
    this.snapshotRev = maxRev;
    this.metaChanged();
    this.purgeTombstones();
  }

  /**
   * Every delete above this revision is recorded here (as a tombstone), so a copy that holds every
   * write up to a revision at or above it can be brought up to date with the changes since.
   */
  get deletesKnownAbove(): number {
    return Math.max(this.forgottenTombstoneRev, this.snapshotRev);
  }

  /**
   * Keys with a write in flight, and those rolled back by a catch-up that did not complete. A
   * catch-up rolls them back to their committed value, which may be older than heldThrough (a lost
   * validate, then a newer invalidate, replaced a write this copy had acked), so the leader sends
   * each of them as it stands, whatever its revision.
   */
  pendingKeys(): string[] {
    const out = new Set(this.rolledBack);
    for (const [key, e] of this.entries) if (e.state === 'invalid') out.add(key);
    return [...out];
  }

  /** A catch-up completed: every rolled-back key has been sent as it stands. */
  caughtUp(): void {
    this.rolledBack.clear();
    this.purgeTombstones();
    this.metaChanged();
  }

  /**
   * A key as this (the leader's) copy holds it, for a catch-up: its committed value, or its delete.
   * A key with no record was deleted long ago or never written: it goes as a delete at
   * `noRecordRev`, above any revision the joiner can hold and below every write still to come
   * (and below a write of it in flight here).
   */
  stateOf(key: string, noRecordRev: number): SnapshotEntry {
    const entry = this.get(key);
    if (entry !== undefined && (entry.value !== null || entry.rev > 0)) return snapshotOf(key, entry);
    // A write of the key in flight here (a recommit, say) must still land at the joiner after
    // this: the delete goes below its revision (F12).
    const below = entry?.state === 'invalid' ? Math.min(noRecordRev, entry.pendingRev - 1) : noRecordRev;
    return { key, rev: this.tombstones.get(key) ?? below, value: null };
  }

  /** Roll every write in flight back to the committed value and start a catch-up from `base`. */
  rollBackTo(base: number): void {
    for (const [key, e] of [...this.entries]) {
      if (e.state !== 'invalid') continue;
      this.rolledBack.add(key);
      const rev = e.pendingRev;
      this.apply(key, { type: 'abort', rev });
      // Rolled back here, which says nothing of whether it was committed elsewhere.
      this.changes.rolledBack(rev);
    }
    this._intact = false;
    this.heldThrough = base;
  }

  /** Once a sync is complete, absent entries become bounded tombstones. */
  purgeTombstones(): void {
    this.keepTombstones = false;
    for (const [key, entry] of this.entries) {
      if (entry.state !== 'absent') continue;
      this.entries.delete(key);
      this.remember(key, entry.rev);
    }
  }

  private remember(key: string, rev: number): void {
    if (rev === 0) return;
    this.tombstones.delete(key);
    this.tombstones.set(key, rev);
    if (this.tombstones.size > TOMBSTONES_MAX) {
      const [oldest, oldestRev] = this.tombstones.entries().next().value as [string, number];
      this.tombstones.delete(oldest);
      if (oldestRev > this.forgottenTombstoneRev) this.forgottenTombstoneRev = oldestRev;
      // Off the disk too, unless the key was written again: the meta that says it is forgotten
      // goes first, so a crash between the two leaves a record too many, never one too few.
      if (this.disk !== null && this.get(oldest) === undefined) {
        this.metaDirty = true;
        this.writeMeta();
        this.disk.write(oldest, null);
      }
    }
  }

  /** Highest revision this copy holds, committed or in flight (a new leader re-commits those). */
  get heldMaxRev(): number {
    let rev = this.committedMaxRev;
    for (const key of this.inFlight) rev = Math.max(rev, this.entries.get(key)?.pendingRev ?? 0);
    return rev;
  }

  /** Writes in flight on this node: invalidated, not yet validated. */
  pending(): PendingEntry[] {
    const out: PendingEntry[] = [];
    for (const [key, e] of this.entries) if (e.state === 'invalid') out.push({ key, rev: e.pendingRev, value: e.pendingValue, ...(e.pendingTtl !== 0 ? { ttl: e.pendingTtl } : {}) });
    return out;
  }

  /** For each write in flight here, the revision of its key's committed state beneath it (a delete's too; none: left out). */
  committedBeneathPending(): KeyRevision[] {
    const out: KeyRevision[] = [];
    for (const [key, e] of this.entries) if (e.state === 'invalid' && e.rev > 0) out.push({ key, rev: e.rev });
    return out;
  }

  /** The revision of `key`'s committed state, a delete's included, when this copy knows it (else 0). */
  committedStateRev(key: string): number {
    return (this.entries.get(key) ?? this.unpack(key))?.rev ?? this.tombstones.get(key) ?? 0;
  }

  /**
   * Committed values in chunks for state transfer; the walk stays valid across writes (an entry
   * written meanwhile may come out twice, at different revisions: the joiner keeps the newer).
   * With `since` above 0, a catch-up: only what changed above `since` (up to `through`, the last
   * revision before the admission), deletes as null values (the caller checks deletesKnownAbove
   * first). When the watch history holds every change in between, just the keys it names, as
   * they stand: work in proportion to the changes, not to the copy.
   */
  *chunks(maxEntries: number, maxBytes: number, since = 0, through = this._maxRev): Generator<SnapshotEntry[]> {
    const changed = since > 0 ? this.changes.keysChanged(since, through) : null;
    if (changed !== null) {
      yield* inChunks(this.statesOf(changed, through), maxEntries, maxBytes);
      return;
    }
    if (this.valuesOnDisk !== null) {
      // Page by page from the disk, each as the disk holds it then. A page may come out empty
      // (a catch-up sends few of many entries): the walk still gives the node back now and then.
      for (let after: string | undefined; ; ) {
        const { entries, next } = this.valuesOnDisk.page(after, since, maxEntries, maxBytes);
        if (entries.length > 0 || next !== null) yield entries.map(([key, e]) => snapshotOf(key, e));
        if (next === null) return;
        after = next;
      }
    }
    yield* inChunks(this.committed(since), maxEntries, maxBytes);
  }

  /** Each of `keys` as this copy holds it now (stateOf), read as the walk reaches it. */
  private *statesOf(keys: Iterable<string>, noRecordRev: number): Generator<SnapshotEntry> {
    for (const key of keys) yield this.stateOf(key, noRecordRev);
  }

  /**
   * The packed table first (records shadowed by a map entry skipped), then the map. An entry
   * that a write moves from the table to the map meanwhile is still met in the map; the other
   * way is held off while a walk is on (an entry validated meanwhile stays in the map), so no
   * committed entry slips between the two.
   */
  private *committed(since: number): Generator<SnapshotEntry> {
    this.walks++;
    try {
      for (const e of this.packed.entries(since)) if (!this.entries.has(e.key)) yield e;
      for (const [key, e] of this.entries) if (e.rev > since && (e.value !== null || since > 0)) yield snapshotOf(key, e);
      if (since > 0) for (const [key, rev] of this.tombstones) if (rev > since) yield { key, rev, value: null };
    } finally {
      this.walks--;
    }
  }

  get size(): number {
    return this.liveKeys;
  }

  /** Keys that exist, in key order (key-order.ts), from `first` on (inclusive). Do not write to the store while walking. */
  keysFrom(first: string | undefined): Iterable<string> {
    return this.valuesOnDisk?.keysFrom(first) ?? this.ordered.keys(first);
  }

  /** Keys with a write in flight here: a scan of them cannot be answered until it is decided. */
  keysInFlight(): ReadonlySet<string> {
    return this.inFlight;
  }

  /** Every key held, tombstones included (for checks on a quiet store: no ordering promise under writes). */
  *keys(): Generator<string> {
    yield* this.entries.keys();
    if (this.valuesOnDisk !== null) {
      for (const key of this.valuesOnDisk.keysFrom(undefined)) if (!this.entries.has(key)) yield key;
    } else {
      for (const e of this.packed.entries()) if (!this.entries.has(e.key)) yield e.key;
    }
  }
}
