// The simulation's disk: what a node kept survives its crash, except the writes a crash can lose
// under the policy. Writes become stored (synced) a little later, all in order; `crash()` drops
// every write not yet synced, as a power loss does to an fsync-always disk whose flush had not
// returned, or to an interval disk whose page cache was not yet written.
import { compareKeys } from '../actors/key-order.ts';
import type { Clock, CopyMeta, ReplicaDisk, SettledSummary, StoredChange, StoredEntry } from '../actors/ports.ts';
import { takePage, type RecordPeek } from './disk-view.ts';

type Write =
  | { kind: 'entry'; key: string; entry: StoredEntry | null }
  | { kind: 'meta'; meta: CopyMeta }
  | { kind: 'clear' }
  | { kind: 'changes'; rev: number; changes: StoredChange[] }
  | { kind: 'forget'; rev: number };

const copyEntry = (e: StoredEntry): StoredEntry => ({
  ...e,
  value: e.value === null ? null : e.value.slice(),
  pendingValue: e.pendingValue === null ? null : e.pendingValue.slice(),
});

const peek: RecordPeek<StoredEntry> = { rev: (e) => e.rev, hasValue: (e) => e.value !== null, bytes: (e) => (e.value?.byteLength ?? 0) + 16, decode: (_key, e) => copyEntry(e) };

const copyChange = (c: StoredChange): StoredChange => ({ key: c.key, kind: c.kind, value: c.value === null ? null : Uint8Array.prototype.slice.call(c.value) });

export class MemoryDisk implements ReplicaDisk {
  private readonly synced = new Map<string, StoredEntry>();
  /** The entries as last written (what the node reads), synced or not. */
  private live = new Map<string, StoredEntry>();
  private syncedMeta: CopyMeta | null = null;
  /** The watch history's records, by revision. */
  private readonly syncedChanges = new Map<number, StoredChange[]>();
  /** Made, not yet synced: lost by a crash. */
  private pending: Write[] = [];
  private waiters: (() => void)[] = [];
  private timer: unknown = null;
  /** Set by failNext(): the next flush fails, as a full or broken disk does. */
  private failure: Error | null = null;

  constructor(
    private readonly clock: Clock,
    /** How long a sync takes. */
    private readonly syncMs: number,
  ) {}

  load(): { meta: CopyMeta | null; settled: SettledSummary; others: Iterable<[string, StoredEntry]>; changes: Iterable<[number, StoredChange[]]> } {
    const stable = this.syncedMeta?.watchHistory?.stable ?? Number.POSITIVE_INFINITY;
    const settled: SettledSummary = { count: 0, valueBytes: 0, maxRev: 0, aboveStable: [] };
    const others: [string, StoredEntry][] = [];
    for (const [key, e] of this.synced) {
      if (e.value === null || e.pendingRev > 0 || (e.ttl ?? 0) !== 0) {
        others.push([key, copyEntry(e)]);
        continue;
      }
      settled.count++;
      settled.valueBytes += e.value.byteLength;
      settled.maxRev = Math.max(settled.maxRev, e.rev);
      if (e.rev > stable) settled.aboveStable.push([key, e.rev]);
    }
    return {
      meta: this.syncedMeta === null ? null : { ...this.syncedMeta },
      settled,
      others,
      changes: [...this.syncedChanges].sort((a, b) => a[0] - b[0]).map(([rev, group]) => [rev, group.map(copyChange)] as [number, StoredChange[]]),
    };
  }

  writeChanges(rev: number, changes: readonly StoredChange[]): void {
    this.push({ kind: 'changes', rev, changes: changes.map(copyChange) });
  }

  forgetChanges(rev: number): void {
    this.push({ kind: 'forget', rev });
  }

  write(key: string, entry: StoredEntry | null): void {
    const copy = entry === null ? null : copyEntry(entry);
    if (copy === null) this.live.delete(key);
    else this.live.set(key, copy);
    this.push({ kind: 'entry', key, entry: copy });
  }

  read(key: string): StoredEntry | undefined {
    const e = this.live.get(key);
    return e === undefined ? undefined : copyEntry(e);
  }

  *keysFrom(first: string | undefined): Generator<string> {
    for (const [key, e] of this.sortedFrom(first, false)) if (e.value !== null) yield key;
  }

  page(after: string | undefined, since: number, limit: number, maxBytes: number): { entries: [string, StoredEntry][]; next: string | null } {
    return takePage(this.sortedFrom(after, true), peek, since, limit, maxBytes);
  }

  private sortedFrom(from: string | undefined, exclusive: boolean): [string, StoredEntry][] {
    const inRange = (key: string) => from === undefined || compareKeys(key, from) > (exclusive ? 0 : -1);
    return [...this.live].filter(([key]) => inRange(key)).sort((a, b) => compareKeys(a[0], b[0]));
  }

  writeMeta(meta: CopyMeta): void {
    this.push({ kind: 'meta', meta: { ...meta } });
  }

  clear(): void {
    this.live.clear();
    this.push({ kind: 'clear' });
  }

  flushed(): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async close(): Promise<void> {
    this.sync();
  }

  /** The process or machine died: what was not synced is gone. */
  crash(): void {
    this.pending = [];
    this.live = new Map([...this.synced].map(([key, e]) => [key, copyEntry(e)]));
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    this.waiters = [];
  }

  /** From now on every flush fails (a full disk, a write error). */
  fail(why: string): void {
    this.failure = new Error(why);
  }

  private push(w: Write): void {
    this.pending.push(w);
    this.timer ??= this.clock.setTimeout(() => this.sync(), this.syncMs);
  }

  private sync(): void {
    this.timer = null;
    for (const w of this.pending) {
      if (w.kind === 'clear') this.synced.clear();
      else if (w.kind === 'meta') this.syncedMeta = w.meta;
      else if (w.kind === 'changes') this.syncedChanges.set(w.rev, w.changes);
      else if (w.kind === 'forget') {
        for (const rev of this.syncedChanges.keys()) if (rev <= w.rev) this.syncedChanges.delete(rev);
      } else if (w.entry === null) this.synced.delete(w.key);
      else this.synced.set(w.key, w.entry);
    }
    this.pending = [];
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }
}
