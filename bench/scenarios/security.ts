// security: what access control costs a healthy cluster. Three clusters of 3 nodes, memory only,
// differing only in who may do what on NATS: 'none' (a bare nats-server: the baseline), 'open'
// (what `zistore up` runs: each node its own identity with permissions, clients without
// credentials) and 'secure' (`zistore up --secure`: every connection logs in; the load as the
// client identity with its own inbox prefix). Put and get at the leader, 1 in flight, interleaved.
import { measureSet, ratio } from '../measure.ts';
import type { Measurement } from '../report.ts';
import type { Scenario } from '../scenario.ts';
import type { Column } from '../table.ts';
import type { LocalClusterOptions } from '../../cluster/local-cluster.ts';
import type { BenchCluster } from '../bench-cluster.ts';

const VALUE_BYTES = 16;
/** Direct first: every ratio is against it. */
const MODES: { access: NonNullable<LocalClusterOptions['access']>; label: string }[] = [
  { access: 'none', label: 'none (bare nats-server)' },
  { access: 'open', label: 'open (zistore up: node identities)' },
  { access: 'secure', label: 'secure (zistore up --secure)' },
];

const COLUMNS: Column[] = [
  { key: 'op', label: 'op', kind: 'text' },
  { key: 'access', label: 'access', kind: 'text' },
  { key: 'p50', label: 'p50 µs', kind: 'us' },
  { key: 'p90', label: 'p90 µs', kind: 'us' },
  { key: 'p99', label: 'p99 µs', kind: 'us' },
  { key: 'opsPerSec', label: 'ops/s', kind: 'rate' },
  { key: 'xNoneP50', label: '×none p50', kind: 'ratio' },
  { key: 'xNoneP99', label: '×none p99', kind: 'ratio' },
  { key: 'cpuUsPerOp', label: 'CPU µs/op', kind: 'us' },
];

export const security: Scenario = {
  name: 'security',
  title: 'Access control: bare NATS vs node identities (open) vs credentials everywhere (secure), 1 in flight',
  description:
    'Three clusters of 3 nodes, memory only, each with its own ZooKeeper and nats-server, differing only in NATS access control ' +
    '(cluster/security.ts): "none" is a nats-server without authorization (the baseline); "open" is what `zistore up` runs: every node ' +
    'has its own user whose permissions let it publish peer messages only in its own name, and a connection without credentials is a ' +
    'client; "secure" is `zistore up --secure`: every connection logs in, the load as the client identity with its own inbox prefix. ' +
    'Puts and gets of 16 B at the leader, one in flight from one client connection, the clusters interleaved in rounds.',
  estimate: { quick: '~40 s', full: '~3 min' },
  ownCluster: true,
  async run(ctx) {
    const rounds = Math.max(ctx.rounds, 6);
    ctx.section.section.settings = { nodes: 3, inflight: 1, valueBytes: VALUE_BYTES, ...ctx.timing, rounds, connections: ctx.connections, modes: MODES.map((m) => m.access) };
    const clusters: BenchCluster[] = [];
    for (const m of MODES) clusters.push(await ctx.cluster({ nodes: 3, fresh: true, access: m.access, echoPeers: 0 }));
    const table = ctx.section.table('security', 'Put and get at the leader, 16 B, 1 in flight, by access control (µs)', COLUMNS);
    const bars: { category: string; p50: number }[] = [];
    const summary: string[] = [];
    for (const op of ['put', 'get'] as const) {
      const ms: Measurement[] = await measureSet(
        ctx,
        clusters[0]!,
        MODES.map((m, i) => ({ system: 'zistore', op, valueBytes: VALUE_BYTES, target: 'leader', inflight: 1, cluster: clusters[i]!, tag: m.access }) as const),
        { rounds, timeScale: 2, rotate: true },
      );
      const none = ms[0]!;
      ms.forEach((m, i) => {
        const mode = MODES[i]!;
        table.add({
          op,
          access: mode.label,
          p50: m.latencyUs.p50,
          p90: m.latencyUs.p90,
          p99: m.latencyUs.p99,
          opsPerSec: m.opsPerSec,
          xNoneP50: ratio(m.latencyUs.p50, none.latencyUs.p50),
          xNoneP99: ratio(m.latencyUs.p99, none.latencyUs.p99),
          cpuUsPerOp: m.cpuUsPerOp,
        });
        ctx.facts.set(`security.${op}1.${mode.access}.p50`, m.latencyUs.p50);
        bars.push({ category: `${op} ${mode.access}`, p50: m.latencyUs.p50 });
      });
      const x = (i: number) => (ms[i]!.latencyUs.p50 / none.latencyUs.p50).toFixed(3);
      summary.push(
        `${op} p50: none ${none.latencyUs.p50.toFixed(0)} µs, open ${ms[1]!.latencyUs.p50.toFixed(0)} µs (${x(1)}× none), ` +
          `secure ${ms[2]!.latencyUs.p50.toFixed(0)} µs (${x(2)}× none)`,
      );
    }
    ctx.section.chart('p50', {
      kind: 'bar',
      title: 'p50 at the leader, 16 B, 1 in flight, by access control',
      yLabel: 'µs',
      categories: bars.map((b) => b.category),
      series: [{ name: 'p50', values: bars.map((b) => b.p50) }],
    });
    for (const line of summary) ctx.section.observe(line);
  },
};
