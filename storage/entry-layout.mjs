// How an entry of a replica's copy is laid out in LMDB (the database `entries`), for the node
// (lmdb-disk.ts) and for the check of a data dir that runs in a child process before the node
// opens it (verify-data-dir.mjs): plain JavaScript, so that the child runs without a compiler.
//
// [crc32 u32][flags u8][rev f64][pendingRev f64][value length u32][value][pending value][ttl f64]
// [pendingTtl f64], the times to live only with HAS_TTL (copies written before keys could expire
// have none). LMDB keeps no checksums: the CRC (over the key, then the rest) finds a damaged entry.
import { Buffer } from 'node:buffer';
import { crc32 } from 'node:zlib';

export const HAS_VALUE = 1;
export const HAS_PENDING_VALUE = 2;
export const HAS_TTL = 4;
export const HEADER_BYTES = 4 + 1 + 8 + 8 + 4;
export const TTL_BYTES = 16;

export const entryCrc = (key, body) => crc32(body, crc32(key));

let scratch = Buffer.allocUnsafeSlow(4096);

/**
 * `stored` copied into a buffer of this module's, which the next call overwrites: read it there.
 * The engine hands out small on-heap arrays, and any view on one (a subarray, its `.buffer`)
 * costs V8 a move of it off the heap, more than reading the whole entry.
 */
export function copyOut(stored) {
  if (stored.byteLength > scratch.byteLength) scratch = Buffer.allocUnsafeSlow(Math.max(stored.byteLength, scratch.byteLength * 2));
  scratch.set(stored);
  return scratch.subarray(0, stored.byteLength);
}

/** What is wrong with an entry (from copyOut): null when the layout and the checksum see nothing. */
export function entryDamage(key, entry) {
  if (entry.byteLength < HEADER_BYTES) return `entry of ${entry.byteLength} bytes is shorter than its header`;
  if (entry.readUInt32BE(0) !== entryCrc(key, entry.subarray(4))) return 'checksum mismatch';
  const end = entry.byteLength - (entry.readUInt8(4) & HAS_TTL ? TTL_BYTES : 0);
  if (HEADER_BYTES + entry.readUInt32BE(21) > end) return 'entry value runs past its end';
  return null;
}

/**
 * A settled value (committed, nothing in flight, no time to live), as most of a copy is: its
 * revision and value size, from an entry (from copyOut, checked). Null for anything else (a
 * tombstone, a write in flight, a value that expires), which the node takes in entry by entry.
 */
export function settledEntry(entry) {
  const flags = entry.readUInt8(4);
  if ((flags & HAS_VALUE) === 0 || entry.readDoubleBE(13) > 0) return null;
  if (flags & HAS_TTL && entry.readDoubleBE(entry.byteLength - TTL_BYTES) !== 0) return null;
  return { rev: entry.readDoubleBE(5), valueBytes: entry.readUInt32BE(21) };
}
