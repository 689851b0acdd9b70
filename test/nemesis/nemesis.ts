// The nemesis: every few seconds, a seeded random fault on one node (kill -9 and restart,
// fast restart, SIGSTOP/SIGCONT, ZooKeeper link cut, NATS link cut; some aimed at the
// leader), healed after a random while; or a cascade on the whole cluster. Links are cut by
// resetting the connection ('close') or black-holing it ('drop'). At least one node is always
// left healthy by the single-node faults (PROTOCOL.md promises service while any number of
// nodes but one fail): a node counts as healthy again only once it serves after its heal, so a
// recovering node never is the last copy of the data. A cascade loses no process and no copy:
// it shrinks the replica set (a follower cut off NATS until the leader removes it), then cuts
// every node off ZooKeeper for longer than the session timeout, so that every session expires,
// and brings them back one by one in a random order. A crash (nodes on data dirs only) kills
// every node at once and starts them again one by one in a random order: the copies on disk
// must hold every acknowledged write.
import type { NatsConnection } from 'nats';
import type { LocalCluster } from '../../cluster/local-cluster.ts';
import { tailFile } from '../../cluster/child-process.ts';
import type { FaultName } from './options.ts';
import type { Recorder } from './history.ts';
import type { Rng } from '../sim/rng.ts';

export type FaultKind = 'kill' | 'restart' | 'pause' | 'zk' | 'rmi' | 'cascade' | 'crash';
const KINDS: readonly FaultKind[] = ['kill', 'restart', 'pause', 'zk', 'rmi', 'cascade', 'crash'];

export interface FaultRecord {
  id: number;
  kind: FaultKind;
  /** zk/rmi: 'close' or 'drop'; restart: 'term' (SIGTERM) or 'kill' (SIGKILL). */
  mode: string | null;
  node: string;
  /** Aimed at the node that was leader when the fault was chosen. */
  leader: boolean;
  /** Planned time until the heal, ms. */
  plannedMs: number;
  /** Times in ms since the run started. */
  start: number;
  heal: number | null;
  /** When the node answered `members` as serving again (null: not seen). */
  serving: number | null;
  note?: string;
}

export interface NemesisEvent {
  t: number;
  text: string;
}

type Health = 'healthy' | 'faulty' | 'recovering';

interface Active {
  record: FaultRecord;
  timer: NodeJS.Timeout | null;
  undo: () => Promise<void>;
  healing: Promise<void> | null;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

interface MembersReply {
  leader: string | null;
  members: { id: string; state: string }[];
}

/** The node's own view of itself via `members` on its node subject; null when it does not answer. */
export async function memberState(nc: NatsConnection, cluster: string, id: string, timeoutMs = 1000): Promise<{ state: string; leader: string | null } | null> {
  try {
    const reply = await nc.request(`zistore.${cluster}.node.${id}.members`, new Uint8Array(0), { timeout: timeoutMs });
    if (reply.headers?.get('Nats-Service-Error-Code')) return null;
    const view = JSON.parse(new TextDecoder().decode(reply.data)) as MembersReply;
    return { state: view.members.find((m) => m.id === id)?.state ?? 'absent', leader: view.leader };
  } catch {
    return null;
  }
}

export interface NemesisConfig {
  cluster: LocalCluster;
  nc: NatsConnection;
  rng: Rng;
  recorder: Recorder;
  faults: readonly FaultName[];
  intervalMs: [number, number];
  restartMode?: 'term' | 'kill';
  /** Bound on waiting for a healed node to serve again before giving up on it. */
  recoverTimeoutMs: number;
  /** The nodes' ZooKeeper session timeout: a cascade outlasts it. */
  sessionTimeoutMs: number;
  log: (line: string) => void;
  signal?: AbortSignal;
}

export class Nemesis {
  readonly faults: FaultRecord[] = [];
  readonly events: NemesisEvent[] = [];
  /** Things that are bugs whatever the history says (a node process died on its own). */
  readonly anomalies: string[] = [];
  private readonly health = new Map<string, Health>();
  private readonly active = new Map<string, Active>();
  /** Nodes being started again: their process is expected to be down meanwhile. */
  private readonly restarting = new Set<string>();
  private readonly recoveries = new Set<Promise<void>>();
  private watchdog: NodeJS.Timeout | null = null;
  private disposed = false;
  private readonly kinds: FaultKind[];
  private readonly kindQueue: FaultKind[] = [];
  private readonly leaderShare: number;

  constructor(private readonly cfg: NemesisConfig) {
    for (const id of cfg.cluster.nodes.keys()) this.health.set(id, 'healthy');
    const base = KINDS.filter((k) => cfg.faults.includes(k));
    const wantsLeader = cfg.faults.includes('leader');
    this.kinds = base.length > 0 ? base : wantsLeader ? KINDS.filter((k) => k !== 'crash') : [];
    this.leaderShare = !wantsLeader ? 0 : base.length > 0 ? 0.5 : 1;
  }

  private now(): number {
    return this.cfg.recorder.now();
  }

  private say(text: string): void {
    const t = this.now();
    this.events.push({ t, text });
    this.cfg.log(`[${(t / 1000).toFixed(1).padStart(6)}s] ${text}`);
  }

  healthyNodes(): string[] {
    return [...this.health].filter(([, h]) => h === 'healthy').map(([id]) => id);
  }

  /** Injects faults until `running()` is false (or the abort signal fires). */
  async run(running: () => boolean): Promise<void> {
    this.startWatchdog();
    if (this.kinds.length === 0) return;
    const [lo, hi] = this.cfg.intervalMs;
    while (running() && !this.cfg.signal?.aborted) {
      await sleep(this.cfg.rng.int(lo, hi), this.cfg.signal);
      if (!running() || this.cfg.signal?.aborted) break;
      await this.injectOne();
    }
  }

  private async findLeader(): Promise<string | null> {
    for (const id of this.healthyNodes()) {
      const view = await memberState(this.cfg.nc, this.cfg.cluster.name, id);
      if (view?.leader) return view.leader;
    }
    return null;
  }

  private async injectOne(): Promise<void> {
    const { rng } = this.cfg;
    // Draw everything up front, so the sequence of draws does not depend on the cluster's state.
    // Kinds queue up: a fault skipped for want of healthy nodes is the next one tried, so the
    // mix of kinds injected follows the seed, not how fast the cluster recovered.
    this.kindQueue.push(rng.pick(this.kinds));
    const kind = this.kindQueue.shift()!;
    const aimLeader = rng.chance(this.leaderShare);
    const linkMode = rng.chance(0.5) ? 'close' : 'drop';
    const drawnRestart = rng.chance(0.5) ? 'term' : 'kill';
    const restartMode = this.cfg.restartMode ?? drawnRestart;
    const pickU = rng.next();
    const durations: Record<FaultKind, number> = {
      kill: rng.int(1000, 8000),
      restart: rng.int(0, 1500),
      pause: rng.int(300, 5000),
      zk: rng.int(500, 8000),
      rmi: rng.int(500, 8000),
      cascade: rng.int(Math.round(this.cfg.sessionTimeoutMs * 1.2), Math.round(this.cfg.sessionTimeoutMs * 2.5)),
      crash: rng.int(0, 3000),
    };
    const returnGapsMs = this.cfg.cluster.nodes.size > 0 ? [...this.cfg.cluster.nodes.keys()].map(() => rng.int(0, 1500)) : [];
    const returnOrder = rng.shuffle([...this.cfg.cluster.nodes.keys()]);
    const planned = durations[kind];
    const healthy = this.healthyNodes();
    if (kind === 'cascade' || kind === 'crash') {
      // The whole cluster, so only when every node is healthy; otherwise try again later.
      if (healthy.length < this.cfg.cluster.nodes.size) {
        this.kindQueue.unshift(kind);
        return;
      }
      if (kind === 'cascade') await this.cascade(planned, linkMode, returnOrder, returnGapsMs);
      else await this.crash(planned, returnOrder, returnGapsMs);
      return;
    }
    // Keep at least one healthy node.
    if (healthy.length <= 1) {
      this.say(`(skip ${kind} for now: only ${healthy.join(',') || 'no node'} healthy)`);
      this.kindQueue.unshift(kind);
      return;
    }
    let node = healthy[Math.floor(pickU * healthy.length)] as string;
    let leader = false;
    if (aimLeader) {
      const l = await this.findLeader();
      if (l !== null && this.healthyNodes().includes(l) && this.healthyNodes().length > 1) {
        node = l;
        leader = true;
      }
    }
    if (this.health.get(node) !== 'healthy' || this.healthyNodes().length <= 1) {
      this.kindQueue.unshift(kind);
      return;
    }
    const mode = kind === 'zk' || kind === 'rmi' ? linkMode : kind === 'restart' ? restartMode : null;
    const record: FaultRecord = { id: this.faults.length + 1, kind, mode, node, leader, plannedMs: planned, start: this.now(), heal: null, serving: null };
    this.faults.push(record);
    this.health.set(node, 'faulty');
    const { cluster } = this.cfg;
    const label = `#${record.id} ${kind}${mode ? `(${mode})` : ''} ${node}${leader ? ' [leader]' : ''}`;
    let undo: () => Promise<void>;
    try {
      switch (kind) {
        case 'kill':
          this.restarting.add(node);
          await cluster.kill(node);
          undo = () => this.startAgain(node);
          break;
        case 'restart':
          this.restarting.add(node);
          if (mode === 'term') await cluster.stopNode(node);
          else await cluster.kill(node);
          undo = () => this.startAgain(node);
          break;
        case 'pause':
          await cluster.pause(node);
          undo = () => cluster.resume(node);
          break;
        case 'zk':
          cluster.zkDown(node, linkMode);
          undo = async () => cluster.zkUp(node);
          break;
        case 'rmi':
          cluster.rmiDown(node, linkMode);
          undo = async () => cluster.rmiUp(node);
          break;
      }
    } catch (err) {
      this.restarting.delete(node);
      record.note = `injection failed: ${(err as Error).message}`;
      this.say(`! ${label}: ${record.note}`);
      this.health.set(node, 'recovering');
      this.trackRecovery(node, record);
      return;
    }
    this.say(`+ ${label} (${((this.now() - record.start) / 1000).toFixed(1)}s to inject), heal in ${(planned / 1000).toFixed(1)}s`);
    const active: Active = { record, timer: null, undo, healing: null };
    this.active.set(node, active);
    active.timer = setTimeout(() => void this.heal(node), planned);
  }

  /**
   * A follower off NATS until the leader has removed it (the replica set shrinks), back on NATS,
   * then every node off ZooKeeper for `cutMs` (every session expires), back one by one.
   */
  private async cascade(cutMs: number, mode: 'close' | 'drop', order: string[], gapsMs: number[]): Promise<void> {
    const { cluster } = this.cfg;
    const nodes = [...cluster.nodes.keys()];
    const leader = await this.findLeader();
    const victim = nodes.find((id) => id !== leader) ?? nodes[0]!;
    const record: FaultRecord = { id: this.faults.length + 1, kind: 'cascade', mode, node: 'all', leader: false, plannedMs: cutMs, start: this.now(), heal: null, serving: null };
    this.faults.push(record);
    for (const id of nodes) this.health.set(id, 'faulty');
    const label = `#${record.id} cascade(${mode})`;
    try {
      this.say(`+ ${label}: ${victim} off NATS until the leader removes it`);
      await cluster.rmiDown(victim, mode);
      // Suspicion (1.5 leases), the last lease run out, the smaller set written: about 3 s at the defaults.
      await sleep(4000, this.cfg.signal);
      await cluster.rmiUp(victim);
      this.say(`  ${label}: every node off ZooKeeper for ${(cutMs / 1000).toFixed(1)}s, back in the order ${order.join(',')}`);
      for (const id of nodes) await cluster.zkDown(id, mode);
    } catch (err) {
      record.note = `injection failed: ${(err as Error).message}`;
      this.say(`! ${label}: ${record.note}`);
    }
    this.healInOrder(record, order, gapsMs, cutMs, (id) => async () => cluster.zkUp(id));
  }

  /** kill -9 of every node at once; after `downMs` they start again one by one in `order`. */
  private async crash(downMs: number, order: string[], gapsMs: number[]): Promise<void> {
    const { cluster } = this.cfg;
    const nodes = [...cluster.nodes.keys()];
    const record: FaultRecord = { id: this.faults.length + 1, kind: 'crash', mode: null, node: 'all', leader: false, plannedMs: downMs, start: this.now(), heal: null, serving: null };
    this.faults.push(record);
    for (const id of nodes) {
      this.health.set(id, 'faulty');
      this.restarting.add(id);
    }
    const label = `#${record.id} crash`;
    this.say(`+ ${label}: kill -9 of every node, back in ${(downMs / 1000).toFixed(1)}s in the order ${order.join(',')}`);
    try {
      await Promise.all(nodes.map((id) => cluster.kill(id)));
    } catch (err) {
      record.note = `injection failed: ${(err as Error).message}`;
      this.say(`! ${label}: ${record.note}`);
    }
    this.healInOrder(record, order, gapsMs, downMs, (id) => () => this.startAgain(id));
  }

  /** Heals each node of a whole-cluster fault in turn: the first after `firstMs`, then after each gap. */
  private healInOrder(record: FaultRecord, order: string[], gapsMs: number[], firstMs: number, undo: (id: string) => () => Promise<void>): void {
    let at = firstMs;
    order.forEach((id, i) => {
      const active: Active = { record, timer: null, undo: undo(id), healing: null };
      this.active.set(id, active);
      active.timer = setTimeout(() => void this.heal(id), at);
      at += gapsMs[i] ?? 0;
    });
  }

  private async startAgain(node: string): Promise<void> {
    try {
      await this.cfg.cluster.restart(node);
    } finally {
      this.restarting.delete(node);
    }
  }

  private heal(node: string): Promise<void> {
    const active = this.active.get(node);
    if (!active) return Promise.resolve();
    if (active.timer) clearTimeout(active.timer);
    active.timer = null;
    active.healing ??= (async () => {
      const { record } = active;
      record.heal = this.now();
      const label = `#${record.id} ${record.kind} ${node}`;
      try {
        await active.undo();
        this.say(`- heal ${label}`);
      } catch (err) {
        record.note = `heal failed: ${(err as Error).message}`;
        this.say(`! heal ${label}: ${record.note}`);
      }
      this.active.delete(node);
      this.health.set(node, 'recovering');
      this.trackRecovery(node, record);
    })();
    return active.healing;
  }

  private trackRecovery(node: string, record: FaultRecord | null): void {
    const p = (async () => {
      const since = this.now();
      const deadline = since + this.cfg.recoverTimeoutMs;
      while (!this.disposed && this.health.get(node) === 'recovering') {
        const view = await memberState(this.cfg.nc, this.cfg.cluster.name, node);
        if (this.health.get(node) !== 'recovering') return;
        if (view?.state === 'serving') {
          this.health.set(node, 'healthy');
          if (record) record.serving = this.now();
          this.say(`  ${node} serving again (${((this.now() - since) / 1000).toFixed(1)}s after heal)`);
          return;
        }
        if (this.now() > deadline) {
          this.say(`! ${node} not serving ${(this.cfg.recoverTimeoutMs / 1000).toFixed(0)}s after heal (last: ${view?.state ?? 'no answer'})`);
          return;
        }
        await sleep(100);
      }
    })();
    this.recoveries.add(p);
    void p.finally(() => this.recoveries.delete(p));
  }

  /** Watches for node processes that died without a kill: always a bug. Restarts them. */
  private startWatchdog(): void {
    if (this.watchdog) return;
    this.watchdog = setInterval(() => {
      for (const [id, handle] of this.cfg.cluster.nodes) {
        if (this.restarting.has(id)) continue;
        if (handle.process && !handle.process.isRunning()) {
          this.restarting.add(id);
          void this.onCrash(id);
        }
      }
    }, 250);
  }

  private async onCrash(id: string): Promise<void> {
    const handle = this.cfg.cluster.nodes.get(id);
    const info = await handle?.process?.exited;
    const tail = handle ? await tailFile(handle.logFile, 2000) : '';
    const text = `node ${id} exited on its own (code ${info?.code ?? '?'}, signal ${info?.signal ?? '-'})`;
    this.anomalies.push(`${text}; log tail:\n${tail}`);
    this.say(`! ${text}; starting it again`);
    const active = this.active.get(id);
    if (active) {
      // It was under a fault (paused, cut link): undo that first.
      if (active.timer) clearTimeout(active.timer);
      await active.undo().catch(() => undefined);
      this.active.delete(id);
    }
    this.health.set(id, 'faulty');
    try {
      await this.cfg.cluster.restart(id);
    } catch (err) {
      this.say(`! could not restart ${id}: ${(err as Error).message}`);
    } finally {
      this.restarting.delete(id);
    }
    this.health.set(id, 'recovering');
    this.trackRecovery(id, null);
  }

  /** Heal every active fault now and wait for the heals (not for the nodes to serve). */
  async healAll(): Promise<void> {
    await Promise.all([...this.active.keys()].map((id) => this.heal(id)));
  }

  /** Stop watching; call after healAll, before the cluster stops. */
  async dispose(): Promise<void> {
    this.disposed = true;
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = null;
    for (const a of this.active.values()) if (a.timer) clearTimeout(a.timer);
    await Promise.all([...this.recoveries]);
  }
}
