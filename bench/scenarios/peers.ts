// peers: ZiStore next to etcd (3 members), ZooKeeper as a KV store, JetStream KV R3 and LevelDB
// (embedded), with the NATS echo as the floor, for the operations the targets name: put and get
// of 16 B at 1 and 64 in flight, 16 KiB puts at 64 in flight (and, in full mode, 16 KiB at 1 in
// flight and 16 KiB gets at 64). Every group is interleaved in rounds, so each ratio compares
// runs that saw the same background load.
import { comparisonColumns, comparisonNotes, comparisonRow, COMPARED } from '../compare.ts';
import { formatBytes } from '../format.ts';
import { measureSetOptional, type RunSpec } from '../measure.ts';
import { SYSTEM_NAMES, type PeerId, type SystemId } from '../peers/types.ts';
import type { Measurement } from '../report.ts';
import type { Scenario, ScenarioContext } from '../scenario.ts';

const PEERS: PeerId[] = ['etcd', 'zookeeper', 'jetstream', 'leveldb'];
const KIB16 = 16 * 1024;

interface Group {
  op: 'put' | 'get';
  valueBytes: number;
  inflight: number;
  /** Fact prefix for the targets ('get1', 'put64', …), if any. */
  fact?: string;
  full?: boolean;
}

const GROUPS: Group[] = [
  { op: 'get', valueBytes: 16, inflight: 1, fact: 'get1' },
  { op: 'put', valueBytes: 16, inflight: 1, fact: 'put1' },
  { op: 'get', valueBytes: 16, inflight: 64, fact: 'get64' },
  { op: 'put', valueBytes: 16, inflight: 64, fact: 'put64' },
  { op: 'put', valueBytes: KIB16, inflight: 64, fact: 'put16k64' },
  { op: 'get', valueBytes: KIB16, inflight: 1, full: true },
  { op: 'put', valueBytes: KIB16, inflight: 1, full: true },
  { op: 'get', valueBytes: KIB16, inflight: 64, full: true },
];

/** ZiStore runs of a group: gets at the leader and a follower (and the client's routing at 64), puts at the leader. */
function zistoreSpecs(g: Group): RunSpec[] {
  const base = { system: 'zistore' as const, op: g.op, valueBytes: g.valueBytes, inflight: g.inflight };
  if (g.op === 'put') return [{ ...base, target: 'leader' }];
  return g.inflight > 1 ? [{ ...base, target: 'client' }, { ...base, target: 'leader' }] : [{ ...base, target: 'leader' }, { ...base, target: 'follower' }];
}

export const peers: Scenario = {
  name: 'peers',
  title: 'ZiStore vs etcd, ZooKeeper, JetStream KV and LevelDB',
  description:
    'The same closed-loop load against ZiStore (3 nodes) and each peer, started by the bench on loopback: etcd 3.4 as a ' +
    'three-member cluster over its HTTP/JSON gateway (linearizable ranges), ZooKeeper as a key-value store (one znode per key, ' +
    'its own standalone server), NATS JetStream KV with 3 replicas on a three-server NATS cluster (direct gets), and LevelDB ' +
    'embedded in the bench (classic-level); the bare NATS echo is the floor. 16-byte keys, random values; puts overwrite up to ' +
    '1000 keys per worker, gets read 1000 preloaded keys. ZiStore puts go to the leader; ZiStore gets at 1 in flight go to the ' +
    'leader and to a follower, at 64 in flight through the typed client\'s routing (the queue group over all nodes) and to the leader. ' +
    'Each group (one operation, size and concurrency) interleaves all systems in rounds.',
  estimate: { quick: '~70 s', full: '~10 min' },
  usesPeers: true,
  async run(ctx: ScenarioContext) {
    const groups = GROUPS.filter((g) => !g.full || !ctx.quick);
    const timeScale = ctx.quick ? 0.8 : 0.5;
    ctx.section.section.settings = {
      nodes: 3,
      groups: groups.map((g) => `${g.op} ${formatBytes(g.valueBytes)} ×${g.inflight}`),
      warmupMs: ctx.timing.warmupMs * timeScale,
      durationMs: ctx.timing.durationMs * timeScale,
      rounds: ctx.rounds,
    };
    const cluster = await ctx.cluster({ nodes: 3 });
    const peerSet = await ctx.peers();
    for (const s of peerSet.skipped) ctx.section.observe(`${SYSTEM_NAMES[s.id]} skipped: ${s.reason}`);
    for (const p of peerSet.list) ctx.section.observe(`${p.name}: ${p.description}; ${p.routing}.`);

    const latencyTable = ctx.section.table('latency', 'p50 latency at 1 in flight (µs)', comparisonColumns([
      { key: 'what', label: 'operation', kind: 'text' },
    ], 'us'), { live: false });
    const throughputTable = ctx.section.table('throughput', 'Throughput at 64 in flight (ops/s)', comparisonColumns([
      { key: 'what', label: 'operation', kind: 'text' },
    ], 'rate'), { live: false });
    const detail = ctx.section.table('runs', 'Every run', [
      { key: 'what', label: 'operation', kind: 'text', width: 14 },
      { key: 'system', label: 'system', kind: 'text', width: 24 },
      { key: 'p50', label: 'p50 µs', kind: 'us' },
      { key: 'p99', label: 'p99 µs', kind: 'us' },
      { key: 'p999', label: 'p99.9 µs', kind: 'us' },
      { key: 'opsPerSec', label: 'ops/s', kind: 'rate' },
      { key: 'cpuUsPerOp', label: 'CPU µs/op', kind: 'us' },
      { key: 'errors', label: 'errors', kind: 'int' },
    ]);
    const bars = { latency: [] as { what: string; ms: Partial<Record<SystemId, Measurement | null>> }[], throughput: [] as { what: string; ms: Partial<Record<SystemId, Measurement | null>> }[] };

    for (const g of groups) {
      const what = `${g.op} ${formatBytes(g.valueBytes)} ×${g.inflight}`;
      const zs = zistoreSpecs(g);
      const specs: RunSpec[] = [
        { system: 'nats-echo', op: g.op, valueBytes: g.valueBytes, inflight: g.inflight },
        ...(g.op === 'put' ? [{ system: 'nats-echo', op: 'put', valueBytes: g.valueBytes, inflight: g.inflight, fanout: 2 } as RunSpec] : []),
        ...zs,
        ...PEERS.map((p): RunSpec => ({ system: p, op: g.op, valueBytes: g.valueBytes, inflight: g.inflight })),
      ];
      const ms = await measureSetOptional(ctx, cluster, specs, { timeScale });
      const bySystem: Partial<Record<SystemId, Measurement | null>> = {};
      const zsMs: Measurement[] = [];
      specs.forEach((spec, i) => {
        const m = ms[i] ?? null;
        if (spec.system === 'zistore') {
          if (m) zsMs.push(m);
        } else if (!(spec.system === 'nats-echo' && spec.fanout)) {
          bySystem[spec.system] = m;
        }
        const name =
          spec.system === 'zistore' ? `ZiStore @${spec.target}` : spec.fanout ? `NATS relay→${spec.fanout} (floor)` : SYSTEM_NAMES[spec.system];
        detail.add({
          what,
          system: m ? name : `${name} (skipped)`,
          p50: m?.latencyUs.p50 ?? null,
          p99: m?.latencyUs.p99 ?? null,
          p999: m?.latencyUs.p999 ?? null,
          opsPerSec: m?.opsPerSec ?? null,
          cpuUsPerOp: m?.cpuUsPerOp ?? null,
          errors: m?.errorCount ?? null,
        });
      });
      // The ZiStore figure of the summary: 1 in flight, the worse of the nodes measured (a get must
      // be fast at any node); 64 in flight, the client's routing for gets, the leader for puts.
      const lead = g.inflight === 1 ? zsMs.reduce((a, b) => (b.latencyUs.p50 > a.latencyUs.p50 ? b : a)) : zsMs[0]!;
      if (g.inflight === 1) {
        latencyTable.add(comparisonRow({ what: `${what}${g.op === 'get' ? ' (worse node)' : ' @leader'}` }, lead, bySystem, (m) => m.latencyUs.p50));
        bars.latency.push({ what, ms: { ...bySystem, zistore: lead } });
      } else {
        throughputTable.add(comparisonRow({ what: `${what}${g.op === 'get' ? ' (client routing)' : ' @leader'}` }, lead, bySystem, (m) => m.opsPerSec));
        bars.throughput.push({ what, ms: { ...bySystem, zistore: lead } });
      }
      if (g.fact) {
        const systems: SystemId[] = ['zistore', ...COMPARED];
        for (const s of systems) {
          const m = s === 'zistore' ? lead : bySystem[s];
          if (!m) continue;
          const name = s === 'nats-echo' ? 'echo' : s;
          if (g.inflight === 1) {
            const detailText = s === 'zistore' && g.op === 'get' ? zsMs.map((x) => `@${x.target} ${x.latencyUs.p50} µs`).join(', ') : undefined;
            ctx.facts.set(`${g.fact}.${name}.p50`, m.latencyUs.p50, detailText ? { detail: detailText } : {});
          } else {
            ctx.facts.set(`${g.fact}.${name}.ops`, m.opsPerSec);
          }
        }
      }
    }
    comparisonNotes(latencyTable, COMPARED, 'latency');
    latencyTable.note('ZiStore gets: the worse p50 of the leader and a follower (both are in "Every run").');
    comparisonNotes(throughputTable, COMPARED, 'throughput');
    throughputTable.note('ZiStore gets at 64 in flight use the typed client\'s routing (queue group over all nodes); "Every run" also has them at the leader.');
    detail.note('NATS relay→2 is the replication floor of a put at 3 nodes: the echo responder sends the value to 2 others before it answers.');

    const chartSystems: SystemId[] = ['zistore', ...COMPARED];
    ctx.section.chart('latency', {
      kind: 'bar',
      title: 'p50 latency at 1 in flight (µs), 3 nodes / 3 members',
      yLabel: 'µs',
      categories: bars.latency.map((b) => b.what),
      series: chartSystems.map((s) => ({ name: SYSTEM_NAMES[s], values: bars.latency.map((b) => b.ms[s]?.latencyUs.p50 ?? null) })),
    });
    // LevelDB runs in the client process at 5–10× everyone's rate: it would flatten this chart (it is in the table).
    ctx.section.chart('throughput', {
      kind: 'bar',
      title: 'Throughput at 64 in flight (ops/s); LevelDB (in-process) only in the table',
      yLabel: 'ops/s',
      categories: bars.throughput.map((b) => b.what),
      series: chartSystems.filter((s) => s !== 'leveldb').map((s) => ({ name: SYSTEM_NAMES[s], values: bars.throughput.map((b) => b.ms[s]?.opsPerSec ?? null) })),
    });
  },
};
