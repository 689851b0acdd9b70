// Every node holds a full replica: a map of cache entries plus waiters for keys whose
// write is in flight. Pure data structure, no I/O, no timers.
import { Buffer } from 'node:buffer';
import { stepEntry, type EntryEvent, type EntryRecord } from './cache-entry.machine.ts';
import type { PendingEntry, SnapshotEntry } from './protocol.ts';

type Waiter = () => void;

/**
 * Most keys sit valid with a small value. Kept as an EntryRecord with its Uint8Array, such a key
 * cost about 280 heap bytes (record, typed array, array buffer, elements); packed into one
 * latin1 string (7 chars of revision, then the value's bytes) it costs 40. Anything else (a
 * write in flight, a tombstone, a large value) stays an EntryRecord.
 */
type Slot = string | EntryRecord;

/** Values up to this size are packed; larger ones keep their bytes (no copy on every read). */
const PACK_MAX_BYTES = 256;
const REV_CHARS = 7; // 56 bits: revisions stay below 2^53

function pack(rev: number, value: Uint8Array): string {
  const out = Buffer.allocUnsafe(REV_CHARS + value.byteLength);
  let r = rev;
  for (let i = REV_CHARS - 1; i >= 0; i--) {
    out[i] = r % 256;
    r = Math.floor(r / 256);
  }
  out.set(value, REV_CHARS);
  return out.toString('latin1');
}

function unpackRev(slot: string): number {
  let rev = 0;
  for (let i = 0; i < REV_CHARS; i++) rev = rev * 256 + slot.charCodeAt(i);
  return rev;
}

/** The packed value's bytes, copied out: a stored value must not change under a reader. */
function unpackValue(slot: string): Uint8Array {
  const bytes = Buffer.from(slot, 'latin1');
  return new Uint8Array(bytes.buffer, bytes.byteOffset + REV_CHARS, bytes.byteLength - REV_CHARS);
}

function unpack(slot: string): EntryRecord {
  return { state: 'valid', rev: unpackRev(slot), value: unpackValue(slot), pendingRev: 0, pendingValue: null };
}

/**
 * Values arrive as views on a received message buffer (no copy on the way in). A value kept as
 * such a view would pin the whole socket chunk or batch in memory, so a value whose backing
 * buffer is much larger than itself is copied once, here, as it is stored.
 */
function compact(value: Uint8Array): Uint8Array {
  if (value.buffer.byteLength <= value.byteLength * 2 + 64) return value;
  // A buffer of its own, not zero-filled first (every byte is overwritten at once).
  const copy = Buffer.allocUnsafeSlow(value.byteLength);
  copy.set(value);
  return new Uint8Array(copy.buffer, 0, copy.byteLength);
}

/**
 * Keys cut from a larger string (a NATS subject) are V8 sliced strings that keep the whole
 * parent alive; a key stored for good is copied into a string of its own.
 */
function ownKey(key: string): string {
  const copy = Buffer.from(key).toString();
  return copy === key ? copy : key;
}

export class ReplicaStore {
  private readonly entries = new Map<string, Slot>();
  private readonly waiters = new Map<string, Waiter[]>();
  /** Highest revision this node has seen in any message: deletes leave no entry, so keep it apart. */
  maxRev = 0;
  /** While syncing, absent entries are kept as tombstones so that stale snapshot fills are ignored. */
  keepTombstones = false;
  valueBytes = 0;
  /** Called after every change of an entry (for the inspector view); must not throw. */
  onEntry: ((key: string, entry: EntryRecord) => void) | null = null;
  /** Number of entries that hold a committed value (keys that exist). */
  liveKeys = 0;

  /** The entry of `key`, as a copy when it is stored packed (read it, don't keep it). */
  get(key: string): EntryRecord | undefined {
    const slot = this.entries.get(key);
    return typeof slot === 'string' ? unpack(slot) : slot;
  }

  /** Is a write to `key` in flight here? */
  isInvalid(key: string): boolean {
    const slot = this.entries.get(key);
    return slot !== undefined && typeof slot !== 'string' && slot.state === 'invalid';
  }

  apply(key: string, event: EntryEvent): boolean {
    if (event.rev > this.maxRev) this.maxRev = event.rev;
    if (event.type === 'fill') event = { ...event, value: compact(event.value) };
    else if (event.type === 'invalidate' && event.value !== null) event = { ...event, value: compact(event.value) };
    const slot = this.entries.get(key);
    let entry: EntryRecord;
    if (slot === undefined) {
      if (event.type === 'validate' || event.type === 'abort') return false;
      entry = { state: 'absent', rev: 0, value: null, pendingRev: 0, pendingValue: null };
      key = ownKey(key);
    } else if (typeof slot === 'string') {
      // A packed entry is valid with nothing pending: only a newer fill or invalidate moves it.
      if (event.type === 'validate' || event.type === 'abort' || event.rev <= unpackRev(slot)) return false;
      entry = unpack(slot);
    } else {
      entry = slot;
    }
    const before = entry.value;
    const wasInvalid = entry.state === 'invalid';
    const changed = stepEntry(entry, event);
    if (!changed) return false;
    if (before !== entry.value) {
      if (before !== null) { this.valueBytes -= before.byteLength; this.liveKeys--; }
      if (entry.value !== null) { this.valueBytes += entry.value.byteLength; this.liveKeys++; }
    }
    this.onEntry?.(key, entry);
    if (entry.state === 'absent' && !this.keepTombstones) this.entries.delete(key);
    else if (entry.state === 'valid' && entry.value !== null && entry.value.byteLength <= PACK_MAX_BYTES) this.entries.set(key, pack(entry.rev, entry.value));
    else if (entry !== slot) this.entries.set(key, entry);
    if (wasInvalid && entry.state !== 'invalid') this.wake(key);
    return true;
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

  /** Forget everything (a node that rejoins flushes its copy and takes a fresh snapshot). */
  clear(): void {
    this.entries.clear();
    this.valueBytes = 0;
    this.liveKeys = 0;
    for (const key of [...this.waiters.keys()]) this.wake(key);
  }

  /** Drop tombstones once a sync is complete. */
  purgeTombstones(): void {
    this.keepTombstones = false;
    for (const [key, slot] of this.entries) if (typeof slot !== 'string' && slot.state === 'absent') this.entries.delete(key);
  }

  /** Writes in flight on this node: invalidated, not yet validated. */
  pending(): PendingEntry[] {
    const out: PendingEntry[] = [];
    for (const [key, e] of this.entries) if (typeof e !== 'string' && e.state === 'invalid') out.push({ key, rev: e.pendingRev, value: e.pendingValue });
    return out;
  }

  /** Committed values in chunks for state transfer; the iterator stays valid across writes. */
  *chunks(maxEntries: number, maxBytes: number): Generator<SnapshotEntry[]> {
    let chunk: SnapshotEntry[] = [];
    let bytes = 0;
    for (const [key, slot] of this.entries) {
      const e = typeof slot === 'string' ? unpack(slot) : slot;
      if (e.value === null) continue;
      chunk.push({ key, rev: e.rev, value: e.value });
      bytes += e.value.byteLength + key.length + 16;
      if (chunk.length >= maxEntries || bytes >= maxBytes) {
        yield chunk;
        chunk = [];
        bytes = 0;
      }
    }
    if (chunk.length > 0) yield chunk;
  }

  get size(): number {
    return this.liveKeys;
  }

  keys(): IterableIterator<string> {
    return this.entries.keys();
  }
}
