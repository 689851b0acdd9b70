// value-size (thesis 5.1 and table 5.1): write latency against value size, 512 B … 16 KiB, at
// the leader of a 3-node cluster, one write in flight, next to the echo of the same size; then
// append (a new key per write) vs overwrite (a working set of 16 … 1024 records), and the spread
// of individual write delays per size (table 5.1).
import type { BenchCluster } from '../bench-cluster.ts';
import { formatBytes } from '../format.ts';
import { key16, size36 } from '../kv-systems.ts';
import { measureSet, ratio, valueOf, type RunSpec } from '../measure.ts';
import type { Measurement } from '../report.ts';
import type { Scenario, ScenarioContext } from '../scenario.ts';

const SIZES = [512, 1024, 2048, 4096, 8192, 16384];

export const valueSize: Scenario = {
  name: 'value-size',
  title: 'Write latency vs value size (thesis 5.1), 3 nodes, 1 in flight',
  description:
    'Puts at the leader of a 3-node cluster, one in flight, values from 512 B to 16 KiB (random bytes), overwriting ' +
    'a fixed set of keys; each size next to the put-shaped NATS echo and the relay floor (value sent on to 2 other ' +
    'responders before the answer) of the same size, interleaved in rounds. Then, per size, append against overwrite: ' +
    'overwrite cycles through a working set of N records loaded before the run, append writes a key that does not exist ' +
    'yet each time into a store that holds N such records (appended keys are deleted afterwards); all record counts and ' +
    'both modes of one size interleaved. Last, table 5.1 of the thesis: individual write delays, one after the other, ' +
    'after a warm-up, and the average over a longer series.',
  estimate: { quick: '~40 s', full: '~12 min' },
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
    await appendVsOverwrite(ctx, cluster, timeScale);
    await delaySpread(ctx, cluster);
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

/** Thesis 5.1: append vs overwrite for working sets of 16 … 1024 records, per size. */
async function appendVsOverwrite(ctx: ScenarioContext, cluster: BenchCluster, timeScale: number): Promise<void> {
  const sizes = ctx.quick ? [512, 2048, 16384] : SIZES;
  const recordCounts = ctx.quick ? [16, 1024] : [16, 64, 256, 1024];
  const table = ctx.section.table('append', 'Append vs overwrite: put latency at the leader by value size and records (µs)', [
    { key: 'size', label: 'value', kind: 'bytes' },
    { key: 'records', label: 'records', kind: 'int' },
    { key: 'overwriteP50', label: 'overwrite p50', kind: 'us' },
    { key: 'appendP50', label: 'append p50', kind: 'us' },
    { key: 'ratio', label: 'append ÷ overwrite', kind: 'ratio' },
    { key: 'overwriteP99', label: 'overwrite p99', kind: 'us' },
    { key: 'appendP99', label: 'append p99', kind: 'us' },
    { key: 'overwriteOps', label: 'overwrite ops/s', kind: 'rate' },
    { key: 'appendOps', label: 'append ops/s', kind: 'rate' },
  ], { live: false });
  const lines = new Map<string, { x: number; y: number }[]>();
  const push = (name: string, x: number, y: number) => (lines.get(name) ?? lines.set(name, []).get(name)!).push({ x, y });
  for (const valueBytes of sizes) {
    const specs: RunSpec[] = recordCounts.flatMap((records): RunSpec[] => [
      { system: 'zistore', op: 'put', valueBytes, target: 'leader', inflight: 1, records, keyMode: 'overwrite' },
      { system: 'zistore', op: 'put', valueBytes, target: 'leader', inflight: 1, records, keyMode: 'append', cleanup: true },
    ]);
    const ms = await measureSet(ctx, cluster, specs, { timeScale: timeScale * 0.6 });
    recordCounts.forEach((records, i) => {
      const ow = ms[2 * i]!;
      const ap = ms[2 * i + 1]!;
      table.add({
        size: valueBytes,
        records,
        overwriteP50: ow.latencyUs.p50,
        appendP50: ap.latencyUs.p50,
        ratio: ratio(ap.latencyUs.p50, ow.latencyUs.p50),
        overwriteP99: ow.latencyUs.p99,
        appendP99: ap.latencyUs.p99,
        overwriteOps: ow.opsPerSec,
        appendOps: ap.opsPerSec,
      });
      push(`overwrite, ${records} records`, valueBytes, ow.latencyUs.p50);
      push(`append, ${records} records`, valueBytes, ap.latencyUs.p50);
    });
  }
  table.note('Overwrite: the put replaces one of N existing records (cycled in order). Append: the put creates a key that did not exist, in a store preloaded with N records; appended keys are deleted after the run.');
  ctx.section.chart('append', {
    kind: 'line',
    title: 'Put p50 at the leader: append vs overwrite (3 nodes, 1 in flight)',
    xLabel: 'value size',
    yLabel: 'µs',
    xLog2: true,
    xTickLabel: (x) => formatBytes(x),
    series: [...lines].map(([name, points]) => ({ name, points })),
  });
}

/** Thesis table 5.1: a handful of individual write delays per size, and the average of a longer series. */
async function delaySpread(ctx: ScenarioContext, cluster: BenchCluster): Promise<void> {
  const SHOWN = 8;
  const series = ctx.quick ? 100 : 1000;
  const warmup = 50;
  const leader = await cluster.leader();
  const client = await cluster.writerClient(0);
  const table = ctx.section.table('spread', `Individual write delays at the leader, 3 nodes (µs): ${SHOWN} consecutive puts and the average of ${series}`, [
    { key: 'size', label: 'value', kind: 'bytes' },
    ...Array.from({ length: SHOWN }, (_, i) => ({ key: `w${i + 1}`, label: `#${i + 1}`, kind: 'us' as const })),
    { key: 'avg', label: `average of ${series}`, kind: 'us' },
    { key: 'min', label: 'min', kind: 'us' },
    { key: 'max', label: 'max', kind: 'us' },
  ], { live: false });
  for (const valueBytes of SIZES) {
    const value = valueOf(valueBytes);
    const prefix = `s${size36(valueBytes)}.`;
    const delays: number[] = [];
    await ctx.progress.step(`write delays, ${formatBytes(valueBytes)}`, async () => {
      for (let i = 0; i < warmup + series; i++) {
        const t0 = performance.now();
        await client.put(key16(prefix, i % 100), value, { node: leader });
        if (i >= warmup) delays.push((performance.now() - t0) * 1000);
      }
    });
    const row: Record<string, number> = { size: valueBytes };
    for (let i = 0; i < SHOWN; i++) row[`w${i + 1}`] = Math.round(delays[i]!);
    row.avg = delays.reduce((a, b) => a + b, 0) / delays.length;
    row.min = Math.min(...delays);
    row.max = Math.max(...delays);
    table.add(row);
  }
  table.note(`Puts one after the other at the leader (overwriting 100 keys), after ${warmup} unrecorded ones; the first ${SHOWN} recorded are shown as they came.`);
}
