// latency: the core issue's figure, "measured put/get latency (p50/p99, 3 nodes, 16 B and
// 16 KiB values)". One request in flight, at the leader and at a follower, next to the NATS echo
// floor with the same message shapes. Expected from the protocol: a get is one client round trip
// (leader or leased follower answers from memory); a put at the leader is two (client → leader,
// leader → every follower in parallel); a put at a follower adds the forward to the leader.
import { measureSet, ratio } from '../measure.ts';
import type { Measurement } from '../report.ts';
import type { Scenario } from '../scenario.ts';
import type { Column } from '../table.ts';

const SIZES = [16, 16 * 1024];

export const LATENCY_COLUMNS: Column[] = [
  { key: 'op', label: 'op', kind: 'text' },
  { key: 'size', label: 'value', kind: 'bytes' },
  { key: 'at', label: 'at', kind: 'text' },
  { key: 'p50', label: 'p50 µs', kind: 'us' },
  { key: 'p90', label: 'p90 µs', kind: 'us' },
  { key: 'p99', label: 'p99 µs', kind: 'us' },
  { key: 'p999', label: 'p99.9 µs', kind: 'us' },
  { key: 'max', label: 'max µs', kind: 'us' },
  { key: 'opsPerSec', label: 'ops/s', kind: 'rate' },
  { key: 'xEchoP50', label: '×echo p50', kind: 'ratio' },
  { key: 'xEchoP99', label: '×echo p99', kind: 'ratio' },
  { key: 'xFloorP50', label: '×floor p50', kind: 'ratio' },
  { key: 'cpuUsPerOp', label: 'CPU µs/op', kind: 'us' },
];

/** A table row; `floor` is the no-store floor of the same message pattern (echo for gets, relay for puts). */
export function latencyRow(op: string, at: string, m: Measurement, echo: Measurement | null, floor: Measurement | null = echo) {
  return {
    op,
    size: m.valueBytes,
    at,
    p50: m.latencyUs.p50,
    p90: m.latencyUs.p90,
    p99: m.latencyUs.p99,
    p999: m.latencyUs.p999,
    max: m.latencyUs.max,
    opsPerSec: m.opsPerSec,
    xEchoP50: echo ? ratio(m.latencyUs.p50, echo.latencyUs.p50) : null,
    xEchoP99: echo ? ratio(m.latencyUs.p99, echo.latencyUs.p99) : null,
    xFloorP50: floor ? ratio(m.latencyUs.p50, floor.latencyUs.p50) : null,
    cpuUsPerOp: m.cpuUsPerOp,
  };
}

export const latency: Scenario = {
  name: 'latency',
  title: 'Put and get latency, 3 nodes, 1 in flight',
  description:
    'One request in flight (closed loop, C = 1) from one client connection, 3 nodes, values of 16 B and 16 KiB. ' +
    'Puts and gets go to the leader and to a follower through their node subjects; puts overwrite a fixed set of keys, ' +
    'gets read 1000 preloaded keys. Each ZiStore row is compared with the NATS echo of the same shape and, for puts, with ' +
    'the relay floor (the echo responder first sends the value to 2 other responders in parallel: the message pattern ' +
    'of a put at the leader of 3 nodes, without the store); rows of one group are interleaved in rounds.',
  estimate: { quick: '~35 s', full: '~3.5 min' },
  async run(ctx) {
    ctx.section.section.settings = { nodes: 3, inflight: 1, sizes: SIZES, ...ctx.timing, rounds: ctx.rounds, connections: ctx.connections };
    const cluster = await ctx.cluster({ nodes: 3 });
    const table = ctx.section.table('latency', 'Latency at 1 in flight (µs)', LATENCY_COLUMNS);
    const bars: { category: string; p50: number; p99: number }[] = [];
    const found = new Map<string, { m: Measurement; echo: Measurement; floor: Measurement }>();
    for (const valueBytes of SIZES) {
      const short = valueBytes >= 1024 ? `${valueBytes / 1024}K` : String(valueBytes);
      for (const op of ['put', 'get'] as const) {
        const ms = await measureSet(ctx, cluster, [
          { system: 'nats-echo', op, valueBytes, inflight: 1 },
          ...(op === 'put' ? [{ system: 'nats-echo', op, valueBytes, inflight: 1, fanout: 2 } as const] : []),
          { system: 'zistore', op, valueBytes, target: 'leader', inflight: 1 },
          { system: 'zistore', op, valueBytes, target: 'follower', inflight: 1 },
        ]);
        const echo = ms[0]!;
        const floor = op === 'put' ? ms[1]! : echo;
        table.add(latencyRow(`echo ${op}`, 'echo', echo, echo));
        bars.push({ category: `echo ${op} ${short}`, p50: echo.latencyUs.p50, p99: echo.latencyUs.p99 });
        if (floor !== echo) {
          table.add(latencyRow(`relay ${op}`, 'relay→2', floor, echo, floor));
          bars.push({ category: `relay ${short}`, p50: floor.latencyUs.p50, p99: floor.latencyUs.p99 });
        }
        for (const m of ms.filter((x) => x.system === 'zistore')) {
          const target = m.target;
          table.add(latencyRow(op, target, m, echo, floor));
          found.set(`${op}/${valueBytes}/${target}`, { m, echo, floor });
          bars.push({ category: `${op} ${short} ${target[0]}`, p50: m.latencyUs.p50, p99: m.latencyUs.p99 });
        }
      }
    }
    for (const pct of ['p50', 'p99'] as const) {
      ctx.section.chart(pct, {
        kind: 'bar',
        title: `${pct} latency at 1 in flight, 3 nodes (l = leader, f = follower)`,
        yLabel: 'µs',
        categories: bars.map((b) => b.category),
        series: [{ name: pct, values: bars.map((b) => b[pct]) }],
      });
    }
    for (const valueBytes of SIZES) {
      const f = (op: string, target: string) => found.get(`${op}/${valueBytes}/${target}`);
      const x = (op: string, target: string) => {
        const r = f(op, target);
        return r ? (r.m.latencyUs.p50 / r.echo.latencyUs.p50).toFixed(2) : '?';
      };
      const relay = f('put', 'leader');
      const relayX = relay ? (relay.floor.latencyUs.p50 / relay.echo.latencyUs.p50).toFixed(2) : '?';
      ctx.section.observe(
        `${valueBytes} B, p50 in echo round trips: get at leader ${x('get', 'leader')}, get at follower ${x('get', 'follower')} ` +
          `(1 expected); put at leader ${x('put', 'leader')} (the relay floor of the same pattern: ${relayX}); ` +
          `put at follower ${x('put', 'follower')} (one forward more).`,
      );
    }
  },
};
