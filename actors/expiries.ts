// When each key with a time to live expires, as the leader keeps it (PROTOCOL.md "Expiring
// keys"): by key, and in deadline order for the timer. Pure data structure, no timers.
import { compareKeys } from './key-order.ts';
import { BTree } from './sorted-btree.ts';

type Due = [at: number, key: string];

export class Expiries {
  private readonly byKey = new Map<string, number>();
  private readonly byTime = new BTree<Due, undefined>(undefined, (a, b) => a[0] - b[0] || compareKeys(a[1], b[1]));

  /** `key` expires at `at` (replacing any earlier deadline). */
  set(key: string, at: number): void {
    this.delete(key);
    this.byKey.set(key, at);
    this.byTime.set([at, key], undefined);
  }

  delete(key: string): void {
    const at = this.byKey.get(key);
    if (at === undefined) return;
    this.byKey.delete(key);
    this.byTime.delete([at, key]);
  }

  /** When `key` expires; undefined when it does not. */
  deadline(key: string): number | undefined {
    return this.byKey.get(key);
  }

  /** The earliest deadline, if any. */
  next(): number | undefined {
    return this.byTime.minKey()?.[0];
  }

  /** Keys whose deadline is at or before `now`, earliest first. */
  due(now: number): string[] {
    const out: string[] = [];
    for (const [at, key] of this.byTime.keys()) {
      if (at > now) break;
      out.push(key);
    }
    return out;
  }

  get size(): number {
    return this.byKey.size;
  }

  clear(): void {
    this.byKey.clear();
    this.byTime.clear();
  }
}
