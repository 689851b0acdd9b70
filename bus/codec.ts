// Peer message encoding: [u32 JSON length][JSON][u32 blob count][u32 blob length]…[blobs].
// Byte values travel as raw bytes after the JSON (no base64) and come out as views on the
// received buffer (no copy). In the JSON a byte value is the marker {"$b": index}. The two
// messages of every write (invalidate, validate) have a binary form of their own: write-codec.ts.
import { Buffer } from 'node:buffer';
import { CodecError } from './errors.ts';
import { decodeWrites, encodeWrites, isWritesMessage, WRITES_MAGIC } from './write-codec.ts';

const decoder = new TextDecoder();

/**
 * A copy of `value` with byte arrays replaced by markers. Done by hand rather than with a
 * JSON.stringify replacer: stringify calls Buffer#toJSON (an array of one number per byte)
 * before any replacer sees the value, which cost 150 µs per 16 KiB value.
 */
function extractBlobs(value: unknown, blobs: Uint8Array[]): unknown {
  if (value instanceof Uint8Array) {
    blobs.push(value);
    return { $b: blobs.length - 1 };
  }
  if (Array.isArray(value)) {
    const out = new Array<unknown>(value.length);
    for (let i = 0; i < value.length; i++) out[i] = extractBlobs(value[i], blobs);
    return out;
  }
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    const source = value as Record<string, unknown>;
    for (const k in source) {
      const v = source[k];
      if (v !== undefined && Object.hasOwn(source, k)) out[k] = extractBlobs(v, blobs);
    }
    return out;
  }
  return value;
}

/** Puts the byte arrays back in place of their markers (in place: the parsed tree is ours). */
function injectBlobs(value: unknown, blobs: Uint8Array[]): unknown {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = injectBlobs(value[i], blobs);
    return value;
  }
  if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    if (typeof o.$b === 'number') {
      const blob = blobs[o.$b];
      if (blob === undefined) throw new CodecError('peer message refers to a missing blob');
      return blob;
    }
    for (const k of Object.keys(o)) o[k] = injectBlobs(o[k], blobs);
  }
  return value;
}

export function encode(message: unknown): Uint8Array {
  if (isWritesMessage(message)) return encodeWrites(message);
  const blobs: Uint8Array[] = [];
  const json = JSON.stringify(extractBlobs(message, blobs));
  // One buffer, the JSON written straight into it (no intermediate encoded copy).
  const headBytes = Buffer.byteLength(json);
  let total = 4 + headBytes + 4 + 4 * blobs.length;
  for (const b of blobs) total += b.byteLength;
  const out = Buffer.allocUnsafe(total);
  out.writeUInt32BE(headBytes, 0);
  out.write(json, 4);
  let offset = 4 + headBytes;
  out.writeUInt32BE(blobs.length, offset);
  offset += 4;
  for (const b of blobs) {
    out.writeUInt32BE(b.byteLength, offset);
    offset += 4;
  }
  for (const b of blobs) {
    out.set(b, offset);
    offset += b.byteLength;
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

export function decode<T>(data: Uint8Array): T {
  if (data.byteLength > 0 && data[0] === WRITES_MAGIC) return decodeWrites(data) as T;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const need = (bytes: number, what: string) => {
    if (bytes > data.byteLength) throw new CodecError(`peer message truncated in ${what}`);
  };
  need(4, 'header length');
  const headLength = view.getUint32(0);
  need(8 + headLength, 'header');
  const count = view.getUint32(4 + headLength);
  let offset = 8 + headLength;
  need(offset + 4 * count, 'blob table');
  const blobs: Uint8Array[] = [];
  let blobOffset = offset + 4 * count;
  for (let i = 0; i < count; i++) {
    const length = view.getUint32(offset + 4 * i);
    need(blobOffset + length, 'blob');
    blobs.push(data.subarray(blobOffset, blobOffset + length));
    blobOffset += length;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(data.subarray(4, 4 + headLength)));
  } catch (err) {
    throw new CodecError('peer message header is not JSON', { cause: err });
  }
  try {
    return injectBlobs(parsed, blobs) as T;
  } catch (err) {
    if (err instanceof CodecError) throw err;
    // A structure nested deeply enough to exhaust the stack: refuse it like any malformed one.
    throw new CodecError('peer message structure is too deep', { cause: err });
  }
}
