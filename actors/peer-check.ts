// Shape checks for peer messages from the wire: garbage gets a clear error, never a crash.
import { EXPIRY } from './cache-entry.machine.ts';
import { MAX_TTL_MS, MAX_VALUE_BYTES, isTtl, type PeerMessage } from './protocol.ts';
import { keyProblem } from './request.ts';
import { scanQueryProblem, type ScanQuery } from './scan.ts';
import { txnProblem, type Txn } from './txn.ts';

export class BadPeerMessageError extends Error {
  constructor(why: string) {
    super(`bad peer message: ${why}`);
    this.name = 'BadPeerMessageError';
  }
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
const isBytes = (x: unknown): x is Uint8Array => x instanceof Uint8Array;

function need(ok: boolean, why: string): void {
  if (!ok) throw new BadPeerMessageError(why);
}

function checkKey(key: string): void {
  const problem = keyProblem(key);
  if (problem !== null) throw new BadPeerMessageError(`${problem}: ${JSON.stringify(key.slice(0, 40))}`);
}

function checkEntries(x: unknown, allowDelete: boolean): void {
  need(Array.isArray(x), 'entries must be an array');
  for (const e of x as unknown[]) {
    need(isObject(e) && typeof e.key === 'string' && isCount(e.rev), 'entry needs key and rev');
    const { value: v, ttl, recommit } = e as Record<string, unknown>;
    need(isBytes(v) || (allowDelete && v === null), 'entry value must be bytes');
    need(ttl === undefined || (v === null ? ttl === EXPIRY : isCount(ttl)), 'entry ttl must be a count (on a put) or the expiry mark (on a delete)');
    need(recommit === undefined || recommit === true, 'entry recommit must be true or absent');
  }
}

/** The shape of changes from a peer (a message's, or a reply's); throws BadPeerMessageError. */
export function checkChanges(x: unknown): void {
  need(isObject(x) && isCount(x.after) && isCount(x.through) && Array.isArray(x.changes), 'changes need after, through and a list');
  const t = x as { after: number; through: number; changes: unknown[] };
  let last = t.after;
  for (const c of t.changes) {
    need(isObject(c) && typeof c.key === 'string' && isCount(c.rev), 'a change needs key and rev');
    const { rev, kind, value } = c as Record<string, unknown>;
    need((rev as number) > t.after && (rev as number) <= t.through && (rev as number) >= last, 'changes must be in order, within after..through');
    need((kind === 'put' && isBytes(value)) || ((kind === 'delete' || kind === 'expire') && value === null), 'a change is a put with a value, or a delete or expire without');
    last = rev as number;
  }
}

/** A list of keys at revisions (`validated`, a sync reply's `committedBeneath`). */
export function checkKeyRevisions(x: unknown, field = 'validated'): void {
  need(Array.isArray(x), `${field} must be an array`);
  for (const v of x as unknown[]) need(isObject(v) && typeof v.key === 'string' && isCount(v.rev), `each of ${field} needs key and rev`);
}

/**
 * A message in the name of the node that sent it: `sender` is who the transport says sent it (on
 * NATS the subject, which the server's permissions tie to the sender's identity).
 */
export function checkSender(message: PeerMessage, sender: string | null): PeerMessage {
  need(message.from === sender, `sent by ${String(sender)} in the name of ${JSON.stringify(message.from.slice(0, 40))}`);
  return message;
}

export function checkPeerMessage(x: unknown): PeerMessage {
  need(isObject(x), 'not an object');
  const m = x as Record<string, unknown>;
  need(typeof m.type === 'string' && typeof m.from === 'string' && isCount(m.epoch), 'needs type, from and epoch');
  switch (m.type) {
    case 'forward':
      need(Array.isArray(m.commands), 'forward needs commands');
      // A forward carries client requests: held to the client's rules (PROTOCOL.md), since any
      // NATS client could publish one.
      for (const c of m.commands as unknown[]) {
        need(isObject(c) && typeof c.key === 'string', 'a forwarded command needs a key');
        const cmd = c as Record<string, unknown>;
        checkKey(cmd.key as string);
        need(cmd.value === null || isBytes(cmd.value), 'command value must be bytes or null');
        need(cmd.value === null || (cmd.value as Uint8Array).byteLength <= MAX_VALUE_BYTES, `command value larger than ${MAX_VALUE_BYTES} bytes`);
        need(cmd.ifRevision === undefined || isCount(cmd.ifRevision), 'ifRevision must be a count');
        need(cmd.ttl === undefined || (cmd.value !== null && isTtl(cmd.ttl)), `ttl must be 1 to ${MAX_TTL_MS} ms, on a put`);
        need(cmd.keepAlive === undefined || (cmd.keepAlive === true && cmd.value === null), 'keepAlive must be true, without a value');
      }
      break;
    case 'read':
      need(Array.isArray(m.keys) && (m.keys as unknown[]).every((k) => typeof k === 'string'), 'read needs keys');
      for (const k of m.keys as string[]) checkKey(k);
      break;
    case 'scan': {
      // A client's query, held to the client's rules like a forward.
      need(isObject(m.query), 'scan needs a query');
      const q = m.query as Record<string, unknown>;
      const bound = (x: unknown) => x === null || typeof x === 'string';
      need(typeof q.prefix === 'string' && bound(q.from) && bound(q.to) && bound(q.after) && typeof q.limit === 'number' && typeof q.form === 'string' && (q.format === undefined || typeof q.format === 'string'), 'scan query needs prefix, from, to, after, limit and form');
      const problem = scanQueryProblem(q as unknown as ScanQuery);
      need(problem === null, `scan query: ${problem}`);
      break;
    }
    case 'txn': {
      // A client's transaction, held to the client's rules like a forward.
      need(isObject(m.txn) && Array.isArray(m.txn.compare) && Array.isArray(m.txn.ops), 'txn needs compare and ops');
      const t = m.txn as { compare: unknown[]; ops: unknown[] };
      for (const c of t.compare) {
        need(isObject(c) && typeof c.key === 'string', 'a compare needs a key');
        const cmp = c as Record<string, unknown>;
        const kinds = [isCount(cmp.revision), cmp.absent === true, isBytes(cmp.value)].filter(Boolean).length;
        need(kinds === 1 && Object.keys(cmp).length === 2, 'a compare needs exactly one of revision, absent, value');
      }
      for (const o of t.ops) {
        need(isObject(o) && typeof o.key === 'string', 'an op needs a key');
        const op = o as Record<string, unknown>;
        need((op.op === 'put' && isBytes(op.value) && (op.ttl === undefined || typeof op.ttl === 'number')) || (op.op === 'delete' && op.value === undefined && op.ttl === undefined), 'an op is a put with a value (and a ttl) or a delete');
      }
      const problem = txnProblem(m.txn as unknown as Txn);
      need(problem === null, `txn: ${problem?.reason}`);
      break;
    }
    case 'join':
      need(typeof m.session === 'string' && isCount(m.attempt), 'join needs a session and an attempt');
      need(isCount(m.since) && isCount(m.history), 'join needs since and history');
      need(Array.isArray(m.pending) && (m.pending as unknown[]).every((k) => typeof k === 'string'), 'join needs pending keys');
      need(m.changesAfter === undefined || isCount(m.changesAfter), 'changesAfter must be a count');
      need(m.changesFloor === undefined || isCount(m.changesFloor), 'changesFloor must be a count');
      break;
    case 'lease':
      need(typeof m.session === 'string', 'lease needs a session');
      break;
    case 'invalidate':
      checkEntries(m.entries, true);
      checkKeyRevisions(m.validated);
      break;
    case 'validate':
      checkKeyRevisions(m.validated);
      break;
    case 'sync':
      need(m.changesThrough === undefined || isCount(m.changesThrough), 'changesThrough must be a count');
      need(m.history === undefined || isCount(m.history), 'history must be a count');
      break;
    case 'snapshot':
      need(isCount(m.seq) && isCount(m.admission) && isCount(m.maxRev) && typeof m.done === 'boolean', 'snapshot needs admission, seq, maxRev, done');
      need(m.historyFollows === undefined || typeof m.historyFollows === 'boolean', 'historyFollows must be a boolean');
      need(m.lastRevBefore === undefined || isCount(m.lastRevBefore), 'lastRevBefore must be a count');
      checkEntries(m.entries, true);
      if (m.inFlight !== undefined) checkEntries(m.inFlight, true);
      if (m.changes !== undefined) checkChanges(m.changes);
      break;
    case 'history':
      need(isCount(m.admission), 'history needs an admission');
      if (m.changes !== undefined) checkChanges(m.changes);
      break;
    default:
      throw new BadPeerMessageError(`unknown type ${String(m.type).slice(0, 40)}`);
  }
  return m as unknown as PeerMessage;
}
