// recovery (thesis 5.4 recovery, and the memory target): a node joins a loaded cluster and
// receives the whole state. For each data set the 3-node cluster is loaded through the client
// (many writes in flight), then `addNode` starts a fourth node; measured: addNode → the node
// serves (includes starting the node process), and the leader-side state transfer (the leader's
// "joined" log line: entries and ms from the first snapshot chunk to the joiner entering the
// replica set). The joiner is then stopped gracefully. Memory: VmRSS of every node after each
// load (and of the joiner once it holds the data). The data sets reuse the same key names, so
// each one replaces the previous: the store holds exactly that data set.
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchCluster } from '../bench-cluster.ts';
import { formatBytes } from '../format.ts';
import { loadKeys } from '../kv-systems.ts';
import { valueOf } from '../measure.ts';
import { MB, memoryAfterGc, rssBytes, withGcHook } from '../memory.ts';
import type { Scenario, ScenarioContext } from '../scenario.ts';

interface DataSet {
  count: number;
  bytes: number;
}

// Quick mode loads the million keys too: the memory and resync targets are about exactly that
// set, and figures extrapolated from a smaller one mislead (fixed heap growth counted per key).
const QUICK_SETS: DataSet[] = [
  { count: 1000, bytes: 512 },
  { count: 1000, bytes: 16384 },
  { count: 1_000_000, bytes: 16 },
];
const FULL_SETS: DataSet[] = [
  { count: 1000, bytes: 512 },
  { count: 1000, bytes: 16384 },
  { count: 100_000, bytes: 100 },
  { count: 1_000_000, bytes: 16 },
];
const LOAD_WRITERS = 4;
const LOAD_INFLIGHT = 256;


interface NodeMemory {
  id: string;
  leader: boolean;
  /** VmRSS as found, MB. */
  mb: number | null;
  /** After two full collections (gc-hook.mjs): RSS and V8 heap used, MB. */
  gcMb: number | null;
  heapMb: number | null;
}

/** Memory of every running node, leader first. */
async function nodeMemory(cluster: BenchCluster, gcDir: string): Promise<NodeMemory[]> {
  const leader = await cluster.leader();
  const out: NodeMemory[] = [];
  for (const n of cluster.local.view().filter((v) => v.running)) {
    const mb = (rssBytes(n.pid) ?? NaN) / MB;
    const gc = n.pid === null ? null : await memoryAfterGc(gcDir, n.pid);
    out.push({ id: n.id, leader: n.id === leader, mb, gcMb: gc ? gc.rss / MB : null, heapMb: gc ? gc.heapUsed / MB : null });
  }
  return out.sort((a, b) => Number(b.leader) - Number(a.leader));
}

interface Joined {
  entries: number | null;
  ms: number | null;
}

/** The leader's `joined` line for `peer` (entries and ms of the state transfer). */
async function leaderJoined(cluster: BenchCluster, leader: string, peer: string): Promise<Joined> {
  const file = cluster.local.nodes.get(leader)?.logFile;
  if (!file) return { entries: null, ms: null };
  // A leader busy with a large transfer may log it a while after the joiner serves.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const text = await readFile(file, 'utf8').catch(() => '');
    for (const line of text.split('\n').reverse()) {
      if (!line.includes('"joined"') || !line.includes(`"${peer}"`)) continue;
      try {
        const l = JSON.parse(line) as { msg?: string; peer?: string; entries?: number; ms?: number };
        if (l.msg === 'joined' && l.peer === peer) return { entries: l.entries ?? null, ms: l.ms ?? null };
      } catch {
        /* a partial line */
      }
    }
    if (Date.now() > deadline) return { entries: null, ms: null };
    await sleep(250);
  }
}

const median = (xs: number[]) => {
  const v = [...xs].sort((a, b) => a - b);
  return v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
};

async function load(ctx: ScenarioContext, cluster: BenchCluster, set: DataSet): Promise<number> {
  return ctx.progress.step(`loading ${set.count.toLocaleString('en-US')} × ${formatBytes(set.bytes)} (${LOAD_INFLIGHT} in flight)`, () =>
    loadKeys(cluster, set.count, valueOf(set.bytes), LOAD_WRITERS, LOAD_INFLIGHT),
  );
}

export const recovery: Scenario = {
  name: 'recovery',
  title: 'Follower recovery (state transfer to a joining node) and memory per node',
  description:
    'A 3-node cluster is loaded through the typed client (256 writes in flight over 4 connections, to the leader), then a ' +
    'fourth node is added: "addNode → serving" runs from starting its process to its members reply saying serving ' +
    '(process start, ZooKeeper session, join, snapshot, lease); "transfer" is the leader\'s own measure from its `joined` ' +
    'log line (first snapshot chunk sent → the joiner is a replica). The joiner is stopped gracefully before the next data ' +
    'set. Data sets reuse the same keys, so the store holds exactly the data set named. Memory: VmRSS (/proc/<pid>/status) ' +
    'of every node after each load, without forcing a garbage collection. Both modes load 1,000,000 × 16 B; full mode also ' +
    'loads 100,000 × 100 B.',
  estimate: { quick: '~2 min', full: '~3 min' },
  ownCluster: true,
  async run(ctx) {
    // Nodes started from here on preload gc-hook.mjs (LocalCluster passes the environment on).
    await withGcHook((gcDir) => runRecovery(ctx, gcDir));
  },
};

async function runRecovery(ctx: ScenarioContext, gcDir: string): Promise<void> {
  {
    const sets = ctx.quick ? QUICK_SETS : FULL_SETS;
    ctx.section.section.settings = { nodes: '3 + 1 joining', dataSets: sets.map((s) => `${s.count} × ${s.bytes} B`), loadInflight: LOAD_INFLIGHT, loadWriters: LOAD_WRITERS };
    const cluster = await ctx.cluster({ nodes: 3, fresh: true, logLevel: 'info', echoPeers: 0 });
    const baseline = await nodeMemory(cluster, gcDir);
    const table = ctx.section.table('resync', 'State transfer to a joining node', [
      { key: 'set', label: 'data set', kind: 'text', width: 18 },
      { key: 'loadS', label: 'load s', kind: 'text' },
      { key: 'loadRate', label: 'load puts/s', kind: 'rate' },
      { key: 'trials', label: 'trials', kind: 'int' },
      { key: 'entries', label: 'entries sent', kind: 'int' },
      { key: 'transferMs', label: 'transfer ms', kind: 'int' },
      { key: 'transferAll', label: 'each trial', kind: 'text' },
      { key: 'servingMs', label: 'addNode → serving ms', kind: 'int' },
      { key: 'joinerMb', label: 'joiner RSS MB', kind: 'int' },
    ]);
    const memory = ctx.section.table('memory', 'Resident memory per node (MB): VmRSS as found, and after two full garbage collections', [
      { key: 'state', label: 'store holds', kind: 'text' },
      { key: 'leader', label: 'leader RSS', kind: 'int' },
      { key: 'f1', label: 'follower RSS', kind: 'int' },
      { key: 'f2', label: 'follower RSS', kind: 'int' },
      { key: 'gcLeader', label: 'leader RSS after GC', kind: 'int' },
      { key: 'gcF1', label: 'follower after GC', kind: 'int' },
      { key: 'gcF2', label: 'follower after GC', kind: 'int' },
      { key: 'heap', label: 'largest V8 heap used after GC', kind: 'int' },
    ], { live: false });
    const memRow = (state: string, m: NodeMemory[]) =>
      memory.add({
        state,
        leader: m[0]?.mb ?? null,
        f1: m[1]?.mb ?? null,
        f2: m[2]?.mb ?? null,
        gcLeader: m[0]?.gcMb ?? null,
        gcF1: m[1]?.gcMb ?? null,
        gcF2: m[2]?.gcMb ?? null,
        heap: Math.max(...m.map((x) => x.heapMb ?? 0)),
      });
    memRow('nothing (just started)', baseline);
    const largest = (m: NodeMemory[], pick: (x: NodeMemory) => number | null) => Math.max(...m.map((x) => pick(x) ?? 0));

    for (const set of sets) {
      const name = `${set.count.toLocaleString('en-US')} × ${formatBytes(set.bytes)}`;
      const loadMs = await load(ctx, cluster, set);
      const mem = await nodeMemory(cluster, gcDir);
      memRow(name, mem);
      if (set.count === 1_000_000 && set.bytes === 16) {
        ctx.facts.set('memory.1m16.mb', largest(mem, (x) => x.gcMb), {
          detail: `largest of the 3 nodes after a full GC; as found before it: up to ${Math.round(largest(mem, (x) => x.mb))} MB`,
        });
      }

      // Small data sets transfer in tens of milliseconds, where one trial is at the mercy of the
      // host: take the median of three.
      const trials = set.count <= 1000 ? 3 : 1;
      const runs: { servingMs: number; joined: Joined; joinerMb: number }[] = [];
      for (let t = 1; t <= trials; t++) {
        const leader = await cluster.leader();
        const t0 = performance.now();
        const id = await ctx.progress.step(`adding a node to ${name}${trials > 1 ? ` (trial ${t}/${trials})` : ''}`, async () => {
          const added = await cluster.local.addNode();
          await cluster.local.waitServing(180_000, [added]);
          return added;
        });
        const servingMs = performance.now() - t0;
        const joined = await leaderJoined(cluster, leader, id);
        const joinerMb = (rssBytes(cluster.local.view().find((n) => n.id === id)?.pid ?? null) ?? NaN) / MB;
        runs.push({ servingMs, joined, joinerMb });
        await ctx.progress.step(`stopping ${id}`, () => cluster.local.stopNode(id));
      }
      const transfers = runs.flatMap((r) => (r.joined.ms !== null ? [r.joined.ms] : []));
      const transferMs = transfers.length > 0 ? median(transfers) : null;
      const servingMs = median(runs.map((r) => r.servingMs));
      table.add({
        set: name,
        loadS: (loadMs / 1000).toFixed(1),
        loadRate: (set.count * 1000) / loadMs,
        trials,
        entries: runs[0]!.joined.entries,
        transferMs,
        transferAll: trials > 1 ? transfers.map((x) => Math.round(x)).join(', ') : '',
        servingMs,
        joinerMb: runs[runs.length - 1]!.joinerMb,
      });
      const key = `${set.count}x${set.bytes}`;
      const detail = `${runs[0]!.joined.entries ?? '?'} entries${trials > 1 ? `, median of ${trials}` : ''}`;
      if (transferMs !== null) ctx.facts.set(`resync.${key}.ms`, transferMs, { detail });
      ctx.facts.set(`resync.${key}.servingMs`, servingMs);
    }
    table.note('Data sets of 1000 keys: median of 3 joins (each joiner stopped before the next). "transfer": the leader\'s `joined` log line (ms from its first snapshot chunk to the joiner entering the replica set). "addNode → serving" adds starting a node process (Node.js + tsx), its ZooKeeper session and the join handshake.');
    memory.note('"As found": VmRSS right after the load, with whatever garbage and V8 heap growth the load left. "After GC": the node ran two full collections (bench/gc-hook.mjs, preloaded through NODE_OPTIONS; instrumentation only) and reported process.memoryUsage().');
  }
}
