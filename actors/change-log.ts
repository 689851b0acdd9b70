// The recent history of this copy's committed changes, in revision order: what watches read
// (PROTOCOL.md "Watch"). Pure data structure, fed by ReplicaStore.apply; no I/O, no timers.
//
// Two revisions bound what it can tell:
// - `stable`: every write committed at or below it is decided here, so no change at or below it
//   is still to come. A revision becomes stable once this copy saw it committed (a validate) and
//   every revision below it is stable too, or once the leader's heldThrough covers it with no
//   write of this copy in flight at or below it (a revision nobody committed leaves a hole).
// - `floor`: the log holds every committed change above it (up to `stable`). It rises when a
//   change came in some other way than a validate seen here (a snapshot, a catch-up, a restart),
//   when this copy cannot tell whether a write it held in flight was committed (its decision was
//   lost in a failure), and when retention drops the oldest changes. A watch from below the
//   floor is refused here: it must resume elsewhere, never skip a change or invent one.

import type { StoredChange } from './ports.ts';
import type { ChangeTransfer } from './protocol.ts';
import { ChangeList, changeBytes } from './change-list.ts';
import { compareKeys } from './key-order.ts';
import { RevisionMap } from './revision-map.ts';
import { slabCopy } from './value-slab.ts';

export type ChangeKind = 'put' | 'delete' | 'expire';

export interface Change {
  rev: number;
  key: string;
  kind: ChangeKind;
  /** The value put; null for a delete. The log keeps its own copy (change-list.ts). */
  value: Uint8Array | null;
  /** When this copy saw it committed (for retention by age). */
  at: number;
}

export interface ChangeRetention {
  /** At most this many changes are kept. */
  maxChanges: number;
  /** Changes older than this are dropped. */
  maxAgeMs: number;
  /** Keys and values of the kept changes, in bytes, at most this. */
  maxBytes: number;
}

export const defaultChangeRetention: ChangeRetention = { maxChanges: 100_000, maxAgeMs: 60 * 60 * 1000, maxBytes: 64 * 1024 * 1024 };

// The changes of one revision (a transaction's writes) are kept in key order: every node then
// tells them in the same order, whatever order their validates came in.
const byKey = (a: Change, b: Change): number => compareKeys(a.key, b.key);

function inKeyOrder(group: Change[], change: Change): void {
  let at = group.length;
  while (at > 0 && byKey(group[at - 1]!, change) > 0) at--;
  group.splice(at, 0, change);
}

export class ChangeLog {
  /** Stable changes in revision order. */
  private readonly changes = new ChangeList();
  private _floor = 0;
  private _stable = 0;
  private heldThrough = 0;
  /** Revision → entries of this copy in flight at it (a transaction's writes share one revision). */
  private readonly inFlight = new RevisionMap<number>();
  /** Committed above `stable`, waiting for the revisions below: revision → its changes. */
  private readonly staged = new RevisionMap<Change[]>();
  private readonly listeners = new Set<() => void>();
  /**
   * A state transfer is under way (a join or catch-up): what it brings was not seen change by
   * change, and a write rolled back meanwhile is undecided here. The leader may send its own
   * changes for those revisions at the end (endTransfer); until then `stable` stays where it is
   * and the floor it would have to rise to is kept here.
   */
  private transferring = false;
  private deferredFloor = 0;
  /** The highest revision of this copy that the transfer flushed (flushed). */
  private flushedThrough = 0;
  /** Revisions of this copy's writes that the transfer rolled back and that did not come back in flight (rolledBack). */
  private readonly rolledBackRevs = new Set<number>();
  /**
   * The last revision the transfer covers (its leader gave every later one as a write, which this
   * log sees as any other): null until the current admission's last chunk says so. A second
   * admission into the same open transfer covers what the first left too: every revision
   * committed up to its leader's last is either in the copy it sends (the revisions it brings
   * unseen, `deferredFloor`, count those of both) or covered; the writes of ours that it rolled
   * back or flushed count as ever.
   */
  private coveredThrough: number | null = null;
  /** The last revision the transfer's leader had given before the admission (its last chunk). */
  private lastGiven = 0;
  retention: ChangeRetention = defaultChangeRetention;
  /** Told each time the floor rises for another reason than retention (the node logs it); must not throw. */
  onFloorRaised: ((floor: number, why: string) => void) | null = null;
  /**
   * Where the history is kept between runs (the copy's data dir): told of every committed change
   * taken in (with the others of its revision so far), and of each rise of the floor (nothing at or
   * below it is needed any more).
   */
  onRecorded: ((rev: number, changes: readonly Change[]) => void) | null = null;
  onForgotten: ((floor: number) => void) | null = null;

  /** `now`: the node's clock, for retention by age. */
  constructor(private readonly now: () => number = () => performance.now()) {}

  get floor(): number {
    return this._floor;
  }

  get stable(): number {
    return this._stable;
  }

  /** `listener` runs whenever `stable` or `floor` moves; the returned function removes it. */
  listen(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A write entered this copy in flight at `rev`. */
  pending(rev: number): void {
    this.inFlight.set(rev, (this.inFlight.get(rev) ?? 0) + 1);
    // In flight here again (the leader's own, still to be re-committed): decided here as any write.
    if (this.transferring) this.rolledBackRevs.delete(rev);
  }

  /** The write in flight at `rev` was committed here: `value` null is a delete. */
  committed(rev: number, key: string, value: Uint8Array | null, kind: ChangeKind = value === null ? 'delete' : 'put'): void {
    this.settle(rev);
    if (rev <= this._floor) return;
    // Below `stable` nothing may still come: a change that does was missed by the rules above,
    // unless it is one the leader's changes already brought (its validate came late).
    if (rev <= this._stable) {
      if (!this.holds(rev, key)) this.raiseFloor(rev, 'a change came below the stable revision');
      return;
    }
    const change: Change = { rev, key, kind, value, at: this.now() };
    let group = this.staged.get(rev);
    if (group === undefined) this.staged.set(rev, (group = [change]));
    else inKeyOrder(group, change);
    this.onRecorded?.(rev, group);
    // Held back for long (no lease, a decision that does not come): bounded like the log.
    if (this.staged.size > this.retention.maxChanges) this.raiseFloor(this.staged.minKey()!, 'changes held back too long');
    this.advance();
    // Still waiting for a lower revision: a copy, so that the log does not pin the message the value came in.
    if (value !== null && this.staged.has(rev)) change.value = slabCopy(value);
  }

  /** The write in flight at `rev` was dropped by this copy's leader itself: nobody committed it. */
  aborted(rev: number): void {
    this.settle(rev);
    this.advance();
  }

  /**
   * The write in flight at `rev` left this copy undecided (a newer write of its key replaced it,
   * or a catch-up rolled it back): it may have been committed elsewhere.
   */
  unknown(rev: number): void {
    this.settle(rev);
    this.missed(rev);
  }

  /**
   * A state transfer rolled back this copy's write in flight at `rev` (its entry is aborted). The
   * leader's changes, if they come, decide it: up to their end they hold it if it was committed;
   * above it, it was not, for the leader holds every committed write and its changes reach up to
   * the last revision it had given. Without them, the floor rises over it.
   */
  rolledBack(rev: number): void {
    if (this.transferring) this.rolledBackRevs.add(rev);
    else this.raiseFloor(rev, 'a write rolled back outside a state transfer');
  }

  /** The copy took a change at `rev` it did not see committed (a state transfer, a restart). */
  missed(rev: number): void {
    if (this.transferring) this.deferredFloor = Math.max(this.deferredFloor, rev);
    else this.raiseFloor(rev, 'a change not seen committed here');
  }

  /**
   * The copy was flushed: nothing in flight any more, and nothing at or below `rev` is known. In
   * a state transfer, the leader's changes decide it, as for a write rolled back. A copy flushed
   * to take a snapshot of its own history (`sameHistory`) keeps its changes true: only its writes
   * in flight are undecided, as if the transfer had rolled them back.
   */
  flushed(rev: number, sameHistory = false): void {
    if (sameHistory && this.transferring) {
      for (const pending of this.inFlight.keys()) this.rolledBack(pending);
      this.inFlight.clear();
      return;
    }
    this.inFlight.clear();
    if (this.transferring) this.flushedThrough = Math.max(this.flushedThrough, rev);
    else this.raiseFloor(rev, 'the copy was flushed');
  }

  /**
   * Take back the history kept with the copy at start: its floor and stable revision; the changes
   * recorded, in revision order, their values the log's own from now on (those above `stable`
   * were committed, the revisions between them are undecided); the revisions of the writes the
   * copy holds in flight; and the highest revision the copy holds committed without a record of
   * its change (it came some other way: the floor rises to it). What the log held is dropped.
   */
  restore(kept: { floor: number; stable: number }, recorded: Iterable<[number, StoredChange[]]>, inFlight: Iterable<number>, unrecorded: number): void {
    this.changes.clear();
    this.staged.clear();
    this.inFlight.clear();
    this.transferring = false;
    this._floor = kept.floor;
    this._stable = Math.max(kept.stable, kept.floor);
    const now = this.now();
    for (const [rev, group] of recorded) {
      if (rev <= this._floor) continue;
      const changes = group.map((c): Change => ({ rev, key: c.key, kind: c.kind, value: c.value, at: now })).sort(byKey);
      if (rev > this._stable) this.staged.set(rev, changes);
      else for (const change of changes) this.changes.push(change);
    }
    for (const rev of inFlight) if (rev > this._stable) this.pending(rev);
    if (unrecorded > this._floor) this.raiseFloor(unrecorded, 'a change the data dir holds without its record');
    this.trim();
    this.advance();
  }

  /**
   * A state transfer starts (see `transferring`). One that did not end (it failed) is still
   * undecided here: the new one's changes must cover it too, so what it left stays (see
   * coveredThrough).
   */
  beginTransfer(): void {
    this.coveredThrough = null;
    if (this.transferring) return;
    this.transferring = true;
    this.deferredFloor = 0;
    this.flushedThrough = 0;
    this.rolledBackRevs.clear();
  }

  /**
   * The state transfer ended. With the leader's changes (`received`), this log goes on from them
   * (and those below our floor, if they reach that low, go in below as `backfill` takes them):
   * they cover every revision up to `received.through`, and the leader sent nothing above it but
   * writes this copy sees committed itself; a write above it left undecided here meanwhile (a
   * newer one replaced it) still raises the floor, a write rolled back does not (rolledBack).
   * Without (an older leader, a failed transfer, changes still to come), the floor rises over
   * everything the transfer may have brought: up to the revision its last chunk said it covers,
   * else up to `fallback`. Not higher: a write given after the admission reached this copy as a
   * write, decided here as any other (a new leader's recovery decides one still in flight).
   */
  endTransfer(received: ChangeTransfer | null, fallback: number): void {
    if (!this.transferring) return;
    if (received === null || received.through < this._stable) {
      this.transferring = false;
      this.raiseFloor(this.transferCeiling() ?? Math.max(this.transferBrought(Infinity), fallback), 'a state transfer without the leader\'s changes');
      return;
    }
    // The leader's changes start above our stable revision, or ours are gone: drop what does not
    // connect. Still transferring: `stable` must not move past them before they are in.
    if (received.after > this._stable) this.raiseFloor(received.after, 'the leader\'s changes start above ours');
    this.staged.deleteThrough(received.through);
    this.inFlight.deleteThrough(received.through);
    for (const change of this.takeIn(received.changes.filter((c) => c.rev > this._stable), this.now())) this.changes.push(change);
    this._stable = Math.max(this._stable, received.through);
    this.transferring = false;
    this.trim();
    if (this.deferredFloor > received.through) this.raiseFloor(this.deferredFloor, 'a write left undecided during a state transfer');
    // Older than ours too (we asked for them: our floor had risen): they go in below.
    if (received.after < this._floor) this.backfill(received);
    if (!this.advance()) this.notify();
  }

  /**
   * The current admission's last chunk: its leader had given revisions up to `lastGiven`, and the
   * writes at `inFlight` came to this copy in flight (it was re-committing them), to be decided
   * here as any write. The transfer covers the revisions below them (see coveredThrough).
   */
  transferCovers(lastGiven: number, inFlight: readonly number[] = []): void {
    if (!this.transferring) return;
    this.coveredThrough = Math.min(lastGiven, ...inFlight.map((rev) => rev - 1));
    this.lastGiven = lastGiven;
  }

  /**
   * What a joiner whose log is complete up to `after` needs from this one, up to `through`: the
   * changes in between, or, when this log starts later or they do not fit `maxBytes`, the newest
   * whole revisions that do (with `after` raised to match). Null when this log is not complete up
   * to `through`.
   */
  transferable(after: number, through: number, maxBytes: number): ChangeTransfer | null {
    if (this._stable < through || this.transferring) return null;
    let from = Math.max(after, this._floor);
    const picked = [...this.since(from)].filter((c) => c.rev <= through);
    let bytes = picked.reduce((n, c) => n + changeBytes(c), 0);
    let first = 0;
    while (bytes > maxBytes && first < picked.length) {
      const rev = picked[first]!.rev;
      while (first < picked.length && picked[first]!.rev === rev) bytes -= changeBytes(picked[first++]!);
      from = rev;
    }
    return { after: from, through, changes: picked.slice(first).map(({ rev, key, kind, value }) => ({ rev, key, kind, value })) };
  }

  /**
   * The keys of the changes above `after` and at or below `through`, when this log holds every
   * one of them (null when it does not: it starts later, or has not decided them all yet). A
   * catch-up sends these keys as they stand rather than walking the whole copy.
   */
  keysChanged(after: number, through: number): Set<string> | null {
    this.expire();
    if (this._floor > after || this._stable < through || this.transferring) return null;
    const keys = new Set<string>();
    for (const c of this.since(after)) {
      if (c.rev > through) break;
      keys.add(c.key);
    }
    return keys;
  }

  /**
   * Every write committed at or below `rev` is in this copy (the leader's lease says so). A write
   * in flight here stays so until its validate (resent until it arrives), a newer write of its
   * key, or a catch-up decides it: only then does `stable` pass it.
   */
  held(rev: number): void {
    if (rev <= this.heldThrough) return;
    this.heldThrough = rev;
    this.advance();
  }

  /** Changes with a revision above `after` and at or below `stable`, in order, from the first index (binary search). */
  *since(after: number): Generator<Change> {
    this.expire();
    for (let i = this.changes.indexAbove(after); i < this.changes.length; i++) yield this.changes.get(i);
  }

  /** Whether the log holds the change of `key` at `rev`. */
  private holds(rev: number, key: string): boolean {
    for (const c of this.since(rev - 1)) {
      if (c.rev !== rev) return false;
      if (c.key === key) return true;
    }
    return false;
  }

  /** How many changes are kept now (for metrics). */
  get size(): number {
    return this.changes.length;
  }

  private settle(rev: number): void {
    const n = this.inFlight.get(rev);
    if (n === undefined) return;
    if (n <= 1) this.inFlight.delete(rev);
    else this.inFlight.set(rev, n - 1);
  }

  private lowestInFlight(): number {
    return this.inFlight.minKey() ?? Number.POSITIVE_INFINITY;
  }

  /** Move `stable` as far as the rules allow, and the staged changes it passes into the log; whether listeners were told. */
  private advance(): boolean {
    if (this.transferring) return false;
    const bound = this.lowestInFlight() - 1;
    let stable = Math.max(this._stable, Math.min(this.heldThrough, bound));
    while (stable < bound && this.staged.has(stable + 1)) stable++;
    if (stable === this._stable) return false;
    for (;;) {
      const rev = this.staged.minKey();
      if (rev === undefined || rev > stable) break;
      for (const change of this.staged.get(rev)!) this.changes.push(change);
      this.staged.delete(rev);
    }
    this._stable = stable;
    this.trim();
    this.notify();
    return true;
  }

  /** What the copy's meta keeps of this log (restore takes it back; an open transfer: see transferLost). */
  get kept(): { floor: number; stable: number; transferring?: boolean; transferCovers?: number } {
    if (!this.transferring) return { floor: this._floor, stable: this._stable };
    const covers = this.transferCeiling();
    return { floor: this._floor, stable: this._stable, transferring: true, ...(covers !== null ? { transferCovers: covers } : {}) };
  }

  /** The highest revision the open transfer may have brought unseen, once its last chunk said how far it covers; null before. */
  private transferCeiling(): number | null {
    // A write rolled back above the last revision the leader had given was committed nowhere: a
    // complete copy (the leader's) would hold it.
    return this.coveredThrough === null ? null : Math.max(this.coveredThrough, this.transferBrought(this.lastGiven));
  }

  /** The highest revision the open transfer took in unseen or flushed here, or left rolled back at or below `rolledBackUpTo`. */
  private transferBrought(rolledBackUpTo: number): number {
    let rev = Math.max(this.deferredFloor, this.flushedThrough);
    for (const r of this.rolledBackRevs) if (r <= rolledBackUpTo && r > rev) rev = r;
    return rev;
  }

  /**
   * Older changes of the same history, from a copy that kept them: those in (`older.after`,
   * floor] go in below the ones held, and the floor comes down to `older.after`. Only changes
   * that meet the ones held are taken (`older.through` at or above the floor); false when
   * nothing was taken.
   */
  backfill(older: ChangeTransfer): boolean {
    if (this.transferring || older.after >= this._floor || older.through < this._floor) return false;
    // Retention by age looks at the oldest first: these count as old as the oldest held.
    const at = this.size > 0 ? this.changes.at(0) : this.now();
    const taken = this.takeIn(older.changes.filter((c) => c.rev > older.after && c.rev <= this._floor), at);
    // Read as kept (since() would also apply retention by age here).
    const held = Array.from({ length: this.changes.length }, (_, i) => this.changes.get(i));
    this.changes.clear();
    for (const change of [...taken, ...held]) this.changes.push(change);
    this._floor = older.after;
    this.trim();
    this.notify();
    return true;
  }

  /**
   * Changes another copy sent (in revision order), as this log keeps them: seen `at`, and
   * recorded by revision (a transaction's changes together) for the disk.
   */
  private takeIn(sent: ChangeTransfer['changes'], at: number): Change[] {
    const taken: Change[] = [];
    let group: Change[] = [];
    for (const c of sent) {
      const change: Change = { rev: c.rev, key: c.key, kind: c.kind, value: c.value, at };
      taken.push(change);
      if (group.length > 0 && group[0]!.rev !== c.rev) group = [];
      group.push(change);
      this.onRecorded?.(c.rev, group);
    }
    return taken;
  }

  /** A state transfer was open when the node stopped, its leader's changes never in: nothing up to `rev` is known. */
  transferLost(rev: number): void {
    this.raiseFloor(rev, 'a state transfer was open when the node stopped');
  }

  private raiseFloor(rev: number, why: string): void {
    if (rev <= this._floor) return;
    this.onFloorRaised?.(rev, why);
    this._floor = rev;
    this.onForgotten?.(rev);
    this.staged.deleteThrough(rev);
    this.inFlight.deleteThrough(rev);
    while (this.changes.length > 0 && this.changes.rev(0) <= rev) this.changes.shift();
    // Nothing at or below the floor is needed any more: stable may pass it.
    if (this._stable < rev) this._stable = rev;
    if (!this.advance()) this.notify();
  }

  /** Retention by count and bytes (age is checked on every read). */
  private trim(): void {
    const { maxChanges, maxBytes } = this.retention;
    while (this.size > maxChanges || (this.changes.bytes > maxBytes && this.size > 0)) this.dropRevision();
  }

  private expire(): void {
    const oldest = this.now() - this.retention.maxAgeMs;
    while (this.size > 0 && this.changes.at(0) < oldest) this.dropRevision();
  }

  /** Drop the oldest revision whole (a transaction's changes go together): the floor rises to it. */
  private dropRevision(): void {
    const rev = this.changes.rev(0);
    while (this.changes.length > 0 && this.changes.rev(0) === rev) this.changes.shift();
    if (rev > this._floor) {
      this._floor = rev;
      this.onForgotten?.(rev);
    }
  }

  private notify(): void {
    for (const listener of this.listeners) listener();
  }
}
