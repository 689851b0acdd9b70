// A transaction from a recorded history (values as text) as the request body PROTOCOL.md
// "Transactions" asks for (values in base64): for the simulation's and the nemesis's clients.
import { Buffer } from 'node:buffer';
import type { TxnInput } from '../check/history.ts';

export function txnBody(txn: TxnInput): string {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return JSON.stringify({
    compare: txn.compare.map((c) => ('value' in c ? { key: c.key, value: b64(c.value) } : c)),
    ops: txn.ops.map((o) => (o.op === 'put' ? { op: 'put', key: o.key, value: b64(o.value) } : o)),
  });
}
