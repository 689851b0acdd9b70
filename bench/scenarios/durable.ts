// durable: ZiStore nodes that keep their copy on disk (`--data-dir`), next to peers that promise
// the same, in one run: `--fsync always` (every replica has fsynced a write before the ack)
// against etcd (3 members, WAL fdatasync) and a 3-server ZooKeeper ensemble (forceSync=yes);
// `--fsync interval` (in the OS page cache before the ack) against JetStream KV R3 (file store,
// no fsync per write); the gets of every mode, memory-only included, against the NATS echo.
// restart: an `always` cluster filled to 1,000,000 keys of 16 B (quick: 100,000): memory per
// node, and the whole cluster killed with kill -9 and restarted: the time until it serves again.
import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchCluster } from '../bench-cluster.ts';
import { formatBytes } from '../format.ts';
import { key16, loadKeys } from '../kv-systems.ts';
import { measureSetOptional, prime, PRIME_SHARE, ratio, valueOf, type RunSpec } from '../measure.ts';
import { MB, memoryAfterGc, rssBreakdown, withGcHook, type RssBreakdown } from '../memory.ts';
import { SHORT_DURABILITY, SYSTEM_NAMES, type KvPeer } from '../peers/types.ts';
import { startZooKeeperEnsembleKv } from '../peers/zookeeper-kv.ts';
import type { Measurement } from '../report.ts';
import type { Scenario, ScenarioContext } from '../scenario.ts';
import type { Column, Row } from '../table.ts';
import { ZiClient } from '../../client/index.ts';
import type { FsyncPolicy } from '../../storage/lmdb-disk.ts';

const VALUE_BYTES = 16;
/** The bulk load before the restart: as many puts in flight as the 2-core host keeps busy. */
const LOAD_WRITERS = 8;
const LOAD_INFLIGHT = 512;
/** How often the restart probes ask, and how long the cluster may take to come back. */
const PROBE_EVERY_MS = 20;
const PROBE_TIMEOUT_MS = 500;
const RESTART_TIMEOUT_MS = 120_000;
/** Keys read back after each restart. */
const VERIFY_KEYS = 1000;

type ModeId = 'memory' | 'always' | 'interval';
const MODES: { id: ModeId; fsync?: FsyncPolicy }[] = [{ id: 'memory' }, { id: 'always', fsync: 'always' }, { id: 'interval', fsync: 'interval' }];

/** The systems of the tables: the three ZiStore clusters, the peers, the echo floor. */
type Col = ModeId | 'etcd' | 'zookeeper' | 'jetstream' | 'echo';
const COLS: Col[] = ['memory', 'always', 'interval', 'etcd', 'zookeeper', 'jetstream', 'echo'];
const COL_NAMES: Record<Col, string> = {
  memory: 'ZiStore memory',
  always: 'ZiStore fsync always',
  interval: 'ZiStore fsync interval',
  etcd: 'etcd',
  zookeeper: 'ZooKeeper ×3',
  jetstream: 'JetStream KV',
  echo: 'NATS echo',
};
const DURABILITY: Record<Col, string> = {
  memory: SHORT_DURABILITY.zistore,
  always: '--data-dir, --fsync always: every live replica (3 nodes) has fsynced the write (LMDB, commits grouped) before the ack',
  interval: '--data-dir, --fsync interval: every live replica has the write in the OS page cache (LMDB, synced every 1000 ms) before the ack; survives a crash of the processes, not of the machine',
  etcd: SHORT_DURABILITY.etcd,
  zookeeper: '3-server ensemble, forceSync=yes: a majority has fsynced its transaction log before the ack',
  jetstream: SHORT_DURABILITY.jetstream,
  echo: SHORT_DURABILITY['nats-echo'],
};

interface Group {
  op: 'get' | 'put';
  inflight: number;
  /** Ratio columns of this group's table: [ZiStore mode, what it is compared with]. */
  ratios: [ModeId, Col][];
}
const GET_RATIOS: [ModeId, Col][] = [['memory', 'echo'], ['always', 'echo'], ['interval', 'echo']];
const PUT1_RATIOS: [ModeId, Col][] = [['interval', 'jetstream'], ['always', 'etcd'], ['always', 'zookeeper'], ['always', 'memory']];
const PUT64_RATIOS: [ModeId, Col][] = [['always', 'etcd'], ['always', 'zookeeper'], ['interval', 'jetstream'], ['always', 'memory'], ['interval', 'memory']];
const GROUPS: Group[] = [
  { op: 'get', inflight: 1, ratios: GET_RATIOS },
  { op: 'put', inflight: 1, ratios: PUT1_RATIOS },
  { op: 'put', inflight: 64, ratios: PUT64_RATIOS },
];

const what = (g: Group) => `${g.op} ${formatBytes(VALUE_BYTES)} ×${g.inflight}`;

function groupColumns(g: Group, kind: 'us' | 'rate'): Column[] {
  return [
    { key: 'what', label: 'operation', kind: 'text' },
    ...COLS.map((c): Column => ({ key: c, label: COL_NAMES[c], kind })),
    ...g.ratios.map(([a, b]): Column => ({ key: `${a}/${b}`, label: `${a} ÷${b === 'zookeeper' ? 'ZooKeeper×3' : b}`, kind: 'ratio' })),
  ];
}

export const durable: Scenario = {
  name: 'durable',
  title: 'Durable nodes (--data-dir) vs etcd, a ZooKeeper ensemble and JetStream KV',
  description:
    'Three ZiStore clusters of 3 nodes, differing only in where a node keeps its copy: memory only, `--data-dir --fsync always` ' +
    '(every replica has fsynced a write before the ack) and `--data-dir --fsync interval` (in the OS page cache before the ack). ' +
    'Peers that promise the same: etcd (3 members, WAL fdatasync per write) and ZooKeeper as a 3-server ensemble (forceSync=yes; ' +
    'every session on the ensemble\'s leader server) for fsync always, JetStream KV R3 (file store, no fsync per write) for fsync ' +
    'interval; the NATS echo is the floor. All data dirs are on the same disk. Gets at 1 in flight at the leader and a follower of ' +
    'each cluster; puts of 16 B at the leader at 1 and 64 in flight; each group interleaves every system in rounds. Before the first group, every system serves ' +
    `unmeasured puts at 64 and then at 1 in flight, each for ${PRIME_SHARE * 100} % of a window: a cold ZiStore cluster's first seconds of puts are up to twice as slow.`,
  estimate: { quick: '~1 min', full: '~4 min' },
  usesPeers: true,
  ownCluster: true,
  run: runDurable,
};

export const restart: Scenario = {
  name: 'restart',
  title: 'Durable nodes: whole-cluster restart and memory at 1,000,000 keys',
  description:
    'A ZiStore cluster of 3 nodes with `--data-dir --fsync always` is filled to 1,000,000 keys of 16 B (quick: 100,000) through ' +
    'the typed client (512 puts in flight over 8 connections): resident memory per node (VmRSS, split into anonymous memory and ' +
    'mapped files, the LMDB map among them), and the three node processes killed with kill -9 and started again on their data dirs ' +
    '(ZooKeeper and nats-server keep running): the time from the restart until a client is served a read and a write, and until ' +
    'every node serves.',
  estimate: { quick: '~1 min', full: '~3 min' },
  usesPeers: false,
  ownCluster: true,
  async run(ctx) {
    const keys = ctx.quick ? 100_000 : 1_000_000;
    const trials = ctx.quick ? 1 : 3;
    ctx.section.section.settings = { nodes: 3, valueBytes: VALUE_BYTES, fsync: 'always', restartKeys: keys, restartTrials: trials, loadInflight: LOAD_INFLIGHT, loadWriters: LOAD_WRITERS };
    // Nodes started from here on preload gc-hook.mjs (memory after a full collection).
    await withGcHook(async (gcDir) => restartAndMemory(ctx, await ctx.cluster({ nodes: 3, fresh: true, durable: 'always', echoPeers: 0 }), keys, trials, gcDir));
  },
};

async function runDurable(ctx: ScenarioContext): Promise<void> {
  const timeScale = ctx.quick ? 0.8 : 0.5;
  ctx.section.section.settings = {
    nodes: 3,
    valueBytes: VALUE_BYTES,
    modes: MODES.map((m) => m.id),
    groups: GROUPS.map(what),
    primeMs: ctx.timing.durationMs * timeScale * PRIME_SHARE,
    warmupMs: ctx.timing.warmupMs * timeScale,
    durationMs: ctx.timing.durationMs * timeScale,
    rounds: ctx.rounds,
  };
  const peerSet = await ctx.peers();
  for (const s of peerSet.skipped.filter((s) => s.id === 'etcd' || s.id === 'jetstream')) ctx.section.observe(`${SYSTEM_NAMES[s.id]} skipped: ${s.reason}`);
  let ensemble: KvPeer | null = null;
  try {
    ensemble = await ctx.progress.step('starting the ZooKeeper ensemble (3 servers)', startZooKeeperEnsembleKv);
  } catch (err) {
    ctx.section.observe(`ZooKeeper ×3 skipped: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
  }
  const clusters = {} as Record<ModeId, BenchCluster>;
  try {
    for (const m of MODES) {
      // The echo (and relay) floor runs on the memory cluster's nats-server.
      clusters[m.id] = await ctx.cluster({ nodes: 3, fresh: true, ...(m.fsync ? { durable: m.fsync, echoPeers: 0 } : {}) });
    }
    for (const p of [peerSet.get('etcd'), ensemble, peerSet.get('jetstream')]) if (p) ctx.section.observe(`${p.name}: ${p.description}; ${p.routing}.`);
    await compare(ctx, clusters, peerSet.get('etcd') ?? null, ensemble, peerSet.get('jetstream') ?? null, timeScale);
  } finally {
    // The ensemble is this scenario's own: free the host for the next one.
    if (ensemble) await ctx.progress.step('stopping the ZooKeeper ensemble', () => ensemble.stop());
  }
}

async function compare(
  ctx: ScenarioContext,
  clusters: Record<ModeId, BenchCluster>,
  etcd: KvPeer | null,
  zookeeper: KvPeer | null,
  jetstream: KvPeer | null,
  timeScale: number,
): Promise<void> {
  const latency = ctx.section.table('latency', 'p50 latency at 1 in flight (µs)', groupColumns({ ...GROUPS[0]!, ratios: [...GET_RATIOS, ...PUT1_RATIOS] }, 'us'), { live: false });
  const throughput = ctx.section.table('throughput', 'Throughput at 64 in flight (ops/s)', groupColumns(GROUPS[2]!, 'rate'), { live: false });
  const detail = ctx.section.table('runs', 'Every run', [
    { key: 'what', label: 'operation', kind: 'text', width: 12 },
    { key: 'system', label: 'system', kind: 'text', width: 34 },
    { key: 'p50', label: 'p50 µs', kind: 'us' },
    { key: 'p99', label: 'p99 µs', kind: 'us' },
    { key: 'p999', label: 'p99.9 µs', kind: 'us' },
    { key: 'opsPerSec', label: 'ops/s', kind: 'rate' },
    { key: 'cpuUsPerOp', label: 'CPU µs/op', kind: 'us' },
    { key: 'errors', label: 'errors', kind: 'int' },
  ]);
  const bars: { what: string; figures: Partial<Record<Col, number>> }[] = [];
  const peers: [Col, KvPeer | null][] = [['etcd', etcd], ['zookeeper', zookeeper], ['jetstream', jetstream]];

  // Every system (the floors need none) serves the same unmeasured puts first, at 64 in flight,
  // then at 1: the first does not warm what the second runs (a put at 1 in flight, memory only,
  // was ~2 ms p50 for its first 500 ms right after 3 s at 64 in flight, ~1 ms after 2 s more).
  const primeSpecs: RunSpec[] = [64, 1].flatMap((inflight) => [
    ...MODES.map((m): RunSpec => ({ system: 'zistore', op: 'put', valueBytes: VALUE_BYTES, inflight, target: 'leader', cluster: clusters[m.id], tag: m.id })),
    ...peers.flatMap(([, peer]) => (peer ? [{ system: peer.id, op: 'put', valueBytes: VALUE_BYTES, inflight, peer } as RunSpec] : [])),
  ]);
  await prime(ctx, clusters.memory, primeSpecs, { timeScale });
  for (const g of GROUPS) {
    const base = { op: g.op, valueBytes: VALUE_BYTES, inflight: g.inflight };
    // Gets at 1 in flight go to the leader and a follower (a get must be fast at any node); puts to the leader.
    const targets = g.op === 'get' ? (['leader', 'follower'] as const) : (['leader'] as const);
    const specs: { col: Col; spec: RunSpec; name: string }[] = [
      { col: 'echo', spec: { system: 'nats-echo', ...base }, name: 'NATS echo (floor)' },
      ...(g.op === 'put' ? [{ col: 'echo' as const, spec: { system: 'nats-echo', ...base, fanout: 2 } as RunSpec, name: 'NATS relay→2 (floor)' }] : []),
      ...MODES.flatMap((m) =>
        targets.map((target) => ({ col: m.id, spec: { system: 'zistore', ...base, target, cluster: clusters[m.id], tag: m.id } as RunSpec, name: `${COL_NAMES[m.id]} @${target}` })),
      ),
      ...peers.flatMap(([col, peer]) => (peer ? [{ col, spec: { system: peer.id, ...base, peer } as RunSpec, name: COL_NAMES[col] }] : [])),
    ];
    const ms = await measureSetOptional(ctx, clusters.memory, specs.map((s) => s.spec), { timeScale });
    // One figure per system: p50 at 1 in flight (ZiStore gets: the worse node), ops/s at 64.
    const pick = (m: Measurement) => (g.inflight === 1 ? m.latencyUs.p50 : m.opsPerSec);
    const runsOf: Partial<Record<Col, Measurement[]>> = {};
    specs.forEach(({ col, spec, name }, i) => {
      const m = ms[i];
      if (!m) return;
      detail.add({ what: what(g), system: name, p50: m.latencyUs.p50, p99: m.latencyUs.p99, p999: m.latencyUs.p999, opsPerSec: m.opsPerSec, cpuUsPerOp: m.cpuUsPerOp, errors: m.errorCount });
      if (!spec.fanout) (runsOf[col] ??= []).push(m);
    });
    const figure: Partial<Record<Col, Measurement>> = {};
    for (const [col, runs] of Object.entries(runsOf) as [Col, Measurement[]][]) figure[col] = runs.reduce((a, b) => (b.latencyUs.p50 > a.latencyUs.p50 ? b : a));
    const row: Row = { what: `${what(g)}${g.op === 'get' ? ' (worse node)' : ' @leader'}` };
    for (const c of COLS) row[c] = figure[c] ? pick(figure[c]) : null;
    for (const [a, b] of g.ratios) row[`${a}/${b}`] = figure[a] && figure[b] ? ratio(pick(figure[a]), pick(figure[b])) : null;
    (g.inflight === 1 ? latency : throughput).add(row);
    bars.push({ what: what(g), figures: Object.fromEntries(COLS.flatMap((c) => (figure[c] ? [[c, pick(figure[c])]] : []))) });

    // Facts for the targets: durable.<op><inflight>.<system>.<p50|ops>; ZiStore gets name both nodes.
    for (const [col, m] of Object.entries(figure) as [Col, Measurement][]) {
      const runs = runsOf[col]!;
      const detailText = runs.length > 1 ? runs.map((x) => `@${x.target} ${Math.round(x.latencyUs.p50)} µs`).join(', ') : undefined;
      ctx.facts.set(`durable.${g.op}${g.inflight}.${col}.${g.inflight === 1 ? 'p50' : 'ops'}`, pick(m), detailText ? { detail: detailText } : {});
    }
  }
  const durabilityNote = `Durability — ${COLS.map((c) => `${COL_NAMES[c]}: ${DURABILITY[c]}`).join('; ')}.`;
  latency.note('a ÷b = a\'s p50 ÷ b\'s p50: below 1 = a faster. ZiStore gets: the worse p50 of the leader and a follower (both in "Every run").');
  latency.note(durabilityNote);
  throughput.note('a ÷b = a\'s ops/s ÷ b\'s ops/s: above 1 = a ahead. ZiStore puts go to the leader.');
  throughput.note(durabilityNote);
  detail.note('NATS relay→2 is the replication floor of a put at 3 nodes: the echo responder sends the value to 2 others before it answers.');
  // The echo's puts at 64 in flight run at several times everyone's rate: they would flatten that chart (they are in the table).
  const charts = [
    { id: 'latency', title: 'p50 latency at 1 in flight (µs), 3 nodes / members / servers', unit: 'µs', cols: COLS },
    { id: 'throughput', title: 'Puts at 64 in flight (ops/s); the NATS echo only in the table', unit: 'ops/s', cols: COLS.filter((c) => c !== 'echo') },
  ];
  for (const { id, title, unit, cols } of charts) {
    const shown = bars.filter((b) => (id === 'latency') === b.what.endsWith('×1'));
    ctx.section.chart(id, {
      kind: 'bar',
      title,
      yLabel: unit,
      categories: shown.map((b) => b.what),
      series: cols.map((c) => ({ name: COL_NAMES[c], values: shown.map((b) => b.figures[c] ?? null) })),
    });
  }
}

/** How many keys the leader's copy holds (its own `members` entry), null when it does not say. */
async function keysHeld(cluster: BenchCluster): Promise<number | null> {
  const leader = await cluster.leader();
  const view = await cluster.members(leader);
  return view.members.find((m) => m.id === leader)?.keys ?? null;
}

interface NodeMemory {
  id: string;
  leader: boolean;
  found: RssBreakdown | null;
  /** After IDLE_MS without load, no collection forced (null: not measured then). */
  idle: RssBreakdown | null;
  afterGc: RssBreakdown | null;
  heapUsed: number | null;
  /** The V8 heap's committed size: what it holds on to from the OS, used or not. */
  heapTotal: number | null;
}

/** How long the nodes are left without load before their memory is read again (V8 gives memory back once the allocation rate falls). */
const IDLE_MS = 30_000;

/** Memory of every running node as found, after IDLE_MS without load (`idle`), and after two full collections, leader first. */
async function nodeMemory(cluster: BenchCluster, gcDir: string, idle: boolean): Promise<NodeMemory[]> {
  const leader = await cluster.leader();
  const nodes = cluster.local.view().filter((v) => v.running && v.pid !== null).map((n) => ({ ...n, dir: cluster.local.nodeDataDir(n.id) }));
  const found = nodes.map((n) => rssBreakdown(n.pid, n.dir));
  if (idle) await new Promise((r) => setTimeout(r, IDLE_MS));
  const idled = nodes.map((n) => (idle ? rssBreakdown(n.pid, n.dir) : null));
  const out: NodeMemory[] = [];
  for (const [i, n] of nodes.entries()) {
    const gc = await memoryAfterGc(gcDir, n.pid!);
    out.push({ id: n.id, leader: n.id === leader, found: found[i] ?? null, idle: idled[i] ?? null, afterGc: gc ? rssBreakdown(n.pid, n.dir) : null, heapUsed: gc?.heapUsed ?? null, heapTotal: gc?.heapTotal ?? null });
  }
  return out.sort((a, b) => Number(b.leader) - Number(a.leader));
}

interface Restart {
  /** From starting the killed processes again until a get of a loaded key returned its value. */
  getMs: number | null;
  /** … until a put was acknowledged. */
  putMs: number | null;
  /** … until every node answered `members` as serving. */
  allMs: number;
  verified: number;
}

/**
 * kill -9 of every node, then all started again at once on their data dirs. A probe client asks
 * as often as it may (no retries of its own, short timeouts, through the cluster's queue group)
 * for one of the `loaded` keys (k.0 … k.<loaded-1>) and to overwrite another with the same value,
 * so the store still holds as many keys.
 */
async function killAndRestart(cluster: BenchCluster, loaded: number, value: Uint8Array): Promise<Restart> {
  const ids = cluster.local.view().filter((n) => n.running).map((n) => n.id);
  const killed = ids.map((id) => cluster.local.nodes.get(id)?.process);
  await Promise.all(ids.map((id) => cluster.local.kill(id)));
  await Promise.all(killed.map((p) => p?.stop())); // untrack the dead processes (kill() leaves them in the registry)
  const t0 = performance.now();
  const since = () => performance.now() - t0;
  await Promise.all(ids.map((id) => cluster.local.restart(id)));
  const probe = new ZiClient(cluster.connections[0]!, { cluster: cluster.name, timeoutMs: PROBE_TIMEOUT_MS, retries503: 0, writesToLeader: false });
  let stop = false;
  const firstOk = async (attempt: () => Promise<boolean>): Promise<number | null> => {
    while (!stop && since() < RESTART_TIMEOUT_MS) {
      if (await attempt().catch(() => false)) return since();
      await sleep(PROBE_EVERY_MS);
    }
    return null;
  };
  const same = (a: Uint8Array | undefined) => a !== undefined && Buffer.compare(a, value) === 0;
  const getting = firstOk(async () => same((await probe.get(key16('k.', loaded - 1)))?.value));
  const putting = firstOk(async () => (await probe.put(key16('k.', 0), value), true));
  try {
    await cluster.local.waitServing(RESTART_TIMEOUT_MS);
  } catch (err) {
    stop = true; // a node exited or never served: the probes give up too
    throw err;
  }
  const allMs = since();
  const [getMs, putMs] = await Promise.all([getting, putting]);
  // Every acknowledged write is back: read a sample spread over the loaded keys.
  const client = cluster.client();
  let verified = 0;
  for (let i = 0; i < VERIFY_KEYS; i++) if (same((await client.get(key16('k.', Math.floor((i * loaded) / VERIFY_KEYS))))?.value)) verified++;
  return { getMs, putMs, allMs, verified };
}

const median = (xs: number[]) => {
  const v = [...xs].sort((a, b) => a - b);
  return v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
};
const mb = (bytes: number | null | undefined) => (bytes === null || bytes === undefined ? null : bytes / MB);

async function restartAndMemory(ctx: ScenarioContext, cluster: BenchCluster, count: number, trials: number, gcDir: string): Promise<void> {
  const set = `${count.toLocaleString('en-US')} × ${formatBytes(VALUE_BYTES)}${ctx.quick ? ' (quick; full: 1,000,000)' : ''}`;
  const value = valueOf(VALUE_BYTES);
  // Load new keys until the cluster holds exactly `count` (it may hold some already).
  const before = (await keysHeld(cluster)) ?? 0;
  const loadCount = Math.max(1, count - before);
  const loadMs = await ctx.progress.step(`loading ${loadCount.toLocaleString('en-US')} × ${formatBytes(VALUE_BYTES)} into the fsync always cluster (${LOAD_INFLIGHT} in flight)`, () =>
    loadKeys(cluster, loadCount, value, LOAD_WRITERS, LOAD_INFLIGHT),
  );
  const held = await keysHeld(cluster);
  if (held !== null && held !== count) ctx.log(`  warning: the leader holds ${held} keys, not ${count}`);

  const memory = ctx.section.table('memory', `Resident memory per node, fsync always, store holds ${set} (MB)`, [
    { key: 'state', label: 'when', kind: 'text' },
    { key: 'node', label: 'node', kind: 'text' },
    { key: 'rss', label: 'VmRSS', kind: 'int' },
    { key: 'anon', label: 'RssAnon', kind: 'int' },
    { key: 'file', label: 'RssFile', kind: 'int' },
    { key: 'mapped', label: 'of which LMDB map', kind: 'int' },
    { key: 'own', label: 'VmRSS without the LMDB map', kind: 'int' },
    { key: 'heap', label: 'V8 heap used', kind: 'int' },
    { key: 'heapTotal', label: 'V8 heap committed', kind: 'int' },
  ], { live: false });
  const memRows = (state: string, nodes: NodeMemory[], which: 'found' | 'idle' | 'afterGc') => {
    const gc = which === 'afterGc';
    for (const n of nodes) {
      const r = n[which];
      memory.add({ state, node: `${n.id}${n.leader ? ' (leader)' : ''}`, rss: mb(r?.rss), anon: mb(r?.anon), file: mb(r?.file), mapped: mb(r?.mapped), own: r ? mb(r.rss - r.mapped) : null, heap: gc ? mb(n.heapUsed) : null, heapTotal: gc ? mb(n.heapTotal) : null });
    }
  };
  const loaded = await ctx.progress.step('reading memory per node', () => nodeMemory(cluster, gcDir, true));
  memRows('after the load, as found', loaded, 'found');
  memRows(`after the load, ${IDLE_MS / 1000} s idle`, loaded, 'idle');
  memRows('after the load, after GC', loaded, 'afterGc');

  const table = ctx.section.table('restart', `kill -9 of all 3 nodes and restart, store holds ${set}`, [
    { key: 'trial', label: 'trial', kind: 'int' },
    { key: 'getMs', label: 'restart → get ms', kind: 'int' },
    { key: 'putMs', label: 'restart → put ms', kind: 'int' },
    { key: 'servedMs', label: 'restart → get and put ms', kind: 'int' },
    { key: 'allMs', label: 'restart → every node serving ms', kind: 'int' },
    { key: 'verified', label: 'keys read back', kind: 'text' },
  ]);
  const runs: Restart[] = [];
  for (let t = 1; t <= trials; t++) {
    const r = await ctx.progress.step(`kill -9 of every node and restart${trials > 1 ? ` (trial ${t}/${trials})` : ''}`, () => killAndRestart(cluster, loadCount, value));
    runs.push(r);
    const served = r.getMs !== null && r.putMs !== null ? Math.max(r.getMs, r.putMs) : null;
    table.add({ trial: t, getMs: r.getMs, putMs: r.putMs, servedMs: served, allMs: r.allMs, verified: `${r.verified} of ${VERIFY_KEYS}` });
    if (r.verified < VERIFY_KEYS) ctx.log(`  warning: after restart ${t}, ${VERIFY_KEYS - r.verified} of ${VERIFY_KEYS} sampled keys did not read back`);
  }
  const restarted = await ctx.progress.step('reading memory per node', () => nodeMemory(cluster, gcDir, false));
  memRows('after the restart, after GC', restarted, 'afterGc');
  table.note(
    'From starting the three killed node processes again (on their data dirs; ZooKeeper and nats-server kept running) until a probe ' +
      `client asking every ${PROBE_EVERY_MS} ms through the cluster's queue group (no retries, ${PROBE_TIMEOUT_MS} ms timeout) got a loaded ` +
      'key\'s value back (get) and had a put acknowledged (put), and until every node answered `members` as serving. Includes starting ' +
      `Node.js, checking and loading the copy from disk, ZooKeeper sessions and the election. Then ${VERIFY_KEYS} loaded keys, spread over the load, are read back.`,
  );
  table.note(
    `Loaded ${loadCount.toLocaleString('en-US')} keys in ${(loadMs / 1000).toFixed(1)} s (${Math.round((loadCount * 1000) / Math.max(1, loadMs)).toLocaleString('en-US')} puts/s, ` +
      `${LOAD_INFLIGHT} in flight over ${LOAD_WRITERS} connections, to the leader)${before > 0 ? `; the ${before.toLocaleString('en-US')} keys the cluster held before make up the rest` : ''}.`,
  );
  memory.note(
    'VmRSS = RssAnon (heap, stacks: private) + RssFile (mapped files: the executable, libraries and the LMDB map, whose pages are the ' +
      'OS page cache of data.mdb, shared and reclaimable) from /proc/<pid>/status; "of which LMDB map": resident pages of the node\'s data ' +
      `dir files (/proc/<pid>/smaps). "Idle": read again after ${IDLE_MS / 1000} s without load, no collection forced. "After GC": after two full collections (bench/gc-hook.mjs). V8 heap used and committed: ` +
      'process.memoryUsage() heapUsed and heapTotal (committed pages count in RssAnon as far as they were touched).',
  );

  const served = runs.flatMap((r) => (r.getMs !== null && r.putMs !== null ? [Math.max(r.getMs, r.putMs)] : []));
  const quickNote = ctx.quick ? `quick: ${count.toLocaleString('en-US')} keys, not 1,000,000` : `${count.toLocaleString('en-US')} keys`;
  if (served.length === runs.length) {
    ctx.facts.set('durable.restart.ms', median(served), {
      detail: `${quickNote}; every node serving after ${(median(runs.map((r) => r.allMs)) / 1000).toFixed(1)} s${trials > 1 ? `; median of ${trials}` : ''}`,
    });
  }
  // The node's own memory: the LMDB map's resident pages are the page cache of data.mdb (shared
  // with the OS, reclaimed under pressure), counted apart, as a file read through read() would be.
  const own = (r: RssBreakdown | null | undefined) => (r ? r.rss - r.mapped : 0);
  const afterGc = [...loaded.map((n) => ({ n, when: 'after the load' })), ...restarted.map((n) => ({ n, when: 'after the restart' }))].filter((x) => x.n.afterGc);
  const largest = afterGc.reduce<(typeof afterGc)[number] | null>((a, b) => (own(b.n.afterGc) > own(a?.n.afterGc) ? b : a), null);
  if (largest !== null) {
    const g = largest.n.afterGc!;
    const asFound = Math.max(...loaded.map((n) => own(n.found)));
    const idled = Math.max(...loaded.map((n) => own(n.idle)));
    ctx.facts.set('durable.memory.mb', own(g) / MB, {
      detail:
        `${quickNote}; VmRSS without the LMDB map's page cache, largest node after GC (${largest.when}): anon ${Math.round(g.anon / MB)} + file ${Math.round((g.file - g.mapped) / MB)} MB; ` +
        `the map adds ${Math.round(g.mapped / MB)} MB of page cache; as found after the load ≤ ${Math.round(asFound / MB)} MB, after ${IDLE_MS / 1000} s idle ≤ ${Math.round(idled / MB)} MB`,
    });
  }
}
