// Committed small values, packed: key, revision and value of every record sit in one byte arena,
// found through an open-addressing index of arena offsets. A key held this way costs its bytes
// plus 16 bytes of header and an index slot, about 56 bytes for a 16-byte key and value, where a
// Map entry with a key string and a value object costs over 100 and gives the garbage collector
// a million objects to trace. Pure data structure: no I/O, no timers.
//
// Record layout: [u32 hash][u16 key length][u16 value length or DEAD][f64 revision][key][value].
// A record is rewritten in place when the new value has the same length; otherwise a new one is
// appended and the old one marked dead. Dead bytes are reclaimed by compacting the arena when it
// is full and at least half dead.

import { Buffer } from 'node:buffer';

const HEADER_BYTES = 16;
const DEAD = 0xffff;
const EMPTY = 0;
const REMOVED = -1;
/** The largest value a record holds; larger ones belong elsewhere. */
export const PACKED_VALUE_MAX_BYTES = 4096;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class PackedTable {
  private arena = new Uint8Array(64 * 1024);
  private view = new DataView(this.arena.buffer);
  /** Bytes of the arena in use (records live or dead), from offset 0. */
  private used = 0;
  private deadBytes = 0;
  /** Slot values: 0 empty, -1 removed, else arena offset + 1. */
  private index = new Int32Array(1024);
  private removedSlots = 0;
  private liveRecords = 0;
  /** Bumped by every compaction: an iteration that sees it change starts over. */
  private generation = 0;
  private scratch = new Uint8Array(4096);

  get size(): number {
    return this.liveRecords;
  }

  get(key: string): { rev: number; value: Uint8Array } | undefined {
    const at = this.find(this.encodeKey(key));
    if (at < 0) return undefined;
    const offset = this.index[at]! - 1;
    return { rev: this.view.getFloat64(offset + 8), value: this.valueAt(offset) };
  }

  /** The revision of `key`'s record, without copying its value. */
  revisionOf(key: string): number | undefined {
    const at = this.find(this.encodeKey(key));
    return at < 0 ? undefined : this.view.getFloat64(this.index[at]! - 1 + 8);
  }

  has(key: string): boolean {
    return this.find(this.encodeKey(key)) >= 0;
  }

  set(key: string, rev: number, value: Uint8Array): void {
    if (value.byteLength > PACKED_VALUE_MAX_BYTES) throw new RangeError(`packed values hold at most ${PACKED_VALUE_MAX_BYTES} bytes`);
    const keyBytes = this.encodeKey(key);
    if (keyBytes >= DEAD) throw new RangeError('packed keys hold less than 64 KiB');
    const at = this.find(keyBytes);
    if (at >= 0) {
      const offset = this.index[at]! - 1;
      if (this.view.getUint16(offset + 6) === value.byteLength) {
        this.view.setFloat64(offset + 8, rev);
        this.arena.set(value, offset + HEADER_BYTES + keyBytes);
        return;
      }
      this.kill(offset);
      this.index[at] = REMOVED;
      this.removedSlots++;
      this.liveRecords--;
    }
    const hash = this.hashScratch(keyBytes);
    const offset = this.append(hash, keyBytes, rev, value);
    this.insert(hash, offset);
    this.liveRecords++;
  }

  /**
   * Room for `records` more records holding about `bytes` of keys and values, so that a bulk
   * load does not grow the arena and the index step by step. Room not used costs address space
   * only: a fresh arena's pages are the OS's zero pages until written.
   */
  reserve(records: number, bytes: number): void {
    const need = this.used + bytes + records * HEADER_BYTES;
    if (need > this.arena.byteLength) this.makeRoom(need - this.used);
    let slots = this.index.length;
    while ((this.liveRecords + this.removedSlots + records + 1) * 2 > slots) slots *= 2;
    if (slots > this.index.length) this.rebuildIndex(slots);
  }

  delete(key: string): boolean {
    const at = this.find(this.encodeKey(key));
    if (at < 0) return false;
    this.kill(this.index[at]! - 1);
    this.index[at] = REMOVED;
    this.removedSlots++;
    this.liveRecords--;
    return true;
  }

  clear(): void {
    this.arena = new Uint8Array(64 * 1024);
    this.view = new DataView(this.arena.buffer);
    this.index = new Int32Array(1024);
    this.used = this.deadBytes = this.removedSlots = this.liveRecords = 0;
    this.generation++;
  }

  /**
   * Every live record above revision `since`, values copied out. Records written meanwhile may or
   * may not be seen; a record that lives throughout is seen at least once (twice when a compaction
   * restarts the walk, which a reader ordering by revision shrugs off). Records at or below `since`
   * are passed over before their key is read (a catch-up wants the few that changed).
   */
  *entries(since = 0): Generator<{ key: string; rev: number; value: Uint8Array }> {
    let generation = this.generation;
    let offset = 0;
    while (offset < this.used) {
      const keyBytes = this.view.getUint16(offset + 4);
      const valueBytes = this.view.getUint16(offset + 6);
      const next = offset + HEADER_BYTES + keyBytes + (valueBytes === DEAD ? this.view.getUint32(offset) : valueBytes);
      if (valueBytes !== DEAD && this.view.getFloat64(offset + 8) > since) {
        const key = decoder.decode(this.arena.subarray(offset + HEADER_BYTES, offset + HEADER_BYTES + keyBytes));
        yield { key, rev: this.view.getFloat64(offset + 8), value: this.valueAt(offset) };
        if (this.generation !== generation) {
          generation = this.generation;
          offset = 0;
          continue;
        }
      }
      offset = next;
    }
  }

  // ---- internals ----------------------------------------------------------------------------

  /** UTF-8 of `key` into the scratch buffer; returns its length. */
  private encodeKey(key: string): number {
    if (key.length * 3 > this.scratch.byteLength) this.scratch = new Uint8Array(key.length * 3);
    return encoder.encodeInto(key, this.scratch).written;
  }

  /** FNV-1a over the scratch key bytes, never 0. */
  private hashScratch(length: number): number {
    let h = 0x811c9dc5;
    for (let i = 0; i < length; i++) h = Math.imul(h ^ this.scratch[i]!, 0x01000193);
    return h >>> 0 || 1;
  }

  /** Index slot holding the live record of the scratch key, or -1. */
  private find(keyBytes: number): number {
    const hash = this.hashScratch(keyBytes);
    const mask = this.index.length - 1;
    for (let at = hash & mask; ; at = (at + 1) & mask) {
      const slot = this.index[at]!;
      if (slot === EMPTY) return -1;
      if (slot === REMOVED) continue;
      const offset = slot - 1;
      if (this.view.getUint32(offset) === hash && this.view.getUint16(offset + 4) === keyBytes && this.sameKey(offset, keyBytes)) return at;
    }
  }

  private sameKey(offset: number, keyBytes: number): boolean {
    const start = offset + HEADER_BYTES;
    for (let i = 0; i < keyBytes; i++) if (this.arena[start + i] !== this.scratch[i]) return false;
    return true;
  }

  private valueAt(offset: number): Uint8Array {
    const start = offset + HEADER_BYTES + this.view.getUint16(offset + 4);
    // A copy, since the record may be rewritten in place after the caller got it; made in
    // Node's shared buffer pool rather than an ArrayBuffer of its own (a malloc per value).
    const copy = Buffer.from(this.arena.subarray(start, start + this.view.getUint16(offset + 6)));
    return new Uint8Array(copy.buffer, copy.byteOffset, copy.byteLength);
  }

  /** Mark a record dead; its value length moves to the hash field so a walk can step over it. */
  private kill(offset: number): void {
    const valueBytes = this.view.getUint16(offset + 6);
    this.view.setUint32(offset, valueBytes);
    this.view.setUint16(offset + 6, DEAD);
    this.deadBytes += HEADER_BYTES + this.view.getUint16(offset + 4) + valueBytes;
  }

  private append(hash: number, keyBytes: number, rev: number, value: Uint8Array): number {
    const size = HEADER_BYTES + keyBytes + value.byteLength;
    if (this.used + size > this.arena.byteLength) this.makeRoom(size);
    const offset = this.used;
    this.view.setUint32(offset, hash);
    this.view.setUint16(offset + 4, keyBytes);
    this.view.setUint16(offset + 6, value.byteLength);
    this.view.setFloat64(offset + 8, rev);
    // A short key byte by byte: a subarray per record costs more than the copy.
    const keyAt = offset + HEADER_BYTES;
    if (keyBytes <= 64) for (let i = 0; i < keyBytes; i++) this.arena[keyAt + i] = this.scratch[i]!;
    else this.arena.set(this.scratch.subarray(0, keyBytes), keyAt);
    this.arena.set(value, offset + HEADER_BYTES + keyBytes);
    this.used += size;
    return offset;
  }

  private insert(hash: number, offset: number): void {
    if ((this.liveRecords + this.removedSlots + 1) * 2 > this.index.length) this.rebuildIndex(this.index.length * (this.liveRecords * 4 > this.index.length ? 2 : 1));
    const mask = this.index.length - 1;
    let at = hash & mask;
    while (this.index[at] !== EMPTY && this.index[at] !== REMOVED) at = (at + 1) & mask;
    if (this.index[at] === REMOVED) this.removedSlots--;
    this.index[at] = offset + 1;
  }

  /** Grow the arena, or compact it when at least half of it is dead. */
  private makeRoom(size: number): void {
    const live = this.used - this.deadBytes;
    const compact = this.deadBytes * 2 >= this.used;
    let capacity = compact ? 64 * 1024 : this.arena.byteLength;
    while (capacity < (compact ? live : this.used) * 1.25 + size) capacity *= 2;
    // Index slots hold offset + 1 in an Int32Array.
    if (capacity >= 2 ** 31) throw new RangeError('packed table arena is full (2 GiB)');
    const arena = new Uint8Array(capacity);
    if (compact) {
      let to = 0;
      for (let from = 0; from < this.used; ) {
        const keyBytes = this.view.getUint16(from + 4);
        const valueBytes = this.view.getUint16(from + 6);
        const recordBytes = HEADER_BYTES + keyBytes + (valueBytes === DEAD ? this.view.getUint32(from) : valueBytes);
        if (valueBytes !== DEAD) {
          arena.set(this.arena.subarray(from, from + recordBytes), to);
          to += recordBytes;
        }
        from += recordBytes;
      }
      this.used = to;
      this.deadBytes = 0;
      this.generation++;
    } else {
      arena.set(this.arena.subarray(0, this.used));
    }
    this.arena = arena;
    this.view = new DataView(arena.buffer);
    if (compact) this.rebuildIndex(this.index.length);
  }

  /** Re-insert every live record into a fresh index of `capacity` slots (a power of two). */
  private rebuildIndex(capacity: number): void {
    const index = new Int32Array(capacity);
    const mask = capacity - 1;
    for (let offset = 0; offset < this.used; ) {
      const keyBytes = this.view.getUint16(offset + 4);
      const valueBytes = this.view.getUint16(offset + 6);
      if (valueBytes !== DEAD) {
        let at = this.view.getUint32(offset) & mask;
        while (index[at] !== EMPTY) at = (at + 1) & mask;
        index[at] = offset + 1;
        offset += HEADER_BYTES + keyBytes + valueBytes;
      } else {
        offset += HEADER_BYTES + keyBytes + this.view.getUint32(offset);
      }
    }
    this.index = index;
    this.removedSlots = 0;
  }
}
