// Clusters of 3 nodes that differ in one setting (a "mode"), measured alike: puts and gets of
// 16 B at the leader, one in flight, the clusters interleaved in rounds (each round starting
// with the next), every ratio against the first mode (the baseline). The shape of the `up` and
// `security` scenarios: each says what its modes are and what its summary concludes.
import { measureSet, ratio } from './measure.ts';
import type { Measurement } from './report.ts';
import type { ClusterRequest, ScenarioContext } from './scenario.ts';
import type { Column } from './table.ts';
import type { BenchCluster } from './bench-cluster.ts';

const VALUE_BYTES = 16;

export interface Mode {
  /** Short id: run tags and facts (`<factPrefix>.<op>1.<id>.p50`). */
  id: string;
  /** Its row label in the table. */
  label: string;
  /** Its name in the chart's categories. */
  short: string;
  /** How its cluster differs from the others'. */
  cluster: Omit<ClusterRequest, 'nodes' | 'fresh'>;
}

export interface ModeComparison {
  modes: readonly Mode[];
  /** The table's column naming the mode, e.g. 'links'. */
  modeColumn: string;
  /** The baseline's name in the ratio columns, e.g. 'direct'. */
  baseline: string;
  factPrefix: string;
  tableId: string;
  tableTitle: string;
  chartTitle: string;
}

/** Measures every mode; resolves with the measurements per op, in the order of the modes. */
export async function compareModes(ctx: ScenarioContext, spec: ModeComparison): Promise<Record<'put' | 'get', Measurement[]>> {
  const rounds = Math.max(ctx.rounds, 6);
  ctx.section.section.settings = { nodes: 3, inflight: 1, valueBytes: VALUE_BYTES, ...ctx.timing, rounds, connections: ctx.connections, modes: spec.modes.map((m) => m.id) };
  const clusters: BenchCluster[] = [];
  for (const m of spec.modes) clusters.push(await ctx.cluster({ nodes: 3, fresh: true, echoPeers: 0, ...m.cluster }));
  const columns: Column[] = [
    { key: 'op', label: 'op', kind: 'text' },
    { key: 'mode', label: spec.modeColumn, kind: 'text' },
    { key: 'p50', label: 'p50 µs', kind: 'us' },
    { key: 'p90', label: 'p90 µs', kind: 'us' },
    { key: 'p99', label: 'p99 µs', kind: 'us' },
    { key: 'opsPerSec', label: 'ops/s', kind: 'rate' },
    { key: 'xBaseP50', label: `×${spec.baseline} p50`, kind: 'ratio' },
    { key: 'xBaseP99', label: `×${spec.baseline} p99`, kind: 'ratio' },
    { key: 'cpuUsPerOp', label: 'CPU µs/op', kind: 'us' },
  ];
  const table = ctx.section.table(spec.tableId, spec.tableTitle, columns);
  const bars: { category: string; p50: number }[] = [];
  const out = {} as Record<'put' | 'get', Measurement[]>;
  for (const op of ['put', 'get'] as const) {
    const ms: Measurement[] = await measureSet(
      ctx,
      clusters[0]!,
      spec.modes.map((m, i) => ({ system: 'zistore', op, valueBytes: VALUE_BYTES, target: 'leader', inflight: 1, cluster: clusters[i]!, tag: m.id }) as const),
      { rounds, timeScale: 2, rotate: true },
    );
    const base = ms[0]!;
    ms.forEach((m, i) => {
      const mode = spec.modes[i]!;
      table.add({
        op,
        mode: mode.label,
        p50: m.latencyUs.p50,
        p90: m.latencyUs.p90,
        p99: m.latencyUs.p99,
        opsPerSec: m.opsPerSec,
        xBaseP50: ratio(m.latencyUs.p50, base.latencyUs.p50),
        xBaseP99: ratio(m.latencyUs.p99, base.latencyUs.p99),
        cpuUsPerOp: m.cpuUsPerOp,
      });
      ctx.facts.set(`${spec.factPrefix}.${op}1.${mode.id}.p50`, m.latencyUs.p50);
      bars.push({ category: `${op} ${mode.short}`, p50: m.latencyUs.p50 });
    });
    out[op] = ms;
  }
  ctx.section.chart('p50', {
    kind: 'bar',
    title: spec.chartTitle,
    yLabel: 'µs',
    categories: bars.map((b) => b.category),
    series: [{ name: 'p50', values: bars.map((b) => b.p50) }],
  });
  return out;
}

/** `<op> p50: <first> N µs, <second> N µs (R× <first>), …`: one line of a comparison's summary. */
export function p50Summary(op: string, ms: readonly Measurement[], names: readonly string[]): string {
  const base = ms[0]!.latencyUs.p50;
  const parts = ms.map((m, i) => `${names[i]} ${m.latencyUs.p50.toFixed(0)} µs${i === 0 ? '' : ` (${(m.latencyUs.p50 / base).toFixed(3)}× ${names[0]})`}`);
  return `${op} p50: ${parts.join(', ')}`;
}
