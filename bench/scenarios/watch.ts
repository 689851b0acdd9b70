// watch: how soon a watcher hears of a write, ZiStore watch against etcd watch and JetStream KV
// watch, with 1, 10 and 100 watchers of one prefix. One writer puts keys one after another at a
// steady pace; each watcher (its own connection) notes when each key's change reaches it. The
// latency of a (write, watcher) pair runs from the moment the put is sent to the moment the
// watcher has the change, so it includes the write's own commit: like with like, ZiStore with
// --fsync always against etcd (which fsyncs before it answers), with --fsync interval against
// JetStream KV (which does not).
import { LatencyRecorder } from '../histogram.ts';
import { zistoreWriterSession } from '../kv-systems.ts';
import { prime, valueOf, type RunSpec } from '../measure.ts';
import { SHORT_DURABILITY, SYSTEM_NAMES, type KvSession, type PeerId } from '../peers/types.ts';
import type { Scenario, ScenarioContext } from '../scenario.ts';

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

/** One column of the tables: a ZiStore cluster in one durability mode, or a peer. */
interface Contender {
  key: string;
  name: string;
  durability: string;
  sessionOf: (i: number) => Promise<KvSession>;
}

/** Like with like: ZiStore fsync always against etcd (fsync per write), fsync interval against JetStream KV (no fsync per write). */
const RATIOS: [string, string][] = [
  ['always', 'etcd'],
  ['interval', 'jetstream'],
];

const ZISTORE_MODES = [
  { key: 'always', name: 'ZiStore fsync always', durability: '--data-dir --fsync always: every live replica (3 nodes) has fsynced the write before the ack' },
  { key: 'interval', name: 'ZiStore fsync interval', durability: '--data-dir --fsync interval: every live replica has the write in the OS page cache before the ack (synced every 1000 ms)' },
] as const;

export const watch: Scenario = {
  name: 'watch',
  title: 'Watch delivery: write → event latency with 1, 10 and 100 watchers, ZiStore vs etcd vs JetStream KV',
  description:
    `One writer puts ${VALUE_BYTES} B to new keys of one prefix, one every ${PACE_MS} ms at most (waiting for each ack); 1, 10 or 100 watchers ` +
    'of the prefix, each on its own connection, note when each change reaches them. Latency: from sending the put to the watcher having the ' +
    'change (the commit included), so like is compared with like: ZiStore with --data-dir --fsync always (3 nodes) against etcd, whose members ' +
    'fsync every write, and ZiStore with --fsync interval against JetStream KV, which does not; ZiStore watchers use the typed client ' +
    '(watch with push: a serving node\'s change feed, each watcher subscribed to one of the nodes at random); etcd: watch streams of the HTTP gateway at its leader member; JetStream KV: nats.js kv.watch (updates only). Systems ' +
    'take turns in each round, after each has served unmeasured puts at 64 in flight (a cold ZiStore cluster is slower for its first seconds).',
  estimate: { quick: '~1.5 min', full: '~13 min' },
  usesPeers: true,
  async run(ctx: ScenarioContext) {
    const writes = ctx.quick ? 200 : 1000;
    const rounds = ctx.quick ? 1 : Math.max(1, ctx.rounds);
    ctx.section.section.settings = { watcherCounts: WATCHER_COUNTS, writes, paceMs: PACE_MS, valueBytes: VALUE_BYTES, rounds };
    const contenders: Contender[] = [];
    // Every system first serves the same unmeasured puts (see prime): the write is most of the latency.
    const primeSpecs: RunSpec[] = [];
    const put = { op: 'put', valueBytes: VALUE_BYTES, inflight: 64 } as const;
    for (const mode of ZISTORE_MODES) {
      const cluster = await ctx.cluster({ nodes: 3, fresh: true, durable: mode.key, echoPeers: 0 });
      contenders.push({ ...mode, sessionOf: (i) => zistoreWriterSession(cluster, i, 'client', null) });
      primeSpecs.push({ system: 'zistore', ...put, target: 'leader', cluster });
    }
    const peers = await ctx.peers();
    for (const p of PEERS) {
      const peer = peers.get(p);
      if (!peer) continue;
      contenders.push({ key: p, name: SYSTEM_NAMES[p], durability: SHORT_DURABILITY[p], sessionOf: (i) => peer.session(i) });
      primeSpecs.push({ system: p, ...put, peer });
    }
    await prime(ctx, primeSpecs[0]!.cluster!, primeSpecs);
    const has = (key: string) => contenders.some((c) => c.key === key);
    const ratios = RATIOS.filter(([a, b]) => has(a) && has(b));
    const nameOf = (key: string) => contenders.find((c) => c.key === key)!.name;
    const columns = [
      { key: 'watchers', label: 'watchers', kind: 'int' as const },
      ...contenders.flatMap((c) => [
        { key: `${c.key}_p50`, label: `${c.name} p50`, kind: 'us' as const },
        { key: `${c.key}_p99`, label: `${c.name} p99`, kind: 'us' as const },
      ]),
      ...ratios.map(([a, b]) => ({ key: `x_${a}_${b}`, label: `${a} p50 ÷${nameOf(b)}`, kind: 'ratio' as const })),
    ];
    const table = ctx.section.table('delivery', 'Write → event latency (µs), every watcher hearing every write', columns);
    const ackTable = ctx.section.table('after-ack', 'Ack → event latency (µs): the delivery alone (0 when the event came before the ack)', columns.filter((c) => !c.key.startsWith('x_')));
    for (const watchers of WATCHER_COUNTS) {
      const all = new Map<string, Recorders>(contenders.map((c) => [c.key, { fromSend: new LatencyRecorder(), fromAck: new LatencyRecorder() }]));
      for (let round = 0; round < rounds; round++) {
        for (const c of contenders) {
          await ctx.progress.step(`${c.name}: ${watchers} watcher(s), round ${round + 1}`, () => measureDelivery(c.sessionOf, watchers, writes, round, all.get(c.key)!));
        }
      }
      const row: Record<string, number | null> = { watchers };
      const ackRow: Record<string, number | null> = { watchers };
      for (const c of contenders) {
        const { fromSend, fromAck } = all.get(c.key)!;
        const summary = fromSend.summaryUs();
        const afterAck = fromAck.summaryUs();
        fromSend.destroy();
        fromAck.destroy();
        row[`${c.key}_p50`] = summary.p50;
        row[`${c.key}_p99`] = summary.p99;
        ackRow[`${c.key}_p50`] = afterAck.p50;
        ackRow[`${c.key}_p99`] = afterAck.p99;
      }
      ackTable.add(ackRow);
      for (const [a, b] of ratios) row[`x_${a}_${b}`] = (row[`${a}_p50`] ?? 0) / (row[`${b}_p50`] ?? 1);
      table.add(row);
      ctx.section.observe(`${watchers} watcher(s): ${contenders.map((c) => `${c.name} p50 ${row[`${c.key}_p50`]} µs`).join(', ')}`);
    }
    ackTable.note('The write → event figures above include the write itself; these leave it out.');
    table.note('a p50 ÷peer = that ZiStore mode\'s p50 ÷ the peer\'s p50, like with like (fsync always vs etcd, fsync interval vs JetStream KV): below 1 = ZiStore delivers sooner.');
    table.note(`Durability — ${contenders.map((c) => `${c.name}: ${c.durability}`).join('; ')}.`);
  },
};
