// Simulated clients and the nemesis (random faults), both driven by the seed.
import type { ClientInput, TxnInput } from '../check/history.ts';
import { clusterPaths } from '../../coordination/paths.ts';
import { SIM_CLUSTER, type SimCluster } from './cluster.ts';
import type { Rng } from './rng.ts';

export const sleep = (cluster: SimCluster, ms: number): Promise<void> =>
  new Promise((resolve) => cluster.scheduler.clock.setTimeout(() => resolve(), ms));

export interface WorkloadOptions {
  clients: number;
  keys: string[];
  /** Clients start no new operation after this virtual time. */
  untilMs: number;
  thinkMsMin: number;
  thinkMsMax: number;
  /** Weight of scans (all keys, or one key's prefix) among the operations; 0 (none) unless asked for. */
  scanWeight?: number;
  /** Weight of transactions (compares and writes over two or three keys); 0 unless asked for. */
  txnWeight?: number;
  /**
   * Share of puts (plain and conditional) that carry a time to live: half of them SHORT_TTL_MS
   * (they expire within the run, through whatever faults come, and the checker places each
   * expiry in time), half LONG_TTL_MS (the deadline goes through every fault and never runs
   * out). 0 unless asked for, and then only it draws from the seed's stream.
   */
  ttlShare?: number;
}

/** A time to live no run reaches, however many leader changes restart it. */
export const LONG_TTL_MS = 60 * 60 * 1000;
/** Weight of keep-alives among the operations, with times to live in the workload (the other weights sum to 100 and more). */
const KEEPALIVE_WEIGHT = 6;
/** Times to live that run out within a run, ms. */
export const SHORT_TTL_MS: readonly [number, number] = [100, 1500];

/**
 * Concurrent clients: each picks a random node and a random key, and issues get, put, delete or a
 * conditional put/delete whose expected revision comes from what it last saw of that key (so
 * conditions succeed often enough to matter). Resolves when every client is done.
 */
export async function runClients(cluster: SimCluster, rng: Rng, options: WorkloadOptions): Promise<void> {
  const clients = Array.from({ length: options.clients }, (_, i) => runClient(cluster, rng.fork(`client${i + 1}`), `c${i + 1}`, options));
  await Promise.all(clients);
}

async function runClient(cluster: SimCluster, rng: Rng, name: string, options: WorkloadOptions): Promise<void> {
  /** Last revision this client saw per key; 0 = it saw the key absent. */
  const seen = new Map<string, number>();
  let n = 0;
  while (cluster.now() < options.untilMs) {
    await sleep(cluster, rng.range(options.thinkMsMin, options.thinkMsMax));
    if (cluster.now() >= options.untilMs) break;
    const node = rng.pick(cluster.ids);
    const key = rng.pick(options.keys);
    const kind = rng.weighted([
      [40, 'get'],
      [30, 'put'],
      [8, 'delete'],
      [16, 'cas'],
      [6, 'cas-delete'],
      // Last, so that a weight of 0 leaves every other draw (and so every seed) as it was.
      [options.scanWeight ?? 0, 'scan'],
      [options.txnWeight ?? 0, 'txn'],
      [(options.ttlShare ?? 0) > 0 ? KEEPALIVE_WEIGHT : 0, 'keepalive'],
    ] as const);
    const expected = rng.chance(0.85) ? (seen.get(key) ?? 0) : rng.int(0, 20);
    const value = `${name}.${++n}`;
    let input: ClientInput;
    switch (kind) {
      case 'get':
        input = { op: 'get', key };
        break;
      case 'put':
        input = { op: 'put', key, value, ...withTtl(rng, options) };
        break;
      case 'delete':
        input = { op: 'delete', key };
        break;
      case 'cas':
        input = { op: 'put', key, value, ifRevision: expected, ...withTtl(rng, options) };
        break;
      case 'cas-delete':
        input = { op: 'delete', key, ifRevision: expected === 0 ? 1 : expected };
        break;
      case 'scan':
        input = { op: 'scan', key: rng.chance(0.7) ? '' : key };
        break;
      case 'txn':
        input = { op: 'txn', key: '', txn: randomTxn(rng, options.keys, seen, value) };
        break;
      case 'keepalive':
        input = { op: 'keepalive', key };
        break;
    }
    const op = await cluster.op(name, node, input);
    const out = op.output;
    if (input.op === 'scan' || input.op === 'txn') continue;
    if (out.status === 'ok') {
      if (input.op === 'delete') seen.set(key, 0);
      else if (out.revision !== undefined) seen.set(key, out.revision);
    } else if (out.status === 'not-found') {
      seen.set(key, 0);
    }
  }
}

function withTtl(rng: Rng, options: WorkloadOptions): { ttlMs?: number } {
  if (!((options.ttlShare ?? 0) > 0 && rng.chance(options.ttlShare!))) return {};
  return { ttlMs: rng.chance(0.5) ? rng.int(...SHORT_TTL_MS) : LONG_TTL_MS };
}

/** Two or three keys written (puts, sometimes a delete), under compares that hold often: what this client last saw. */
function randomTxn(rng: Rng, keys: readonly string[], seen: ReadonlyMap<string, number>, value: string): TxnInput {
  const written = rng.shuffle([...keys]).slice(0, rng.int(2, Math.min(3, keys.length)));
  const compare: TxnInput['compare'] = [];
  for (const key of rng.shuffle([...keys]).slice(0, rng.int(0, 2))) {
    const last = seen.get(key);
    if (last === undefined || rng.chance(0.1)) compare.push({ key, revision: rng.int(1, 20) });
    else compare.push(last === 0 ? { key, absent: true } : { key, revision: last });
  }
  return { compare, ops: written.map((key) => (rng.chance(0.2) ? { op: 'delete', key } : { op: 'put', key, value })) };
}

// ---- nemesis ----------------------------------------------------------------------------------

export const FAULT_KINDS = ['crash', 'crash-all', 'pause', 'zk-partition', 'zk-expire', 'cascade', 'zk-lag', 'isolate', 'cut', 'clog', 'swizzle', 'drop', 'duplicate', 'reorder', 'slow'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/**
 * What a seed injects by default: every kind but `zk-expire`. The server-side hook expires a
 * session the server heard from moments ago, which ZooKeeper never does (it expires a session
 * only one timeout after it last heard from the client, and the core relies on that through
 * sessionAliveUntil); the realistic cause of a surprise expiry is a paused process, `pause`.
 */
export const DEFAULT_FAULTS: readonly FaultKind[] = FAULT_KINDS.filter((k) => k !== 'zk-expire');

export function parseFaults(text: string | undefined): Set<FaultKind> {
  if (text === undefined || text === '' || text === 'default') return new Set(DEFAULT_FAULTS);
  if (text === 'all') return new Set(FAULT_KINDS);
  if (text === 'none') return new Set();
  const out = new Set<FaultKind>();
  for (const part of text.split(',')) {
    const kind = part.trim() as FaultKind;
    if (!FAULT_KINDS.includes(kind)) throw new RangeError(`unknown fault kind ${part}; known: ${FAULT_KINDS.join(', ')}`);
    out.add(kind);
  }
  return out;
}

export interface NemesisOptions {
  faults: ReadonlySet<FaultKind>;
  /** No new fault after this virtual time. */
  untilMs: number;
  /** Mean gap between faults. */
  gapMsMean: number;
}

/** Message-level faults for the whole run, chosen once per seed. */
export function chooseProfile(rng: Rng, faults: ReadonlySet<FaultKind>): Parameters<SimCluster['setProfile']>[0] {
  const maxDelay = rng.pick([1, 3, 8, 20]);
  return {
    delayMsMin: rng.range(0.05, Math.min(1, maxDelay / 2)),
    delayMsMax: maxDelay,
    dropRate: faults.has('drop') ? rng.pick([0, 0.002, 0.01, 0.03]) : 0,
    duplicateRate: faults.has('duplicate') ? rng.pick([0, 0.01, 0.05]) : 0,
    reorder: faults.has('reorder') ? rng.chance(0.4) : false,
    slowRate: faults.has('slow') ? rng.pick([0, 0.005, 0.02]) : 0,
    slowDelayMsMax: rng.pick([50, 200, 600]),
  };
}

const replicasPath = clusterPaths(SIM_CLUSTER).replicas;

function replicaIds(cluster: SimCluster): string[] {
  const data = cluster.zk.peek(replicasPath);
  if (data === undefined) return [];
  return (JSON.parse(data) as { ids: string[] }).ids;
}

/**
 * A crash loses a memory-only copy for good, so a crash keeps the contract's premise ("an
 * acknowledged write is never lost while one member of the replica set keeps its copy"): another
 * node must remain that is up, serving (so it holds a complete copy: a restarted process holds
 * nothing until it has rejoined), in the persisted replica set, and not cut off from ZooKeeper.
 * Nothing else needs a guard: a lost session or a pause costs no copy.
 */
function survivorBesides(cluster: SimCluster, id: string): boolean {
  // A copy on disk outlives the crash (what it loses was never acknowledged).
  if (cluster.durable) return true;
  const replicas = replicaIds(cluster);
  return cluster.ids.some(
    (x) => x !== id && cluster.view(x).state === 'serving' && (replicas.length === 0 || replicas.includes(x)) && cluster.zk.linkUp(x) && !cluster.isPaused(x),
  );
}

/** Random faults until `untilMs`, each undone after a random while (overlaps allowed). */
export async function runNemesis(cluster: SimCluster, rng: Rng, options: NemesisOptions): Promise<void> {
  const kinds = [...options.faults].filter((k) => !['drop', 'duplicate', 'reorder', 'slow'].includes(k));
  if (kinds.length === 0) return;
  const later = (ms: number, fn: () => void) => cluster.scheduler.clock.setTimeout(() => fn(), ms);
  // A delayed fault (swizzle) never lands after the heal; delayed undos always run (no-ops by then).
  const laterFault = (ms: number, fn: () => void) => later(ms, () => cluster.now() < options.untilMs && fn());
  const target = (): string => {
    const leader = cluster.leader();
    if (leader !== null && rng.chance(0.4)) return leader;
    return rng.pick(cluster.ids);
  };
  const sessionMs = cluster.sessionTimeoutMs;
  while (cluster.now() < options.untilMs) {
    await sleep(cluster, rng.range(0.2, 1.8) * options.gapMsMean);
    if (cluster.now() >= options.untilMs) break;
    const kind = rng.pick(kinds);
    const id = target();
    switch (kind) {
      case 'crash': {
        if (!cluster.isUp(id) || !survivorBesides(cluster, id)) break;
        cluster.crash(id);
        // Restart soon, or much later (the group must move on without it meanwhile).
        later(rng.chance(0.3) ? rng.range(50, 800) : rng.range(1000, 6000), () => cluster.restart(id));
        break;
      }
      case 'crash-all': {
        // Every process dies at once (a power cut); only copies on disk survive, so only a
        // durable cluster gets it. They come back one by one, in a random order.
        if (!cluster.durable) break;
        for (const x of cluster.ids) cluster.crash(x);
        // Sometimes ZooKeeper loses its data too: the nodes rebuild its replica set record.
        if (rng.chance(0.25)) cluster.zkWipe();
        let at = rng.range(50, 1500);
        for (const x of rng.shuffle(cluster.ids)) {
          later(at, () => cluster.restart(x));
          at += rng.range(0, 2000);
        }
        break;
      }
      case 'zk-partition': {
        // Noticed at once (reset connection) or up to 0.6 of the session timeout (silent link).
        const detect = rng.chance(0.3) ? 0 : rng.range(0, 0.6 * sessionMs);
        // Short enough that the session survives (the server hears a ping at most a third of the
        // timeout before the cut), or long enough that it expires. A lost session costs no copy,
        // so nothing guards it.
        const long = rng.chance(0.5);
        cluster.zkPartition(id, detect);
        later(long ? rng.range(sessionMs * 1.1, sessionMs * 3) : rng.range(100, sessionMs * 0.6), () => cluster.zkRestore(id));
        break;
      }
      case 'zk-expire':
        cluster.zkExpire(id);
        break;
      case 'cascade': {
        // Every session expires while every process lives on, and the nodes come back one by one
        // in a random order (the four-step reproduction's shape): only a node with a complete
        // copy may lead afterwards.
        for (const x of cluster.ids) cluster.zkPartition(x, rng.chance(0.5) ? 0 : rng.range(0, 0.6 * sessionMs));
        let at = rng.range(sessionMs * 1.1, sessionMs * 2);
        for (const x of rng.shuffle(cluster.ids)) {
          later(at, () => cluster.zkRestore(x));
          at += rng.range(0, 1500);
        }
        break;
      }
      case 'zk-lag':
        // The node's ZooKeeper server is cut from its quorum and answers reads from its stale view
        // until it notices (ZooKeeper: syncLimit × tickTime), while the quorum expires the session.
        cluster.zkIsolateServer(id, rng.range(0.5, 3) * sessionMs);
        break;
      case 'pause': {
        // Shorter than the lease, around the session timeout, or well past it.
        cluster.pause(id, rng.pick([rng.range(50, 900), rng.range(1500, 2500), rng.range(3000, 6000)]));
        break;
      }
      case 'isolate':
        cluster.isolate(id);
        later(rng.range(100, 4000), () => cluster.rejoin(id));
        break;
      case 'cut': {
        const other = rng.pick(cluster.ids.filter((x) => x !== id));
        const oneWay = rng.chance(0.3);
        cluster.cut(id, other, oneWay);
        later(rng.range(100, 4000), () => cluster.uncut(id, other));
        break;
      }
      case 'clog':
        cluster.clog(id);
        later(rng.range(50, 2500), () => cluster.unclog(id));
        break;
      case 'swizzle': {
        // FoundationDB swizzle-clogging: clog a random subset one by one, unclog in random order.
        const subset = rng.shuffle(cluster.ids).slice(0, rng.int(2, cluster.ids.length));
        let at = 0;
        for (const x of subset) {
          at += rng.range(20, 400);
          laterFault(at, () => cluster.clog(x));
        }
        for (const x of rng.shuffle(subset)) {
          at += rng.range(50, 600);
          later(at, () => cluster.unclog(x));
        }
        break;
      }
      default:
        break;
    }
  }
}
