// value-size (thesis 5.1): write latency against value size, 512 B … 16 KiB, at the leader of a
// 3-node cluster, one write in flight, next to the echo of the same size. The later round adds
// record counts (16–1024) and append vs overwrite.
import { formatBytes } from '../format.ts';
import { measureSet, ratio } from '../measure.ts';
import type { Measurement } from '../report.ts';
import type { Scenario } from '../scenario.ts';

const SIZES = [512, 1024, 2048, 4096, 8192, 16384];

export const valueSize: Scenario = {
  name: 'value-size',
  title: 'Write latency vs value size (thesis 5.1), 3 nodes, 1 in flight',
  description:
    'Puts at the leader of a 3-node cluster, one in flight, values from 512 B to 16 KiB (random bytes), overwriting ' +
    'a fixed set of keys; each size next to the put-shaped NATS echo and the relay floor (value sent on to 2 other ' +
    'responders before the answer) of the same size, interleaved in rounds.',
  estimate: { quick: '~35 s', full: '~3.5 min' },
  async run(ctx) {
    const timeScale = ctx.quick ? 0.6 : 1;
    ctx.section.section.settings = { nodes: 3, inflight: 1, target: 'leader', sizes: SIZES, warmupMs: ctx.timing.warmupMs * timeScale, durationMs: ctx.timing.durationMs * timeScale, rounds: ctx.rounds };
    const cluster = await ctx.cluster({ nodes: 3 });
    const table = ctx.section.table('value-size', 'Put latency at the leader by value size (µs)', [
      { key: 'size', label: 'value', kind: 'bytes' },
      { key: 'p50', label: 'p50 µs', kind: 'us' },
      { key: 'p90', label: 'p90 µs', kind: 'us' },
      { key: 'p99', label: 'p99 µs', kind: 'us' },
      { key: 'p999', label: 'p99.9 µs', kind: 'us' },
      { key: 'max', label: 'max µs', kind: 'us' },
      { key: 'echoP50', label: 'echo p50 µs', kind: 'us' },
      { key: 'xEchoP50', label: '×echo p50', kind: 'ratio' },
      { key: 'relayP50', label: 'relay→2 p50 µs', kind: 'us' },
      { key: 'xRelayP50', label: '×relay p50', kind: 'ratio' },
      { key: 'opsPerSec', label: 'ops/s', kind: 'rate' },
      { key: 'cpuUsPerOp', label: 'CPU µs/op', kind: 'us' },
    ]);
    const lines = { p50: [] as { x: number; y: number }[], p99: [] as { x: number; y: number }[], echo: [] as { x: number; y: number }[], relay: [] as { x: number; y: number }[] };
    for (const valueBytes of SIZES) {
      const [echo, relay, m] = (await measureSet(ctx, cluster, [
        { system: 'nats-echo', op: 'put', valueBytes, inflight: 1 },
        { system: 'nats-echo', op: 'put', valueBytes, inflight: 1, fanout: 2 },
        { system: 'zistore', op: 'put', valueBytes, target: 'leader', inflight: 1 },
      ], { timeScale })) as [Measurement, Measurement, Measurement];
      table.add({
        size: valueBytes,
        p50: m.latencyUs.p50,
        p90: m.latencyUs.p90,
        p99: m.latencyUs.p99,
        p999: m.latencyUs.p999,
        max: m.latencyUs.max,
        echoP50: echo.latencyUs.p50,
        xEchoP50: ratio(m.latencyUs.p50, echo.latencyUs.p50),
        relayP50: relay.latencyUs.p50,
        xRelayP50: ratio(m.latencyUs.p50, relay.latencyUs.p50),
        opsPerSec: m.opsPerSec,
        cpuUsPerOp: m.cpuUsPerOp,
      });
      lines.p50.push({ x: valueBytes, y: m.latencyUs.p50 });
      lines.p99.push({ x: valueBytes, y: m.latencyUs.p99 });
      lines.echo.push({ x: valueBytes, y: echo.latencyUs.p50 });
      lines.relay.push({ x: valueBytes, y: relay.latencyUs.p50 });
    }
    ctx.section.chart('latency', {
      kind: 'line',
      title: 'Put latency at the leader vs value size (3 nodes, 1 in flight)',
      xLabel: 'value size',
      yLabel: 'µs',
      xLog2: true,
      xTickLabel: (x) => formatBytes(x),
      series: [
        { name: 'put p50', points: lines.p50 },
        { name: 'put p99', points: lines.p99 },
        { name: 'echo p50', points: lines.echo },
        { name: 'relay→2 p50', points: lines.relay },
      ],
    });
  },
};
