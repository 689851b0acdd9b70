// txn: transaction throughput and latency, ZiStore against the peers that have multi-key
// transactions: etcd (Txn) and ZooKeeper (multi). Each transaction checks one guard key and puts
// two random keys of a loaded working set: the shape of a lock-protected update. Like with like:
// ZiStore's 3 nodes keep their copy on disk with `--fsync always`, as etcd's 3 members and a
// 3-server ZooKeeper ensemble (this scenario's own, as in `durable`) fsync before they
// acknowledge. All systems run interleaved in rounds at each concurrency.
import { comparisonColumns, comparisonRow } from '../compare.ts';
import { inParallel, key16, resolveZiNode, zistoreWriterSession } from '../kv-systems.ts';
import { measureSetOptional, prime, valueOf, type RunSpec } from '../measure.ts';
import { startZooKeeperEnsembleKv } from '../peers/zookeeper-kv.ts';
import { GUARD_VALUE, SYSTEM_NAMES, type KvPeer, type KvSession, type PeerId, type SystemId } from '../peers/types.ts';
import type { Measurement } from '../report.ts';
import type { BenchCluster } from '../bench-cluster.ts';
import type { Scenario, ScenarioContext } from '../scenario.ts';

const PEERS: PeerId[] = ['etcd', 'zookeeper'];
const VALUE_BYTES = 100;
const KEYS = 1000;
const GUARD = key16('guard', 0);

const CONFIGS = [
  { writers: 1, inflight: 1 },
  { writers: 1, inflight: 16 },
  { writers: 4, inflight: 64 },
];

export const txn: Scenario = {
  name: 'txn',
  title: 'Transactions: ZiStore txn vs etcd Txn vs ZooKeeper multi (a guard compare and two puts)',
  description:
    `Each transaction compares one guard key (ZiStore: its value; etcd: its value; ZooKeeper: its version, as multi allows) and puts ${VALUE_BYTES} B ` +
    `to two distinct keys drawn at random from ${KEYS} loaded ones, atomically. ZiStore runs 3 nodes with --data-dir --fsync always ` +
    "(on disk before the ack, like the peers) and sends it to the leader (the typed client's routing), " +
    "etcd to its leader member, ZooKeeper (3 servers, forceSync=yes) to its ensemble's leader server. All systems interleaved in rounds at each writers × in-flight, after each has run the busiest one unmeasured (a cold ZiStore cluster is slower for its first seconds).",
  estimate: { quick: '~40 s', full: '~4 min' },
  usesPeers: true,
  async run(ctx) {
    ctx.section.section.settings = { keys: KEYS, valueBytes: VALUE_BYTES, putsPerTxn: 2, configs: CONFIGS.map((c) => `${c.writers}w×${c.inflight}`), ...ctx.timing, rounds: ctx.rounds };
    const cluster = await ctx.cluster({ nodes: 3, fresh: true, durable: 'always', echoPeers: 0 });
    const peerSet = await ctx.peers();
    let ensemble: KvPeer | null = null;
    try {
      ensemble = await ctx.progress.step('starting the ZooKeeper ensemble (3 servers)', startZooKeeperEnsembleKv);
    } catch (err) {
      ctx.section.observe(`ZooKeeper ×3 skipped: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
    }
    try {
      const peers: Partial<Record<PeerId, KvPeer>> = { ...(peerSet.get('etcd') ? { etcd: peerSet.get('etcd')! } : {}), ...(ensemble ? { zookeeper: ensemble } : {}) };
      await measure(ctx, cluster, peers);
    } finally {
      // The ensemble is this scenario's own: free the host for the next one.
      if (ensemble) await ctx.progress.step('stopping the ZooKeeper ensemble', () => ensemble.stop());
    }
  },
};

/** Every system at every concurrency, interleaved; `peers` as started for this scenario. */
async function measure(ctx: ScenarioContext, cluster: BenchCluster, peers: Partial<Record<PeerId, KvPeer>>): Promise<void> {
  for (const p of Object.values(peers)) ctx.section.observe(`${p.name}: ${p.description}; ${p.routing}.`);
  const value = valueOf(VALUE_BYTES);
  const systems: SystemId[] = ['zistore', ...PEERS.filter((p) => peers[p])];
  for (const system of systems) {
    const session: KvSession = system === 'zistore' ? await zistoreWriterSession(cluster, 0, 'client', await resolveZiNode(cluster, 'client')) : await peers[system as PeerId]!.session(0);
    await ctx.progress.step(`loading ${KEYS} keys and the guard into ${SYSTEM_NAMES[system]}`, async () => {
      await session.put(GUARD, GUARD_VALUE);
      await inParallel(KEYS, 64, (i) => session.put(key16('t', i), value));
    });
  }
  const table = ctx.section.table('ops', 'Transactions per second (guard compare + 2 puts)', comparisonColumns([
    { key: 'writers', label: 'writers', kind: 'int' },
    { key: 'inflight', label: 'in flight', kind: 'int' },
  ], 'rate', PEERS));
  const latencyTable = ctx.section.table('p50', 'Transaction p50 latency (µs)', comparisonColumns([
    { key: 'writers', label: 'writers', kind: 'int' },
    { key: 'inflight', label: 'in flight', kind: 'int' },
  ], 'us', PEERS));
  const specsOf = (c: (typeof CONFIGS)[number]): RunSpec[] =>
    systems.map((system) => ({
      system,
      op: 'txn',
      valueBytes: VALUE_BYTES,
      inflight: c.inflight,
      writers: c.writers,
      ...(system === 'zistore' ? { target: 'client' as const } : { peer: peers[system as PeerId]! }),
      custom: {
        name: 'txn',
        build: (session) => async () => {
          const a = Math.floor(Math.random() * KEYS);
          const b = (a + 1 + Math.floor(Math.random() * (KEYS - 1))) % KEYS;
          await session.txn!(GUARD, [key16('t', a), key16('t', b)], value);
        },
      },
    }));
  // Every system first runs the busiest configuration, unmeasured (see prime).
  await prime(ctx, cluster, specsOf(CONFIGS.at(-1)!));
  for (const c of CONFIGS) {
    const ms = await measureSetOptional(ctx, cluster, specsOf(c));
    const bySystem: Partial<Record<SystemId, Measurement | null>> = {};
    systems.forEach((s, i) => (bySystem[s] = ms[i] ?? null));
    const lead = { writers: c.writers, inflight: c.inflight };
    table.add(comparisonRow(lead, bySystem.zistore, bySystem, (m) => m.opsPerSec, PEERS));
    latencyTable.add(comparisonRow(lead, bySystem.zistore, bySystem, (m) => m.latencyUs.p50, PEERS));
    const line = systems.map((s) => `${SYSTEM_NAMES[s]} ${bySystem[s]?.opsPerSec.toFixed(0) ?? '–'} txn/s`).join(', ');
    ctx.section.observe(`${c.writers}w×${c.inflight}: ${line}`);
  }
  const durability = `Durability — ZiStore: 3 nodes, --fsync always: every live replica has the write on disk (fsync) before the ack; ${Object.values(peers).map((p) => `${p.name}: ${p.durability}`).join('; ')}.`;
  table.note('÷peer = ZiStore txn/s ÷ peer txn/s: above 1 = ZiStore ahead. – = not measured (peer skipped).');
  latencyTable.note('÷peer = ZiStore p50 ÷ peer p50: below 1 = ZiStore faster. – = not measured (peer skipped).');
  table.note(durability);
  latencyTable.note(durability);
}
