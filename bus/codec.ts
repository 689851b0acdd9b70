// Peer message encoding: [u32 JSON length][JSON][u32 blob count][u32 blob length]…[blobs].
// Byte values travel as raw bytes after the JSON (no base64) and come out as views on the
// received buffer (no copy). In the JSON a byte value is the marker {"$b": index}.
import { CodecError } from './errors.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encode(message: unknown): Uint8Array {
  const blobs: Uint8Array[] = [];
  // Read the raw property from the holder: a Buffer would already have been through toJSON.
  const json = JSON.stringify(message, function (this: Record<string, unknown>, key: string, value: unknown) {
    const raw = this[key];
    if (raw instanceof Uint8Array) {
      blobs.push(raw);
      return { $b: blobs.length - 1 };
    }
    return value;
  });
  const head = encoder.encode(json);
  let total = 4 + head.byteLength + 4 + 4 * blobs.length;
  for (const b of blobs) total += b.byteLength;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, head.byteLength);
  out.set(head, 4);
  let offset = 4 + head.byteLength;
  view.setUint32(offset, blobs.length);
  offset += 4;
  for (const b of blobs) {
    view.setUint32(offset, b.byteLength);
    offset += 4;
  }
  for (const b of blobs) {
    out.set(b, offset);
    offset += b.byteLength;
  }
  return out;
}

export function decode<T>(data: Uint8Array): T {
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
  try {
    return JSON.parse(decoder.decode(data.subarray(4, 4 + headLength)), (_key, value: unknown) => {
      if (value !== null && typeof value === 'object' && '$b' in value) {
        const blob = blobs[(value as { $b: number }).$b];
        if (blob === undefined) throw new CodecError('peer message refers to a missing blob');
        return blob;
      }
      return value;
    }) as T;
  } catch (err) {
    if (err instanceof CodecError) throw err;
    throw new CodecError('peer message header is not JSON', { cause: err });
  }
}
