// The binary form of the two peer messages every write sends, `invalidate` and `validate`:
// under load they carry tens of entries each and were the leader's largest single CPU cost as
// JSON (building the marker copy and stringifying it). Layout, numbers big-endian:
//
//   u8 0xB1 | u8 kind (1 invalidate, 2 validate) | f64 epoch | str from
//   invalidate only: u32 n, n × (str key | f64 rev | i32 value length, -1 = delete | value)
//   u32 n, n × (str key | f64 rev)                                   (validated)
//   str = u16 byte length | UTF-8
//
// Decoded values are views on the received buffer, as in the JSON form. A message this form
// cannot carry exactly (extra members, a string that is not well-formed Unicode or longer than
// 64 KiB) goes as JSON: encode() decides, decode() tells the forms apart by the first byte
// (a JSON frame starts with the high byte of its header length, always 0).
import { Buffer } from 'node:buffer';
import type { KeyRevision, PendingEntry } from '../actors/protocol.ts';
import { CodecError } from './errors.ts';

export const WRITES_MAGIC = 0xb1;
const INVALIDATE = 1;
const VALIDATE = 2;
const MAX_STRING_BYTES = 0xffff;

interface WritesMessage {
  type: 'invalidate' | 'validate';
  from: string;
  epoch: number;
  entries?: PendingEntry[];
  validated: KeyRevision[];
}

const fits = (s: unknown): s is string => typeof s === 'string' && s.length * 3 <= MAX_STRING_BYTES && s.isWellFormed();
const isRev = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;

function membersAre(o: object, count: number): boolean {
  let n = 0;
  for (const k in o) if (Object.hasOwn(o, k)) n++;
  return n === count;
}

/** Whether `m` is an invalidate or validate message with nothing the binary form would lose. */
export function isWritesMessage(m: unknown): m is WritesMessage {
  if (typeof m !== 'object' || m === null) return false;
  const x = m as Record<string, unknown>;
  const invalidate = x.type === 'invalidate';
  if (!invalidate && x.type !== 'validate') return false;
  if (!fits(x.from) || !isRev(x.epoch) || !Array.isArray(x.validated) || !membersAre(x, invalidate ? 5 : 4)) return false;
  for (const v of x.validated as unknown[]) {
    const e = v as Record<string, unknown>;
    if (typeof e !== 'object' || e === null || !fits(e.key) || !isRev(e.rev) || !membersAre(e, 2)) return false;
  }
  if (!invalidate) return true;
  if (!Array.isArray(x.entries)) return false;
  for (const v of x.entries as unknown[]) {
    const e = v as Record<string, unknown>;
    if (typeof e !== 'object' || e === null || !fits(e.key) || !isRev(e.rev) || !membersAre(e, 3)) return false;
    if (e.value !== null && !(e.value instanceof Uint8Array)) return false;
  }
  return true;
}

/** Writes into a buffer large enough for everything (sized by the caller). */
class Writer {
  at = 0;
  constructor(readonly out: Buffer) {}

  byte(b: number): void {
    this.out[this.at++] = b;
  }

  double(n: number): void {
    this.at = this.out.writeDoubleBE(n, this.at);
  }

  int32(n: number): void {
    this.at = this.out.writeInt32BE(n, this.at);
  }

  uint32(n: number): void {
    this.at = this.out.writeUInt32BE(n, this.at);
  }

  bytes(b: Uint8Array): void {
    this.out.set(b, this.at);
    this.at += b.byteLength;
  }

  /** ASCII by hand (most keys): a native UTF-8 write per short string costs more than the loop. */
  string(s: string): void {
    const out = this.out;
    const start = this.at + 2;
    let n = 0;
    for (; n < s.length; n++) {
      const c = s.charCodeAt(n);
      if (c >= 0x80) break;
      out[start + n] = c;
    }
    if (n < s.length) n = out.write(s, start);
    out.writeUInt16BE(n, this.at);
    this.at = start + n;
  }
}

class Reader {
  at = 0;
  private readonly buf: Buffer;
  constructor(private readonly data: Uint8Array) {
    this.buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  }

  get done(): boolean {
    return this.at === this.buf.length;
  }

  need(bytes: number, what: string): void {
    if (this.at + bytes > this.buf.length) throw new CodecError(`peer message truncated in ${what}`);
  }

  byte(what: string): number {
    this.need(1, what);
    return this.buf[this.at++]!;
  }

  double(what: string): number {
    this.need(8, what);
    const n = this.buf.readDoubleBE(this.at);
    this.at += 8;
    return n;
  }

  int32(what: string): number {
    this.need(4, what);
    const n = this.buf.readInt32BE(this.at);
    this.at += 4;
    return n;
  }

  uint32(what: string): number {
    this.need(4, what);
    const n = this.buf.readUInt32BE(this.at);
    this.at += 4;
    return n;
  }

  /** A view on the received bytes (no copy). */
  bytes(length: number, what: string): Uint8Array {
    this.need(length, what);
    const view = new Uint8Array(this.data.buffer, this.data.byteOffset + this.at, length);
    this.at += length;
    return view;
  }

  string(what: string): string {
    this.need(2, what);
    const n = this.buf.readUInt16BE(this.at);
    this.at += 2;
    this.need(n, what);
    const buf = this.buf;
    const start = this.at;
    this.at += n;
    for (let i = start; i < start + n; i++) if (buf[i]! >= 0x80) return buf.toString('utf8', start, start + n);
    return buf.toString('latin1', start, start + n);
  }
}

export function encodeWrites(m: WritesMessage): Uint8Array {
  const entries = m.type === 'invalidate' ? m.entries! : [];
  // An upper bound (3 UTF-8 bytes per UTF-16 unit), then the used part.
  let bound = 1 + 1 + 8 + 2 + m.from.length * 3 + 4 + 4;
  for (const e of entries) bound += 2 + e.key.length * 3 + 8 + 4 + (e.value?.byteLength ?? 0);
  for (const v of m.validated) bound += 2 + v.key.length * 3 + 8;
  const w = new Writer(Buffer.allocUnsafe(bound));
  w.byte(WRITES_MAGIC);
  w.byte(m.type === 'invalidate' ? INVALIDATE : VALIDATE);
  w.double(m.epoch);
  w.string(m.from);
  if (m.type === 'invalidate') {
    w.uint32(entries.length);
    for (const e of entries) {
      w.string(e.key);
      w.double(e.rev);
      w.int32(e.value === null ? -1 : e.value.byteLength);
      if (e.value !== null) w.bytes(e.value);
    }
  }
  w.uint32(m.validated.length);
  for (const v of m.validated) {
    w.string(v.key);
    w.double(v.rev);
  }
  return new Uint8Array(w.out.buffer, w.out.byteOffset, w.at);
}

export function decodeWrites(data: Uint8Array): WritesMessage {
  const r = new Reader(data);
  r.byte('magic');
  const kind = r.byte('kind');
  if (kind !== INVALIDATE && kind !== VALIDATE) throw new CodecError(`unknown binary peer message kind ${kind}`);
  const epoch = r.double('epoch');
  const from = r.string('sender');
  let entries: PendingEntry[] | undefined;
  if (kind === INVALIDATE) {
    const n = r.uint32('entry count');
    entries = [];
    for (let i = 0; i < n; i++) {
      const key = r.string('entry key');
      const rev = r.double('entry revision');
      const length = r.int32('value length');
      if (length < -1) throw new CodecError('negative value length');
      entries.push({ key, rev, value: length === -1 ? null : r.bytes(length, 'value') });
    }
  }
  const n = r.uint32('validated count');
  const validated: KeyRevision[] = [];
  for (let i = 0; i < n; i++) {
    const key = r.string('validated key');
    validated.push({ key, rev: r.double('validated revision') });
  }
  if (!r.done) throw new CodecError('peer message has trailing bytes');
  return kind === INVALIDATE ? { type: 'invalidate', from, epoch, entries, validated } : { type: 'validate', from, epoch, validated };
}
