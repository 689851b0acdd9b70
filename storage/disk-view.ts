// What the disks share for reading a copy as last written: the engine's entries in key order,
// with the writes not yet stored laid over them, and a transfer's pages taken from that.
import { compareKeys } from '../actors/key-order.ts';
import type { StoredEntry } from '../actors/ports.ts';

/** How many entries a page looks at, per entry it may hold: a catch-up that sends few entries still yields now and then. */
const SCAN_PER_ENTRY = 8;

/**
 * `stored` (in key order, from `from`, or after it when `exclusive`) with `overlay` laid over it:
 * a key in the overlay is as the overlay says (null: it holds nothing), in its place in the order.
 */
export function* overlaid<R>(stored: Iterable<[string, R]>, overlay: ReadonlyMap<string, R | null>, from: string | undefined, exclusive: boolean): Generator<[string, R]> {
  const inRange = (key: string) => from === undefined || (exclusive ? compareKeys(key, from) > 0 : compareKeys(key, from) >= 0);
  const laid = [...overlay.keys()].filter(inRange).sort(compareKeys);
  let i = 0;
  for (const [key, record] of stored) {
    for (; i < laid.length && compareKeys(laid[i]!, key) < 0; i++) {
      const over = overlay.get(laid[i]!)!;
      if (over !== null) yield [laid[i]!, over];
    }
    if (i < laid.length && laid[i] === key) {
      const over = overlay.get(laid[i++]!)!;
      if (over !== null) yield [key, over];
      continue;
    }
    yield [key, record];
  }
  for (; i < laid.length; i++) {
    const over = overlay.get(laid[i]!)!;
    if (over !== null) yield [laid[i]!, over];
  }
}

/** What a page needs to know of a record before decoding it. */
export interface RecordPeek<R> {
  rev(record: R): number;
  hasValue(record: R): boolean;
  bytes(record: R): number;
  decode(key: string, record: R): StoredEntry;
}

/** ReplicaDisk.page over `records` (the entries after the page's start, in key order). */
export function takePage<R>(records: Iterable<[string, R]>, peek: RecordPeek<R>, since: number, limit: number, maxBytes: number): { entries: [string, StoredEntry][]; next: string | null } {
  const entries: [string, StoredEntry][] = [];
  let bytes = 0;
  let looked = 0;
  for (const [key, record] of records) {
    looked++;
    if (peek.rev(record) > since && (since > 0 || peek.hasValue(record))) {
      entries.push([key, peek.decode(key, record)]);
      bytes += key.length + peek.bytes(record);
    }
    if (entries.length >= limit || bytes >= maxBytes || looked >= limit * SCAN_PER_ENTRY) return { entries, next: key };
  }
  return { entries, next: null };
}
