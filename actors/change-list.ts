// The stable changes of the change log (change-log.ts), oldest first, packed: revisions and times
// in typed arrays, keys and values as bytes in one buffer. The log keeps up to 100,000 changes by
// default; as objects (a change, its key, a view of its value) they were old-generation garbage
// the collector kept walking (README, "Where the cost goes"). Changes leave from the oldest end
// only (retention, a rising floor); a reader gets a copy. The buffer grows to fit and never
// shrinks: it stays within a few times the log's byte budget.
import { Buffer } from 'node:buffer';
import type { Change, ChangeKind } from './change-log.ts';
import { firstAbove } from './revision-map.ts';

const KINDS: readonly ChangeKind[] = ['put', 'delete', 'expire'];
/** A record: kind (1 byte), key length (4), value length (4; NO_VALUE for a delete), key, value. */
const HEADER_BYTES = 9;
const NO_VALUE = 0xffffffff;
/** What a kept change counts for against the log's byte budget, besides its key's and value's bytes. */
export const CHANGE_OVERHEAD_BYTES = 48;

/** What a change counts for against a byte budget (the log's retention, a transfer's size). */
export const changeBytes = (c: Change): number => Buffer.byteLength(c.key) + (c.value?.byteLength ?? 0) + CHANGE_OVERHEAD_BYTES;

export class ChangeList {
  private revs = new Float64Array(1024);
  private ats = new Float64Array(1024);
  /** Where each change's record starts in `data`. */
  private offsets = new Float64Array(1024);
  /** The changes kept are at indexes [head, tail) of the arrays above. */
  private head = 0;
  private tail = 0;
  private data = Buffer.allocUnsafe(64 * 1024);
  private dataEnd = 0;
  /** Keys' and values' bytes of the changes kept, plus CHANGE_OVERHEAD_BYTES each. */
  private _bytes = 0;

  get length(): number {
    return this.tail - this.head;
  }

  get bytes(): number {
    return this._bytes;
  }

  /** The revision of the i-th change kept (0: the oldest). */
  rev(i: number): number {
    return this.revs[this.head + i]!;
  }

  /** When the i-th change kept was taken in. */
  at(i: number): number {
    return this.ats[this.head + i]!;
  }

  /** The i-th change kept, as a copy. */
  get(i: number): Change {
    let p = this.offsets[this.head + i]!;
    const kind = KINDS[this.data[p]!]!;
    const keyBytes = this.data.readUInt32LE(p + 1);
    const valueBytes = this.data.readUInt32LE(p + 5);
    p += HEADER_BYTES;
    const key = this.data.toString('utf8', p, p + keyBytes);
    p += keyBytes;
    const value = valueBytes === NO_VALUE ? null : new Uint8Array(this.data.buffer, this.data.byteOffset + p, valueBytes).slice();
    return { rev: this.rev(i), key, kind, value, at: this.at(i) };
  }

  /** The index of the first change above `rev` (length when none is). */
  indexAbove(rev: number): number {
    return firstAbove(this.revs, this.head, this.tail, rev) - this.head;
  }

  /** Append a change (revisions ascending, as the log takes them). */
  push(change: Change): void {
    if (this.tail === this.revs.length) this.makeRoomForIndex();
    const keyBytes = Buffer.byteLength(change.key);
    const valueBytes = change.value?.byteLength ?? 0;
    this.makeRoomForData(HEADER_BYTES + keyBytes + valueBytes);
    const start = this.dataEnd;
    let p = start;
    this.data[p] = KINDS.indexOf(change.kind);
    this.data.writeUInt32LE(keyBytes, p + 1);
    this.data.writeUInt32LE(change.value === null ? NO_VALUE : valueBytes, p + 5);
    p += HEADER_BYTES;
    p += this.data.write(change.key, p, 'utf8');
    if (change.value !== null) this.data.set(change.value, p);
    this.dataEnd = p + valueBytes;
    this.revs[this.tail] = change.rev;
    this.ats[this.tail] = change.at;
    this.offsets[this.tail] = start;
    this.tail++;
    this._bytes += keyBytes + valueBytes + CHANGE_OVERHEAD_BYTES;
  }

  /** Drop the oldest change. */
  shift(): void {
    const p = this.offsets[this.head]!;
    const valueBytes = this.data.readUInt32LE(p + 5);
    this._bytes -= this.data.readUInt32LE(p + 1) + (valueBytes === NO_VALUE ? 0 : valueBytes) + CHANGE_OVERHEAD_BYTES;
    this.head++;
    if (this.head === this.tail) this.clear();
  }

  clear(): void {
    this.head = this.tail = this.dataEnd = this._bytes = 0;
  }

  /** Index arrays full: move the kept changes to the start, into larger arrays when they fill more than half. */
  private makeRoomForIndex(): void {
    const kept = this.tail - this.head;
    const grow = kept * 2 > this.revs.length;
    const move = (from: Float64Array<ArrayBuffer>): Float64Array<ArrayBuffer> => {
      if (!grow) return from.copyWithin(0, this.head, this.tail);
      const to = new Float64Array(from.length * 2);
      to.set(from.subarray(this.head, this.tail));
      return to;
    };
    this.revs = move(this.revs);
    this.ats = move(this.ats);
    this.offsets = move(this.offsets);
    this.head = 0;
    this.tail = kept;
  }

  /** Room for `bytes` more at the end of `data`: the kept records move to its start, into a larger buffer when they fill more than half. */
  private makeRoomForData(bytes: number): void {
    if (this.dataEnd + bytes <= this.data.length) return;
    const start = this.head < this.tail ? this.offsets[this.head]! : this.dataEnd;
    const used = this.dataEnd - start;
    let size = this.data.length;
    while ((used + bytes) * 2 > size) size *= 2;
    if (size === this.data.length) this.data.copyWithin(0, start, this.dataEnd);
    else {
      const larger = Buffer.allocUnsafe(size);
      this.data.copy(larger, 0, start, this.dataEnd);
      this.data = larger;
    }
    for (let i = this.head; i < this.tail; i++) this.offsets[i]! -= start;
    this.dataEnd = used;
  }
}
