// Where a node's CPU goes: start a cluster whose nodes preload bench/cpu-profile-hook.mjs
// (through NODE_OPTIONS, which LocalCluster passes on; node refuses --cpu-prof there), drive a
// closed-loop load at the leader, profile exactly the measured window (SIGUSR2 starts and stops
// V8's sampling profiler in every node), and print the top functions by self time, per node.
//   node --import tsx bench/profile.ts [put|get] [--inflight N] [--size BYTES] [--seconds S] [--fsync always|interval] [--out DIR]
// The .cpuprofile files stay in <out>/profile-<op>-<timestamp>/ (open them in Chrome DevTools).
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { killAllProcessesSync } from '../cluster/process-registry.ts';
import { BenchCluster } from './bench-cluster.ts';
import { onInterrupt } from './interrupt.ts';
import { runClosedLoop } from './load.ts';
import { preloadKeys, putKeysPerWorker, valueOf } from './measure.ts';
import { Progress } from './progress.ts';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const shortFile = (url: string) => url.replace(/^file:\/\//, '').replace(/.*\/node_modules\//, 'npm:').replace(/.*\/main\//, '');
const frameKey = (cf: CallFrame) => {
  const file = shortFile(cf.url);
  return `${cf.functionName || '(anonymous)'} ${file ? `${file}:${cf.lineNumber + 1}` : ''}`.trim();
};

/**
 * Self time per function and per area (file group), and inclusive time of the project's own
 * functions (a function counts once per sample however deep it recurses).
 */
function summarise(p: CpuProfile) {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  let totalUs = 0;
  for (let i = 0; i < p.samples.length; i++) {
    // Attribute the interval up to the next sample to this one.
    const span = p.timeDeltas[i + 1] ?? 0;
    selfUs.set(p.samples[i]!, (selfUs.get(p.samples[i]!) ?? 0) + span);
    totalUs += span;
  }
  const fn = new Map<string, number>();
  const area = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const cf = byId.get(id)!.callFrame;
    const file = shortFile(cf.url);
    const key = frameKey(cf);
    fn.set(key, (fn.get(key) ?? 0) + us);
    const group =
      cf.url === '' ? cf.functionName // (garbage collector), (program), (idle), natives
      : cf.url.startsWith('node:') ? 'node internals'
      : file.startsWith('npm:') ? file.split('/')[0]!
      : file.split('/')[0] + '/';
    area.set(group, (area.get(group) ?? 0) + us);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const f = byId.get(at)!.callFrame;
      if (f.url === '' || f.url.startsWith('node:') || f.url.includes('/node_modules/')) continue;
      const k = frameKey(f);
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + us);
    }
  }
  const top = (m: Map<string, number>, n: number) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n);
  return { totalUs, functions: top(fn, 25), areas: top(area, 15), inclusive: top(inclusive, 20) };
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    args: process.argv.slice(2),
    allowPositionals: true,
    options: {
      inflight: { type: 'string', default: '1' },
      size: { type: 'string', default: '16' },
      seconds: { type: 'string', default: '10' },
      fsync: { type: 'string' },
      out: { type: 'string' },
    },
  });
  const op = positionals[0] ?? 'put';
  if (op !== 'put' && op !== 'get') throw new Error('op must be put or get');
  const fsync = values.fsync;
  if (fsync !== undefined && fsync !== 'always' && fsync !== 'interval') throw new Error('--fsync must be always or interval (nodes with data dirs; memory only without it)');
  const inflight = Number(values.inflight);
  const valueBytes = Number(values.size);
  const seconds = Number(values.seconds);
  const outBase = resolve(values.out ?? fileURLToPath(new URL('results', import.meta.url)));
  const dir = join(outBase, `profile-${op}-${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '')}`);
  await mkdir(dir, { recursive: true });

  // Every child started from here on (nodes and the echo responder) can be profiled.
  const hook = fileURLToPath(new URL('cpu-profile-hook.mjs', import.meta.url));
  process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --import=${hook}`.trim();
  process.env.ZISTORE_CPU_PROFILE_DIR = dir;
  const progress = new Progress();
  const cluster = await progress.step('starting the cluster (profiled nodes)', () => BenchCluster.start({ nodes: 3, ...(fsync !== undefined ? { durable: fsync } : {}) }));
  onInterrupt(() => cluster.stop(), () => progress.stop());
  delete process.env.NODE_OPTIONS;
  delete process.env.ZISTORE_CPU_PROFILE_DIR;
  const profiled = cluster.local.view().flatMap((n) => (n.running && n.pid !== null ? [n.pid] : []));
  const toggleProfilers = () => {
    for (const pid of profiled) process.kill(pid, 'SIGUSR2');
  };
  const names = new Map(cluster.watched().map((p) => [p.pid, p.name]));
  const leader = await cluster.leader();
  names.set(cluster.local.view().find((n) => n.id === leader)!.pid!, `${leader} (leader)`);
  const value = valueOf(valueBytes);
  const keys = op === 'get' ? await preloadKeys(cluster, valueBytes) : [];
  const perWorker = putKeysPerWorker(inflight, valueBytes);

  const warmupMs = 2000;
  setTimeout(toggleProfilers, warmupMs).unref();
  const result = await runClosedLoop({
    label: `profile ${op} ${valueBytes} B ×${inflight} @${leader}`,
    inflight,
    warmupMs,
    durationMs: seconds * 1000,
    watched: cluster.watched(),
    progress,
    operation: (w) => {
      const client = cluster.client(w);
      return op === 'put'
        ? async (seq) => void (await client.put(`profile/${w}/${seq % perWorker}`, value, { node: leader }))
        : async (seq) => void (await client.get(keys[(w * 7919 + seq) % keys.length]!, { node: leader }));
    },
  });
  toggleProfilers();
  console.log(`${result.label}: ${Math.round(result.opsPerSec)} ops/s, p50 ${result.latencyUs.p50} µs, p99 ${result.latencyUs.p99} µs`);
  for (const p of result.cpu.processes) console.log(`  cpu ${p.name.padEnd(12)} ${p.corePct.toFixed(0).padStart(4)}%  ${((p.cpuMs * 1000) / Math.max(1, result.ops)).toFixed(0).padStart(6)} µs/op`);
  await progress.step('waiting for the profiles', async () => {
    const deadline = Date.now() + 30_000;
    while ((await readdir(dir)).filter((f) => f.endsWith('.cpuprofile')).length < profiled.length && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
    }
  });
  await progress.step('stopping the cluster', () => cluster.stop());

  for (const file of (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile')).sort()) {
    const pid = Number(file.split('.')[0]);
    const name = names.get(pid);
    if (!name) continue;
    const profile = JSON.parse(await readFile(join(dir, file), 'utf8')) as CpuProfile;
    const s = summarise(profile);
    const busyUs = s.totalUs - (s.areas.find(([a]) => a === '(idle)')?.[1] ?? 0);
    console.log(`\n== ${name} (pid ${pid}, ${file}): ${(busyUs / 1000).toFixed(0)} ms busy of ${(s.totalUs / 1000).toFixed(0)} ms sampled; ${result.ops > 0 ? (busyUs / result.ops).toFixed(0) : '?'} µs busy per op`);
    console.log('   self ms  area');
    for (const [a, us] of s.areas) console.log(`  ${(us / 1000).toFixed(1).padStart(8)}  ${a}`);
    console.log('   self ms  function');
    for (const [f, us] of s.functions) console.log(`  ${(us / 1000).toFixed(1).padStart(8)}  ${f}`);
    console.log('  total ms  project function (inclusive)');
    for (const [f, us] of s.inclusive) console.log(`  ${(us / 1000).toFixed(1).padStart(8)}  ${f}`);
  }
  console.log(`\nprofiles: ${dir}`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`profile: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    killAllProcessesSync();
    process.exit(1);
  },
);
