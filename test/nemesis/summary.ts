// Numbers of a run (ops by type and outcome, throughput, availability) and their text form.
import type { RecordedOp } from './history.ts';
import type { FaultRecord } from './nemesis.ts';

export const OUTCOME_COLUMNS = ['ok', 'not-found', 'conflict', 'unavailable', 'unknown(504)', 'unknown(timeout)', 'other'] as const;
export type OutcomeColumn = (typeof OUTCOME_COLUMNS)[number];
export const OP_ROWS = ['get', 'keepalive', 'scan', 'txn', 'put', 'put-if', 'delete', 'delete-if'] as const;
export type OpRow = (typeof OP_ROWS)[number];

export function opRow(op: RecordedOp): OpRow {
  const { input } = op;
  if (input.op === 'get' || input.op === 'keepalive' || input.op === 'scan' || input.op === 'txn') return input.op;
  if (input.op === 'put') return input.ifRevision === undefined ? 'put' : 'put-if';
  return input.ifRevision === undefined ? 'delete' : 'delete-if';
}

export function outcomeColumn(op: RecordedOp): OutcomeColumn {
  switch (op.output.status) {
    case 'ok':
    case 'not-found':
    case 'conflict':
    case 'unavailable':
      return op.output.status;
    case 'unknown':
      if (op.code === '504') return 'unknown(504)';
      if (op.code === 'timeout' || op.code === 'pending') return 'unknown(timeout)';
      return 'other';
    case 'no-ttl':
      return 'other';
  }
}

/** Answered with a definite outcome: the store did its job for this request. */
const definite = (op: RecordedOp) => op.output.status === 'ok' || op.output.status === 'not-found' || op.output.status === 'conflict' || op.output.status === 'no-ttl';

export interface Gap {
  from: number;
  to: number;
  ms: number;
}

export interface Summary {
  ops: Record<OpRow, Record<OutcomeColumn, number>>;
  total: number;
  okWrites: number;
  /** Workload ops (not final reads) during the fault phase. */
  faultPhase: { ops: number; seconds: number; opsPerSec: number; definitePerSec: number; definiteShare: number };
  byPhase: Record<string, { ops: number; definite: number }>;
  byTarget: Record<string, { ops: number; definite: number; unavailable: number; unknown: number }>;
  /** Longest stretches without any definite answer (workload only). */
  longestGaps: Gap[];
  /** Reply codes that the contract calls bugs (500) or that this workload can never cause (400, 413). */
  unexpectedCodes: Record<string, number>;
  /** Acknowledged writes/reads whose reply carried no Zi-Revision. */
  missingRevision: number;
  latencyMs: { p50: number; p99: number; max: number };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

export function summarize(ops: readonly RecordedOp[], faultPhaseMs: number): Summary {
  const table = Object.fromEntries(OP_ROWS.map((r) => [r, Object.fromEntries(OUTCOME_COLUMNS.map((c) => [c, 0]))])) as Summary['ops'];
  const byPhase: Summary['byPhase'] = {};
  const byTarget: Summary['byTarget'] = {};
  const unexpectedCodes: Record<string, number> = {};
  let okWrites = 0;
  let missingRevision = 0;
  const latencies: number[] = [];
  for (const op of ops) {
    table[opRow(op)][outcomeColumn(op)]++;
    const d = definite(op);
    const ph = (byPhase[op.phase] ??= { ops: 0, definite: 0 });
    ph.ops++;
    if (d) ph.definite++;
    if (op.phase !== 'final') {
      const t = (byTarget[op.target] ??= { ops: 0, definite: 0, unavailable: 0, unknown: 0 });
      t.ops++;
      if (d) t.definite++;
      if (op.output.status === 'unavailable') t.unavailable++;
      if (op.output.status === 'unknown') t.unknown++;
    }
    const isRead = op.input.op === 'get' || op.input.op === 'scan';
    if (op.output.status === 'ok' && !isRead) okWrites++;
    if (op.output.status === 'ok' && op.output.revision === undefined) missingRevision++;
    if (['500', '400', '413'].includes(op.code) || op.code.startsWith('error')) unexpectedCodes[op.code] = (unexpectedCodes[op.code] ?? 0) + 1;
    if (op.ret !== null) latencies.push(op.ret - op.call);
  }
  latencies.sort((a, b) => a - b);

  // Gaps between consecutive definite answers of the workload, from its first call to its last return.
  const work = ops.filter((o) => o.phase !== 'final');
  const answers = work.filter(definite).map((o) => o.ret as number).sort((a, b) => a - b);
  const gaps: Gap[] = [];
  if (work.length > 0) {
    const start = Math.min(...work.map((o) => o.call));
    const end = Math.max(...work.map((o) => o.ret ?? o.call));
    let prev = start;
    for (const t of [...answers, end]) {
      if (t - prev > 0) gaps.push({ from: prev, to: t, ms: t - prev });
      prev = Math.max(prev, t);
    }
  }
  gaps.sort((a, b) => b.ms - a.ms);

  const faultOps = ops.filter((o) => o.phase === 'faults');
  const seconds = faultPhaseMs / 1000;
  const faultDefinite = faultOps.filter(definite).length;
  return {
    ops: table,
    total: ops.length,
    okWrites,
    faultPhase: {
      ops: faultOps.length,
      seconds,
      opsPerSec: seconds > 0 ? faultOps.length / seconds : 0,
      definitePerSec: seconds > 0 ? faultDefinite / seconds : 0,
      definiteShare: faultOps.length > 0 ? faultDefinite / faultOps.length : 0,
    },
    byPhase,
    byTarget,
    longestGaps: gaps.slice(0, 3),
    unexpectedCodes,
    missingRevision,
    latencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies[latencies.length - 1] ?? 0 },
  };
}

const s1 = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

function table(head: string[], rows: (string | number)[][]): string[] {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)];
}

export function formatSummary(s: Summary, faults: readonly FaultRecord[]): string {
  const out: string[] = [];
  out.push('operations (all phases, final reads included):');
  const rows: (string | number)[][] = OP_ROWS.map((r) => {
    const c = s.ops[r];
    return [r, ...OUTCOME_COLUMNS.map((k) => c[k]), OUTCOME_COLUMNS.reduce((n, k) => n + c[k], 0)];
  });
  const totals = OUTCOME_COLUMNS.map((k) => OP_ROWS.reduce((n, r) => n + s.ops[r][k], 0));
  rows.push(['total', ...totals, s.total]);
  out.push(...table(['op', ...OUTCOME_COLUMNS, 'total'], rows).map((l) => `  ${l}`));
  out.push('');
  const f = s.faultPhase;
  out.push(
    `throughput under faults: ${f.ops} ops in ${f.seconds.toFixed(0)}s = ${f.opsPerSec.toFixed(1)} ops/s, ` +
      `${f.definitePerSec.toFixed(1)} answered/s (${(f.definiteShare * 100).toFixed(1)}% answered ok/404/409); ${s.okWrites} acknowledged writes`,
  );
  out.push(`latency of replied ops: p50 ${s.latencyMs.p50.toFixed(1)} ms, p99 ${s.latencyMs.p99.toFixed(1)} ms, max ${s.latencyMs.max.toFixed(1)} ms`);
  out.push('availability by phase: ' + Object.entries(s.byPhase).map(([p, v]) => `${p} ${v.definite}/${v.ops}`).join(', '));
  out.push(
    'availability by target: ' +
      Object.entries(s.byTarget)
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([t, v]) => `${t} ${((v.definite / Math.max(1, v.ops)) * 100).toFixed(0)}% (${v.unavailable} unavail, ${v.unknown} unknown)`)
        .join(', '),
  );
  out.push('longest stretches without an answer: ' + s.longestGaps.map((g) => `${s1(g.ms)} (${s1(g.from)}-${s1(g.to)})`).join(', '));
  if (Object.keys(s.unexpectedCodes).length > 0) out.push(`unexpected replies: ${JSON.stringify(s.unexpectedCodes)}`);
  if (s.missingRevision > 0) out.push(`ok replies without Zi-Revision: ${s.missingRevision}`);
  out.push('');
  out.push(`faults injected: ${faults.length}`);
  const byKind = new Map<string, number>();
  for (const x of faults) byKind.set(x.kind, (byKind.get(x.kind) ?? 0) + 1);
  if (faults.length > 0) out.push(`  by kind: ${[...byKind].map(([k, n]) => `${k} ${n}`).join(', ')}; aimed at the leader: ${faults.filter((x) => x.leader).length}`);
  const frows = faults.map((x) => [
    `#${x.id}`,
    `${x.kind}${x.mode ? `(${x.mode})` : ''}${x.leader ? ' [leader]' : ''}`,
    x.node,
    s1(x.start),
    x.heal === null ? '-' : s1(x.heal),
    x.serving === null ? 'never' : s1(x.serving),
    x.note ?? '',
  ]);
  if (frows.length > 0) out.push(...table(['fault', 'kind', 'node', 'start', 'heal', 'serving', 'note'], frows).map((l) => `  ${l}`));
  return out.join('\n');
}
