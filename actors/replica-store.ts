// Every node holds a full replica: a map of cache entries plus waiters for keys whose
// write is in flight. Pure data structure, no I/O, no timers.
import { stepEntry, type EntryEvent, type EntryRecord } from './cache-entry.machine.ts';
import type { PendingEntry, SnapshotEntry } from './protocol.ts';

type Waiter = () => void;

/**
 * Values arrive as views on a received message buffer (no copy on the way in). A small value
 * kept as such a view would pin the whole socket chunk or batch in memory, so a value whose
 * backing buffer is much larger than itself is copied once, here, as it is stored.
 */
function compact(value: Uint8Array): Uint8Array {
  // new Uint8Array(view) copies; Buffer#slice would not.
  return value.buffer.byteLength > value.byteLength * 2 + 64 ? new Uint8Array(value) : value;
}

export class ReplicaStore {
  private readonly entries = new Map<string, EntryRecord>();
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

  get(key: string): EntryRecord | undefined {
    return this.entries.get(key);
  }

  apply(key: string, event: EntryEvent): boolean {
    if (event.rev > this.maxRev) this.maxRev = event.rev;
    if (event.type === 'fill') event = { ...event, value: compact(event.value) };
    else if (event.type === 'invalidate' && event.value !== null) event = { ...event, value: compact(event.value) };
    let entry = this.entries.get(key);
    if (entry === undefined) {
      if (event.type === 'validate' || event.type === 'abort') return false;
      entry = { state: 'absent', rev: 0, value: null, pendingRev: 0, pendingValue: null };
      this.entries.set(key, entry);
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
    if (wasInvalid && entry.state !== 'invalid') this.wake(key);
    return true;
  }

  /** Resolves when the key is no longer invalid (or at once). The caller bounds the wait. */
  settled(key: string): Promise<void> | null {
    if (this.entries.get(key)?.state !== 'invalid') return null;
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
    for (const [key, entry] of this.entries) if (entry.state === 'absent') this.entries.delete(key);
  }

  /** Writes in flight on this node: invalidated, not yet validated. */
  pending(): PendingEntry[] {
    const out: PendingEntry[] = [];
    for (const [key, e] of this.entries) if (e.state === 'invalid') out.push({ key, rev: e.pendingRev, value: e.pendingValue });
    return out;
  }

  /** Committed values in chunks for state transfer; the iterator stays valid across writes. */
  *chunks(maxEntries: number, maxBytes: number): Generator<SnapshotEntry[]> {
    let chunk: SnapshotEntry[] = [];
    let bytes = 0;
    for (const [key, e] of this.entries) {
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
