// A whole ZiStore cluster in one process, on virtual time: N ZiNodes on a MemoryNetwork and a
// MemoryZooKeeper, a seeded Rng, fault hooks, and a client API that records every operation in
// the checker's history format. Scenario tests script it directly; run.ts drives it with a random
// workload and a random nemesis per seed.
import type { NodeChanges } from '../check/watch-check.ts';
import { Buffer } from 'node:buffer';
import { defaultNodeConfig, ZiNode, type NodeConfig } from '../../actors/node.ts';
import type { CoordEvent, MemberState, Role } from '../../actors/ports.ts';
import { NO_TTL_DESCRIPTION, type ClientReply, type ClientRequest, type PeerMessage } from '../../actors/protocol.ts';
import { readBinaryScanReply, type ScanResult } from '../../actors/scan.ts';
import { MemoryNetwork, type ClientOutcome, type LinkProfile } from '../../bus/memory-bus.ts';
import type { ClientInput, KvInput, KvOutput, Operation } from '../check/history.ts';
import { txnBody } from '../support/txn-body.ts';
import { formatInput } from '../check/format.ts';
import type { TxnResult } from '../../actors/txn.ts';
import { createMemoryCoordinator, MemoryZooKeeper, type MemoryCoordinator } from '../../coordination/memory-zookeeper.ts';
import { clusterPaths, sortElectionNames } from '../../coordination/paths.ts';
import { Rng } from './rng.ts';
import { NodeClock, Scheduler } from './scheduler.ts';
import { Trace } from './trace.ts';
import { MemoryDisk } from '../../storage/memory-disk.ts';
import { leaseCertainlyOverMs } from '../../actors/time.ts';

export interface ClusterOptions {
  seed: number;
  /** Number of nodes, named n1..nN. */
  nodes: number;
  sessionTimeoutMs?: number;
  node?: Partial<Omit<NodeConfig, 'nodeId' | 'cluster'>>;
  profile?: Partial<LinkProfile>;
  zkLatencyMs?: readonly [number, number];
  trace?: boolean;
  /**
   * Every node keeps its copy on a simulated disk that outlives its crashes, a sync taking this
   * many ms (a crash loses what was not synced yet); memory only when omitted.
   */
  diskSyncMs?: number;
}

export const SIM_CLUSTER = 'sim';

/**
 * Overrides of defaultNodeConfig for the simulation. joinTimeoutMs: the default (120 s) is sized
 * for streaming large snapshots; a joiner whose transfer the leader abandoned waits all of it
 * (FINDINGS.md), and the simulation's data sets are tiny, so 8 s lets seeds settle.
 */
export const SIM_NODE_CONFIG: Partial<NodeConfig> = { joinTimeoutMs: 8000 };
export const SESSION_TIMEOUT_MS = 2000;

export type ViolationKind = 'two-leaders' | 'lease-not-target' | 'read-without-session' | 'bad-status' | 'start-failed';

export interface Violation {
  kind: ViolationKind;
  text: string;
  timeMs: number;
}

interface Slot {
  readonly id: string;
  incarnation: number;
  clock: NodeClock;
  coordinator: MemoryCoordinator;
  node: ZiNode | null;
  up: boolean;
  /** The node's disk, kept across its incarnations (durable clusters only). */
  disk: MemoryDisk | null;
  /** Virtual time this node last forwarded a read to a leader (for the stale-read invariant). */
  lastReadForwardMs: number;
}

export interface NodeView {
  id: string;
  up: boolean;
  session: string;
  role: Role;
  state: MemberState;
  epoch: number;
  leader: string | null;
  keys: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class SimCluster {
  readonly scheduler = new Scheduler();
  readonly rng: Rng;
  readonly net: MemoryNetwork;
  readonly zk: MemoryZooKeeper;
  readonly trace: Trace;
  readonly ids: string[];
  readonly history: Operation[] = [];
  /** Broken invariants, in order (one entry per episode): any entry fails the run. */
  readonly violations: Violation[] = [];
  readonly sessionTimeoutMs: number;
  readonly config: Omit<NodeConfig, 'nodeId'>;
  private readonly slots = new Map<string, Slot>();
  private readonly leaderOfEpoch = new Map<number, string>();
  /** When a leader began to serve (the first time one of its epoch was seen serving): the checker's bound on expiries. */
  readonly takeovers: number[] = [];
  /** Lease-holders missing from their leader's targets, by "follower>leader@epoch", since when. */
  private readonly untargeted = new Map<string, number>();
  /** Nodes a clog fault holds (clog, until unclog), apart from the clog of a pause. */
  private readonly clogFaults = new Set<string>();
  private opCounter = 0;

  constructor(readonly options: ClusterOptions) {
    this.rng = new Rng(options.seed, 'cluster');
    this.sessionTimeoutMs = options.sessionTimeoutMs ?? SESSION_TIMEOUT_MS;
    this.config = { cluster: SIM_CLUSTER, ...defaultNodeConfig, ...SIM_NODE_CONFIG, ...options.node };
    if (leaseCertainlyOverMs(this.config.leaseMs) >= this.sessionTimeoutMs) throw new RangeError('the session timeout must exceed lease × 1.1 + 20 ms (docs/safety.md)');
    const clock = this.scheduler.clock;
    this.trace = new Trace(() => this.scheduler.now(), options.trace ?? false);
    this.net = new MemoryNetwork({
      clock,
      random: this.rng.fork('network').asFunction(),
      profile: options.profile,
      observer: {
        peerDelivered: (from, to, message) => {
          if (message.type === 'read') {
            const slot = this.slots.get(from);
            if (slot) slot.lastReadForwardMs = this.scheduler.now();
          }
          if (this.trace.enabled && message.type !== 'lease') this.trace.note(to, `<- ${from} ${describeMessage(message)}`);
        },
        clientAnswered: (node, request, reply) => this.checkAnswer(node, request, reply),
        dropped: (from, to, what) => this.trace.note('net', `dropped ${from}->${to} ${what}`),
      },
    });
    const [latMin, latMax] = options.zkLatencyMs ?? [0.5, 3];
    this.zk = new MemoryZooKeeper({
      clock,
      random: this.rng.fork('zookeeper').asFunction(),
      latencyMsMin: latMin,
      latencyMsMax: latMax,
      trace: (what, data) => this.trace.note('zk', `${what} ${JSON.stringify(data)}`),
    });
    this.ids = Array.from({ length: options.nodes }, (_, i) => `n${i + 1}`);
    this.scheduler.onQuiescent = () => this.checkInvariants();
  }

  now(): number {
    return this.scheduler.now();
  }

  // ---- nodes ----------------------------------------------------------------------------

  /** Start every node (in id order, a few ms apart, as a launcher would). */
  async start(staggerMs = 5): Promise<void> {
    for (const id of this.ids) {
      this.boot(id);
      await this.scheduler.runFor(staggerMs);
    }
  }

  private boot(id: string): void {
    const previous = this.slots.get(id);
    const incarnation = (previous?.incarnation ?? 0) + 1;
    const clock = new NodeClock(`${id}#${incarnation}`, this.scheduler);
    const bus = this.net.attach(id, clock.clock);
    const log = this.trace.log({ node: id });
    const coordinator = createMemoryCoordinator({
      zk: this.zk,
      cluster: SIM_CLUSTER,
      nodeId: id,
      clock: clock.clock,
      sessionTimeoutMs: this.sessionTimeoutMs,
      log,
    });
    const disk = previous?.disk ?? (this.options.diskSyncMs === undefined ? null : new MemoryDisk(this.scheduler.clock, this.options.diskSyncMs));
    const slot: Slot = { id, incarnation, clock, coordinator, node: null, up: true, disk, lastReadForwardMs: -Infinity };
    this.slots.set(id, slot);
    const traced = this.trace.enabled ? this.tracedCoordinator(id, coordinator) : coordinator;
    ZiNode.start({ ...this.config, nodeId: id }, { bus, coordinator: traced, clock: clock.clock, log, disk: disk ?? undefined }).then(
      (node) => {
        if (slot.up) slot.node = node;
      },
      (err: unknown) => this.violation('start-failed', `${id}: ZiNode.start failed: ${String(err)}`),
    );
    this.trace.note(id, `boot #${incarnation}`);
  }

  private tracedCoordinator(id: string, inner: MemoryCoordinator): MemoryCoordinator {
    return {
      ...inner,
      start: (listener: (e: CoordEvent) => void) =>
        inner.start((e) => {
          this.trace.note(id, `coord ${JSON.stringify(e)}`);
          listener(e);
        }),
    };
  }

  /** kill -9: no graceful stop; messages to it find no responder, its session expires on the server. */
  crash(id: string): void {
    const slot = this.slot(id);
    if (!slot.up) return;
    this.trace.note(id, 'CRASH');
    slot.up = false;
    slot.clock.kill();
    this.net.crash(id);
    slot.coordinator.crash();
    slot.disk?.crash();
    slot.node = null;
  }

  /** The node's simulated disk (durable clusters only). */
  diskOf(id: string): MemoryDisk | null {
    return this.slot(id).disk;
  }

  /** Is every node's copy kept on a disk that outlives a crash? */
  get durable(): boolean {
    return this.options.diskSyncMs !== undefined;
  }

  /** A fresh process with the same id (its memory is gone; its disk, if any, is not). */
  restart(id: string): void {
    const slot = this.slot(id);
    if (slot.up) return;
    this.trace.note(id, 'RESTART');
    this.boot(id);
  }

  /** Graceful stop of one node (handover if leader). */
  async stop(id: string): Promise<void> {
    const slot = this.slot(id);
    const node = slot.node;
    if (!slot.up || node === null) return;
    this.trace.note(id, 'STOP');
    await node.stop();
    slot.up = false;
    slot.clock.kill();
    slot.node = null;
  }

  isUp(id: string): boolean {
    return this.slot(id).up;
  }

  isPaused(id: string): boolean {
    const slot = this.slot(id);
    return slot.up && slot.clock.paused;
  }

  node(id: string): ZiNode | null {
    return this.slot(id).node;
  }

  private slot(id: string): Slot {
    const slot = this.slots.get(id);
    if (slot === undefined) throw new RangeError(`no node ${id}`);
    return slot;
  }

  // ---- faults (all traced) ----------------------------------------------------------------

  zkPartition(id: string, detectAfterMs = 0): void {
    this.trace.note(id, `ZK PARTITION (noticed after ${detectAfterMs.toFixed(0)} ms)`);
    this.zk.partition(id, { detectAfterMs });
  }

  zkRestore(id: string): void {
    this.trace.note(id, 'ZK RESTORE');
    this.zk.restore(id);
  }

  zkWipe(): void {
    this.trace.note('zk', 'ZK WIPED (every session and znode gone)');
    this.zk.wipe();
    // Epochs start again at 1 with the empty tree: one leader per epoch holds within each era.
    this.leaderOfEpoch.clear();
  }

  zkExpire(id: string): void {
    this.trace.note(id, 'ZK EXPIRE NOW');
    this.zk.expireNow(id);
  }

  zkIsolateServer(id: string, serverDetectMs: number): void {
    this.trace.note(id, `ZK SERVER ISOLATED (drops its clients after ${serverDetectMs.toFixed(0)} ms)`);
    this.zk.isolateServer(id, serverDetectMs);
  }

  isolate(id: string): void {
    this.trace.note(id, 'BUS ISOLATE');
    this.net.isolate(id);
  }

  rejoin(id: string): void {
    this.trace.note(id, 'BUS REJOIN');
    this.net.rejoin(id);
  }

  cut(a: string, b: string, oneWay = false): void {
    this.trace.note(a, `BUS CUT ${oneWay ? '->' : '<->'} ${b}`);
    this.net.cut(a, b, { oneWay });
  }

  uncut(a: string, b: string): void {
    this.trace.note(a, `BUS UNCUT ${b}`);
    this.net.uncut(a, b);
  }

  /**
   * The process stops for `ms` (SIGSTOP, a long GC pause): its timers wait, messages to and from it
   * wait in the network, its ZooKeeper link goes silent (the server may expire the session), and
   * when it resumes everything overdue happens at once.
   */
  pause(id: string, ms: number): void {
    const slot = this.slot(id);
    if (!slot.up || slot.clock.paused) return;
    this.trace.note(id, `PAUSE for ${ms.toFixed(0)} ms`);
    const clock = slot.clock;
    clock.pause();
    this.net.clogNode(id);
    this.zk.partition(id, { detectAfterMs: Infinity });
    this.scheduler.clock.setTimeout(() => {
      if (!clock.alive || !clock.paused) return;
      clock.resume();
      this.zk.restore(id);
      this.trace.note(id, this.clogFaults.has(id) ? 'RESUME (its messages still clogged)' : 'RESUME');
      if (!this.clogFaults.has(id)) this.net.unclogNode(id);
    }, ms);
  }

  clog(id: string): void {
    this.trace.note(id, 'BUS CLOG');
    this.clogFaults.add(id);
    this.net.clogNode(id);
  }

  /**
   * A node's messages flow again once neither a clog fault nor a pause holds them: a paused
   * process reads nothing (seed 170911, multi-key: a clog that ended during a pause let a paused
   * node answer reads), and a resumed one stays clogged while its clog fault lasts.
   */
  unclog(id: string): void {
    this.clogFaults.delete(id);
    if (this.isPaused(id)) {
      this.trace.note(id, 'BUS UNCLOG (held while paused)');
      return;
    }
    this.trace.note(id, 'BUS UNCLOG');
    this.net.unclogNode(id);
  }

  setProfile(profile: Partial<LinkProfile>): void {
    this.net.profile = { ...this.net.profile, ...profile };
  }

  /** Heal every fault: network, ZooKeeper links, message loss; restart crashed nodes. */
  healAll(options: { restart?: boolean } = {}): void {
    this.trace.note('world', 'HEAL ALL');
    this.net.heal();
    this.clogFaults.clear();
    this.net.profile = { ...this.net.profile, dropRate: 0, duplicateRate: 0, slowRate: 0 };
    this.zk.restoreAll();
    for (const slot of this.slots.values()) if (slot.up) slot.clock.resume();
    if (options.restart ?? true) for (const id of this.ids) if (!this.isUp(id)) this.restart(id);
  }

  // ---- observation ------------------------------------------------------------------------

  view(id: string): NodeView {
    const slot = this.slot(id);
    const node = slot.node;
    if (!slot.up || node === null) {
      return { id, up: slot.up, session: 'down', role: 'follower', state: 'suspended', epoch: 0, leader: null, keys: 0 };
    }
    const s = node.status();
    return { id, up: true, session: s.session, role: s.role, state: s.state, epoch: s.epoch, leader: s.leader, keys: s.keys };
  }

  views(): NodeView[] {
    return this.ids.map((id) => this.view(id));
  }

  describe(): string {
    return this.views()
      .map((v) => (v.up ? `${v.id}:${v.role[0]}/${v.state}/${v.session}/e${v.epoch}` : `${v.id}:down`))
      .join(' ');
  }

  /** Nodes serving as leader right now. */
  servingLeaders(): string[] {
    const out: string[] = [];
    for (const id of this.ids) {
      const node = this.slots.get(id)?.node;
      if (!node) continue;
      const d = node.describe();
      if (d.role === 'leader' && d.state === 'serving') out.push(id);
    }
    return out;
  }

  leader(): string | null {
    const leaders = this.servingLeaders();
    return leaders.length === 1 ? leaders[0]! : null;
  }

  /** Every node is up, connected and serving, with exactly one leader. */
  allServing(): boolean {
    let leaders = 0;
    for (const id of this.ids) {
      const slot = this.slot(id);
      if (!slot.up || slot.node === null) return false;
      const d = slot.node.describe();
      if (d.state !== 'serving') return false;
      if (d.role === 'leader') leaders++;
    }
    return leaders === 1;
  }

  /** The node whose election znode heads the line in ZooKeeper, or null. */
  electionHead(): string | null {
    const path = clusterPaths(SIM_CLUSTER).election;
    const first = sortElectionNames(this.zk.children(path))[0];
    return first === undefined ? null : (this.zk.peek(`${path}/${first}`) ?? null);
  }

  /** Runs until `cond` holds or `maxMs` of virtual time pass. */
  waitFor(cond: () => boolean, maxMs: number): Promise<boolean> {
    return this.scheduler.runUntilTrue(cond, maxMs);
  }

  run(ms: number): Promise<void> {
    return this.scheduler.runFor(ms);
  }

  // ---- invariants -----------------------------------------------------------------------

  /**
   * Checked at every quiescent point:
   * - at most one node serves as leader of any epoch;
   * - a follower serving reads from its own copy under a lease of leader L is one of L's write
   *   targets (otherwise it misses writes while it answers reads: stale reads).
   */
  private checkInvariants(): void {
    let leaders: { id: string; epoch: number; term: TermView | null }[] | null = null;
    for (const id of this.ids) {
      const node = this.slots.get(id)?.node;
      if (!node) continue;
      const d = node.describe();
      if (d.role !== 'leader' || d.state !== 'serving') continue;
      const epoch = node.status().epoch;
      (leaders ??= []).push({ id, epoch, term: termOf(node) });
      const known = this.leaderOfEpoch.get(epoch);
      if (known === undefined) {
        this.leaderOfEpoch.set(epoch, id);
        this.takeovers.push(this.now());
        this.trace.note(id, `LEADER SERVING epoch ${epoch}`);
      } else if (known !== id) {
        this.violation('two-leaders', `two leaders serve epoch ${epoch}: ${known} and ${id}`);
      }
    }
    if (leaders === null) {
      this.untargeted.clear();
      return;
    }
    const seen = new Set<string>();
    for (const id of this.ids) {
      const slot = this.slots.get(id);
      const node = slot?.node;
      if (!slot || !node || slot.clock.paused) continue;
      const d = node.describe();
      if (d.role !== 'follower' || d.state !== 'serving') continue;
      const s = node.status();
      const leader = leaders.find((l) => l.id === s.leader && l.epoch === s.epoch);
      if (leader?.term && !leader.term.targets.has(id)) {
        const key = `${id}>${leader.id}@${leader.epoch}`;
        seen.add(key);
        if (!this.untargeted.has(key)) {
          this.untargeted.set(key, this.now());
          this.violation('lease-not-target', `${id} serves reads under a lease from ${leader.id} (epoch ${leader.epoch}) but is not one of its write targets`);
        }
      }
    }
    for (const [key, since] of this.untargeted) {
      if (seen.has(key)) continue;
      this.untargeted.delete(key);
      this.trace.note('CHECK', `${key} lease-holder without writes for ${(this.now() - since).toFixed(1)} ms`);
    }
  }

  /**
   * A node that answers a read must hold a live session, unless it forwarded the read to the
   * leader (then the leader's session vouches for the answer).
   */
  private checkAnswer(id: string, request: ClientRequest, reply: ClientReply): void {
    if (request.op !== 'get' || !reply.ok) return;
    const slot = this.slots.get(id);
    if (!slot?.node) return;
    // What counts is the ensemble's truth, not the node's view: a node connected to a server cut
    // from its quorum still sees its session connected after the quorum expired it.
    const session = slot.node.status().session;
    if (session === 'connected' && this.zk.isSessionAlive(slot.coordinator.currentSessionId())) return;
    if (this.now() - slot.lastReadForwardMs <= this.config.opTimeoutMs) return;
    this.violation('read-without-session', `${id} answered a read from its own copy with session ${session} (alive in ZooKeeper: ${this.zk.isSessionAlive(slot.coordinator.currentSessionId())})`);
  }

  violation(kind: ViolationKind, text: string): void {
    const v: Violation = { kind, text, timeMs: this.now() };
    if (this.violations.length < 50) this.violations.push(v);
    this.trace.note('CHECK', `VIOLATION ${kind}: ${text}`);
  }

  // ---- clients ----------------------------------------------------------------------------

  /**
   * One client operation through `nodeId`, recorded in the history. The client waits a little
   * longer than the node's operation timeout (PROTOCOL.md); no reply means an unknown outcome.
   */
  async op(client: string, nodeId: string, input: ClientInput, timeoutMs = this.config.opTimeoutMs + 1000): Promise<Operation> {
    const op: Operation = { id: this.opCounter++, client, input, call: this.now(), ret: null, output: { status: 'unknown' } };
    this.history.push(op);
    const headers = new Map<string, string[]>();
    if (input.op === 'scan') {
      headers.set('Zi-Scan', ['values']);
      if (input.key !== '') headers.set('Zi-Prefix', [input.key]);
      // Both reply formats, the forwarded path to the leader included.
      if (op.id % 2 === 0) headers.set('Zi-Scan-Format', ['binary']);
    } else if (input.op === 'txn') {
      // Everything is in the body.
    } else {
      headers.set('Zi-Key', [input.key]);
    }
    if (input.op !== 'get' && input.ifRevision !== undefined) headers.set('Zi-If-Revision', [String(input.ifRevision)]);
    if (input.op === 'put' && input.ttlMs !== undefined) headers.set('Zi-TTL', [String(input.ttlMs)]);
    const request: ClientRequest = {
      op: input.op,
      headers,
      data: input.op === 'put' ? encoder.encode(input.value) : input.op === 'txn' ? encoder.encode(txnBody(input.txn)) : new Uint8Array(0),
    };
    this.trace.note(client, `-> ${nodeId} ${describeInput(input)}  op${op.id}`);
    const outcome = await this.net.clientRequest(nodeId, request, timeoutMs);
    const output = this.toOutput(op, outcome);
    op.output = output;
    op.ret = outcome.kind === 'timeout' ? null : this.now();
    this.trace.note(client, `<- ${nodeId} ${JSON.stringify(output)}  op${op.id}`);
    return op;
  }

  private toOutput(op: Operation, outcome: ClientOutcome): KvOutput {
    if (outcome.kind === 'timeout') return { status: 'unknown' };
    if (outcome.kind === 'no-responders') return { status: 'unavailable' };
    const reply = outcome.reply;
    if (reply.ok) {
      if (op.input.op === 'get') {
        return { status: 'ok', value: reply.data === undefined ? undefined : decoder.decode(reply.data), revision: reply.revision };
      }
      if (op.input.op === 'txn') {
        // One that wrote nothing has no revision of its own (it answers with the node's latest).
        const result = JSON.parse(decoder.decode(reply.data)) as TxnResult;
        return { status: 'ok', revision: result.written > 0 ? result.revision : undefined };
      }
      if (op.input.op === 'scan') {
        const result = op.id % 2 === 0 ? readBinaryScanReply(reply.data!) : (JSON.parse(decoder.decode(reply.data)) as ScanResult);
        // The workload's ranges are far below one page: a page that stops early is a bug.
        if (result.more === true) this.violation('bad-status', `op${op.id} ${describeInput(op.input)} stopped with more to come`);
        if (op.id % 2 === 0 && result.revision !== reply.revision) this.violation('bad-status', `op${op.id} binary scan reply at revision ${result.revision}, header ${reply.revision}`);
        const text = (v: Uint8Array | string | undefined) => (typeof v === 'string' ? decoder.decode(Buffer.from(v, 'base64')) : v === undefined ? '' : decoder.decode(v));
        return { status: 'ok', revision: reply.revision, entries: (result.entries ?? []).map((e) => ({ key: e.key, revision: e.revision, value: text(e.value) })) };
      }
      return { status: 'ok', revision: reply.revision };
    }
    switch (reply.code) {
      case 404:
        return { status: 'not-found' };
      case 409:
        return { status: 'conflict', ...(reply.failedCompare !== undefined ? { failedCompare: reply.failedCompare } : {}) };
      case 503:
        return { status: 'unavailable' };
      case 504:
        return { status: 'unknown' };
      default:
        if (reply.code === 400 && op.input.op === 'keepalive' && reply.description === NO_TTL_DESCRIPTION) return { status: 'no-ttl' };
        // 500 is a bug in the node; 400 and 413 a bug in the harness. Either fails the run.
        this.violation('bad-status', `op${op.id} ${describeInput(op.input)} answered ${reply.code}: ${reply.description}`);
        return { status: 'unknown' };
    }
  }

  /** Runs the world until `work` settles (at most `maxMs` of virtual time), then returns its value. */
  async settle<T>(work: Promise<T>, maxMs = 30_000): Promise<T> {
    let outcome: { ok: true; value: T } | { ok: false; err: unknown } | null = null;
    work.then(
      (value) => (outcome = { ok: true, value }),
      (err: unknown) => (outcome = { ok: false, err }),
    );
    if (!(await this.waitFor(() => outcome !== null, maxMs))) throw new Error(`did not settle within ${maxMs} ms of virtual time`);
    const o = outcome as unknown as { ok: true; value: T } | { ok: false; err: unknown };
    if (!o.ok) throw o.err;
    return o.value;
  }

  /** Scenario helpers: one operation through `node`, run to completion. */
  put(node: string, key: string, value: string, ifRevision?: number, client = 'story'): Promise<Operation> {
    return this.settle(this.op(client, node, { op: 'put', key, value, ...(ifRevision !== undefined ? { ifRevision } : {}) }));
  }

  get(node: string, key: string, client = 'story'): Promise<Operation> {
    return this.settle(this.op(client, node, { op: 'get', key }));
  }

  del(node: string, key: string, client = 'story'): Promise<Operation> {
    return this.settle(this.op(client, node, { op: 'delete', key }));
  }

  // ---- final state ------------------------------------------------------------------------

  /**
   * Committed key → "rev:value" of a node. An entry still invalid (a lost validate) shows its
   * committed value and its pending write, so the caller can accept either.
   */
  /** What a watch at `id` would read now (null when the node is down). */
  changesOf(id: string): NodeChanges | null {
    const node = this.node(id);
    if (node === null) return null;
    const { changes } = node.store;
    const list = [...changes.since(0)].map((c) => ({ rev: c.rev, key: c.key, kind: c.kind, value: c.value === null ? null : decoder.decode(c.value) }));
    return { node: id, floor: changes.floor, stable: changes.stable, changes: list };
  }

  storeOf(id: string): Map<string, { committed: string | null; pending: string | null }> {
    const node = this.node(id);
    const out = new Map<string, { committed: string | null; pending: string | null }>();
    if (node === null) return out;
    for (const key of node.store.keys()) {
      const e = node.store.get(key);
      if (e === undefined) continue;
      const committed = e.value === null ? null : `${e.rev}:${decoder.decode(e.value)}`;
      const pending = e.state === 'invalid' ? (e.pendingValue === null ? `${e.pendingRev}:<deleted>` : `${e.pendingRev}:${decoder.decode(e.pendingValue)}`) : null;
      if (committed === null && pending === null) continue;
      out.set(key, { committed, pending });
    }
    return out;
  }

  /** Whether the leader has a write in flight (an expiry, say, after the clients stopped). */
  leaderWriting(): boolean {
    const leader = this.leader();
    return leader !== null && [...this.storeOf(leader).values()].some((e) => e.pending !== null);
  }

  /** Differences between the leader's committed data and every other serving node's. */
  convergence(): string[] {
    const leader = this.leader();
    if (leader === null) return [`no single serving leader (${this.describe()})`];
    const reference = this.storeOf(leader);
    const problems: string[] = [];
    for (const [key, e] of reference) if (e.pending !== null) problems.push(`leader ${leader} still has a write in flight on ${key}`);
    for (const id of this.ids) {
      if (id === leader || this.view(id).state !== 'serving') continue;
      const mine = this.storeOf(id);
      const keys = new Set([...reference.keys(), ...mine.keys()]);
      for (const key of [...keys].sort()) {
        const want = reference.get(key)?.committed ?? null;
        const have = mine.get(key);
        if (!sameCopy(want, have)) problems.push(`${id} has ${key}=${have?.committed ?? 'absent'}${have?.pending ? ` (pending ${have.pending})` : ''}, leader ${leader} has ${want ?? 'absent'}`);
      }
    }
    return problems;
  }
}

function describeMessage(m: PeerMessage): string {
  const head = `${m.type} e${m.epoch}`;
  switch (m.type) {
    case 'invalidate':
      return `${head} ${m.entries.map((e) => `${e.key}@${e.rev}`).join(',')}${m.validated.length > 0 ? ` +validated ${m.validated.map((v) => `${v.key}@${v.rev}`).join(',')}` : ''}`;
    case 'validate':
      return `${head} ${m.validated.map((v) => `${v.key}@${v.rev}`).join(',')}`;
    case 'read':
      return `${head} ${m.keys.join(',')}`;
    case 'forward':
      return `${head} ${m.commands.map((c) => `${c.value === null ? 'delete' : 'put'} ${c.key}`).join(', ')}`;
    case 'snapshot':
      return `${head} seq=${m.seq} entries=${m.entries.length}${m.done ? ' done' : ''}`;
    default:
      return head;
  }
}

/**
 * A follower's entry agrees with the leader's committed value `want` ("rev:value", null = absent):
 * it holds the same committed value, or it still has that very write pending (its validate was lost:
 * validations are fire and forget, and nothing writes the key again after the run).
 */
function sameCopy(want: string | null, have: { committed: string | null; pending: string | null } | undefined): boolean {
  if ((have?.committed ?? null) === want) return true;
  const pending = have?.pending ?? null;
  if (pending === null) return false;
  return want === null ? pending.endsWith(':<deleted>') : pending === want;
}

/** What the invariants read of a leader's term. */
interface TermView {
  readonly epoch: number;
  readonly targets: ReadonlySet<string>;
  readonly replicas: ReadonlySet<string>;
}

/**
 * The leader's current term, read through ZiNode's private `term` field (private in TypeScript
 * only). A test-only peek for the invariant above; null if the shape ever changes, so a refactor
 * of the core turns the check off instead of crashing the harness.
 */
function termOf(node: ZiNode): TermView | null {
  const term = (node as unknown as { term?: unknown }).term;
  if (term === null || typeof term !== 'object') return null;
  const t = term as Partial<TermView>;
  return t.targets instanceof Set && t.replicas instanceof Set && typeof t.epoch === 'number' ? (t as TermView) : null;
}

export function describeInput(input: KvInput): string {
  if (input.op === 'scan') return `scan ${JSON.stringify(input.key)}*`;
  if (input.op === 'txn') return formatInput(input);
  const cond = input.op !== 'get' && input.ifRevision !== undefined ? ` if=${input.ifRevision}` : '';
  if (input.op === 'put') return `put ${input.key}=${input.value}${cond}${input.ttlMs !== undefined ? ` ttl=${input.ttlMs}` : ''}`;
  return `${input.op} ${input.key}${cond}`;
}

