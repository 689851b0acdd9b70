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
} as const;

export const SCAN_FORMS = ['keys', 'values', 'count'] as const;
export type ScanForm = (typeof SCAN_FORMS)[number];

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
  };
  const problem = scanQueryProblem(query);
  return problem === null ? query : fail(400, problem);
}

/** What is wrong with a query (from a client's headers or a peer's message), or null. */
export function scanQueryProblem(query: ScanQuery): string | null {
  if (!SCAN_FORMS.includes(query.form)) return `${SCAN_HEADERS.form} must be one of ${SCAN_FORMS.join(', ')}`;
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
  let count = 0;
  let bytes = 0;
  // The JSON of each entry (ScanResult's shape), written directly: no object per entry.
  const entries: string[] = [];
  let last = '';
  let next: string | undefined;
  for (const key of store.keysFrom(start)) {
    if (pastEnd(query, key)) break;
    if (key === query.after) continue;
    if (query.form === 'count') {
      count++;
      continue;
    }
    // Keys only: the revision without a copy of the value.
    const entry = query.form === 'values' ? store.get(key)! : null;
    const size = Buffer.byteLength(key) + (entry !== null ? entry.value!.byteLength : 8);
    if (entries.length === query.limit || (entries.length > 0 && bytes + size > SCAN_REPLY_BYTES)) {
      next = last;
      break;
    }
    bytes += size;
    last = key;
    const head = `{"key":${JSON.stringify(key)},"revision":`;
    entries.push(entry !== null ? `${head}${entry.rev},"value":"${base64(entry.value!)}"}` : `${head}${store.committedRevision(key)!}}`);
  }
  const json =
    query.form === 'count'
      ? JSON.stringify({ revision, count } satisfies ScanResult)
      : `{"revision":${revision},"count":${entries.length},"entries":[${entries.join(',')}],"more":${next !== undefined}${next !== undefined ? `,"next":${JSON.stringify(next)}` : ''}}`;
  return { ok: true, revision, data: encoder.encode(json) };
}
