// watch: how soon a watcher hears of a write, ZiStore watch against etcd watch and JetStream KV
// watch, with 1, 10 and 100 watchers of one prefix. One writer puts keys one after another at a
// steady pace; each watcher (its own connection) notes when each key's change reaches it. The
// latency of a (write, watcher) pair runs from the moment the put is sent to the moment the
// watcher has the change, so it includes the write's own commit: like with like, ZiStore keeps
// its copies on disk with --fsync always, as etcd fsyncs before it answers.
import { durabilityNote } from '../compare.ts';
import { LatencyRecorder } from '../histogram.ts';
import { zistoreWriterSession } from '../kv-systems.ts';
import { valueOf } from '../measure.ts';
import { SYSTEM_NAMES, type KvSession, type PeerId, type SystemId } from '../peers/types.ts';
import type { Scenario, ScenarioContext } from '../scenario.ts';
import type { BenchCluster } from '../bench-cluster.ts';
import type { Peers } from '../peers/index.ts';

const PEERS: PeerId[] = ['etcd', 'jetstream'];
const WATCHER_COUNTS = [1, 10, 100];
const VALUE_BYTES = 100;
/** A put every this many ms (the writer waits for each ack too): latency, not throughput. */
const PACE_MS = 5;

interface Recorders {
  /** From sending the put to the watcher having the change. */
  fromSend: LatencyRecorder;
  /** From the put's ack to the watcher having the change (0 when the change came first). */
  fromAck: LatencyRecorder;
}

/** `writes` puts heard by every one of `watchers`: each (write, watcher) latency goes to `recorders`. */
async function measureDelivery(sessionOf: (i: number) => Promise<KvSession>, watchers: number, writes: number, round: number, recorders: Recorders): Promise<void> {
  const prefix = `watch.r${round}w${watchers}.`;
  const sentAt = new Map<string, number>();
  const ackedAt = new Map<string, number>();
  /** Changes heard before their put's ack: the time they came, recorded once the ack is in. */
  const early = new Map<string, number[]>();
  const heard = new Map<string, number>();
  const stops: (() => Promise<void>)[] = [];
  try {
    for (let w = 0; w < watchers; w++) {
      const session = await sessionOf(1 + w);
      stops.push(
        await session.watch!(prefix, (key) => {
          const at = performance.now();
          heard.set(key, (heard.get(key) ?? 0) + 1);
          const sent = sentAt.get(key);
          if (sent !== undefined) recorders.fromSend.recordNs((at - sent) * 1e6);
          const acked = ackedAt.get(key);
          if (acked !== undefined) recorders.fromAck.recordNs(Math.max(0, at - acked) * 1e6);
          else early.set(key, [...(early.get(key) ?? []), at]);
        }),
      );
    }
    const writer = await sessionOf(0);
    const value = valueOf(VALUE_BYTES);
    for (let i = 0; i < writes; i++) {
      const key = `${prefix}${i.toString(36).padStart(6, '0')}`;
      const started = performance.now();
      sentAt.set(key, started);
      await writer.put(key, value);
      const acked = performance.now();
      ackedAt.set(key, acked);
      for (const _ of early.get(key) ?? []) recorders.fromAck.recordNs(0);
      early.delete(key);
      const left = PACE_MS - (performance.now() - started);
      if (left > 0) await new Promise((r) => setTimeout(r, left));
    }
    // Every watcher hears every write, or the figures would leave out the slowest.
    const deadline = performance.now() + 30_000;
    while ([...sentAt.keys()].some((k) => (heard.get(k) ?? 0) < watchers)) {
      if (performance.now() > deadline) throw new Error(`watchers missed changes: ${[...sentAt.keys()].filter((k) => (heard.get(k) ?? 0) < watchers).length} of ${writes} writes not heard by all`);
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    for (const stop of stops) await stop().catch(() => undefined);
  }
}

function sessionsOf(system: SystemId, cluster: BenchCluster, peers: Peers): (i: number) => Promise<KvSession> {
  if (system === 'zistore') return (i) => zistoreWriterSession(cluster, i, 'client', null);
  return (i) => peers.get(system as PeerId)!.session(i);
}

export const watch: Scenario = {
  name: 'watch',
  title: 'Watch delivery: write → event latency with 1, 10 and 100 watchers, ZiStore vs etcd vs JetStream KV',
  description:
    `One writer puts ${VALUE_BYTES} B to new keys of one prefix, one every ${PACE_MS} ms at most (waiting for each ack); 1, 10 or 100 watchers ` +
    'of the prefix, each on its own connection, note when each change reaches them. Latency: from sending the put to the watcher having the ' +
    'change (the commit included). ZiStore: 3 nodes with --data-dir --fsync always, the typed client (long polls at any node); etcd: watch ' +
    'streams of the HTTP gateway at its leader member; JetStream KV: nats.js kv.watch (updates only). Systems take turns in each round.',
  estimate: { quick: '~1 min', full: '~10 min' },
  usesPeers: true,
  async run(ctx: ScenarioContext) {
    const writes = ctx.quick ? 200 : 1000;
    const rounds = ctx.quick ? 1 : Math.max(1, ctx.rounds);
    ctx.section.section.settings = { watcherCounts: WATCHER_COUNTS, writes, paceMs: PACE_MS, valueBytes: VALUE_BYTES, rounds };
    const cluster = await ctx.cluster({ nodes: 3, fresh: true, durable: 'always', echoPeers: 0 });
    const peers = await ctx.peers();
    const systems: SystemId[] = ['zistore', ...PEERS.filter((p) => peers.get(p))];
    const columns = [
      { key: 'watchers', label: 'watchers', kind: 'int' as const },
      ...systems.flatMap((s) => [
        { key: `${s}_p50`, label: `${SYSTEM_NAMES[s]} p50`, kind: 'us' as const },
        { key: `${s}_p99`, label: `${SYSTEM_NAMES[s]} p99`, kind: 'us' as const },
      ]),
      ...PEERS.filter((p) => systems.includes(p)).map((p) => ({ key: `x_${p}`, label: `p50 ÷${SYSTEM_NAMES[p]}`, kind: 'ratio' as const })),
    ];
    const table = ctx.section.table('delivery', 'Write → event latency (µs), every watcher hearing every write', columns);
    const ackTable = ctx.section.table('after-ack', 'Ack → event latency (µs): the delivery alone (0 when the event came before the ack)', columns.filter((c) => !c.key.startsWith('x_')));
    for (const watchers of WATCHER_COUNTS) {
      const all = new Map<SystemId, Recorders>(systems.map((s) => [s, { fromSend: new LatencyRecorder(), fromAck: new LatencyRecorder() }]));
      for (let round = 0; round < rounds; round++) {
        for (const system of systems) {
          await ctx.progress.step(`${SYSTEM_NAMES[system]}: ${watchers} watcher(s), round ${round + 1}`, () => measureDelivery(sessionsOf(system, cluster, peers), watchers, writes, round, all.get(system)!));
        }
      }
      const row: Record<string, number | null> = { watchers };
      const ackRow: Record<string, number | null> = { watchers };
      for (const s of systems) {
        const { fromSend, fromAck } = all.get(s)!;
        const summary = fromSend.summaryUs();
        const afterAck = fromAck.summaryUs();
        fromSend.destroy();
        fromAck.destroy();
        row[`${s}_p50`] = summary.p50;
        row[`${s}_p99`] = summary.p99;
        ackRow[`${s}_p50`] = afterAck.p50;
        ackRow[`${s}_p99`] = afterAck.p99;
      }
      ackTable.add(ackRow);
      for (const p of PEERS) if (systems.includes(p)) row[`x_${p}`] = (row.zistore_p50 ?? 0) / (row[`${p}_p50`] ?? 1);
      table.add(row);
      ctx.section.observe(`${watchers} watcher(s): ${systems.map((s) => `${SYSTEM_NAMES[s]} p50 ${row[`${s}_p50`]} µs`).join(', ')}`);
    }
    ackTable.note('The write → event figures above include the write itself; these leave it out.');
    table.note('p50 ÷peer = ZiStore p50 ÷ peer p50: below 1 = ZiStore delivers sooner.');
    durabilityNote(table, systems);
  },
};
