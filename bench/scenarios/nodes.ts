// nodes (thesis 5.3): write latency at the leader with 1, 2, 3 and 4 nodes, one write in
// flight. One cluster grows by `addNode` (ZooKeeper and nats-server stay up); the leader stays
// the first node, so each step adds one follower that every write must reach.
import { measureSet, ratio } from '../measure.ts';
import type { Scenario } from '../scenario.ts';

const NODES_MAX = 4;
const SIZES = [512, 16 * 1024];

export const nodes: Scenario = {
  name: 'nodes',
  title: 'Write latency vs number of nodes (thesis 5.3), 1 in flight',
  description:
    'Puts at the leader, one in flight, values of 512 B and 16 KiB, as the cluster grows from 1 to 4 nodes (a node is ' +
    'added and must be serving before the next step). A 1-node cluster replicates nowhere, so its put costs one round trip; ' +
    'from 2 nodes on, the leader waits for every follower in parallel. The floor is the echo relay with the same ' +
    'fan-out (n − 1 other responders; plain echo for 1 node), interleaved with the puts in rounds.',
  estimate: { quick: '~55 s', full: '~4 min' },
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
      { key: 'relayP50', label: 'floor p50 µs', kind: 'us' },
      { key: 'xRelayP50', label: '×floor p50', kind: 'ratio' },
      { key: 'opsPerSec', label: 'ops/s', kind: 'rate' },
      { key: 'cpuUsPerOp', label: 'CPU µs/op', kind: 'us' },
    ]);
    const lines = new Map<string, { x: number; y: number }[]>();
    const push = (name: string, x: number, y: number) => (lines.get(name) ?? lines.set(name, []).get(name)!).push({ x, y });
    for (let n = 1; n <= NODES_MAX; n++) {
      if (n > 1) await ctx.progress.step(`adding node ${n}`, () => cluster.addNode());
      for (const valueBytes of SIZES) {
        const ms = await measureSet(ctx, cluster, [
          { system: 'nats-echo', op: 'put', valueBytes, inflight: 1 },
          ...(n > 1 ? [{ system: 'nats-echo', op: 'put', valueBytes, inflight: 1, fanout: n - 1 } as const] : []),
          { system: 'zistore', op: 'put', valueBytes, target: 'leader', inflight: 1 },
        ], { timeScale });
        const echo = ms[0]!;
        const relay = n > 1 ? ms[1]! : echo;
        const m = ms[ms.length - 1]!;
        table.add({
          nodes: n,
          size: valueBytes,
          p50: m.latencyUs.p50,
          p90: m.latencyUs.p90,
          p99: m.latencyUs.p99,
          p999: m.latencyUs.p999,
          xEchoP50: ratio(m.latencyUs.p50, echo.latencyUs.p50),
          relayP50: relay.latencyUs.p50,
          xRelayP50: ratio(m.latencyUs.p50, relay.latencyUs.p50),
          opsPerSec: m.opsPerSec,
          cpuUsPerOp: m.cpuUsPerOp,
        });
        const size = valueBytes >= 1024 ? `${valueBytes / 1024} KiB` : `${valueBytes} B`;
        push(`put p50 ${size}`, n, m.latencyUs.p50);
        push(`floor p50 ${size}`, n, relay.latencyUs.p50);
      }
    }
    ctx.section.chart('latency', {
      kind: 'line',
      title: 'Put p50 at the leader vs cluster size (1 in flight)',
      xLabel: 'nodes',
      yLabel: 'µs',
      series: [...lines].map(([name, points]) => ({ name, points })),
    });
  },
};
