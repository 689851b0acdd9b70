// Validation of client requests against PROTOCOL.md. Pure functions.
import { Buffer } from 'node:buffer';
import { IF_REVISION_HEADER, KEY_HEADER, MAX_KEY_BYTES, MAX_TTL_MS, MAX_VALUE_BYTES, TTL_HEADER, isTtl, type ClientReply, type ClientRequest, type ErrorCode, type WriteCommand } from './protocol.ts';


export const fail = (code: ErrorCode, description: string): ClientReply => ({ ok: false, code, description });

const encoder = new TextEncoder();
// Control characters and U+FFFD (what invalid UTF-8 decodes to) are refused.
const FORBIDDEN_KEY_CHARS = /[\u0000-\u001f\u007f\ufffd]/;

/** The value of header `name`, null when absent, or an error reply when it appears more than once. */
export function oneHeader(request: ClientRequest, name: string): string | null | ClientReply {
  const values = request.headers.get(name);
  if (!values || values.length === 0) return null;
  if (values.length > 1) return fail(400, `more than one ${name} header`);
  return values[0]!;
}

/** The values of the headers `names` names (null when absent), by field, or an error reply. */
export function headersOf<F extends string>(request: ClientRequest, names: Record<F, string>): Partial<Record<F, string | null>> | ClientReply {
  const text: Partial<Record<F, string | null>> = {};
  for (const [field, name] of Object.entries(names) as [F, string][]) {
    const value = oneHeader(request, name);
    if (value !== null && typeof value === 'object') return value;
    text[field] = value;
  }
  return text;
}

/** Bytes as base64 (standard alphabet, padded), as JSON replies carry values. */
export const base64 = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');

/** Returns the key, or an error reply. Header names are matched case-sensitively. */
export function parseKey(request: ClientRequest): string | ClientReply {
  const values = request.headers.get(KEY_HEADER);
  if (!values || values.length === 0) return fail(400, `missing ${KEY_HEADER} header`);
  if (values.length > 1) return fail(400, `more than one ${KEY_HEADER} header`);
  const key = values[0]!;
  const problem = keyProblem(key);
  return problem === null ? key : fail(400, problem);
}

/**
 * `s` in a string of its own. A header value is a slice of its header line (V8 keeps a substring
 * as a view on its parent): a written key, kept in the store and its history, would keep that line
 * alive with it, about 50 bytes more per key. A read keeps no key: it needs no copy.
 */
const ownCopy = (s: string): string => Buffer.from(s, 'utf8').toString('utf8');

/** What is wrong with a key (PROTOCOL.md's key rules), or null. Peer messages are held to them too. */
export function keyProblem(key: string): string | null {
  if (key.length === 0) return 'empty key';
  if (FORBIDDEN_KEY_CHARS.test(key)) return 'key contains a control character or invalid UTF-8';
  if (key.trim() !== key) return 'key has leading or trailing white space';
  // A lone UTF-16 surrogate has no UTF-8 form.
  if (!key.isWellFormed()) return 'key is not valid Unicode';
  // A UTF-16 code unit takes at most 3 UTF-8 bytes: most keys need no encoding to be measured.
  if (key.length > MAX_KEY_BYTES || (key.length * 3 > MAX_KEY_BYTES && encoder.encode(key).byteLength > MAX_KEY_BYTES)) return `key longer than ${MAX_KEY_BYTES} bytes`;
  return null;
}

/** Returns the expected revision, undefined when absent, or an error reply. */
export function parseIfRevision(request: ClientRequest): number | undefined | ClientReply {
  const values = request.headers.get(IF_REVISION_HEADER);
  if (!values || values.length === 0) return undefined;
  if (values.length > 1) return fail(400, `more than one ${IF_REVISION_HEADER} header`);
  const text = values[0]!;
  if (!/^\d+$/.test(text)) return fail(400, `${IF_REVISION_HEADER} must be a decimal integer`);
  const n = Number(text.replace(/^0+(?=\d)/, ''));
  if (!Number.isSafeInteger(n)) return fail(400, `${IF_REVISION_HEADER} out of range`);
  return n;
}

/** Returns a put's time to live (ms), undefined when absent, or an error reply. */
export function parseTtl(request: ClientRequest): number | undefined | ClientReply {
  const text = oneHeader(request, TTL_HEADER);
  if (text === null) return undefined;
  if (typeof text === 'object') return text;
  const n = /^\d{1,15}$/.test(text) ? Number(text) : NaN;
  if (!isTtl(n)) return fail(400, `${TTL_HEADER} must be a number of milliseconds, 1 to ${MAX_TTL_MS}`);
  return n;
}

/** A put, delete or keep-alive as a write command, or an error reply. */
export function parseWrite(request: ClientRequest): WriteCommand | ClientReply {
  const parsed = parseKey(request);
  if (typeof parsed !== 'string') return parsed;
  const key = ownCopy(parsed);
  if (request.op === 'keepalive') return { key, value: null, keepAlive: true };
  const ifRevision = parseIfRevision(request);
  if (typeof ifRevision === 'object') return ifRevision;
  if (request.op === 'put') {
    if (request.data.byteLength > MAX_VALUE_BYTES) return fail(413, `value larger than ${MAX_VALUE_BYTES} bytes`);
    const ttl = parseTtl(request);
    if (typeof ttl === 'object') return ttl;
    return { key, value: request.data, ifRevision, ...(ttl !== undefined ? { ttl } : {}) };
  }
  if (request.headers.has(TTL_HEADER)) return fail(400, `${TTL_HEADER} goes with a put only`);
  return { key, value: null, ifRevision };
}

