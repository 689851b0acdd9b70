// Copies of small values kept for long (the watch history: up to 100,000 of them by default) as
// views on shared slabs rather than a buffer each: a 16-byte value in a buffer of its own costs
// about 300 bytes (the buffer's object and its separate allocation), on a slab the view alone.
import { Buffer } from 'node:buffer';

const SLAB_BYTES = 256 * 1024;
let slab = Buffer.allocUnsafeSlow(0);
let used = 0;

/**
 * A copy of `bytes`, on the current slab. A slab is freed once no copy on it is left, so this
 * suits values dropped roughly in the order they were made (a history); a large one gets a buffer
 * of its own.
 */
export function slabCopy(bytes: Uint8Array): Uint8Array {
  if (bytes.byteLength > SLAB_BYTES / 4) return Uint8Array.prototype.slice.call(bytes);
  if (used + bytes.byteLength > slab.byteLength) {
    slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
    used = 0;
  }
  const copy = new Uint8Array(slab.buffer, slab.byteOffset + used, bytes.byteLength);
  copy.set(bytes);
  used += bytes.byteLength;
  return copy;
}
