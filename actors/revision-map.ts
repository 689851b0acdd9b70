// A map from revisions to values that also knows its lowest revision. The change log keeps its
// writes in flight and its changes waiting for lower revisions here, several times per write:
// revisions come nearly in order and leave from the low end, so a sorted array whose inserts
// land at the end and whose removals land at the start costs less than a B-tree.

/** The index of the first entry above `rev` in `sorted[lo, hi)`, ascending (binary search). */
export function firstAbove(sorted: ArrayLike<number>, lo: number, hi: number, rev: number): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= rev) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class RevisionMap<V> {
  private readonly values = new Map<number, V>();
  /** The revisions of `values`, ascending, from index `head` on. */
  private revs: number[] = [];
  private head = 0;

  get size(): number {
    return this.values.size;
  }

  get(rev: number): V | undefined {
    return this.values.get(rev);
  }

  has(rev: number): boolean {
    return this.values.has(rev);
  }

  /** The revisions held, in no particular order. */
  keys(): IterableIterator<number> {
    return this.values.keys();
  }

  minKey(): number | undefined {
    return this.values.size === 0 ? undefined : this.revs[this.head];
  }

  set(rev: number, value: V): void {
    if (!this.values.has(rev)) {
      const last = this.revs.length - 1;
      if (last < this.head || this.revs[last]! < rev) this.revs.push(rev);
      else this.revs.splice(firstAbove(this.revs, this.head, this.revs.length, rev), 0, rev);
    }
    this.values.set(rev, value);
  }

  delete(rev: number): void {
    if (!this.values.delete(rev)) return;
    if (this.revs[this.head] === rev) this.head++;
    else this.revs.splice(firstAbove(this.revs, this.head, this.revs.length, rev) - 1, 1);
    this.compact();
  }

  /** Drop every revision at or below `rev`. */
  deleteThrough(rev: number): void {
    while (this.head < this.revs.length && this.revs[this.head]! <= rev) this.values.delete(this.revs[this.head++]!);
    this.compact();
  }

  clear(): void {
    this.values.clear();
    this.revs.length = 0;
    this.head = 0;
  }

  private compact(): void {
    if (this.head === this.revs.length) {
      this.revs.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.revs.length) {
      this.revs = this.revs.slice(this.head);
      this.head = 0;
    }
  }
}
