// One closed-loop measurement against ZiStore or the echo peer, recorded into the section:
// builds the per-worker operations (keys, values, target subject), runs the load, returns the
// Measurement.
import { randomBytes } from 'node:crypto';
import type { BenchCluster } from './bench-cluster.ts';
import { machineBusyPct } from './cpu.ts';
import { echoOperation } from './echo.ts';
import { formatBytes } from './format.ts';
import { LoadAccumulator, runRound, type Operation } from './load.ts';
import type { Measurement, Target } from './report.ts';
import type { ScenarioContext } from './scenario.ts';

export interface RunSpec {
  system: 'zistore' | 'nats-echo';
  op: 'put' | 'get';
  valueBytes: number;
  /** ZiStore only: where requests go. */
  target?: Exclude<Target, 'echo'>;
  /** Echo puts only: the first responder relays to this many others before answering (the replication floor). */
  fanout?: number;
  inflight: number;
}

export interface SetOptions {
  /** Scale the context's warm-up and window (e.g. 0.5 for a sweep with many points). */
  timeScale?: number;
  /** Default the context's. */
  rounds?: number;
}

/** Distinct keys a put worker cycles through: at most 1000, and at most ~32 MiB of values per run. */
export function putKeysPerWorker(inflight: number, valueBytes: number): number {
  return Math.max(1, Math.min(1000, Math.floor((32 * 1024 * 1024) / (inflight * Math.max(1, valueBytes)))));
}

const values = new Map<number, Uint8Array>();
/** Random bytes (incompressible), one buffer per size. */
export function valueOf(bytes: number): Uint8Array {
  let v = values.get(bytes);
  if (!v) {
    v = new Uint8Array(randomBytes(bytes));
    values.set(bytes, v);
  }
  return v;
}

const preloaded = new WeakMap<BenchCluster, Map<number, string[]>>();

/** Keys holding `valueBytes`-byte values for gets, written once per cluster and size. */
export async function preloadKeys(cluster: BenchCluster, valueBytes: number, count = 1000): Promise<string[]> {
  let bySize = preloaded.get(cluster);
  if (!bySize) preloaded.set(cluster, (bySize = new Map()));
  const have = bySize.get(valueBytes);
  if (have) return have;
  const leader = await cluster.leader();
  const keys = Array.from({ length: count }, (_, i) => `bench/get/${valueBytes}/${i}`);
  const client = cluster.client();
  const value = valueOf(valueBytes);
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < keys.length) await client.put(keys[next++]!, value, { node: leader });
    }),
  );
  bySize.set(valueBytes, keys);
  return keys;
}

async function resolveNode(cluster: BenchCluster, target: Target): Promise<string | null> {
  if (target === 'leader') return cluster.leader();
  if (target === 'follower') {
    const followers = await cluster.followers();
    if (followers.length === 0) throw new Error('no follower to measure at (1-node cluster?)');
    return followers[0]!;
  }
  return null;
}

export function runLabel(spec: RunSpec, node: string | null): string {
  const size = formatBytes(spec.valueBytes);
  if (spec.system === 'nats-echo') {
    const relay = spec.fanout ? ` relay→${spec.fanout}` : '';
    return `echo ${spec.op}-shaped${relay} ${size} ×${spec.inflight}`;
  }
  return `zistore ${spec.op} ${size} @${spec.target ?? 'leader'}${node ? `(${node})` : ''} ×${spec.inflight}`;
}

/** A spec resolved to its node, label and per-worker operations. */
interface Prepared {
  spec: RunSpec;
  target: Target;
  node: string | null;
  label: string;
  operation: (worker: number) => Operation;
}

async function prepare(cluster: BenchCluster, spec: RunSpec): Promise<Prepared> {
  const target: Target = spec.system === 'nats-echo' ? 'echo' : (spec.target ?? 'leader');
  const node = await resolveNode(cluster, target);
  const value = valueOf(spec.valueBytes);
  let operation: (worker: number) => Operation;

  if (spec.system === 'nats-echo') {
    const shape =
      spec.op === 'put'
        ? { requestBody: value, replyBytes: 0, fanout: spec.fanout ?? 0 }
        : { requestBody: new Uint8Array(0), replyBytes: spec.valueBytes };
    operation = (w) => echoOperation(cluster.connections[w % cluster.connections.length]!, shape);
  } else if (spec.op === 'put') {
    const keys = putKeysPerWorker(spec.inflight, spec.valueBytes);
    const opts = node ? { node } : {};
    operation = (w) => {
      const client = cluster.client(w);
      const prefix = `bench/put/${spec.valueBytes}/${w}/`;
      return async (seq) => {
        await client.put(prefix + (seq % keys), value, opts);
      };
    };
  } else {
    const keys = await preloadKeys(cluster, spec.valueBytes);
    const opts = node ? { node } : {};
    operation = (w) => {
      const client = cluster.client(w);
      const offset = (w * 7919) % keys.length;
      return async (seq) => {
        const got = await client.get(keys[(offset + seq) % keys.length]!, opts);
        if (got === null) throw Object.assign(new Error('preloaded key missing'), { code: 'MISSING' });
        if (got.value.byteLength !== spec.valueBytes) throw Object.assign(new Error('wrong value size'), { code: 'BAD_VALUE' });
      };
    };
  }
  return { spec, target, node, label: runLabel(spec, node), operation };
}

/** Wait (bounded) until the machine's busy share falls below ctx.quietPct; our idle cluster counts too. */
async function waitQuiet(ctx: ScenarioContext): Promise<void> {
  const deadline = performance.now() + ctx.waitQuietMs;
  let busy = await machineBusyPct(500);
  if (busy < ctx.quietPct) return;
  await ctx.progress.step(`waiting for a quiet host (busy ${busy.toFixed(0)}%, want < ${ctx.quietPct}%)`, async () => {
    while (busy >= ctx.quietPct && performance.now() < deadline) busy = await machineBusyPct(500);
  });
  if (busy >= ctx.quietPct) ctx.log(`  host still ${busy.toFixed(0)}% busy after ${Math.round(ctx.waitQuietMs / 1000)} s; measuring anyway`);
}

/** Warm-up of rounds after the first: the processes are warm, but caches and the JIT's focus moved. */
const REWARM_MS = 150;

/**
 * Measure several specs interleaved: `rounds` rounds of A B C …, each with 1/rounds of the
 * window, so background load drifting over time affects every spec alike (ratios stay fair on a
 * shared host). The first round of each spec gets the full warm-up. Specs share one time scale.
 */
export async function measureSet(ctx: ScenarioContext, cluster: BenchCluster, specs: RunSpec[], opts: SetOptions = {}): Promise<Measurement[]> {
  if (ctx.waitQuietMs > 0) await waitQuiet(ctx);
  const prepared: Prepared[] = [];
  for (const spec of specs) prepared.push(await prepare(cluster, spec));
  const scale = opts.timeScale ?? 1;
  const rounds = opts.rounds ?? ctx.rounds;
  const accs = prepared.map((p) => new LoadAccumulator(p.label, p.spec.inflight));
  const sliceMs = Math.max(100, Math.round((ctx.timing.durationMs * scale) / rounds));
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < prepared.length; i++) {
      const p = prepared[i]!;
      await runRound(
        {
          label: rounds > 1 ? `${p.label} (round ${r + 1}/${rounds})` : p.label,
          inflight: p.spec.inflight,
          warmupMs: r === 0 ? Math.round(ctx.timing.warmupMs * scale) : Math.min(REWARM_MS, ctx.timing.warmupMs),
          durationMs: sliceMs,
          operation: p.operation,
          watched: cluster.watched(),
          progress: ctx.progress,
        },
        accs[i]!,
      );
    }
  }
  const nodes = cluster.local.view().filter((n) => n.running).length;
  return prepared.map((p, i) => {
    const m: Measurement = {
      ...accs[i]!.result(),
      system: p.spec.system,
      op: p.spec.op,
      valueBytes: p.spec.valueBytes,
      target: p.target,
      node: p.node,
      ...(p.spec.fanout ? { fanout: p.spec.fanout } : {}),
      nodes,
      connections: cluster.connections.length,
    };
    ctx.section.measurement(m);
    if (m.errorCount > 0) ctx.log(`  warning: ${m.label}: ${m.errorCount} errors ${JSON.stringify(m.errors)}`);
    return m;
  });
}

/** Measure one spec on its own (no interleaving partner). */
export async function measure(ctx: ScenarioContext, cluster: BenchCluster, spec: RunSpec, opts: SetOptions = {}): Promise<Measurement> {
  return (await measureSet(ctx, cluster, [spec], opts))[0]!;
}

/** ZiStore over echo at the same percentile. */
export function ratio(a: number, b: number): number | null {
  return b > 0 ? a / b : null;
}
