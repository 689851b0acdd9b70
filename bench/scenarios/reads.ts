// reads (thesis 5.5): read latency against value size, 512 B … 16 KiB, at the leader and at a
// follower of a 3-node cluster, one read in flight, next to the get-shaped NATS echo (empty
// request, value in the reply) of the same size, interleaved in rounds.
import { formatBytes } from '../format.ts';
import { measureSet, ratio } from '../measure.ts';
import type { Measurement } from '../report.ts';
import type { Scenario } from '../scenario.ts';

const SIZES = [512, 1024, 2048, 4096, 8192, 16384];
const QUICK_SIZES = [512, 2048, 8192, 16384];

export const reads: Scenario = {
  name: 'reads',
  title: 'Read latency vs value size (thesis 5.5), 3 nodes, 1 in flight',
  description:
    'Gets of 1000 preloaded keys per size, one in flight, at the leader and at a follower (a follower answers from its ' +
    'own copy while it holds a read lease), next to the get-shaped NATS echo of the same size, interleaved in rounds.',
  estimate: { quick: '~15 s', full: '~3 min' },
  async run(ctx) {
    const sizes = ctx.quick ? QUICK_SIZES : SIZES;
    const timeScale = ctx.quick ? 0.5 : 0.6;
    ctx.section.section.settings = { nodes: 3, inflight: 1, sizes, warmupMs: ctx.timing.warmupMs * timeScale, durationMs: ctx.timing.durationMs * timeScale, rounds: ctx.rounds };
    const cluster = await ctx.cluster({ nodes: 3 });
    const table = ctx.section.table('reads', 'Get latency by value size (µs)', [
      { key: 'size', label: 'value', kind: 'bytes' },
      { key: 'echoP50', label: 'echo p50', kind: 'us' },
      { key: 'leaderP50', label: 'leader p50', kind: 'us' },
      { key: 'xLeader', label: 'leader ÷ echo', kind: 'ratio' },
      { key: 'followerP50', label: 'follower p50', kind: 'us' },
      { key: 'xFollower', label: 'follower ÷ echo', kind: 'ratio' },
      { key: 'leaderP99', label: 'leader p99', kind: 'us' },
      { key: 'followerP99', label: 'follower p99', kind: 'us' },
      { key: 'echoP99', label: 'echo p99', kind: 'us' },
    ]);
    const lines = { echo: [] as { x: number; y: number }[], leader: [] as { x: number; y: number }[], follower: [] as { x: number; y: number }[] };
    for (const valueBytes of sizes) {
      const [echo, leader, follower] = (await measureSet(ctx, cluster, [
        { system: 'nats-echo', op: 'get', valueBytes, inflight: 1 },
        { system: 'zistore', op: 'get', valueBytes, target: 'leader', inflight: 1 },
        { system: 'zistore', op: 'get', valueBytes, target: 'follower', inflight: 1 },
      ], { timeScale })) as [Measurement, Measurement, Measurement];
      table.add({
        size: valueBytes,
        echoP50: echo.latencyUs.p50,
        leaderP50: leader.latencyUs.p50,
        xLeader: ratio(leader.latencyUs.p50, echo.latencyUs.p50),
        followerP50: follower.latencyUs.p50,
        xFollower: ratio(follower.latencyUs.p50, echo.latencyUs.p50),
        leaderP99: leader.latencyUs.p99,
        followerP99: follower.latencyUs.p99,
        echoP99: echo.latencyUs.p99,
      });
      lines.echo.push({ x: valueBytes, y: echo.latencyUs.p50 });
      lines.leader.push({ x: valueBytes, y: leader.latencyUs.p50 });
      lines.follower.push({ x: valueBytes, y: follower.latencyUs.p50 });
    }
    ctx.section.chart('latency', {
      kind: 'line',
      title: 'Get p50 vs value size (3 nodes, 1 in flight)',
      xLabel: 'value size',
      yLabel: 'µs',
      xLog2: true,
      xTickLabel: (x) => formatBytes(x),
      series: [
        { name: 'get at leader', points: lines.leader },
        { name: 'get at follower', points: lines.follower },
        { name: 'echo (get-shaped)', points: lines.echo },
      ],
    });
  },
};
