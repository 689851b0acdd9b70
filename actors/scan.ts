// Scans (PROTOCOL.md "Scan"): the request's headers as a query, the query checked again when a
// follower forwards it, and the reply taken from one node's copy in one synchronous pass, which
// makes it a snapshot of one point in time. Pure functions over the store; the client front
// decides when that pass may run (no write in flight on the range, or at the leader).
import { Buffer } from 'node:buffer';
import { compareKeys } from './key-order.ts';
import type { ClientReply, ClientRequest } from './protocol.ts';
import type { ReplicaStore } from './replica-store.ts';
import { base64, fail, headersOf, keyProblem } from './request.ts';

export const SCAN_HEADERS = {
  prefix: 'Zi-Prefix',
  from: 'Zi-From',
  to: 'Zi-To',
  after: 'Zi-After',
  limit: 'Zi-Limit',
  form: 'Zi-Scan',
  format: 'Zi-Scan-Format',
} as const;

export const SCAN_FORMS = ['keys', 'values', 'count'] as const;
export type ScanForm = (typeof SCAN_FORMS)[number];

/** How a reply of keys or values is written: JSON with base64 values, or binary (binaryScanReply). */
export const SCAN_FORMATS = ['json', 'binary'] as const;
export type ScanFormat = (typeof SCAN_FORMATS)[number];

export const DEFAULT_SCAN_LIMIT = 1000;
export const MAX_SCAN_LIMIT = 10_000;
/**
 * Keys and values of one reply, in bytes, before it stops with `more` (one entry always fits).
 * In JSON a key may double (escapes) and a value grows by a third (base64): a reply stays well
 * under the 2 MiB the nodes need of max_payload.
 */
export const SCAN_REPLY_BYTES = 512 * 1024;

/** The keys a scan covers: those starting with `prefix`, at or above `from`, below `to`, above `after`. */
export interface ScanQuery {
  prefix: string;
  from: string | null;
  to: string | null;
  after: string | null;
  limit: number;
  form: ScanForm;
  /** Absent in queries forwarded by nodes that predate it: JSON. */
  format?: ScanFormat;
}

/** The JSON body of a scan reply. */
export interface ScanResult {
  revision: number;
  count: number;
  entries?: { key: string; revision: number; value?: string }[];
  more?: boolean;
  next?: string;
}

const encoder = new TextEncoder();

/** The scan a client asked for, or an error reply. */
export function parseScan(request: ClientRequest): ScanQuery | ClientReply {
  const text = headersOf(request, SCAN_HEADERS);
  if ('ok' in text) return text as ClientReply;
  let limit = DEFAULT_SCAN_LIMIT;
  if (text.limit != null) {
    if (!/^\d+$/.test(text.limit)) return fail(400, `${SCAN_HEADERS.limit} must be a decimal integer`);
    limit = Number(text.limit);
  }
  const query: ScanQuery = {
    prefix: text.prefix ?? '',
    from: text.from ?? null,
    to: text.to ?? null,
    after: text.after ?? null,
    limit,
    form: (text.form ?? 'keys') as ScanForm,
    format: (text.format ?? 'json') as ScanFormat,
  };
  const problem = scanQueryProblem(query);
  return problem === null ? query : fail(400, problem);
}

/** What is wrong with a query (from a client's headers or a peer's message), or null. */
export function scanQueryProblem(query: ScanQuery): string | null {
  if (!SCAN_FORMS.includes(query.form)) return `${SCAN_HEADERS.form} must be one of ${SCAN_FORMS.join(', ')}`;
  if (query.format !== undefined && !SCAN_FORMATS.includes(query.format)) return `${SCAN_HEADERS.format} must be one of ${SCAN_FORMATS.join(', ')}`;
  if (query.format === 'binary' && query.form === 'count') return `${SCAN_HEADERS.format}: binary is for ${SCAN_HEADERS.form} keys or values; a count is JSON`;
  if (!Number.isSafeInteger(query.limit) || query.limit < 1 || query.limit > MAX_SCAN_LIMIT) return `${SCAN_HEADERS.limit} must be 1 to ${MAX_SCAN_LIMIT}`;
  for (const field of ['prefix', 'from', 'to', 'after'] as const) {
    const bound = query[field];
    if (bound === null || (field === 'prefix' && bound === '')) continue;
    const problem = keyProblem(bound);
    if (problem !== null) return `${SCAN_HEADERS[field]}: ${problem}`;
  }
  return null;
}

const maxKey = (a: string, b: string | null): string => (b !== null && compareKeys(b, a) > 0 ? b : a);

/** Whether `key`, met in key order from the query's start, is past the end of its range. */
const pastEnd = (query: ScanQuery, key: string): boolean => (query.to !== null && compareKeys(key, query.to) >= 0) || !key.startsWith(query.prefix);

/** Whether `key` is one the query covers. */
export function covers(query: ScanQuery, key: string): boolean {
  if (!key.startsWith(query.prefix)) return false;
  if (query.from !== null && compareKeys(key, query.from) < 0) return false;
  if (query.after !== null && compareKeys(key, query.after) <= 0) return false;
  return query.to === null || compareKeys(key, query.to) < 0;
}

/** The keys the query covers that have a write in flight here. */
export function keysInFlight(store: ReplicaStore, query: ScanQuery): string[] {
  const out: string[] = [];
  for (const key of store.keysInFlight()) if (covers(query, key)) out.push(key);
  return out;
}

/**
 * The reply from this copy's committed values, in one synchronous pass (a snapshot). The caller
 * has made sure the values are current: no key of the range in flight, or this node leads.
 */
export function runScan(store: ReplicaStore, query: ScanQuery): ClientReply {
  const revision = store.committedMaxRev;
  const start = maxKey(maxKey(query.prefix, query.from), query.after);
  if (query.form === 'count') {
    let count = 0;
    for (const key of store.keysFrom(start)) {
      if (pastEnd(query, key)) break;
      if (key !== query.after) count++;
    }
    return { ok: true, revision, data: encoder.encode(JSON.stringify({ revision, count } satisfies ScanResult)) };
  }
  let bytes = 0;
  const keys: string[] = [];
  const revisions: number[] = [];
  const values: Uint8Array[] = [];
  let more = false;
  for (const key of store.keysFrom(start)) {
    if (pastEnd(query, key)) break;
    if (key === query.after) continue;
    // Keys only: the revision without a copy of the value.
    const entry = query.form === 'values' ? store.get(key)! : null;
    const size = Buffer.byteLength(key) + (entry !== null ? entry.value!.byteLength : 8);
    if (keys.length === query.limit || (keys.length > 0 && bytes + size > SCAN_REPLY_BYTES)) {
      more = true;
      break;
    }
    bytes += size;
    keys.push(key);
    revisions.push(entry !== null ? entry.rev : store.committedRevision(key)!);
    if (entry !== null) values.push(entry.value!);
  }
  const data = query.format === 'binary' ? binaryScanReply(revision, more, keys, revisions, query.form === 'values' ? values : null) : jsonScanReply(revision, more, keys, revisions, query.form === 'values' ? values : null);
  return { ok: true, revision, data };
}

/** ScanResult's JSON, written directly: no object per entry. */
function jsonScanReply(revision: number, more: boolean, keys: string[], revisions: number[], values: Uint8Array[] | null): Uint8Array {
  const entries = keys.map((key, i) => `{"key":${JSON.stringify(key)},"revision":${revisions[i]!}${values !== null ? `,"value":"${base64(values[i]!)}"` : ''}}`);
  const next = more ? `,"next":${JSON.stringify(keys.at(-1))}` : '';
  return encoder.encode(`{"revision":${revision},"count":${keys.length},"entries":[${entries.join(',')}],"more":${more}${next}}`);
}

/**
 * The binary reply (PROTOCOL.md "Scan", `Zi-Scan-Format: binary`), big-endian: revision (f64),
 * count (u32), more (u8), then per entry: key length (u32), key (UTF-8), revision (f64), value
 * length (i32, -1 for keys only), value. Values go as their exact bytes: no base64, no JSON.
 */
export function binaryScanReply(revision: number, more: boolean, keys: string[], revisions: number[], values: Uint8Array[] | null): Uint8Array {
  const keyBytes = keys.map((key) => Buffer.from(key, 'utf8'));
  let size = 13;
  for (let i = 0; i < keys.length; i++) size += 16 + keyBytes[i]!.byteLength + (values?.[i]!.byteLength ?? 0);
  const out = Buffer.allocUnsafe(size);
  let at = out.writeDoubleBE(revision, 0);
  at = out.writeUInt32BE(keys.length, at);
  at = out.writeUInt8(more ? 1 : 0, at);
  for (let i = 0; i < keys.length; i++) {
    at = out.writeUInt32BE(keyBytes[i]!.byteLength, at);
    at += keyBytes[i]!.copy(out, at);
    at = out.writeDoubleBE(revisions[i]!, at);
    const value = values?.[i];
    at = out.writeInt32BE(value === undefined ? -1 : value.byteLength, at);
    if (value !== undefined) {
      out.set(value, at);
      at += value.byteLength;
    }
  }
  return out;
}

/** A binary scan reply read back (the typed client's side); throws on a reply that does not parse. */
export function readBinaryScanReply(data: Uint8Array): { revision: number; more: boolean; entries: { key: string; revision: number; value?: Uint8Array }[] } {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const revision = buf.readDoubleBE(0);
  const count = buf.readUInt32BE(8);
  const more = buf.readUInt8(12) === 1;
  const entries: { key: string; revision: number; value?: Uint8Array }[] = [];
  let at = 13;
  for (let i = 0; i < count; i++) {
    const keyLength = buf.readUInt32BE(at);
    if (at + 4 + keyLength > buf.byteLength) throw new RangeError('scan reply runs past its end');
    const key = buf.toString('utf8', at + 4, at + 4 + keyLength);
    at += 4 + keyLength;
    const rev = buf.readDoubleBE(at);
    const valueLength = buf.readInt32BE(at + 8);
    at += 12;
    if (valueLength < 0) entries.push({ key, revision: rev });
    else {
      if (at + valueLength > buf.byteLength) throw new RangeError('scan reply runs past its end');
      entries.push({ key, revision: rev, value: buf.subarray(at, at + valueLength) });
      at += valueLength;
    }
  }
  return { revision, more, entries };
}
