/**
 * Readable rendering of operations and checker failures, e.g.
 *
 *   [c2] put(k1, "b") -> ok rev=7      call=12.0 ret=15.5  op4
 */

import type { CheckFailure, KvInput, KvOutput, Operation } from './history.ts';
import { quote } from './kv-model.ts';

function ifText(ifRevision: number | undefined): string {
  return ifRevision === undefined ? '' : `, if=${ifRevision}`;
}

export function formatInput(input: KvInput): string {
  switch (input.op) {
    case 'get':
      return `get(${input.key})`;
    case 'keepalive':
      return `keepalive(${input.key})`;
    case 'put':
      return `put(${input.key}, ${quote(input.value)}${ifText(input.ifRevision)})`;
    case 'delete':
      return `delete(${input.key}${ifText(input.ifRevision)})`;
    case 'scan':
      return `scan(${quote(input.key)}*)`;
    case 'expire':
      return `expire(${input.key}, ${quote(input.value)})`;
    case 'txn': {
      const cmp = input.txn.compare.map((c) => ('revision' in c ? `${c.key}@${c.revision}` : 'absent' in c ? `${c.key} absent` : `${c.key}==${quote(c.value)}`));
      const ops = input.txn.ops.map((o) => (o.op === 'put' ? `put ${o.key}=${quote(o.value)}` : `delete ${o.key}`));
      return `txn(${cmp.length > 0 ? `if ${cmp.join(', ')}: ` : ''}${ops.join(', ')})`;
    }
  }
}

export function formatOutput(output: KvOutput): string {
  if (output.status !== 'ok') return output.status;
  const parts = ['ok'];
  if (output.value !== undefined) parts.push(quote(output.value));
  if (output.revision !== undefined) parts.push(`rev=${output.revision}`);
  if (output.entries !== undefined) parts.push(`[${output.entries.map((e) => `${e.key}=${quote(e.value)}@rev${e.revision}`).join(', ')}]`);
  return parts.join(' ');
}

/** `put(k1, "b") -> ok rev=7`; a missing reply shows as `-> unknown`. */
export function describeOp(op: Operation): string {
  const out = op.ret === null && op.output.status !== 'unknown' ? 'unknown (no reply)' : formatOutput(op.output);
  return `${formatInput(op.input)} -> ${out}`;
}

function time(t: number | null): string {
  return t === null ? '?' : t.toFixed(1);
}

/** One line per operation, sorted by call time, with aligned columns. */
export function formatOperations(ops: readonly Operation[], indent = '  '): string[] {
  const sorted = [...ops].sort((a, b) => a.call - b.call || a.id - b.id);
  const heads = sorted.map((op) => `[${op.client}] ${describeOp(op)}`);
  const width = Math.max(0, ...heads.map((h) => h.length));
  const times = sorted.map((op) => `call=${time(op.call)} ret=${time(op.ret)}`);
  const timeWidth = Math.max(0, ...times.map((t) => t.length));
  return sorted.map(
    (op, i) => `${indent}${(heads[i] as string).padEnd(width)}    ${(times[i] as string).padEnd(timeWidth)}  op${op.id}`,
  );
}

const TITLES: Record<CheckFailure['kind'], string> = {
  'not-linearizable': 'history is not linearizable',
  'duplicate-revision': 'two acknowledged writes share a revision',
  'revision-order': 'revisions are not ordered with real time',
  'torn-transaction': 'a scan saw part of a transaction',
  'expired-read': 'a read saw a value past its time to live',
};

/** Multi-line report: header, the failing operations, and a one-line explanation. */
export function formatFailure(result: CheckFailure): string {
  const scope =
    result.kind === 'not-linearizable'
      ? result.shrunk
        ? `${result.ops.length} of ${result.keyOpCount} operations on this key, shrunk`
        : `all ${result.ops.length} operations on this key`
      : `${result.ops.length} operations`;
  const lines = [`key ${JSON.stringify(result.key)}: ${TITLES[result.kind]} (${scope}; ${result.totalOpCount} in history)`];
  lines.push(...formatOperations(result.ops));
  lines.push(result.explanation);
  return lines.join('\n');
}
