// The promise of watches (PROTOCOL.md "Watch"), checked against a history: what each node's
// change log would hand a watcher, between its floor and its stable revision, is every
// acknowledged write of that range, once, in revision order, nothing that was not written, and
// the same at every node. A watcher may move between nodes, so any difference between two logs
// over the revisions both cover is a gap or a duplicate for someone. An expiry is a change too,
// of a key some put gave a time to live (the linearizability check places it in time).
import type { Operation } from './history.ts';

/** One node's change log as a watcher would read it. */
export interface NodeChanges {
  node: string;
  floor: number;
  stable: number;
  changes: { rev: number; key: string; kind: string; value: string | null }[];
}

/** One write a change may come from: `value` null for a delete. */
interface Write {
  key: string;
  value: string | null;
  /** A delete in a transaction writes nothing when its key does not exist: its change may be absent. */
  optional: boolean;
}

const describe = (c: { rev: number; key: string; value: string | null }) => `${c.rev}:${c.key}=${c.value ?? '<deleted>'}`;

/** The writes of one operation, as its input says. */
function writesOf(op: Operation): Write[] {
  const { input } = op;
  if (input.op === 'put') return [{ key: input.key, value: input.value, optional: false }];
  if (input.op === 'delete') return [{ key: input.key, value: null, optional: false }];
  if (input.op === 'txn') return input.txn.ops.map((o) => (o.op === 'put' ? { key: o.key, value: o.value, optional: false } : { key: o.key, value: null, optional: true }));
  return [];
}

/** Problems found (empty: the promise holds), at most `limit` of them. */
export function checkChangeLogs(history: readonly Operation[], logs: readonly NodeChanges[], limit = 20): string[] {
  const problems: string[] = [];
  const acked = new Map<number, Write[]>();
  /** Writes whose outcome the client did not learn: they may or may not show up. */
  const maybe = new Set<string>();
  /** Keys some put gave a time to live: the cluster's expiry of them is a change nobody wrote. */
  const expiring = new Set<string>();
  for (const op of history) {
    if (op.input.op === 'put' && op.input.ttlMs !== undefined) expiring.add(op.input.key);
    const writes = writesOf(op);
    if (writes.length === 0) continue;
    if (op.output.status === 'ok' && op.output.revision !== undefined) acked.set(op.output.revision, writes);
    else if (op.output.status === 'unknown') for (const w of writes) maybe.add(`${w.key}=${w.value ?? '<deleted>'}`);
  }

  for (const log of logs) {
    const where = `${log.node} (history ${log.floor}..${log.stable})`;
    let previous: { rev: number; key: string } | null = null;
    const byRev = new Map<number, Map<string, string | null>>();
    for (const c of log.changes) {
      if (c.rev <= log.floor || c.rev > log.stable) problems.push(`${where}: change ${describe(c)} outside its history`);
      if (previous !== null && (c.rev < previous.rev || (c.rev === previous.rev && c.key === previous.key))) problems.push(`${where}: change ${describe(c)} after ${previous.rev}:${previous.key}`);
      previous = c;
      const keys = byRev.get(c.rev) ?? new Map<string, string | null>();
      keys.set(c.key, c.value);
      byRev.set(c.rev, keys);
      if (c.kind === 'expire') {
        if (!expiring.has(c.key) || c.value !== null) problems.push(`${where}: expiry ${describe(c)} of a key no put gave a time to live`);
        continue;
      }
      const writes = acked.get(c.rev);
      const written = writes?.find((w) => w.key === c.key && w.value === c.value);
      if (writes !== undefined ? written === undefined : !maybe.has(`${c.key}=${c.value ?? '<deleted>'}`)) problems.push(`${where}: change ${describe(c)} was never written`);
    }
    for (const [rev, writes] of acked) {
      if (rev <= log.floor || rev > log.stable) continue;
      const got = byRev.get(rev);
      for (const w of writes) if (!w.optional && !got?.has(w.key)) problems.push(`${where}: acknowledged ${describe({ rev, ...w })} is missing`);
    }
  }

  // Over the revisions two logs both cover, they must hold the same changes.
  for (let i = 0; i < logs.length; i++) {
    for (let j = i + 1; j < logs.length; j++) {
      const [a, b] = [logs[i]!, logs[j]!];
      const from = Math.max(a.floor, b.floor);
      const to = Math.min(a.stable, b.stable);
      const within = (l: NodeChanges) => l.changes.filter((c) => c.rev > from && c.rev <= to).map(describe).join(' ');
      if (from < to && within(a) !== within(b)) problems.push(`${a.node} and ${b.node} differ over revisions ${from + 1}..${to}: [${within(a)}] vs [${within(b)}]`);
    }
  }
  return problems.slice(0, limit);
}
