// The Coordinator port in memory, for the deterministic simulation.
//
// Three layers, mirroring the real stack so that what the node observes is the same:
//
//   MemoryZooKeeper   one shared "ensemble": a znode tree (persistent, ephemeral, sequential
//                     znodes with versions), sessions that expire on the server's clock when their
//                     client goes silent, one-shot data and child watches, multi (check + setData).
//   ZkClientSim       one client object per session, like node-zookeeper-client: a connection
//                     with FIFO latency both ways, SYNC_CONNECTED / DISCONNECTED / EXPIRED state
//                     events, operations that fail with CONNECTION_LOSS when the link drops.
//   MemoryCoordinator the port, with the observable semantics of zk-coordinator.ts: the session
//                     machine (actors/session.machine.ts) on the node's clock, including local
//                     expiry after being suspended for the session timeout; a new client (new
//                     session) after every expiry; registration (layout, members/<id> ephemeral,
//                     election/n_ ephemeral-sequential, stale znodes of an earlier process with
//                     our id replaced) before `coord.session` connected is announced, then
//                     `coord.members`, `coord.epoch` and `coord.elected` when first in line; facts
//                     emitted on change only; claimEpoch by compare-and-set; writeReplicas fenced
//                     by the epoch znode's version (DeposedError); resign() re-enters at the back;
//                     stop() closes the session so its ephemerals go at once.
//
// Fault hooks on MemoryZooKeeper: partition(node, { detectAfterMs }) cuts a node's link (its
// client notices after the detection delay and suspends; the server expires the session one
// session timeout after it last heard from it), restore(node), expireNow(node). A crash is
// MemoryCoordinator.crash(): the client dies silently and its session lingers until it expires.
//
// All timers run on injected Clocks: the server's on the world clock, the client's and the
// coordinator's on the node's clock (they die with a crashed node). All randomness comes from
// the injected `random`.
import { createActor, type Actor } from 'xstate';
import type { Clock, CoordEvent, Coordinator, EpochClaim, Log, MemberInfo, MemberState, Role, SessionState } from '../actors/ports.ts';
import { sessionMachine, type SessionMachineState } from '../actors/session.machine.ts';
import { CoordinationError, CoordinationTimeoutError, DeposedError, NotConnectedError, SessionExpiredError } from './errors.ts';
import { clusterPaths, isValidSegment, sortElectionNames } from './paths.ts';

/** ZooKeeper's error codes (the same numbers as the real Exception constants). */
export const ZkCode = {
  CONNECTION_LOSS: -4,
  OPERATION_TIMEOUT: -7,
  NO_NODE: -101,
  BAD_VERSION: -103,
  NOT_EMPTY: -111,
  NODE_EXISTS: -110,
  SESSION_EXPIRED: -112,
} as const;

export class ZkError extends Error {
  constructor(
    readonly code: number,
    readonly path: string,
  ) {
    super(`zookeeper error ${code} at ${path}`);
    this.name = 'ZkError';
  }
}

export interface ZkStat {
  version: number;
  /** Session id of the owner of an ephemeral znode, '' for a persistent one. */
  ephemeralOwner: string;
}

export type CreateMode = 'persistent' | 'ephemeral' | 'ephemeral-sequential';

interface Znode {
  data: string;
  version: number;
  ephemeralOwner: string;
  /** Next sequence number for sequential children. */
  childSeq: number;
}

interface ServerSession {
  readonly id: string;
  readonly nodeId: string;
  readonly timeoutMs: number;
  alive: boolean;
  conn: Connection | null;
  expiry: unknown;
  /** Server time of the last packet that arrived from the client. */
  lastHeardMs: number;
}

type WatchKind = 'data' | 'child';

/** One connection between a client object and the ensemble: FIFO both ways, held while the link is down. */
interface Connection {
  readonly id: number;
  readonly nodeId: string;
  readonly client: ZkClientSim;
  open: boolean;
  heldUp: Array<() => void>;
  heldDown: Array<() => void>;
  lastUpMs: number;
  lastDownMs: number;
}

export interface MemoryZooKeeperOptions {
  /** The ensemble's clock (the world's, never dies). */
  clock: Clock;
  /** Seeded uniform [0, 1). */
  random: () => number;
  /** One-way latency between a node and the ensemble. */
  latencyMsMin?: number;
  latencyMsMax?: number;
  /** Observer of notable server-side facts, for traces. */
  trace?: (what: string, data: Record<string, unknown>) => void;
}

export class MemoryZooKeeper {
  readonly clock: Clock;
  private readonly random: () => number;
  private readonly latencyMsMin: number;
  private readonly latencyMsMax: number;
  private readonly trace: (what: string, data: Record<string, unknown>) => void;
  private readonly znodes = new Map<string, Znode>([['/', { data: '', version: 0, ephemeralOwner: '', childSeq: 0 }]]);
  private readonly sessions = new Map<string, ServerSession>();
  private readonly watches: Record<WatchKind, Map<string, Set<string>>> = { data: new Map(), child: new Map() };
  private readonly conns = new Set<Connection>();
  /** Nodes whose link to the ensemble is down, with the partition's generation. */
  private readonly down = new Map<string, number>();
  private partitionGeneration = 0;
  private sessionCounter = 0;
  private connCounter = 0;

  constructor(options: MemoryZooKeeperOptions) {
    this.clock = options.clock;
    this.random = options.random;
    this.latencyMsMin = options.latencyMsMin ?? 0.5;
    this.latencyMsMax = options.latencyMsMax ?? 3;
    this.trace = options.trace ?? (() => undefined);
  }

  // ---- fault hooks -------------------------------------------------------------------------

  linkUp(nodeId: string): boolean {
    return !this.down.has(nodeId);
  }

  /**
   * Cut a node's link to the ensemble. Its client notices after `detectAfterMs` (0: at once, as on
   * a reset connection; up to 2/3 of the session timeout, the client's read timeout, for a silent
   * one). The server expires its session one session timeout after it last heard from it: a ping
   * went out at most a third of the timeout before the cut.
   */
  partition(nodeId: string, options: { detectAfterMs?: number } = {}): void {
    if (this.down.has(nodeId)) return;
    const generation = ++this.partitionGeneration;
    this.down.set(nodeId, generation);
    this.trace('zk partition', { node: nodeId, detectAfterMs: options.detectAfterMs ?? 0 });
    for (const s of this.sessions.values()) {
      if (s.alive && s.nodeId === nodeId && s.conn !== null) this.startExpiry(s);
    }
    const detectAfterMs = Math.max(0, options.detectAfterMs ?? 0);
    // Infinity: the client never notices by itself (a paused process); it learns on restore.
    if (!Number.isFinite(detectAfterMs)) return;
    for (const conn of [...this.conns]) {
      if (conn.nodeId !== nodeId) continue;
      this.clock.setTimeout(() => {
        if (conn.open && this.down.get(nodeId) === generation) conn.client.connectionLost(conn);
      }, detectAfterMs);
    }
  }

  /** Bring a node's link back: held traffic flows, an attached session's pings resume. */
  restore(nodeId: string): void {
    if (!this.down.delete(nodeId)) return;
    this.trace('zk restore', { node: nodeId });
    for (const conn of [...this.conns]) {
      if (conn.nodeId !== nodeId || !conn.open) continue;
      const up = conn.heldUp;
      const down = conn.heldDown;
      conn.heldUp = [];
      conn.heldDown = [];
      for (const fn of up) this.toServer(conn, fn);
      for (const fn of down) this.toClient(conn, fn);
    }
    for (const s of this.sessions.values()) {
      if (s.alive && s.nodeId === nodeId && s.conn !== null && s.conn.open) {
        // Pings flow again.
        s.lastHeardMs = this.clock.now();
        this.cancelExpiry(s);
      }
    }
  }

  restoreAll(): void {
    for (const nodeId of [...this.down.keys()]) this.restore(nodeId);
  }

  partitioned(): string[] {
    return [...this.down.keys()].sort();
  }

  /** Expire the node's live sessions now (a GC pause longer than the timeout, an operator). */
  expireNow(nodeId: string): void {
    for (const s of [...this.sessions.values()]) if (s.alive && s.nodeId === nodeId) this.expire(s, 'expired by hook');
  }

  /** Live session ids of a node on the server (normally at most one; two right after a restart). */
  liveSessions(nodeId: string): string[] {
    return [...this.sessions.values()].filter((s) => s.alive && s.nodeId === nodeId).map((s) => s.id);
  }

  isSessionAlive(sessionId: string): boolean {
    return this.sessions.get(sessionId)?.alive === true;
  }

  // ---- sessions ----------------------------------------------------------------------------

  /**
   * The client went silent now: the server expires the session one timeout after it last heard
   * from it. That is the later of the last packet that arrived and the last ping, which an idle
   * client sends every third of the timeout (so up to a third of the timeout ago).
   */
  private startExpiry(s: ServerSession): void {
    if (s.expiry !== null || !s.alive) return;
    const now = this.clock.now();
    const lastPingMs = now - this.random() * (s.timeoutMs / 3);
    const heardMs = Math.max(s.lastHeardMs, lastPingMs);
    s.expiry = this.clock.setTimeout(() => {
      s.expiry = null;
      this.expire(s, 'timed out');
    }, heardMs + s.timeoutMs - now);
  }

  private cancelExpiry(s: ServerSession): void {
    if (s.expiry === null) return;
    this.clock.clearTimeout(s.expiry);
    s.expiry = null;
  }

  private expire(s: ServerSession, why: string): void {
    if (!s.alive) return;
    s.alive = false;
    this.cancelExpiry(s);
    this.trace('zk session expired', { node: s.nodeId, session: s.id, why });
    for (const [path, z] of [...this.znodes]) if (z.ephemeralOwner === s.id) this.deleteZnode(path);
    const conn = s.conn;
    s.conn = null;
    // A live connection is closed by the server; the client learns EXPIRED when it reconnects.
    if (conn !== null && conn.open) this.toClient(conn, () => conn.client.connectionLost(conn));
  }

  // ---- connections -------------------------------------------------------------------------

  openConnection(client: ZkClientSim): Connection {
    const conn: Connection = {
      id: ++this.connCounter,
      nodeId: client.nodeId,
      client,
      open: true,
      heldUp: [],
      heldDown: [],
      lastUpMs: 0,
      lastDownMs: 0,
    };
    this.conns.add(conn);
    return conn;
  }

  /** The connection is gone (client closed or died, or gave up on it). Its session keeps ticking. */
  closeConnection(conn: Connection): void {
    if (!conn.open) return;
    conn.open = false;
    conn.heldUp = [];
    conn.heldDown = [];
    this.conns.delete(conn);
    for (const s of this.sessions.values()) {
      if (s.conn === conn) {
        s.conn = null;
        this.startExpiry(s);
      }
    }
  }

  private latency(): number {
    return this.latencyMsMin + this.random() * Math.max(0, this.latencyMsMax - this.latencyMsMin);
  }

  /** Client → server, FIFO per connection; held while the link is down; lost with the connection. */
  toServer(conn: Connection, fn: () => void): void {
    if (!conn.open) return;
    if (this.down.has(conn.nodeId)) {
      conn.heldUp.push(fn);
      return;
    }
    const at = Math.max(this.clock.now() + this.latency(), conn.lastUpMs);
    conn.lastUpMs = at;
    this.clock.setTimeout(() => {
      if (!conn.open) return;
      if (this.down.has(conn.nodeId)) conn.heldUp.push(fn);
      else fn();
    }, at - this.clock.now());
  }

  /** Server → client, same rules. */
  toClient(conn: Connection, fn: () => void): void {
    if (!conn.open) return;
    if (this.down.has(conn.nodeId)) {
      conn.heldDown.push(fn);
      return;
    }
    const at = Math.max(this.clock.now() + this.latency(), conn.lastDownMs);
    conn.lastDownMs = at;
    this.clock.setTimeout(() => {
      if (!conn.open) return;
      if (this.down.has(conn.nodeId)) conn.heldDown.push(fn);
      else fn();
    }, at - this.clock.now());
  }

  /** A client's connect request arrived: a new session, the same one back, or expired. */
  handshake(conn: Connection, sessionId: string, timeoutMs: number): void {
    let reply: { sessionId: string; timeoutMs: number } | 'expired';
    if (sessionId === '') {
      this.sessionCounter += 1;
      const id = (0x5100000000 + this.sessionCounter).toString(16).padStart(16, '0');
      const s: ServerSession = { id, nodeId: conn.nodeId, timeoutMs, alive: true, conn, expiry: null, lastHeardMs: this.clock.now() };
      this.sessions.set(id, s);
      this.trace('zk session created', { node: conn.nodeId, session: id });
      reply = { sessionId: id, timeoutMs };
    } else {
      const s = this.sessions.get(sessionId);
      if (s === undefined || !s.alive) {
        reply = 'expired';
      } else {
        s.conn = conn;
        s.lastHeardMs = this.clock.now();
        this.cancelExpiry(s);
        reply = { sessionId, timeoutMs: s.timeoutMs };
      }
    }
    this.toClient(conn, () => conn.client.handshakeDone(conn, reply));
  }

  /** Run one operation of `sessionId` arriving on `conn`; the reply travels back on `conn`. */
  serve(conn: Connection, sessionId: string, op: (zk: MemoryZooKeeper, sessionId: string) => unknown, reply: (r: { ok: true; value: unknown } | { ok: false; code: number; path: string }) => void): void {
    const s = this.sessions.get(sessionId);
    let result: { ok: true; value: unknown } | { ok: false; code: number; path: string };
    if (s === undefined || !s.alive) {
      result = { ok: false, code: ZkCode.SESSION_EXPIRED, path: '' };
    } else {
      s.lastHeardMs = this.clock.now();
      try {
        result = { ok: true, value: op(this, sessionId) };
      } catch (err) {
        if (!(err instanceof ZkError)) throw err;
        result = { ok: false, code: err.code, path: err.path };
      }
    }
    this.toClient(conn, () => reply(result));
  }

  /** The client closes its session: ephemerals go at once. */
  closeSession(sessionId: string): void {
    const s = this.sessions.get(sessionId);
    if (s === undefined) return;
    s.conn = null;
    this.expire(s, 'closed by client');
  }

  // ---- the znode tree (called from operations) ---------------------------------------------

  private static parentOf(path: string): string {
    const i = path.lastIndexOf('/');
    return i <= 0 ? '/' : path.slice(0, i);
  }

  private static stat(z: Znode): ZkStat {
    return { version: z.version, ephemeralOwner: z.ephemeralOwner };
  }

  private need(path: string): Znode {
    const z = this.znodes.get(path);
    if (z === undefined) throw new ZkError(ZkCode.NO_NODE, path);
    return z;
  }

  private addWatch(kind: WatchKind, path: string, sessionId: string): void {
    let set = this.watches[kind].get(path);
    if (set === undefined) this.watches[kind].set(path, (set = new Set()));
    set.add(sessionId);
  }

  private fire(kind: WatchKind, path: string): void {
    const set = this.watches[kind].get(path);
    if (set === undefined) return;
    this.watches[kind].delete(path);
    for (const id of set) {
      const s = this.sessions.get(id);
      const conn = s?.conn;
      if (s === undefined || !s.alive || conn === null || conn === undefined || !conn.open) continue;
      this.toClient(conn, () => conn.client.watchFired(kind, path));
    }
  }

  private deleteZnode(path: string): void {
    if (!this.znodes.delete(path)) return;
    this.fire('data', path);
    this.fire('child', MemoryZooKeeper.parentOf(path));
  }

  create(path: string, data: string, mode: CreateMode, sessionId: string): string {
    const parentPath = MemoryZooKeeper.parentOf(path);
    const parent = this.znodes.get(parentPath);
    if (parent === undefined) throw new ZkError(ZkCode.NO_NODE, path);
    let created = path;
    if (mode === 'ephemeral-sequential') created = `${path}${String(parent.childSeq).padStart(10, '0')}`;
    if (this.znodes.has(created)) throw new ZkError(ZkCode.NODE_EXISTS, created);
    parent.childSeq += 1;
    this.znodes.set(created, { data, version: 0, ephemeralOwner: mode === 'persistent' ? '' : sessionId, childSeq: 0 });
    this.fire('data', created);
    this.fire('child', parentPath);
    return created;
  }

  remove(path: string, version: number): void {
    const z = this.need(path);
    if (version !== -1 && z.version !== version) throw new ZkError(ZkCode.BAD_VERSION, path);
    const prefix = path === '/' ? '/' : `${path}/`;
    for (const p of this.znodes.keys()) if (p !== path && p.startsWith(prefix)) throw new ZkError(ZkCode.NOT_EMPTY, path);
    this.deleteZnode(path);
  }

  getData(path: string, watchSession: string | null): { data: string; stat: ZkStat } {
    const z = this.need(path);
    if (watchSession !== null) this.addWatch('data', path, watchSession);
    return { data: z.data, stat: MemoryZooKeeper.stat(z) };
  }

  setData(path: string, data: string, version: number): ZkStat {
    const z = this.need(path);
    if (version !== -1 && z.version !== version) throw new ZkError(ZkCode.BAD_VERSION, path);
    z.data = data;
    z.version += 1;
    this.fire('data', path);
    return MemoryZooKeeper.stat(z);
  }

  exists(path: string, watchSession: string | null): ZkStat | null {
    if (watchSession !== null) this.addWatch('data', path, watchSession);
    const z = this.znodes.get(path);
    return z === undefined ? null : MemoryZooKeeper.stat(z);
  }

  getChildren(path: string, watchSession: string | null): string[] {
    this.need(path);
    if (watchSession !== null) this.addWatch('child', path, watchSession);
    const prefix = path === '/' ? '/' : `${path}/`;
    const out: string[] = [];
    for (const p of this.znodes.keys()) {
      if (p.startsWith(prefix) && p.length > prefix.length && !p.slice(prefix.length).includes('/')) out.push(p.slice(prefix.length));
    }
    return out.sort();
  }

  /** multi([check(checkPath, version), setData(setPath, data, -1)]): both or neither. */
  checkAndSet(checkPath: string, version: number, setPath: string, data: string): void {
    const z = this.need(checkPath);
    if (z.version !== version) throw new ZkError(ZkCode.BAD_VERSION, checkPath);
    this.need(setPath);
    this.setData(setPath, data, -1);
  }

  /** Test and trace access: the data of a znode, or undefined. */
  peek(path: string): string | undefined {
    return this.znodes.get(path)?.data;
  }

  peekStat(path: string): ZkStat | undefined {
    const z = this.znodes.get(path);
    return z === undefined ? undefined : MemoryZooKeeper.stat(z);
  }

  children(path: string): string[] {
    return this.znodes.has(path) ? this.getChildren(path, null) : [];
  }
}

// ---------------------------------------------------------------------------------------------
// The client object: one session at most, like node-zookeeper-client.

export type ZkClientState = 'SYNC_CONNECTED' | 'DISCONNECTED' | 'EXPIRED';
type Watcher = () => void;

/** Reconnection pace of the client (node-zookeeper-client's spinDelay). */
const SPIN_DELAY_MS = 100;

export class ZkClientSim {
  sessionId = '';
  sessionTimeoutMs: number;
  private conn: Connection | null = null;
  private phase: 'new' | 'connecting' | 'connected' | 'expired' | 'closed' = 'new';
  private dead = false;
  private readonly inflight = new Set<(err: ZkError) => void>();
  private readonly watchers: Record<WatchKind, Map<string, Set<Watcher>>> = { data: new Map(), child: new Map() };
  onState: (state: ZkClientState) => void = () => undefined;

  constructor(
    private readonly server: MemoryZooKeeper,
    readonly nodeId: string,
    sessionTimeoutMs: number,
    private readonly clock: Clock,
  ) {
    this.sessionTimeoutMs = sessionTimeoutMs;
  }

  get connected(): boolean {
    return this.phase === 'connected' && this.conn !== null;
  }

  connect(): void {
    if (this.phase !== 'new') return;
    this.phase = 'connecting';
    this.attempt();
  }

  private attempt(): void {
    if (this.dead || this.phase === 'closed' || this.phase === 'expired' || this.conn !== null) return;
    if (!this.server.linkUp(this.nodeId)) {
      this.clock.setTimeout(() => this.attempt(), SPIN_DELAY_MS);
      return;
    }
    const conn = this.server.openConnection(this);
    this.conn = conn;
    const sessionId = this.sessionId;
    this.server.toServer(conn, () => this.server.handshake(conn, sessionId, this.sessionTimeoutMs));
  }

  handshakeDone(conn: Connection, reply: { sessionId: string; timeoutMs: number } | 'expired'): void {
    if (this.dead || conn !== this.conn || this.phase === 'closed') return;
    if (reply === 'expired') {
      this.phase = 'expired';
      this.conn = null;
      this.server.closeConnection(conn);
      this.onState('EXPIRED');
      return;
    }
    this.sessionId = reply.sessionId;
    this.sessionTimeoutMs = reply.timeoutMs;
    this.phase = 'connected';
    this.onState('SYNC_CONNECTED');
  }

  /** The connection dropped (noticed by us, or closed by the server): in-flight work fails, reconnect. */
  connectionLost(conn: Connection): void {
    if (this.dead || conn !== this.conn) return;
    this.conn = null;
    this.server.closeConnection(conn);
    for (const fail of [...this.inflight]) fail(new ZkError(ZkCode.CONNECTION_LOSS, ''));
    const wasConnected = this.phase === 'connected';
    if (this.phase === 'closed') return;
    if (wasConnected) this.phase = 'connecting';
    if (wasConnected) this.onState('DISCONNECTED');
    this.clock.setTimeout(() => this.attempt(), SPIN_DELAY_MS);
  }

  watchFired(kind: WatchKind, path: string): void {
    if (this.dead || this.phase === 'closed') return;
    const set = this.watchers[kind].get(path);
    if (set === undefined) return;
    this.watchers[kind].delete(path);
    for (const w of set) w();
  }

  /**
   * One operation. `watch` registers a one-shot watcher of `kind` on `path` (client side) along
   * with the server-side registration the operation makes. Rejects with ZkError.
   */
  call<T>(op: (zk: MemoryZooKeeper, sessionId: string) => T, watch?: { kind: WatchKind; path: string; watcher: Watcher }): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const conn = this.conn;
      if (this.dead || this.phase !== 'connected' || conn === null) {
        reject(new ZkError(ZkCode.CONNECTION_LOSS, ''));
        return;
      }
      let settled = false;
      const fail = (err: ZkError) => {
        if (settled) return;
        settled = true;
        this.inflight.delete(fail);
        reject(err);
      };
      this.inflight.add(fail);
      const sessionId = this.sessionId;
      this.server.toServer(conn, () =>
        this.server.serve(conn, sessionId, op, (result) => {
          if (settled || this.dead) return;
          settled = true;
          this.inflight.delete(fail);
          if (result.ok) {
            if (watch !== undefined) {
              let set = this.watchers[watch.kind].get(watch.path);
              if (set === undefined) this.watchers[watch.kind].set(watch.path, (set = new Set()));
              set.add(watch.watcher);
            }
            resolve(result.value as T);
          } else {
            reject(new ZkError(result.code, result.path));
          }
        }),
      );
    });
  }

  /** Graceful close when connected (ephemerals go at once); otherwise just drop the connection. */
  async close(timeoutMs: number): Promise<void> {
    if (this.dead || this.phase === 'closed') return;
    const wasConnected = this.connected;
    const conn = this.conn;
    const sessionId = this.sessionId;
    if (wasConnected && conn !== null) {
      await new Promise<void>((resolve) => {
        const timer = this.clock.setTimeout(() => resolve(), timeoutMs);
        this.server.toServer(conn, () => {
          this.server.closeSession(sessionId);
          this.server.toClient(conn, () => {
            this.clock.clearTimeout(timer);
            resolve();
          });
        });
        // A connection lost meanwhile ends the wait too.
        this.inflight.add(() => {
          this.clock.clearTimeout(timer);
          resolve();
        });
      });
    }
    this.phase = 'closed';
    for (const fail of [...this.inflight]) fail(new ZkError(ZkCode.CONNECTION_LOSS, ''));
    this.inflight.clear();
    if (this.conn !== null) this.server.closeConnection(this.conn);
    this.conn = null;
  }

  /** The process died: nothing more happens here; the server sees a silent session. */
  kill(): void {
    this.dead = true;
    this.inflight.clear();
    if (this.conn !== null) this.server.closeConnection(this.conn);
    this.conn = null;
  }
}

// ---------------------------------------------------------------------------------------------
// The Coordinator port.

export interface MemoryCoordinatorOptions {
  zk: MemoryZooKeeper;
  cluster: string;
  nodeId: string;
  /** The node's clock: the client's and the session machine's timers die with the node. */
  clock: Clock;
  sessionTimeoutMs: number;
  /** Timeout of every operation; default 4000. */
  opTimeoutMs?: number;
  log?: Log;
}

export interface MemoryCoordinator extends Coordinator {
  readonly nodeId: string;
  /** The process died: no more events or operations; its session lingers until the server expires it. */
  crash(): void;
  /** Id of the current session ('' before one is established). */
  currentSessionId(): string;
}

const OP_TIMEOUT_MS_DEFAULT = 4000;
const SESSION_FAILURES_MAX = 10;
const CLAIM_ATTEMPTS_MAX = 20;
const MEMBER_REGISTER_ATTEMPTS_MAX = 5;
const DEFAULT_MEMBER: { role: Role; state: MemberState } = { role: 'follower', state: 'syncing' };
const ROLES: readonly Role[] = ['leader', 'follower'];
const MEMBER_STATES: readonly MemberState[] = ['syncing', 'serving', 'suspended', 'removed'];

const silentLog: Log = {
  child: () => silentLog,
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  fatal: () => undefined,
};

/** A serial task: a trigger while it runs makes it run once more after; callers await the outcome. */
class SerialTask {
  private running: Promise<void> | null = null;
  private again = false;
  constructor(private readonly task: () => Promise<void>) {}
  run(): Promise<void> {
    if (this.running !== null) {
      this.again = true;
      return this.running;
    }
    const loop = async (): Promise<void> => {
      try {
        do {
          this.again = false;
          await this.task();
        } while (this.again);
      } finally {
        this.running = null;
      }
    };
    this.running = loop();
    return this.running;
  }
}

interface Session {
  readonly client: ZkClientSim;
  sessionId: string;
  registering: boolean;
  registered: boolean;
  announced: boolean;
  retired: boolean;
  electionName: string | null;
  elected: boolean;
  readonly abandonedElection: Set<string>;
  resigning: Promise<void> | null;
  failures: number;
  /** Node clock time until which the server certainly keeps this session (see probeSession). */
  aliveUntilMs: number;
  probeSentAtMs: number | null;
  watchdog: unknown;
  readonly timers: Set<unknown>;
  readonly inflight: Set<(err: Error) => void>;
  readonly latest: Map<'members' | 'epoch' | 'elected', CoordEvent>;
  readonly emittedKeys: Map<string, string>;
  readonly members: SerialTask;
  readonly epoch: SerialTask;
  readonly election: SerialTask;
  readonly onMembersWatch: Watcher;
  readonly onEpochWatch: Watcher;
  readonly onPredecessorWatch: Watcher;
}

export function createMemoryCoordinator(opts: MemoryCoordinatorOptions): MemoryCoordinator {
  const { zk, cluster, nodeId, clock, sessionTimeoutMs } = opts;
  const opTimeoutMs = opts.opTimeoutMs ?? OP_TIMEOUT_MS_DEFAULT;
  if (!isValidSegment(nodeId)) throw new RangeError(`invalid node id: ${JSON.stringify(nodeId)}`);
  if (!Number.isInteger(sessionTimeoutMs) || sessionTimeoutMs <= 0) throw new RangeError('sessionTimeoutMs must be a positive integer');
  const paths = clusterPaths(cluster);
  const memberPath = paths.member(nodeId);
  const log = (opts.log ?? silentLog).child({ node: nodeId, cluster, actor: 'coordinator' });
  const watchdogTickMs = Math.min(250, Math.max(20, Math.floor(sessionTimeoutMs / 15)));

  let listener: ((event: CoordEvent) => void) | null = null;
  let actor: Actor<typeof sessionMachine> | null = null;
  let machineState: SessionMachineState = 'connecting';
  let current: Session | null = null;
  let stopping = false;
  let crashed = false;
  let stopped: Promise<void> | null = null;
  let reported: { state: SessionState; sessionId: string } | null = null;
  let memberIdsCache: string[] = [];
  let latestMember: { role: Role; state: MemberState } = DEFAULT_MEMBER;
  let memberDirty = false;
  const closings = new Set<Promise<void>>();

  // --- output --------------------------------------------------------------------------------

  function emit(event: CoordEvent): void {
    if (stopping || crashed || listener === null) return;
    try {
      listener(event);
    } catch (err) {
      log.error({ err, event: event.type }, 'listener threw');
    }
  }

  function refresh(): void {
    if (stopping || crashed) return;
    const s = current;
    let next: { state: SessionState; sessionId: string };
    switch (machineState) {
      case 'connecting':
        next = { state: 'connecting', sessionId: '' };
        break;
      case 'connected':
        next = s !== null && s.announced ? { state: 'connected', sessionId: s.sessionId } : { state: 'connecting', sessionId: '' };
        break;
      case 'suspended':
        next = s !== null && s.announced ? { state: 'suspended', sessionId: s.sessionId } : { state: 'connecting', sessionId: '' };
        break;
      case 'expired':
        next = { state: 'expired', sessionId: s?.sessionId ?? '' };
        break;
      case 'closed':
        return;
    }
    if (reported !== null && reported.state === next.state && reported.sessionId === next.sessionId) return;
    reported = next;
    emit({ type: 'coord.session', state: next.state, sessionId: next.sessionId });
  }

  function fact(s: Session, kind: 'members' | 'epoch' | 'elected', event: CoordEvent): void {
    s.latest.set(kind, event);
    if (!s.announced || s !== current || s.retired) return;
    const key = JSON.stringify(event);
    if (s.emittedKeys.get(kind) === key) return;
    s.emittedKeys.set(kind, key);
    emit(event);
  }

  function flushFacts(s: Session): void {
    for (const kind of ['members', 'epoch', 'elected'] as const) {
      const event = s.latest.get(kind);
      if (event !== undefined) fact(s, kind, event);
    }
  }

  // --- operations ----------------------------------------------------------------------------

  function mapError(err: unknown, path: string): Error {
    if (!(err instanceof ZkError)) return err instanceof Error ? err : new CoordinationError(String(err), { path });
    const options = { cause: err, path: err.path || path, code: err.code };
    switch (err.code) {
      case ZkCode.CONNECTION_LOSS:
        return new NotConnectedError('connection lost', options);
      case ZkCode.SESSION_EXPIRED:
        return new SessionExpiredError('session expired', options);
      default:
        return new CoordinationError(`zookeeper error ${err.code}`, options);
    }
  }

  const hasCode = (err: unknown, code: number): boolean => err instanceof CoordinationError && err.code === code;

  /** One operation on session `s`: fails fast unless connected, times out, maps errors. */
  function call<R>(s: Session, path: string, op: (zk: MemoryZooKeeper, sessionId: string) => R, watch?: { kind: WatchKind; watcher: Watcher }): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      if (s.retired || s !== current) {
        reject(new NotConnectedError('session closed', { path }));
        return;
      }
      if (machineState !== 'connected') {
        reject(machineState === 'expired' ? new SessionExpiredError('session expired', { path }) : new NotConnectedError(`session ${machineState}`, { path }));
        return;
      }
      let settled = false;
      const settle = (): boolean => {
        if (settled) return false;
        settled = true;
        clock.clearTimeout(timer);
        s.inflight.delete(abort);
        return true;
      };
      const abort = (err: Error): void => {
        if (settle()) reject(err);
      };
      const timer = clock.setTimeout(() => {
        if (settle()) reject(new CoordinationTimeoutError(`no reply within ${opTimeoutMs} ms`, { path, timeoutMs: opTimeoutMs }));
      }, opTimeoutMs);
      s.inflight.add(abort);
      s.client.call(op, watch === undefined ? undefined : { kind: watch.kind, path, watcher: watch.watcher }).then(
        (value) => {
          if (settle()) resolve(value);
        },
        (err: unknown) => {
          if (settle()) reject(mapError(err, path));
        },
      );
    });
  }

  const getData = (s: Session, path: string, watcher?: Watcher) =>
    call(s, path, (z, sid) => z.getData(path, watcher ? sid : null), watcher ? { kind: 'data', watcher } : undefined);
  const setData = (s: Session, path: string, data: string, version: number) => call(s, path, (z) => z.setData(path, data, version));
  const create = (s: Session, path: string, data: string, mode: CreateMode) => call(s, path, (z, sid) => z.create(path, data, mode, sid));
  const remove = (s: Session, path: string, version: number) => call(s, path, (z) => z.remove(path, version));
  const exists = (s: Session, path: string, watcher?: Watcher) =>
    call(s, path, (z, sid) => z.exists(path, watcher ? sid : null), watcher ? { kind: 'data', watcher } : undefined);
  const getChildren = (s: Session, path: string, watcher?: Watcher) =>
    call(s, path, (z, sid) => z.getChildren(path, watcher ? sid : null), watcher ? { kind: 'child', watcher } : undefined);

  const json = (value: unknown): string => JSON.stringify(value);

  function parseJson(data: string, path: string): unknown {
    try {
      return JSON.parse(data) as unknown;
    } catch (err) {
      throw new CoordinationError('unreadable znode data', { cause: err, path });
    }
  }

  function parseEpoch(data: string, path: string): { epoch: number; leader: string | null } {
    const v = parseJson(data, path) as { epoch?: unknown; leader?: unknown } | null;
    if (v === null || typeof v !== 'object' || !Number.isSafeInteger(v.epoch) || (v.epoch as number) < 0 || (v.leader !== null && typeof v.leader !== 'string')) {
      throw new CoordinationError('malformed epoch znode', { path });
    }
    return { epoch: v.epoch as number, leader: v.leader as string | null };
  }

  function parseReplicas(data: string, path: string): { ids: string[]; epoch: number } {
    const v = parseJson(data, path) as { ids?: unknown; epoch?: unknown } | null;
    if (v === null || typeof v !== 'object' || !Array.isArray(v.ids) || !v.ids.every((id) => typeof id === 'string') || !Number.isSafeInteger(v.epoch)) {
      throw new CoordinationError('malformed replicas znode', { path });
    }
    return { ids: [...(v.ids as string[])], epoch: v.epoch as number };
  }

  function parseMember(id: string, data: string): MemberInfo | null {
    let v: { role?: unknown; state?: unknown } | null;
    try {
      v = JSON.parse(data) as { role?: unknown; state?: unknown } | null;
    } catch {
      return null;
    }
    if (v === null || typeof v !== 'object' || !ROLES.includes(v.role as Role) || !MEMBER_STATES.includes(v.state as MemberState)) return null;
    return { id, role: v.role as Role, state: v.state as MemberState };
  }

  // --- registration --------------------------------------------------------------------------

  async function createIfAbsent(s: Session, path: string, data: string): Promise<void> {
    try {
      await create(s, path, data, 'persistent');
    } catch (err) {
      if (!hasCode(err, ZkCode.NODE_EXISTS)) throw err;
    }
  }

  async function ensureLayout(s: Session): Promise<void> {
    await createIfAbsent(s, paths.root, '');
    await createIfAbsent(s, paths.cluster, '');
    await createIfAbsent(s, paths.members, '');
    await createIfAbsent(s, paths.election, '');
    await createIfAbsent(s, paths.epoch, json({ epoch: 0, leader: null }));
    await createIfAbsent(s, paths.replicas, json({ ids: [], epoch: 0 }));
  }

  async function ensureMember(s: Session): Promise<void> {
    for (let attempt = 0; attempt < MEMBER_REGISTER_ATTEMPTS_MAX; attempt += 1) {
      const data = json(latestMember);
      try {
        await create(s, memberPath, data, 'ephemeral');
        return;
      } catch (err) {
        if (!hasCode(err, ZkCode.NODE_EXISTS)) throw err;
      }
      const stat = await exists(s, memberPath);
      if (stat === null) continue;
      if (stat.ephemeralOwner === s.sessionId) {
        await setData(s, memberPath, data, -1);
        return;
      }
      log.warn({ staleOwner: stat.ephemeralOwner, sessionId: s.sessionId }, 'stale member znode replaced');
      try {
        await remove(s, memberPath, stat.version);
      } catch (err) {
        if (!hasCode(err, ZkCode.NO_NODE) && !hasCode(err, ZkCode.BAD_VERSION)) throw err;
      }
    }
    throw new CoordinationError('member znode kept reappearing', { path: memberPath });
  }

  async function removeIfPresent(s: Session, path: string): Promise<void> {
    try {
      await remove(s, path, -1);
    } catch (err) {
      if (!hasCode(err, ZkCode.NO_NODE)) throw err;
    }
  }

  async function ensureElectionNode(s: Session): Promise<void> {
    const names = sortElectionNames(await getChildren(s, paths.election));
    const datas = await Promise.all(
      names.map(async (name) => {
        try {
          return { name, ...(await getData(s, paths.electionNode(name))) };
        } catch (err) {
          if (hasCode(err, ZkCode.NO_NODE)) return null;
          throw err;
        }
      }),
    );
    const ours: string[] = [];
    for (const entry of datas) {
      if (entry === null || entry.data !== nodeId) continue;
      if (entry.stat.ephemeralOwner === s.sessionId) {
        ours.push(entry.name);
        continue;
      }
      log.warn({ name: entry.name, staleOwner: entry.stat.ephemeralOwner }, 'stale election znode removed');
      await removeIfPresent(s, paths.electionNode(entry.name));
    }
    if (ours.length > 0) {
      s.electionName = ours[0]!;
      for (const extra of ours.slice(1)) await removeIfPresent(s, paths.electionNode(extra));
      return;
    }
    const created = await create(s, paths.electionPrefix, nodeId, 'ephemeral-sequential');
    s.electionName = created.slice(created.lastIndexOf('/') + 1);
  }

  async function register(s: Session): Promise<void> {
    if (s.registering || s.registered || s.retired) return;
    s.registering = true;
    try {
      await ensureLayout(s);
      await ensureMember(s);
      await ensureElectionNode(s);
      await Promise.all([s.members.run(), s.epoch.run(), s.election.run()]);
      if (s.retired || s !== current) return;
      s.registered = true;
      s.failures = 0;
      memberDirty = false;
      s.announced = true;
      refresh();
      flushFacts(s);
    } catch (err) {
      onFailure(s, err, 'registration', () => void register(s));
    } finally {
      s.registering = false;
    }
  }

  // --- watches -------------------------------------------------------------------------------

  async function readMembersWatch(s: Session): Promise<void> {
    const ids = [...(await getChildren(s, paths.members, s.onMembersWatch))].sort();
    if (s !== current || s.retired) return;
    memberIdsCache = ids;
    fact(s, 'members', { type: 'coord.members', ids });
  }

  async function readEpochWatch(s: Session): Promise<void> {
    for (let round = 0; round < 100; round += 1) {
      let value: { data: string; stat: ZkStat };
      try {
        value = await getData(s, paths.epoch, s.onEpochWatch);
      } catch (err) {
        if (!hasCode(err, ZkCode.NO_NODE)) throw err;
        if ((await exists(s, paths.epoch, s.onEpochWatch)) === null) return;
        continue;
      }
      const { epoch, leader } = parseEpoch(value.data, paths.epoch);
      fact(s, 'epoch', { type: 'coord.epoch', epoch, leader });
      return;
    }
    throw new CoordinationError('epoch znode keeps vanishing', { path: paths.epoch });
  }

  async function evaluateElection(s: Session): Promise<void> {
    for (let round = 0; round < 10_000; round += 1) {
      const mine = s.electionName;
      if (mine === null || s.elected) return;
      for (const name of [...s.abandonedElection]) {
        await removeIfPresent(s, paths.electionNode(name));
        s.abandonedElection.delete(name);
      }
      const names = sortElectionNames(await getChildren(s, paths.election));
      if (s.electionName !== mine) continue;
      const index = names.indexOf(mine);
      if (index < 0) {
        abandon(s, new CoordinationError('own election znode vanished', { path: paths.electionNode(mine) }));
        return;
      }
      if (index === 0) {
        if (s.retired || s !== current) return;
        s.elected = true;
        fact(s, 'elected', { type: 'coord.elected', sessionId: s.sessionId });
        return;
      }
      const predecessor = names[index - 1]!;
      const stat = await exists(s, paths.electionNode(predecessor), s.onPredecessorWatch);
      if (stat !== null) return;
    }
    throw new CoordinationError('election did not settle', { path: paths.election });
  }

  async function resignElection(s: Session): Promise<void> {
    const old = s.electionName;
    const created = await create(s, paths.electionPrefix, nodeId, 'ephemeral-sequential');
    if (s.retired || s !== current) return;
    s.electionName = created.slice(created.lastIndexOf('/') + 1);
    s.elected = false;
    s.latest.delete('elected');
    s.emittedKeys.delete('elected');
    if (old !== null) {
      s.abandonedElection.add(old);
      try {
        await removeIfPresent(s, paths.electionNode(old));
        s.abandonedElection.delete(old);
      } finally {
        kick(s, s.election);
      }
    } else {
      kick(s, s.election);
    }
  }

  function kick(s: Session, task: SerialTask): void {
    task.run().catch((err: unknown) => onFailure(s, err, 'watch', () => kick(s, task)));
  }

  // --- failures ------------------------------------------------------------------------------

  function onFailure(s: Session, err: unknown, what: string, retry: () => void): void {
    if (s.retired || s !== current || stopping || crashed) return;
    if (err instanceof NotConnectedError || err instanceof SessionExpiredError) return; // resumes on reconnect
    s.failures += 1;
    if (s.failures > SESSION_FAILURES_MAX) {
      abandon(s, err);
      return;
    }
    const delayMs = Math.min(sessionTimeoutMs, 50 * 2 ** s.failures);
    log.warn({ err, what, failures: s.failures, delayMs }, 'coordination step failed, retrying');
    const timer = clock.setTimeout(() => {
      s.timers.delete(timer);
      if (s.retired || s !== current || stopping) return;
      if (machineState === 'connected') retry();
    }, delayMs);
    s.timers.add(timer);
  }

  function abandon(s: Session, err: unknown): void {
    if (s.retired || s !== current || stopping) return;
    log.error({ err, sessionId: s.sessionId }, 'session abandoned');
    actor?.send({ type: 'zk.expired' });
  }

  // --- clients -------------------------------------------------------------------------------

  function newSession(): Session {
    const client = new ZkClientSim(zk, nodeId, sessionTimeoutMs, clock);
    const s: Session = {
      client,
      sessionId: '',
      registering: false,
      registered: false,
      announced: false,
      retired: false,
      electionName: null,
      elected: false,
      abandonedElection: new Set(),
      resigning: null,
      failures: 0,
      aliveUntilMs: 0,
      probeSentAtMs: null,
      watchdog: null,
      timers: new Set(),
      inflight: new Set(),
      latest: new Map(),
      emittedKeys: new Map(),
      members: new SerialTask(() => readMembersWatch(s)),
      epoch: new SerialTask(() => readEpochWatch(s)),
      election: new SerialTask(() => evaluateElection(s)),
      onMembersWatch: () => {
        if (!s.retired) kick(s, s.members);
      },
      onEpochWatch: () => {
        if (!s.retired) kick(s, s.epoch);
      },
      onPredecessorWatch: () => {
        if (!s.retired) kick(s, s.election);
      },
    };
    client.onState = (state) => queueMicrotask(() => onClientState(s, state));
    const tick = () => {
      if (s.retired) return;
      probeSession(s, clock.now());
      s.watchdog = clock.setTimeout(tick, watchdogTickMs);
    };
    s.watchdog = clock.setTimeout(tick, watchdogTickMs);
    return s;
  }

  /**
   * As zk-coordinator.ts: a reply to a request sent at time t proves the server heard from us at
   * or after t, so it keeps the session until at least t + the session timeout (less 10% for
   * clock rate drift). Probed every watchdog tick once the bound is a quarter timeout old.
   */
  function probeSession(s: Session, nowMs: number): void {
    if (s.probeSentAtMs !== null || machineState !== 'connected' || s !== current) return;
    const timeoutMs = s.client.sessionTimeoutMs;
    if (nowMs - (s.aliveUntilMs - timeoutMs * 0.9) < timeoutMs / 4) return;
    s.probeSentAtMs = nowMs;
    s.client.call((z) => z.exists('/', null)).then(
      () => {
        const sentAtMs = s.probeSentAtMs ?? nowMs;
        s.probeSentAtMs = null;
        if (!s.retired) s.aliveUntilMs = Math.max(s.aliveUntilMs, sentAtMs + timeoutMs * 0.9);
      },
      () => {
        s.probeSentAtMs = null;
      },
    );
  }

  function onClientState(s: Session, state: ZkClientState): void {
    if (s.retired || s !== current || stopping || crashed || actor === null) return;
    switch (state) {
      case 'SYNC_CONNECTED':
        s.sessionId = s.client.sessionId;
        actor.send({ type: 'zk.connected', sessionTimeoutMs: s.client.sessionTimeoutMs });
        break;
      case 'DISCONNECTED':
        actor.send({ type: 'zk.disconnected' });
        break;
      case 'EXPIRED':
        actor.send({ type: 'zk.expired' });
        break;
    }
  }

  function retire(s: Session): void {
    if (s.retired) return;
    s.retired = true;
    if (s.watchdog !== null) clock.clearTimeout(s.watchdog);
    for (const timer of s.timers) clock.clearTimeout(timer);
    s.timers.clear();
    for (const abort of [...s.inflight]) abort(new NotConnectedError('session closed'));
    const closing = s.client.close(opTimeoutMs);
    closings.add(closing);
    void closing.finally(() => closings.delete(closing));
  }

  // --- the session machine's facts -----------------------------------------------------------

  function onMachineChanged(state: SessionMachineState): void {
    machineState = state;
    const s = current;
    if (stopping || crashed || s === null) return;
    switch (state) {
      case 'connecting':
      case 'suspended':
        refresh();
        break;
      case 'connected':
        refresh();
        if (!s.registered) {
          void register(s);
        } else {
          kick(s, s.members);
          kick(s, s.epoch);
          kick(s, s.election);
          if (memberDirty) void publishLatest(s).catch(() => undefined);
        }
        break;
      case 'expired':
        refresh();
        queueMicrotask(() => {
          if (stopping || crashed || current !== s || actor === null) return;
          retire(s);
          current = newSession();
          actor.send({ type: 'zk.reconnecting' });
          current.client.connect();
        });
        break;
      case 'closed':
        break;
    }
  }

  // --- the port ------------------------------------------------------------------------------

  function requireConnected(path: string): Session {
    if (stopping || crashed) throw new NotConnectedError('coordinator stopped', { path });
    const s = current;
    if (actor === null || s === null) throw new NotConnectedError('coordinator not started', { path });
    const state = reported?.state ?? 'connecting';
    if (state === 'expired') throw new SessionExpiredError('session expired', { path });
    if (state !== 'connected') throw new NotConnectedError(`session ${state}`, { path });
    return s;
  }

  async function publishLatest(s: Session): Promise<void> {
    try {
      await setData(s, memberPath, json(latestMember), -1);
      memberDirty = false;
    } catch (err) {
      if (err instanceof NotConnectedError || err instanceof CoordinationTimeoutError) memberDirty = true;
      throw err;
    }
  }

  async function doStop(): Promise<void> {
    stopping = true;
    const s = current;
    if (actor !== null) {
      actor.send({ type: 'zk.close' });
      actor.stop();
    }
    if (s !== null) retire(s);
    await Promise.all([...closings]);
  }

  return {
    nodeId,

    start(onEvent: (event: CoordEvent) => void): void {
      if (actor !== null || stopped !== null) throw new Error('memory coordinator: start() called twice or after stop()');
      listener = onEvent;
      actor = createActor(sessionMachine, { input: { sessionTimeoutMs }, clock });
      actor.on('session.changed', (e) => onMachineChanged(e.state));
      current = newSession();
      actor.start();
      current.client.connect();
    },

    sessionAliveUntil(): number {
      if (stopping || crashed || current === null || machineState !== 'connected') return 0;
      return current.aliveUntilMs;
    },

    sessionState(): SessionState {
      if (stopping || crashed) return 'expired';
      return reported?.state ?? 'connecting';
    },

    memberIds(): string[] {
      return [...memberIdsCache];
    },

    async readMembers(): Promise<MemberInfo[]> {
      const s = requireConnected(paths.members);
      const ids = await getChildren(s, paths.members);
      const infos = await Promise.all(
        ids.map(async (id) => {
          try {
            return parseMember(id, (await getData(s, paths.member(id))).data);
          } catch (err) {
            if (hasCode(err, ZkCode.NO_NODE)) return null;
            throw err;
          }
        }),
      );
      return infos.filter((m): m is MemberInfo => m !== null).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    },

    async publishMember(info: { role: Role; state: MemberState }): Promise<void> {
      if (!ROLES.includes(info.role) || !MEMBER_STATES.includes(info.state)) throw new RangeError(`invalid member info: ${JSON.stringify(info)}`);
      latestMember = { role: info.role, state: info.state };
      const s = requireConnected(memberPath);
      await publishLatest(s);
    },

    async claimEpoch(): Promise<EpochClaim> {
      for (let attempt = 0; attempt < CLAIM_ATTEMPTS_MAX; attempt += 1) {
        const s = requireConnected(paths.epoch);
        const { data, stat } = await getData(s, paths.epoch);
        const { epoch } = parseEpoch(data, paths.epoch);
        const next = epoch + 1;
        try {
          const after = await setData(s, paths.epoch, json({ epoch: next, leader: nodeId }), stat.version);
          return { epoch: next, fence: after.version };
        } catch (err) {
          if (!hasCode(err, ZkCode.BAD_VERSION)) throw err;
        }
      }
      throw new CoordinationError(`epoch claim lost ${CLAIM_ATTEMPTS_MAX} races`, { path: paths.epoch });
    },

    async readEpoch(): Promise<{ epoch: number; leader: string | null }> {
      const s = requireConnected(paths.epoch);
      return parseEpoch((await getData(s, paths.epoch)).data, paths.epoch);
    },

    async readReplicas(): Promise<{ ids: string[]; epoch: number }> {
      const s = requireConnected(paths.replicas);
      return parseReplicas((await getData(s, paths.replicas)).data, paths.replicas);
    },

    async writeReplicas(ids: string[], claim: EpochClaim): Promise<void> {
      if (!Array.isArray(ids) || !ids.every((id) => typeof id === 'string')) throw new RangeError('replica ids must be strings');
      if (!Number.isSafeInteger(claim.fence) || claim.fence < 1) throw new RangeError(`invalid epoch fence: ${claim.fence}`);
      const s = requireConnected(paths.replicas);
      const data = json({ ids, epoch: claim.epoch });
      try {
        await call(s, paths.replicas, (z) => z.checkAndSet(paths.epoch, claim.fence, paths.replicas, data));
      } catch (err) {
        if (hasCode(err, ZkCode.BAD_VERSION)) {
          throw new DeposedError(`epoch moved past ${claim.epoch}`, { cause: err, path: paths.epoch, code: ZkCode.BAD_VERSION });
        }
        throw err;
      }
    },

    async resign(): Promise<void> {
      const s = requireConnected(paths.election);
      if (s.resigning === null) {
        s.resigning = resignElection(s).finally(() => {
          s.resigning = null;
        });
      }
      await s.resigning;
    },

    stop(): Promise<void> {
      if (stopped === null) stopped = doStop();
      return stopped;
    },

    crash(): void {
      if (crashed) return;
      crashed = true;
      actor?.stop();
      if (current !== null) {
        current.retired = true;
        current.client.kill();
      }
    },

    currentSessionId(): string {
      return current?.sessionId ?? '';
    },
  };
}
