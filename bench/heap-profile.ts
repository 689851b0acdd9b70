// What a ZiStore node's memory holds per key: start a 3-node cluster whose nodes preload
// bench/gc-hook.mjs, take a heap snapshot of the leader and of a follower (after full GCs)
// before and after loading N keys, and print the growth by object kind and constructor, per key.
//   node --import tsx bench/heap-profile.ts [--keys N] [--size BYTES] [--distinct D] [--fsync always|interval]
// --fsync: durable nodes (--data-dir, that policy); memory only without it.
// --distinct D: the N puts overwrite D keys (growth that follows N, not D, is per write).
// Snapshots are parsed here and deleted; keep N modest (the default 20,000 keeps them small).
import { readFile, rm } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { killAllProcessesSync } from '../cluster/process-registry.ts';
import { BenchCluster } from './bench-cluster.ts';
import { onInterrupt } from './interrupt.ts';
import { inParallel, key16 } from './kv-systems.ts';
import { valueOf } from './measure.ts';
import { MB, memoryAfterGc, withGcHook, type AfterGc } from './memory.ts';
import { Progress } from './progress.ts';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]]; edge_fields: string[]; edge_types: [string[], ...unknown[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
}

/** "type: name" of the node at field offset `at`. */
function nodeLabel(s: Snapshot, at: number): string {
  const fields = s.snapshot.meta.node_fields;
  const type = s.snapshot.meta.node_types[0][s.nodes[at + fields.indexOf('type')]!] ?? '?';
  let name = s.strings[s.nodes[at + fields.indexOf('name')]!] ?? '?';
  if (type.includes('string') || type === 'number' || type === 'code') name = '';
  if (name.length > 60) name = name.slice(0, 57) + '…';
  return `${type}${name ? `: ${name}` : ''}`;
}

/**
 * Who holds the nodes of group `label`: counts of "retainer --edge--> " one and two levels up
 * (weak edges skipped), over at most `sample` of them.
 */
function retainers(s: Snapshot, label: string, sample = 5000): [string, number][] {
  const nf = s.snapshot.meta.node_fields.length;
  const ef = s.snapshot.meta.edge_fields;
  const ew = ef.length;
  const iEdgeCount = s.snapshot.meta.node_fields.indexOf('edge_count');
  const iType = ef.indexOf('type');
  const iName = ef.indexOf('name_or_index');
  const iTo = ef.indexOf('to_node');
  const edgeTypes = s.snapshot.meta.edge_types[0];
  // Reverse edges: to_node → [from_node, edge offset].
  const into = new Map<number, [number, number][]>();
  let e = 0;
  for (let n = 0; n < s.nodes.length; n += nf) {
    const count = s.nodes[n + iEdgeCount]!;
    for (let k = 0; k < count; k++, e += ew) {
      const type = edgeTypes[s.edges[e + iType]!];
      if (type === 'weak') continue;
      const to = s.edges[e + iTo]!;
      const list = into.get(to);
      if (list) list.push([n, e]);
      else into.set(to, [[n, e]]);
    }
  }
  const edgeName = (at: number) => {
    const type = edgeTypes[s.edges[at + iType]!];
    const v = s.edges[at + iName]!;
    return type === 'element' || type === 'hidden' ? `[${type}]` : (s.strings[v] ?? String(v));
  };
  // The first real holder of a node: not its prototype chain or hidden class.
  const SKIP = new Set(['__proto__', 'map', 'prototype', 'constructor']);
  const holder = (n: number): [number, number] | null => (into.get(n) ?? []).find(([, at]) => !SKIP.has(edgeName(at))) ?? null;
  const counts = new Map<string, number>();
  let seen = 0;
  // Newest objects last: sample from the end, where the loaded keys' objects are.
  for (let n = s.nodes.length - nf; n >= 0 && seen < sample; n -= nf) {
    if (nodeLabel(s, n) !== label) continue;
    const h1 = holder(n);
    if (!h1) continue;
    seen++;
    const h2 = holder(h1[0]);
    const h3 = h2 ? holder(h2[0]) : null;
    const step = (h: [number, number]) => `${nodeLabel(s, h[0])} .${edgeName(h[1])}`;
    const key = [h3, h2, h1].filter((h): h is [number, number] => h !== null).map(step).join(' → ');
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1]).slice(0, 6);
}

/** Self size and count per "type: name" group (objects by constructor name). */
function groups(s: Snapshot): Map<string, { bytes: number; count: number }> {
  const fields = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const width = fields.length;
  const iType = fields.indexOf('type');
  const iName = fields.indexOf('name');
  const iSize = fields.indexOf('self_size');
  const out = new Map<string, { bytes: number; count: number }>();
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + iType]!] ?? '?';
    let name = s.strings[s.nodes[i + iName]!] ?? '?';
    if (type === 'string' || type === 'concatenated string' || type === 'sliced string') name = '';
    else if (type === 'number') name = '';
    else if (type === 'closure') name = name || '(anonymous)';
    else if (type === 'code') name = '';
    else if (name.length > 60) name = name.slice(0, 57) + '…';
    const key = `${type}${name ? `: ${name}` : ''}`;
    const g = out.get(key) ?? { bytes: 0, count: 0 };
    g.bytes += s.nodes[i + iSize]!;
    g.count++;
    out.set(key, g);
  }
  return out;
}

async function snapshotGroups(gcDir: string, pid: number): Promise<{ mem: AfterGc; groups: Map<string, { bytes: number; count: number }>; parsed: Snapshot }> {
  const mem = await memoryAfterGc(gcDir, pid, 120_000);
  if (!mem?.snapshot) throw new Error(`no heap snapshot from pid ${pid}`);
  const parsed = JSON.parse(await readFile(mem.snapshot, 'utf8')) as Snapshot;
  await rm(mem.snapshot, { force: true });
  return { mem, groups: groups(parsed), parsed };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ args: process.argv.slice(2), options: { keys: { type: 'string', default: '20000' }, size: { type: 'string', default: '16' }, distinct: { type: 'string' }, fsync: { type: 'string' } } });
  const durable = values.fsync;
  if (durable !== undefined && durable !== 'always' && durable !== 'interval') throw new Error(`--fsync ${durable}: always or interval`);
  const keys = Number(values.keys);
  const distinct = values.distinct !== undefined ? Number(values.distinct) : keys;
  const size = Number(values.size);
  const progress = new Progress();
  await withGcHook(async (gcDir) => {
    const cluster = await progress.step(`starting a 3-node cluster (${durable === undefined ? 'memory only' : `--fsync ${durable}`}; nodes preload gc-hook.mjs)`, () => BenchCluster.start({ nodes: 3, echoPeers: 0, ...(durable !== undefined ? { durable } : {}) }));
    onInterrupt(() => cluster.stop(), () => progress.stop());
    try {
      const leader = await cluster.leader();
      const follower = (await cluster.followers())[0]!;
      const pidOf = (id: string) => cluster.local.view().find((n) => n.id === id)!.pid!;
      const before = new Map<string, Awaited<ReturnType<typeof snapshotGroups>>>();
      for (const id of [leader, follower]) before.set(id, await progress.step(`heap snapshot of ${id} (empty)`, () => snapshotGroups(gcDir, pidOf(id))));
      const client = await cluster.writerClient(0);
      const value = valueOf(size);
      const ms = await progress.step(`loading ${keys} × ${size} B`, () => inParallel(keys, 128, (i) => client.put(key16('h.', i % distinct), value).then(() => undefined)));
      console.log(`${keys.toLocaleString('en-US')} puts of ${size} B to ${distinct.toLocaleString('en-US')} keys in ${(ms / 1000).toFixed(1)} s (figures below are per put)`);
      for (const id of [leader, follower]) {
        const after = await progress.step(`heap snapshot of ${id} (loaded)`, () => snapshotGroups(gcDir, pidOf(id)));
        const b = before.get(id)!;
        const perKey = (x: number) => (x / keys).toFixed(1);
        console.log(
          `\n== ${id} (${id === leader ? 'leader' : 'follower'}): heap used ${(b.mem.heapUsed / MB).toFixed(1)} → ${(after.mem.heapUsed / MB).toFixed(1)} MB ` +
            `(${perKey(after.mem.heapUsed - b.mem.heapUsed)} B/key), RSS ${(b.mem.rss / MB).toFixed(0)} → ${(after.mem.rss / MB).toFixed(0)} MB, ` +
            `external+arrayBuffers ${((b.mem.external + b.mem.arrayBuffers) / MB).toFixed(1)} → ${((after.mem.external + after.mem.arrayBuffers) / MB).toFixed(1)} MB`,
        );
        const delta = [...after.groups].map(([k, g]) => {
          const was = b.groups.get(k) ?? { bytes: 0, count: 0 };
          return { k, bytes: g.bytes - was.bytes, count: g.count - was.count };
        });
        delta.sort((x, y) => y.bytes - x.bytes);
        console.log('  B/key  objects/key  kind: constructor');
        for (const d of delta.slice(0, 15)) console.log(`  ${perKey(d.bytes).padStart(6)}  ${(d.count / keys).toFixed(2).padStart(11)}  ${d.k}`);
        // Where the groups that grow with the keys hang from.
        for (const d of delta.filter((x) => x.count >= keys * 0.5).slice(0, 4)) {
          console.log(`  held by (${d.k}), sampled:`);
          for (const [path, n] of retainers(after.parsed, d.k)) console.log(`    ${String(n).padStart(5)}  ${path}`);
        }
      }
    } finally {
      await progress.step('stopping the cluster', () => cluster.stop());
    }
  }, true);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`heap-profile: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    killAllProcessesSync();
    process.exit(1);
  },
);
