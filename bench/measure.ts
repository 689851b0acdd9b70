// Closed-loop measurements against ZiStore, the NATS echo floor and the peers (etcd, ZooKeeper,
// JetStream KV, LevelDB), recorded into the section: builds the per-worker operations (keys,
// values, sessions, target node), runs the load interleaved in rounds, returns Measurements.
import { randomBytes } from 'node:crypto';
import type { BenchCluster } from './bench-cluster.ts';
import { machineBusyPct } from './cpu.ts';
import { echoOperation } from './echo.ts';
import { formatBytes } from './format.ts';
import { inParallel, key16, preloadGetKeys, resolveZiNode, size36, zistoreSession, zistoreWriterSession, type ZiTarget } from './kv-systems.ts';
import { LoadAccumulator, runClosedLoop, runRound, type Operation } from './load.ts';
import { SYSTEM_NAMES, type KvPeer, type KvSession, type PeerId, type SystemId } from './peers/types.ts';
import type { Measurement, Target } from './report.ts';
import type { ScenarioContext } from './scenario.ts';

/** An operation other than a plain put or get (YCSB mixes): built per worker on its session. */
export interface CustomOp {
  /** Short name for labels, e.g. 'ycsb-a'. */
  name: string;
  build(session: KvSession, worker: number): Operation;
}

export interface RunSpec {
  system: SystemId;
  /** 'put' | 'get', or the custom operation's name. */
  op: string;
  valueBytes: number;
  /** ZiStore only: where requests go (default leader). */
  target?: ZiTarget;
  /** ZiStore only: measure this cluster instead of the set's (to compare clusters in one interleaved set). */
  cluster?: BenchCluster;
  /** Peers only: measure this peer instead of the run's peer of that system (e.g. a ZooKeeper ensemble). */
  peer?: KvPeer;
  /** Appended to the run's label (e.g. which cluster). */
  tag?: string;
  /** Echo puts only: the first responder relays to this many others before answering (the replication floor). */
  fanout?: number;
  /** Requests in flight in total, over all writers. */
  inflight: number;
  /** Sessions with their own connection that the workers are spread over (worker w uses w mod writers); default 1. */
  writers?: number;
  /** Puts: overwrite existing keys (default) or write a key that does not exist yet each time. */
  keyMode?: 'overwrite' | 'append';
  /**
   * Puts: the working set. Overwrite: the workers cycle through these many keys together (loaded
   * before the run); append: these many keys are loaded before the run, appends come on top.
   * Default: up to 1000 keys per worker, not preloaded.
   */
  records?: number;
  /** Append runs: delete what was appended afterwards (keeps memory bounded). */
  cleanup?: boolean;
  custom?: CustomOp;
}

export interface SetOptions {
  /** Scale the context's warm-up and window (e.g. 0.5 for a sweep with many points). */
  timeScale?: number;
  /** Default the context's. */
  rounds?: number;
  /** Start each round with the next spec (A B C, B C A, C A B, …): no spec always follows the same one. */
  rotate?: boolean;
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

/** Keys holding `valueBytes`-byte values in ZiStore, for gets (written once per cluster and size). */
export async function preloadKeys(cluster: BenchCluster, valueBytes: number, count = 1000): Promise<string[]> {
  const leader = await cluster.leader();
  return preloadGetKeys(cluster, zistoreSession(cluster.client(), leader), valueBytes, valueOf(valueBytes), count);
}

export function isPeer(system: SystemId): system is PeerId {
  return system !== 'zistore' && system !== 'nats-echo';
}

export function runLabel(spec: RunSpec, node: string | null): string {
  const size = formatBytes(spec.valueBytes);
  const writers = (spec.writers ?? 1) > 1 ? ` (${spec.writers} writers)` : '';
  const mode = spec.keyMode === 'append' ? ' append' : spec.records !== undefined ? ' overwrite' : '';
  const records = spec.records !== undefined ? ` ${spec.records} rec` : '';
  if (spec.system === 'nats-echo') {
    const relay = spec.fanout ? ` relay→${spec.fanout}` : '';
    return `echo ${spec.op}-shaped${relay} ${size} ×${spec.inflight}${writers}`;
  }
  if (spec.system === 'zistore') {
    return `zistore ${spec.op}${mode} ${size}${records} @${spec.target ?? 'leader'}${node ? `(${node})` : ''} ×${spec.inflight}${writers}`;
  }
  return `${spec.peer?.name ?? SYSTEM_NAMES[spec.system]} ${spec.op}${mode} ${size}${records} ×${spec.inflight}${writers}`;
}

/** A spec resolved to its sessions, node, label and per-worker operations. */
interface Prepared {
  spec: RunSpec;
  target: Target;
  node: string | null;
  label: string;
  operation: (worker: number) => Operation;
  /** After the runs (append clean-up). */
  after?: () => Promise<void>;
}

let appendEpoch = 0;

async function prepare(ctx: ScenarioContext, setCluster: BenchCluster, spec: RunSpec): Promise<Prepared | null> {
  const cluster = spec.cluster ?? setCluster;
  const value = valueOf(spec.valueBytes);
  if (spec.system === 'nats-echo') {
    const shape =
      spec.op === 'put'
        ? { requestBody: value, replyBytes: 0, fanout: spec.fanout ?? 0 }
        : { requestBody: new Uint8Array(0), replyBytes: spec.valueBytes };
    return {
      spec,
      target: 'echo',
      node: null,
      label: runLabel(spec, null),
      operation: (w) => echoOperation(cluster.connections[w % cluster.connections.length]!, shape),
    };
  }

  // Sessions: one per writer, each with its own connection.
  // Default: one writer per load connection (--connections).
  const writers = Math.max(1, spec.writers ?? cluster.connections.length);
  let node: string | null = null;
  let target: Target = 'peer';
  let owner: object;
  const sessions: KvSession[] = [];
  if (spec.system === 'zistore') {
    const zt = spec.target ?? 'leader';
    target = zt;
    node = await resolveZiNode(cluster, zt);
    for (let i = 0; i < writers; i++) sessions.push(await zistoreWriterSession(cluster, i, zt, node));
    owner = cluster;
  } else {
    const peer = spec.peer ?? (await ctx.peers()).get(spec.system);
    if (!peer) return null;
    for (let i = 0; i < writers; i++) sessions.push(await peer.session(i));
    owner = peer;
  }
  const sessionOf = (w: number) => sessions[w % writers]!;
  const label = runLabel(spec, node) + (spec.tag ? ` [${spec.tag}]` : '');
  const run = (operation: Prepared['operation'], after?: Prepared['after']): Prepared => ({ spec, target, node, label, operation, after });

  if (spec.custom) {
    const custom = spec.custom;
    return run((w) => custom.build(sessionOf(w), w));
  }
  if (spec.op === 'get') {
    const keys = await preloadGetKeys(owner, sessions[0]!, spec.valueBytes, value);
    return run((w) => {
      const session = sessionOf(w);
      const offset = (w * 7919) % keys.length;
      return async (seq) => {
        const got = await session.get(keys[(offset + seq) % keys.length]!);
        if (got === null) throw Object.assign(new Error('preloaded key missing'), { code: 'MISSING' });
        if (got.byteLength !== spec.valueBytes) throw Object.assign(new Error('wrong value size'), { code: 'BAD_VALUE' });
      };
    });
  }
  if (spec.op !== 'put') throw new Error(`unknown op '${spec.op}' without a custom operation`);

  const inflight = spec.inflight;
  if (spec.records !== undefined) {
    // A working set of `records` keys, shared by the workers, loaded before the run.
    const records = spec.records;
    const keys = Array.from({ length: records }, (_, i) => key16(`r${size36(spec.valueBytes)}.${records.toString(36)}.`, i));
    await inParallel(keys.length, 32, (i) => sessions[0]!.put(keys[i]!, value));
    if (spec.keyMode !== 'append') {
      return run((w) => {
        const session = sessionOf(w);
        return async (seq) => session.put(keys[(w + seq * inflight) % records]!, value);
      });
    }
  }
  if (spec.keyMode === 'append') {
    // Every put writes a key that does not exist: a prefix of its own per run and worker.
    const epoch = (appendEpoch++).toString(36);
    const written = new Array<number>(inflight).fill(0);
    const prefix = (w: number) => `a${epoch}.${w.toString(36)}.`;
    return run(
      (w) => {
        const session = sessionOf(w);
        return async (seq) => {
          written[w] = Math.max(written[w]!, seq + 1);
          await session.put(key16(prefix(w), seq), value);
        };
      },
      spec.cleanup
        ? async () => {
            const all: string[] = [];
            for (let w = 0; w < inflight; w++) for (let i = 0; i < written[w]!; i++) all.push(key16(prefix(w), i));
            await inParallel(all.length, 64, (i) => sessions[0]!.delete(all[i]!));
          }
        : undefined,
    );
  }
  const perWorker = putKeysPerWorker(inflight, spec.valueBytes);
  return run((w) => {
    const session = sessionOf(w);
    const prefix = `p${size36(spec.valueBytes)}.${w.toString(36)}.`;
    return async (seq) => session.put(key16(prefix, seq % perWorker), value);
  });
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

/** The unmeasured run of each system before a scenario's first group, as a share of its (scaled) window. */
export const PRIME_SHARE = 0.8;

/**
 * Run each spec for PRIME_SHARE of the window, unrecorded, one after the other: every system then
 * starts its measured rounds equally warm. A cold ZiStore cluster's first seconds of writes are up
 * to twice as slow as the rest (bench/README.md, "Priming"), longer than a group's own warm-up.
 */
export async function prime(ctx: ScenarioContext, cluster: BenchCluster, specs: RunSpec[], opts: SetOptions = {}): Promise<void> {
  const ms = Math.round(ctx.timing.durationMs * (opts.timeScale ?? 1) * PRIME_SHARE);
  for (const spec of specs) {
    const p = await prepare(ctx, cluster, spec);
    if (!p) continue;
    await runClosedLoop({ label: `${p.label} (warm-up, not measured)`, inflight: spec.inflight, warmupMs: 0, durationMs: ms, operation: p.operation, watched: [], progress: ctx.progress });
    if (p.after) await p.after();
  }
}

/** Warm-up of rounds after the first: the processes are warm, but caches and the JIT's focus moved. */
const REWARM_MS = 150;

/**
 * Measure several specs interleaved: `rounds` rounds of A B C …, each with 1/rounds of the
 * window, so background load drifting over time affects every spec alike (ratios stay fair on a
 * shared host). The first round of each spec gets the full warm-up. Specs share one time scale.
 * A spec whose peer is not running (not installed, failed to start) gives null.
 */
export async function measureSetOptional(ctx: ScenarioContext, cluster: BenchCluster, specs: RunSpec[], opts: SetOptions = {}): Promise<(Measurement | null)[]> {
  if (ctx.waitQuietMs > 0) await waitQuiet(ctx);
  const prepared: (Prepared | null)[] = [];
  for (const spec of specs) prepared.push(await prepare(ctx, cluster, spec));
  const scale = opts.timeScale ?? 1;
  const rounds = opts.rounds ?? ctx.rounds;
  const accs = prepared.map((p) => (p ? new LoadAccumulator(p.label, p.spec.inflight) : null));
  const sliceMs = Math.max(100, Math.round((ctx.timing.durationMs * scale) / rounds));
  // Each run's CPU is that of its own cluster (a spec may name another) and the peers (a spec's own peer too).
  const watchedOf = (p: Prepared) => [...(p.spec.cluster ?? cluster).watched(), ...(ctx.startedPeers()?.watched() ?? []), ...(p.spec.peer?.watched() ?? [])];
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < prepared.length; k++) {
      const i = opts.rotate ? (r + k) % prepared.length : k;
      const p = prepared[i];
      if (!p) continue;
      await runRound(
        {
          label: rounds > 1 ? `${p.label} (round ${r + 1}/${rounds})` : p.label,
          inflight: p.spec.inflight,
          warmupMs: r === 0 ? Math.round(ctx.timing.warmupMs * scale) : Math.min(REWARM_MS, ctx.timing.warmupMs),
          durationMs: sliceMs,
          operation: p.operation,
          watched: watchedOf(p),
          progress: ctx.progress,
        },
        accs[i]!,
      );
    }
  }
  for (const p of prepared) if (p?.after) await ctx.progress.step(`cleaning up after ${p.label}`, p.after);
  const nodesOf = (c: BenchCluster) => c.local.view().filter((n) => n.running).length;
  return prepared.map((p, i) => {
    if (!p) return null;
    const nodes = nodesOf(p.spec.cluster ?? cluster);
    const m: Measurement = {
      ...accs[i]!.result(),
      system: p.spec.system,
      op: p.spec.op,
      valueBytes: p.spec.valueBytes,
      target: p.target,
      node: p.node,
      ...(p.spec.fanout ? { fanout: p.spec.fanout } : {}),
      ...((p.spec.writers ?? 1) > 1 ? { writers: p.spec.writers } : {}),
      ...(p.spec.keyMode ? { keyMode: p.spec.keyMode } : {}),
      ...(p.spec.records !== undefined ? { records: p.spec.records } : {}),
      nodes: p.spec.system === 'zistore' || p.spec.system === 'nats-echo' ? nodes : 0,
      connections: cluster.connections.length,
    };
    ctx.section.measurement(m);
    if (m.errorCount > 0) ctx.log(`  warning: ${m.label}: ${m.errorCount} errors ${JSON.stringify(m.errors)}`);
    return m;
  });
}

/** measureSetOptional for specs that must all run (ZiStore and echo). */
export async function measureSet(ctx: ScenarioContext, cluster: BenchCluster, specs: RunSpec[], opts: SetOptions = {}): Promise<Measurement[]> {
  const ms = await measureSetOptional(ctx, cluster, specs, opts);
  return ms.map((m, i) => {
    if (!m) throw new Error(`${SYSTEM_NAMES[specs[i]!.system]} is not available`);
    return m;
  });
}

/** Measure one spec on its own (no interleaving partner). */
export async function measure(ctx: ScenarioContext, cluster: BenchCluster, spec: RunSpec, opts: SetOptions = {}): Promise<Measurement> {
  return (await measureSet(ctx, cluster, [spec], opts))[0]!;
}

/** a / b, or null when b is not positive. */
export function ratio(a: number, b: number): number | null {
  return b > 0 ? a / b : null;
}
