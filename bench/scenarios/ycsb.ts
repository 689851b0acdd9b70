// ycsb: YCSB core workloads A–F (bench/ycsb.ts) against ZiStore and every peer (thesis table 5.2:
// throughput with 1 and 4 writers). Each system is loaded with the same records first; then per
// workload and concurrency all systems run interleaved in rounds. "Writers" are client sessions
// with a connection each (a NATS connection, an HTTP agent, a ZooKeeper session); "in flight" is
// the total over the writers.
import { comparisonColumns, comparisonNotes, comparisonRow } from '../compare.ts';
import { inParallel } from '../kv-systems.ts';
import { measureSetOptional, valueOf, type RunSpec } from '../measure.ts';
import { SYSTEM_NAMES, type KvSession, type PeerId, type SystemId } from '../peers/types.ts';
import type { Measurement } from '../report.ts';
import type { Scenario, ScenarioContext } from '../scenario.ts';
import { keyName, workloadOperation, WORKLOADS, YcsbState, type Distribution, type Workload } from '../ycsb.ts';
import { resolveZiNode, zistoreWriterSession } from '../kv-systems.ts';

const PEERS: PeerId[] = ['etcd', 'zookeeper', 'jetstream', 'leveldb'];
const RECORD_BYTES = 1000;

interface Config {
  writers: number;
  inflight: number;
}

/** Which workloads run at which concurrency. */
function plan(quick: boolean): { workload: Workload; distribution: Distribution; configs: Config[] }[] {
  const full: Config[] = [
    { writers: 1, inflight: 1 },
    { writers: 1, inflight: 4 },
    { writers: 1, inflight: 16 },
    { writers: 1, inflight: 64 },
    { writers: 4, inflight: 4 },
    { writers: 4, inflight: 16 },
    { writers: 4, inflight: 64 },
  ];
  // A scan reads up to 100 records, and the peers without a range read list every key for each.
  const scans: Config[] = quick ? [{ writers: 1, inflight: 1 }, { writers: 1, inflight: 16 }] : [{ writers: 1, inflight: 1 }, { writers: 1, inflight: 16 }, { writers: 4, inflight: 16 }];
  if (!quick) {
    const a = WORKLOADS.find((w) => w.id === 'a')!;
    return [
      ...WORKLOADS.map((workload) => ({ workload, distribution: workload.distribution, configs: workload.scan > 0 ? scans : full })),
      { workload: a, distribution: 'uniform' as const, configs: [{ writers: 1, inflight: 64 }] },
    ];
  }
  const headline: Config[] = [
    { writers: 1, inflight: 1 },
    { writers: 1, inflight: 64 },
    { writers: 4, inflight: 64 },
  ];
  return WORKLOADS.map((workload) => ({
    workload,
    distribution: workload.distribution,
    configs: workload.scan > 0 ? scans : workload.id === 'a' || workload.id === 'b' ? headline : [{ writers: 1, inflight: 64 }],
  }));
}

export const ycsb: Scenario = {
  name: 'ycsb',
  title: 'YCSB workloads A–F: ZiStore vs the peers (thesis table 5.2)',
  description:
    'YCSB core workloads with YCSB\'s own key names ("user" + FNV-64 hash of the record number, 16–23 bytes), request ' +
    'distributions (scrambled zipfian with YCSB\'s constants, skewed latest for D) and operation mixes; records of 1000 bytes ' +
    '(YCSB\'s 10 fields × 100 B, stored as one value; an update or insert writes the whole record, a read-modify-write reads ' +
    'it and writes it back, counted as one operation). Every system is loaded with the same records (64 in flight), then each ' +
    'workload runs at the listed writers × in-flight on all systems interleaved in rounds. ZiStore uses its typed client\'s ' +
    'routing (puts to the leader, gets to the queue group of all nodes); etcd talks to its leader member, JetStream KV to the ' +
    'stream leader\'s server (direct gets), ZooKeeper to its one server, LevelDB is in-process. Workload E\'s scans: ZiStore ' +
    'scan from the start key with a limit (any node, a linearizable snapshot), etcd range with a limit, LevelDB an iterator; ' +
    'ZooKeeper and JetStream KV have no range read, so a scan lists every key (getChildren, keys()), sorts, and reads the ' +
    'records in range one by one.',
  estimate: { quick: '~60 s', full: '~16 min' },
  usesPeers: true,
  async run(ctx: ScenarioContext) {
    const records = ctx.quick ? 1000 : 10_000;
    const timeScale = ctx.quick ? 0.5 : 0.3;
    const runs = plan(ctx.quick);
    ctx.section.section.settings = {
      records,
      recordBytes: RECORD_BYTES,
      workloads: runs.map((r) => `${r.workload.id.toUpperCase()}${r.distribution !== r.workload.distribution ? ` (${r.distribution})` : ''}: ${r.configs.map((c) => `${c.writers}w×${c.inflight}`).join(', ')}`),
      warmupMs: ctx.timing.warmupMs * timeScale,
      durationMs: ctx.timing.durationMs * timeScale,
      rounds: ctx.rounds,
    };
    const cluster = await ctx.cluster({ nodes: 3 });
    const peerSet = await ctx.peers();
    const value = valueOf(RECORD_BYTES);

    // Load every system with records 0 … records-1.
    const systems: SystemId[] = ['zistore', ...PEERS.filter((p) => peerSet.get(p))];
    const states = new Map<SystemId, YcsbState>();
    const loadTable = ctx.section.table('load', `Load phase: ${records.toLocaleString('en-US')} records of ${RECORD_BYTES} B, 64 in flight`, [
      { key: 'system', label: 'system', kind: 'text', width: 12 },
      { key: 'seconds', label: 'seconds', kind: 'text' },
      { key: 'opsPerSec', label: 'inserts/s', kind: 'rate' },
    ]);
    for (const system of systems) {
      let session: KvSession;
      if (system === 'zistore') session = await zistoreWriterSession(cluster, 0, 'client', await resolveZiNode(cluster, 'client'));
      else session = await peerSet.get(system as PeerId)!.session(0);
      const ms = await ctx.progress.step(`loading ${records} records into ${SYSTEM_NAMES[system]}`, () =>
        inParallel(records, 64, (i) => session.put(keyName(i), value)),
      );
      states.set(system, new YcsbState(records));
      loadTable.add({ system: SYSTEM_NAMES[system], seconds: (ms / 1000).toFixed(2), opsPerSec: (records * 1000) / ms });
    }

    const table = ctx.section.table('ops', 'Throughput (ops/s) by workload, writers and requests in flight', comparisonColumns([
      { key: 'workload', label: 'workload', kind: 'text' },
      { key: 'writers', label: 'writers', kind: 'int' },
      { key: 'inflight', label: 'in flight', kind: 'int' },
    ], 'rate', PEERS), { live: false });
    const latencyTable = ctx.section.table('p50', 'p50 latency (µs) by workload, writers and requests in flight', comparisonColumns([
      { key: 'workload', label: 'workload', kind: 'text' },
      { key: 'writers', label: 'writers', kind: 'int' },
      { key: 'inflight', label: 'in flight', kind: 'int' },
    ], 'us', PEERS), { live: false });
    const bars: { category: string; ms: Partial<Record<SystemId, Measurement | null>> }[] = [];

    for (const run of runs) {
      const w = run.workload;
      const name = `${w.id.toUpperCase()}${run.distribution !== w.distribution ? ` (${run.distribution})` : ''}`;
      for (const c of run.configs) {
        const specs: RunSpec[] = systems.map((system) => {
          const state = states.get(system)!;
          return {
            system,
            op: `ycsb-${w.id}${run.distribution !== w.distribution ? `-${run.distribution}` : ''}`,
            valueBytes: RECORD_BYTES,
            inflight: c.inflight,
            writers: c.writers,
            ...(system === 'zistore' ? { target: 'client' as const } : {}),
            custom: { name: `ycsb-${w.id}`, build: (session) => workloadOperation(w, state, session, value, run.distribution) },
          };
        });
        const ms = await measureSetOptional(ctx, cluster, specs, { timeScale });
        const bySystem: Partial<Record<SystemId, Measurement | null>> = {};
        systems.forEach((s, i) => (bySystem[s] = ms[i] ?? null));
        const lead = { workload: name, writers: c.writers, inflight: c.inflight };
        table.add(comparisonRow(lead, bySystem.zistore, bySystem, (m) => m.opsPerSec, PEERS));
        latencyTable.add(comparisonRow(lead, bySystem.zistore, bySystem, (m) => m.latencyUs.p50, PEERS));
        const busiest = w.scan > 0 ? 16 : 64;
        if (c.inflight === busiest && run.distribution === w.distribution) {
          bars.push({ category: `${name} ${c.writers}w×${busiest}`, ms: bySystem });
          if (c.writers === 1 && (w.id === 'a' || w.id === 'b')) {
            for (const s of systems) {
              const m = bySystem[s];
              if (m) ctx.facts.set(`ycsb.${w.id}.64.${s}.ops`, m.opsPerSec);
            }
          }
        }
      }
    }
    table.note('E: 95% scans of 1–100 records (one operation each, whatever its length), 5% inserts.');
    comparisonNotes(table, PEERS, 'throughput');
    comparisonNotes(latencyTable, PEERS, 'latency');
    latencyTable.note('A read-modify-write (F) counts as one operation: its latency is a get plus a put.');
    // LevelDB runs in the client process at 5–10× everyone's rate: it would flatten this chart (it is in the table).
    ctx.section.chart('ops', {
      kind: 'bar',
      title: 'YCSB throughput at 64 in flight (E: 16) (ops/s); LevelDB (in-process) only in the table',
      yLabel: 'ops/s',
      categories: bars.map((b) => b.category),
      series: systems.filter((s) => s !== 'leveldb').map((s) => ({ name: SYSTEM_NAMES[s], values: bars.map((b) => b.ms[s]?.opsPerSec ?? null) })),
    });
  },
};
