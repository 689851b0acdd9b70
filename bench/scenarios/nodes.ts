// nodes (thesis 5.3 and 5.2): write latency at the leader with 1, 2, 3 and 4 nodes, one write in
// flight, overwriting and appending. One cluster grows by `addNode` (ZooKeeper and nats-server
// stay up); the leader stays the first node, so each step adds one follower that every write must
// reach. Thesis 5.2 (the overhead of distribution): the 1-node and 3-node puts against a local
// LevelDB put (embedded, sync:false) of the same size.
import { durabilityNote } from '../compare.ts';
import { measureSetOptional, ratio, type RunSpec } from '../measure.ts';
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
    'from 2 nodes on, the leader waits for every follower in parallel. The floor is the echo relay with the same ' +
    'fan-out (n − 1 other responders; plain echo for 1 node), interleaved with the puts in rounds. Appends (a new key per put, ' +
    'deleted afterwards) run next to the overwrites. With 1 node, a local LevelDB put (classic-level in the bench process, ' +
    'sync:false) of the same size joins the set: the overhead table (thesis 5.2) sets 1 and 3 nodes against it.',
  estimate: { quick: '~55 s', full: '~7 min' },
  usesPeers: true,
  ownCluster: true,
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
      { key: 'appendP50', label: 'append p50 µs', kind: 'us' },
      { key: 'xAppend', label: 'append ÷ overwrite', kind: 'ratio' },
      { key: 'opsPerSec', label: 'ops/s', kind: 'rate' },
      { key: 'cpuUsPerOp', label: 'CPU µs/op', kind: 'us' },
    ]);
    const local = new Map<number, Measurement>();
    const byNodes = new Map<string, { echo: Measurement; m: Measurement }>();
    const lines = new Map<string, { x: number; y: number }[]>();
    const push = (name: string, x: number, y: number) => (lines.get(name) ?? lines.set(name, []).get(name)!).push({ x, y });
    for (let n = 1; n <= NODES_MAX; n++) {
      if (n > 1) await ctx.progress.step(`adding node ${n}`, () => cluster.addNode());
      for (const valueBytes of SIZES) {
        const specs: RunSpec[] = [
          { system: 'nats-echo', op: 'put', valueBytes, inflight: 1 },
          ...(n > 1 ? [{ system: 'nats-echo', op: 'put', valueBytes, inflight: 1, fanout: n - 1 } as const] : []),
          { system: 'zistore', op: 'put', valueBytes, target: 'leader', inflight: 1 },
          { system: 'zistore', op: 'put', valueBytes, target: 'leader', inflight: 1, keyMode: 'append', cleanup: true },
          // 1 node: a local LevelDB put joins the interleaved set (thesis 5.2).
          ...(n === 1 ? [{ system: 'leveldb', op: 'put', valueBytes, inflight: 1 } as const] : []),
        ];
        const ms = await measureSetOptional(ctx, cluster, specs, { timeScale });
        const at = (i: number): Measurement => {
          const m = ms[i];
          if (!m) throw new Error(`${specs[i]!.system} did not run`);
          return m;
        };
        const echo = at(0);
        const relay = n > 1 ? at(1) : echo;
        const m = at(n > 1 ? 2 : 1);
        const append = at(n > 1 ? 3 : 2);
        byNodes.set(`${n}/${valueBytes}`, { echo, m });
        const leveldb = n === 1 ? ms[3] : null;
        if (leveldb) local.set(valueBytes, leveldb);
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
          appendP50: append.latencyUs.p50,
          xAppend: ratio(append.latencyUs.p50, m.latencyUs.p50),
          opsPerSec: m.opsPerSec,
          cpuUsPerOp: m.cpuUsPerOp,
        });
        const size = valueBytes >= 1024 ? `${valueBytes / 1024} KiB` : `${valueBytes} B`;
        push(`put p50 ${size}`, n, m.latencyUs.p50);
        push(`append p50 ${size}`, n, append.latencyUs.p50);
        push(`floor p50 ${size}`, n, relay.latencyUs.p50);
      }
    }
    table.note('Overwrite puts cycle through up to 1000 keys per worker; append puts create a new key each (deleted after the run).');
    durabilityNote(table, []);

    // Thesis 5.2: what distribution costs over a local write.
    const overhead = ctx.section.table('overhead', 'Overhead of distribution: put p50 against a local write (µs), 1 in flight', [
      { key: 'size', label: 'value', kind: 'bytes' },
      { key: 'local', label: 'LevelDB local', kind: 'us' },
      { key: 'one', label: 'ZiStore 1 node', kind: 'us' },
      { key: 'three', label: 'ZiStore 3 nodes', kind: 'us' },
      { key: 'echo', label: 'NATS echo', kind: 'us' },
      { key: 'oneVsLocal', label: '1 node ÷ local', kind: 'ratio' },
      { key: 'threeVsOne', label: '3 nodes ÷ 1 node', kind: 'ratio' },
      { key: 'threeVsLocal', label: '3 nodes ÷ local', kind: 'ratio' },
      { key: 'oneMinusEcho', label: '1 node − echo', kind: 'us' },
    ], { live: false });
    for (const valueBytes of SIZES) {
      const lv = local.get(valueBytes);
      const one = byNodes.get(`1/${valueBytes}`);
      const three = byNodes.get(`3/${valueBytes}`);
      overhead.add({
        size: valueBytes,
        local: lv?.latencyUs.p50 ?? null,
        one: one?.m.latencyUs.p50 ?? null,
        three: three?.m.latencyUs.p50 ?? null,
        echo: one?.echo.latencyUs.p50 ?? null,
        oneVsLocal: lv && one ? ratio(one.m.latencyUs.p50, lv.latencyUs.p50) : null,
        threeVsOne: one && three ? ratio(three.m.latencyUs.p50, one.m.latencyUs.p50) : null,
        threeVsLocal: lv && three ? ratio(three.m.latencyUs.p50, lv.latencyUs.p50) : null,
        oneMinusEcho: one ? one.m.latencyUs.p50 - one.echo.latencyUs.p50 : null,
      });
    }
    overhead.note('LevelDB local: classic-level in the bench process, sync:false, measured while the cluster had 1 node. "1 node − echo": what a 1-node put costs beyond one NATS round trip (the store itself, no replication).');
    durabilityNote(overhead, ['leveldb', 'nats-echo']);
    ctx.section.chart('latency', {
      kind: 'line',
      title: 'Put p50 at the leader vs cluster size (1 in flight)',
      xLabel: 'nodes',
      yLabel: 'µs',
      series: [...lines].map(([name, points]) => ({ name, points })),
    });
  },
};
