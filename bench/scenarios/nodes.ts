// nodes (thesis 5.3): write latency at the leader with 1, 2, 3 and 4 nodes, one write in
// flight. One cluster grows by `addNode` (ZooKeeper and nats-server stay up); the leader stays
// the first node, so each step adds one follower that every write must reach.
import { measureSet, ratio } from '../measure.ts';
import type { Measurement } from '../report.ts';
import type { Scenario } from '../scenario.ts';

const NODES_MAX = 4;
const SIZES = [512, 16 * 1024];

export const nodes: Scenario = {
  name: 'nodes',
  title: 'Write latency vs number of nodes (thesis 5.3), 1 in flight',
  description:
    'Puts at the leader, one in flight, values of 512 B and 16 KiB, as the cluster grows from 1 to 4 nodes (a node is ' +
    'added and must be serving before the next step). A 1-node cluster replicates nowhere, so its put costs one round trip; ' +
    'from 2 nodes on, the leader waits for every follower in parallel.',
  estimate: { quick: '~50 s', full: '~3 min' },
  async run(ctx) {
    const timeScale = ctx.quick ? 0.6 : 1;
    ctx.section.section.settings = { nodes: `1…${NODES_MAX}`, inflight: 1, target: 'leader', sizes: SIZES, warmupMs: ctx.timing.warmupMs * timeScale, durationMs: ctx.timing.durationMs * timeScale, rounds: ctx.rounds };
    const cluster = await ctx.cluster({ nodes: 1, fresh: true });
    const table = ctx.section.table('nodes', 'Put latency at the leader by cluster size (µs)', [
      { key: 'nodes', label: 'nodes', kind: 'int' },
      { key: 'size', label: 'value', kind: 'bytes' },
      { key: 'p50', label: 'p50 µs', kind: 'us' },
      { key: 'p90', label: 'p90 µs', kind: 'us' },
      { key: 'p99', label: 'p99 µs', kind: 'us' },
      { key: 'p999', label: 'p99.9 µs', kind: 'us' },
      { key: 'xEchoP50', label: '×echo p50', kind: 'ratio' },
      { key: 'opsPerSec', label: 'ops/s', kind: 'rate' },
      { key: 'cpuUsPerOp', label: 'CPU µs/op', kind: 'us' },
    ]);
    const lines = new Map<number, { x: number; y: number }[]>();
    for (let n = 1; n <= NODES_MAX; n++) {
      if (n > 1) await ctx.progress.step(`adding node ${n}`, () => cluster.addNode());
      for (const valueBytes of SIZES) {
        const [echo, m] = (await measureSet(ctx, cluster, [
          { system: 'nats-echo', op: 'put', valueBytes, inflight: 1 },
          { system: 'zistore', op: 'put', valueBytes, target: 'leader', inflight: 1 },
        ], { timeScale })) as [Measurement, Measurement];
        table.add({
          nodes: n,
          size: valueBytes,
          p50: m.latencyUs.p50,
          p90: m.latencyUs.p90,
          p99: m.latencyUs.p99,
          p999: m.latencyUs.p999,
          xEchoP50: ratio(m.latencyUs.p50, echo.latencyUs.p50),
          opsPerSec: m.opsPerSec,
          cpuUsPerOp: m.cpuUsPerOp,
        });
        (lines.get(valueBytes) ?? lines.set(valueBytes, []).get(valueBytes)!).push({ x: n, y: m.latencyUs.p50 });
      }
    }
    ctx.section.chart('latency', {
      kind: 'line',
      title: 'Put p50 at the leader vs cluster size (1 in flight)',
      xLabel: 'nodes',
      yLabel: 'µs',
      series: [...lines].map(([size, points]) => ({ name: `p50 ${size >= 1024 ? size / 1024 + ' KiB' : size + ' B'}`, points })),
    });
  },
};
