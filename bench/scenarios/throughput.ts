// throughput: closed-loop put and get with 1, 4, 16 and 64 requests in flight, 16 B values,
// 3 nodes, next to the NATS echo at the same concurrency. On a 2-core host shared by the client
// and every server this finds where the CPU runs out, not what a network would allow.
import { measureSet, ratio } from '../measure.ts';
import type { Measurement } from '../report.ts';
import type { Scenario } from '../scenario.ts';

const INFLIGHT = [1, 4, 16, 64];
const VALUE_BYTES = 16;

const cpuOf = (m: Measurement, match: (name: string) => boolean) =>
  m.cpu.processes.filter((p) => match(p.name)).reduce((s, p) => s + p.corePct, 0);
const isNode = (name: string) => /^n\d+$/.test(name);

export const throughput: Scenario = {
  name: 'throughput',
  title: 'Throughput vs requests in flight, 16 B, 3 nodes',
  description:
    'Closed loop with C = 1, 4, 16, 64 requests in flight, 16 B values, 3 nodes. Puts overwrite per-worker keys (no two ' +
    'workers share a key, so per-key ordering never serialises them); gets read 1000 preloaded keys. `leader` sends every ' +
    'request to the leader; `any` uses the cluster subject (a NATS queue group over all nodes: followers forward puts to ' +
    'the leader and answer gets from their leased copy). The echo row is the NATS floor at the same C; "relay →2" the floor of a put\'s message pattern.',
  estimate: { quick: '~30 s', full: '~3 min' },
  async run(ctx) {
    ctx.section.section.settings = {
      nodes: 3,
      valueBytes: VALUE_BYTES,
      inflight: INFLIGHT,
      warmupMs: ctx.timing.warmupMs / 2,
      durationMs: ctx.timing.durationMs / 2,
      rounds: ctx.rounds,
      connections: ctx.connections,
    };
    const cluster = await ctx.cluster({ nodes: 3 });
    const table = ctx.section.table('throughput', `Throughput, ${VALUE_BYTES} B values`, [
      { key: 'op', label: 'op', kind: 'text' },
      { key: 'at', label: 'at', kind: 'text' },
      { key: 'inflight', label: 'in flight', kind: 'int' },
      { key: 'opsPerSec', label: 'ops/s', kind: 'rate' },
      { key: 'xEcho', label: 'of echo ops/s', kind: 'ratio' },
      { key: 'p50', label: 'p50 µs', kind: 'us' },
      { key: 'p99', label: 'p99 µs', kind: 'us' },
      { key: 'p999', label: 'p99.9 µs', kind: 'us' },
      { key: 'cpuUsPerOp', label: 'CPU µs/op', kind: 'us' },
      { key: 'benchPct', label: 'bench CPU', kind: 'pct' },
      { key: 'natsPct', label: 'nats CPU', kind: 'pct' },
      { key: 'nodesPct', label: 'nodes CPU', kind: 'pct' },
    ]);
    const series = new Map<string, { x: number; y: number }[]>();
    const p50s = new Map<string, { x: number; y: number }[]>();
    const add = (name: string, m: Measurement, echo: Measurement) => {
      const [op, at] = name.split(' ');
      table.add({
        op: op!,
        at: at ?? '',
        inflight: m.inflight,
        opsPerSec: m.opsPerSec,
        xEcho: ratio(m.opsPerSec, echo.opsPerSec),
        p50: m.latencyUs.p50,
        p99: m.latencyUs.p99,
        p999: m.latencyUs.p999,
        cpuUsPerOp: m.cpuUsPerOp,
        benchPct: cpuOf(m, (n) => n === 'bench'),
        natsPct: cpuOf(m, (n) => n === 'nats-server'),
        nodesPct: cpuOf(m, isNode) + cpuOf(m, (n) => n.startsWith('echo')),
      });
      (series.get(name) ?? series.set(name, []).get(name)!).push({ x: m.inflight, y: m.opsPerSec });
      (p50s.get(name) ?? p50s.set(name, []).get(name)!).push({ x: m.inflight, y: m.latencyUs.p50 });
    };
    for (const inflight of INFLIGHT) {
      const [echo, ...stores] = await measureSet(ctx, cluster, [
        { system: 'nats-echo', op: 'put', valueBytes: VALUE_BYTES, inflight },
        { system: 'nats-echo', op: 'put', valueBytes: VALUE_BYTES, inflight, fanout: 2 },
        { system: 'zistore', op: 'put', valueBytes: VALUE_BYTES, target: 'leader', inflight },
        { system: 'zistore', op: 'put', valueBytes: VALUE_BYTES, target: 'any', inflight },
        { system: 'zistore', op: 'get', valueBytes: VALUE_BYTES, target: 'leader', inflight },
        { system: 'zistore', op: 'get', valueBytes: VALUE_BYTES, target: 'any', inflight },
      ], { timeScale: 0.5 });
      add('echo', echo!, echo!);
      for (const m of stores) add(m.system === 'nats-echo' ? 'relay →2' : `${m.op} ${m.target}`, m, echo!);
    }
    table.note('"nodes CPU" is the sum over the ZiStore node processes (or the echo responders on echo and relay rows), in % of one core; the host has 200%.');
    table.note('"relay →2" is the replication floor: the echo responder sends each value to 2 other responders in parallel before answering (a put\'s message pattern without the store).');
    ctx.section.chart('ops', {
      kind: 'line',
      title: `Throughput vs in flight (${VALUE_BYTES} B, 3 nodes)`,
      xLabel: 'requests in flight',
      yLabel: 'ops/s',
      xLog2: true,
      series: [...series].map(([name, points]) => ({ name, points })),
    });
    ctx.section.chart('p50', {
      kind: 'line',
      title: `p50 latency vs in flight (${VALUE_BYTES} B, 3 nodes)`,
      xLabel: 'requests in flight',
      yLabel: 'µs',
      xLog2: true,
      series: [...p50s].map(([name, points]) => ({ name, points })),
    });
  },
};
