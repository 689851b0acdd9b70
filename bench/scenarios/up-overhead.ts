// up: what `zistore up`'s fault injection costs a healthy cluster. Three clusters of 3 nodes,
// started as `zistore up` starts them (metrics on, node log level info), differing only in how
// their links can be cut: 'socket' (what `zistore up` runs: nodes connected straight to the
// servers, faults cut the node's own sockets), 'none' (nodes connected straight, no fault
// injection: the baseline) and 'proxy' (each link through a TCP proxy in the launcher: how
// `zistore up` ran before). Put and get at the leader, 1 in flight, interleaved in rounds.
import { measureSet, ratio } from '../measure.ts';
import type { Measurement } from '../report.ts';
import type { Scenario } from '../scenario.ts';
import type { Column } from '../table.ts';
import type { FaultInjection } from '../../cluster/local-cluster.ts';
import type { BenchCluster } from '../bench-cluster.ts';

const VALUE_BYTES = 16;
/** Direct first: every ratio is against it. */
const MODES: { faults: FaultInjection; label: string }[] = [
  { faults: 'none', label: 'direct (no fault injection)' },
  { faults: 'socket', label: 'zistore up (socket faults)' },
  { faults: 'proxy', label: 'TCP proxies (the former zistore up)' },
];

const COLUMNS: Column[] = [
  { key: 'op', label: 'op', kind: 'text' },
  { key: 'links', label: 'links', kind: 'text' },
  { key: 'p50', label: 'p50 µs', kind: 'us' },
  { key: 'p90', label: 'p90 µs', kind: 'us' },
  { key: 'p99', label: 'p99 µs', kind: 'us' },
  { key: 'opsPerSec', label: 'ops/s', kind: 'rate' },
  { key: 'xDirectP50', label: '×direct p50', kind: 'ratio' },
  { key: 'xDirectP99', label: '×direct p99', kind: 'ratio' },
  { key: 'cpuUsPerOp', label: 'CPU µs/op', kind: 'us' },
];

export const upOverhead: Scenario = {
  name: 'up',
  title: '`zistore up` vs directly connected nodes (fault injection overhead), 1 in flight',
  description:
    'Three clusters of 3 nodes, each started the way `zistore up` starts one (a Prometheus endpoint per node, log level info), ' +
    'differing only in how `kill`/`rmi-down`/`zk-down` reach the links: "direct" nodes connect straight to nats-server and ZooKeeper ' +
    'and cannot be cut (the baseline); "zistore up" is what `zistore up` runs now: nodes connected straight, a cut is done by the node ' +
    'process itself on its own sockets when the launcher tells it (cluster/link-faults.ts); "TCP proxies" routes every link through a ' +
    'proxy in the launcher, as `zistore up` did before. Puts and gets of 16 B at the leader, one in flight from one client connection, ' +
    'the clusters interleaved in rounds, each round starting with the next cluster (every cluster has its own ZooKeeper and nats-server; the idle ones wait).',
  estimate: { quick: '~40 s', full: '~3 min' },
  ownCluster: true,
  async run(ctx) {
    const rounds = Math.max(ctx.rounds, 6);
    ctx.section.section.settings = { nodes: 3, inflight: 1, valueBytes: VALUE_BYTES, ...ctx.timing, rounds, connections: ctx.connections, modes: MODES.map((m) => m.faults) };
    const clusters: BenchCluster[] = [];
    for (const m of MODES) clusters.push(await ctx.cluster({ nodes: 3, fresh: true, faults: m.faults, metrics: true, logLevel: 'info', echoPeers: 0 }));
    const table = ctx.section.table('up', 'Put and get at the leader, 16 B, 1 in flight: `zistore up` vs direct (µs)', COLUMNS);
    const bars: { category: string; p50: number }[] = [];
    const summary: string[] = [];
    for (const op of ['put', 'get'] as const) {
      const ms: Measurement[] = await measureSet(
        ctx,
        clusters[0]!,
        MODES.map((m, i) => ({ system: 'zistore', op, valueBytes: VALUE_BYTES, target: 'leader', inflight: 1, cluster: clusters[i]!, tag: m.faults }) as const),
        { rounds, timeScale: 2, rotate: true },
      );
      const direct = ms[0]!;
      ms.forEach((m, i) => {
        const mode = MODES[i]!;
        table.add({
          op,
          links: mode.label,
          p50: m.latencyUs.p50,
          p90: m.latencyUs.p90,
          p99: m.latencyUs.p99,
          opsPerSec: m.opsPerSec,
          xDirectP50: ratio(m.latencyUs.p50, direct.latencyUs.p50),
          xDirectP99: ratio(m.latencyUs.p99, direct.latencyUs.p99),
          cpuUsPerOp: m.cpuUsPerOp,
        });
        ctx.facts.set(`up.${op}1.${mode.faults}.p50`, m.latencyUs.p50);
        bars.push({ category: `${op} ${mode.faults === 'none' ? 'direct' : mode.faults === 'socket' ? 'up' : 'proxy'}`, p50: m.latencyUs.p50 });
      });
      const x = (i: number) => (ms[i]!.latencyUs.p50 / direct.latencyUs.p50).toFixed(3);
      summary.push(
        `${op} p50: direct ${direct.latencyUs.p50.toFixed(0)} µs, zistore up ${ms[1]!.latencyUs.p50.toFixed(0)} µs (${x(1)}× direct), ` +
          `TCP proxies ${ms[2]!.latencyUs.p50.toFixed(0)} µs (${x(2)}× direct)`,
      );
    }
    ctx.section.chart('p50', {
      kind: 'bar',
      title: 'p50 at the leader, 16 B, 1 in flight: direct, zistore up, TCP proxies',
      yLabel: 'µs',
      categories: bars.map((b) => b.category),
      series: [{ name: 'p50', values: bars.map((b) => b.p50) }],
    });
    for (const line of summary) ctx.section.observe(`${line}; goal for zistore up: ≤ 1.05× direct.`);
  },
};
