// Transactions (PROTOCOL.md "Transactions"): compares and writes over any keys, applied at one
// revision if every compare holds. The request's JSON body as a Txn, the same checks again when a
// follower forwards one, and the compares evaluated against a copy. Pure functions; the leader
// runs a transaction (LeaderTerm.transaction).
import { Buffer } from 'node:buffer';
import { MAX_TTL_MS, MAX_VALUE_BYTES, isTtl, type ClientReply, type ClientRequest } from './protocol.ts';
import type { ReplicaStore } from './replica-store.ts';
import { fail, keyProblem } from './request.ts';

export const MAX_TXN_OPS = 128;
/** Values of one transaction's puts and compares together. */
export const MAX_TXN_BYTES = MAX_VALUE_BYTES;

/** Holds when the key is at `revision`, is absent, or holds exactly `value`: one of the three. */
export type TxnCompare =
  | { key: string; revision: number }
  | { key: string; absent: true }
  | { key: string; value: Uint8Array };

/** A put may carry a time to live (ms), as a put with Zi-TTL does. */
export type TxnOp = { op: 'put'; key: string; value: Uint8Array; ttl?: number } | { op: 'delete'; key: string };

export interface Txn {
  compare: TxnCompare[];
  ops: TxnOp[];
}

/** The JSON body of a successful transaction's reply. */
export interface TxnResult {
  revision: number;
  /** Keys written (a delete of a missing key is none). */
  written: number;
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function bytesOf(x: unknown, what: string): Uint8Array | string {
  if (typeof x !== 'string' || x.length % 4 !== 0 || !BASE64.test(x)) return `${what} must be base64 (standard alphabet, padded)`;
  const b = Buffer.from(x, 'base64');
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** The transaction in a client's request body, or an error reply (400, or 413 when too large). */
export function parseTxn(request: ClientRequest): Txn | ClientReply {
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(request.data.buffer, request.data.byteOffset, request.data.byteLength).toString('utf8'));
  } catch {
    return fail(400, 'the body must be a JSON object {"compare": [...], "ops": [...]}');
  }
  if (!isObject(body) || !Array.isArray(body.ops) || (body.compare !== undefined && !Array.isArray(body.compare))) {
    return fail(400, 'the body must be a JSON object {"compare": [...], "ops": [...]}');
  }
  const compare: TxnCompare[] = [];
  for (const [i, c] of ((body.compare ?? []) as unknown[]).entries()) {
    if (!isObject(c) || typeof c.key !== 'string') return fail(400, `compare ${i}: needs a key`);
    const kinds = ['revision', 'absent', 'value'].filter((k) => c[k] !== undefined);
    if (kinds.length !== 1) return fail(400, `compare ${i}: needs exactly one of revision, absent, value`);
    if (c.revision !== undefined) {
      if (typeof c.revision !== 'number' || !Number.isSafeInteger(c.revision) || c.revision < 1) return fail(400, `compare ${i}: revision must be an integer of at least 1`);
      compare.push({ key: c.key, revision: c.revision });
    } else if (c.absent !== undefined) {
      if (c.absent !== true) return fail(400, `compare ${i}: absent must be true`);
      compare.push({ key: c.key, absent: true });
    } else {
      const value = bytesOf(c.value, `compare ${i}: value`);
      if (typeof value === 'string') return fail(400, value);
      compare.push({ key: c.key, value });
    }
  }
  const ops: TxnOp[] = [];
  for (const [i, o] of (body.ops as unknown[]).entries()) {
    if (!isObject(o) || typeof o.key !== 'string' || (o.op !== 'put' && o.op !== 'delete')) return fail(400, `op ${i}: needs "op" ("put" or "delete") and a key`);
    if (o.op === 'delete') {
      if (o.value !== undefined || o.ttl !== undefined) return fail(400, `op ${i}: a delete has no value and no ttl`);
      ops.push({ op: 'delete', key: o.key });
      continue;
    }
    const value = bytesOf(o.value, `op ${i}: value`);
    if (typeof value === 'string') return fail(400, value);
    // txnProblem checks the ttl, here and in a forwarded transaction.
    ops.push({ op: 'put', key: o.key, value, ...(o.ttl !== undefined ? { ttl: o.ttl as number } : {}) });
  }
  const txn = { compare, ops };
  const problem = txnProblem(txn);
  return problem === null ? txn : fail(problem.code, problem.reason);
}

/** What is wrong with a transaction (a client's, or one a peer forwards), or null. */
export function txnProblem(txn: Txn): { code: 400 | 413; reason: string } | null {
  const bad = (reason: string) => ({ code: 400 as const, reason });
  if (txn.ops.length === 0) return bad('a transaction needs at least one op');
  if (txn.ops.length > MAX_TXN_OPS || txn.compare.length > MAX_TXN_OPS) return bad(`at most ${MAX_TXN_OPS} ops and ${MAX_TXN_OPS} compares`);
  const written = new Set<string>();
  let bytes = 0;
  for (const [i, o] of txn.ops.entries()) {
    const problem = keyProblem(o.key);
    if (problem !== null) return bad(`op ${i}: ${problem}`);
    if (written.has(o.key)) return bad(`op ${i}: key ${JSON.stringify(o.key)} is written twice`);
    written.add(o.key);
    if (o.op === 'put') bytes += o.value.byteLength;
    if (o.op === 'put' && o.ttl !== undefined && !isTtl(o.ttl)) return bad(`op ${i}: ttl must be a number of milliseconds, 1 to ${MAX_TTL_MS}`);
  }
  for (const [i, c] of txn.compare.entries()) {
    const problem = keyProblem(c.key);
    if (problem !== null) return bad(`compare ${i}: ${problem}`);
    if ('value' in c) bytes += c.value.byteLength;
  }
  if (bytes > MAX_TXN_BYTES) return { code: 413, reason: `values of a transaction are larger than ${MAX_TXN_BYTES} bytes together` };
  return null;
}

const encoder = new TextEncoder();

/** A successful transaction's reply: Zi-Revision and its JSON body. */
export function txnReply(revision: number, written: number): ClientReply {
  return { ok: true, revision, data: encoder.encode(JSON.stringify({ revision, written } satisfies TxnResult)) };
}

/** The 409 for the first compare that does not hold in `store`'s committed values (its index with it); null when all hold. */
export function failedCompare(store: ReplicaStore, compare: readonly TxnCompare[]): ClientReply | null {
  for (const [index, c] of compare.entries()) {
    const conflict = (why: string): ClientReply => ({ ok: false, code: 409, description: `compare failed: ${JSON.stringify(c.key)} ${why}`, failedCompare: index });
    const revision = store.committedRevision(c.key);
    if ('revision' in c) {
      if (revision !== c.revision) return conflict(`is at ${revision ?? 'absent'}, not ${c.revision}`);
    } else if ('absent' in c) {
      if (revision !== null) return conflict(`exists (revision ${revision})`);
    } else {
      const value = revision === null ? null : store.get(c.key)!.value;
      if (value === null || !Buffer.from(value.buffer, value.byteOffset, value.byteLength).equals(c.value)) return conflict('does not hold the value compared');
    }
  }
  return null;
}
