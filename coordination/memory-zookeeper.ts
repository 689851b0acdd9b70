// The simulation's ZooKeeper: one in-memory "ensemble" and the clients it hands out, which
// implement the ZkClient port (zk-client.ts) that the production coordinator (coordinator.ts) is
// written against. So the 400-seed sweep runs the production coordinator; only the ZooKeeper
// below it is simulated.
//
//   MemoryZooKeeper   a znode tree (persistent, ephemeral, sequential znodes with versions),
//                     sessions that expire on the server's clock when their client goes silent,
//                     one-shot data and child watches, multi (check + setData).
//   ZkClientSim       one client object per session, like node-zookeeper-client: a connection
//                     with FIFO latency both ways, connected / disconnected / expired state
//                     events, operations that fail with CONNECTION_LOSS when the link drops
//                     (whether the server applied them is then unknown to the client).
//
// Fault hooks on MemoryZooKeeper: partition(node, { detectAfterMs }) cuts a node's link (its
// client notices after the detection delay and suspends; the server expires the session one
// session timeout after it last heard from it), restore(node), expireNow(node). A crash is
// MemoryCoordinator.crash(): the client dies silently and its session lingers until it expires.
//
// All timers run on injected Clocks: the server's on the world clock, the client's and the
// coordinator's on the node's clock (they die with a crashed node). All randomness comes from
// the injected `random`.
import type { Clock, Log } from '../actors/ports.ts';
import { createCoordinator, type ZkCoordinator } from './coordinator.ts';
import { ZkCode, ZkError, type CreateMode, type ZkClient, type ZkClientState as PortClientState, type ZkWatcher, type ZnodeStat } from './zk-client.ts';

type ZkStat = ZnodeStat;

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
  /**
   * Nodes connected to an ensemble server cut off from its quorum: that server answers reads from
   * the tree as it was at the cut (the stale view), holds writes, and does not hear of expiries.
   */
  private readonly isolated = new Map<string, MemoryZooKeeper>();
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

  /**
   * The ensemble server `nodeId` is connected to loses its quorum, but keeps its clients until it
   * notices, `serverDetectMs` later (ZooKeeper: syncLimit × tickTime): meanwhile it answers reads
   * from its own, frozen view of the tree and holds every write (so `quorumCheck` gets no reply),
   * while the quorum, hearing nothing from the client, expires its session on time. Then it drops
   * the connection and the client reconnects to the quorum, where it learns the truth.
   */
  isolateServer(nodeId: string, serverDetectMs: number): void {
    if (this.isolated.has(nodeId) || this.down.has(nodeId)) return;
    const view = new MemoryZooKeeper({ clock: this.clock, random: this.random });
    for (const [path, z] of this.znodes) view.znodes.set(path, { ...z });
    this.isolated.set(nodeId, view);
    this.trace('zk server isolated', { node: nodeId, serverDetectMs });
    for (const s of this.sessions.values()) if (s.alive && s.nodeId === nodeId && s.conn !== null) this.startExpiry(s);
    this.clock.setTimeout(() => {
      if (this.isolated.get(nodeId) !== view) return;
      this.isolated.delete(nodeId);
      this.trace('zk server rejoined', { node: nodeId });
      for (const conn of [...this.conns]) if (conn.nodeId === nodeId && conn.open) conn.client.connectionLost(conn);
    }, serverDetectMs);
  }

  /**
   * The ensemble comes back without its data (a ZooKeeper run without a kept data dir, or
   * restored from nothing): every session is gone and the tree is empty, versions start again.
   */
  wipe(): void {
    this.trace('zk wiped', {});
    for (const s of [...this.sessions.values()]) this.expire(s, 'ensemble wiped');
    for (const path of [...this.znodes.keys()].sort((a, b) => b.length - a.length)) if (path !== '/') this.deleteZnode(path);
    this.znodes.get('/')!.childSeq = 0;
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
    // A client of an isolated server hears nothing: that server does not know.
    if (conn !== null && conn.open && !this.isolated.has(conn.nodeId)) this.toClient(conn, () => conn.client.connectionLost(conn));
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

  /**
   * Run one operation of `sessionId` arriving on `conn`; the reply travels back on `conn`. A read
   * at an isolated server is answered from its stale view; a write there gets no reply.
   */
  serve(
    conn: Connection,
    sessionId: string,
    kind: 'read' | 'write',
    op: (zk: MemoryZooKeeper, sessionId: string) => unknown,
    reply: (r: { ok: true; value: unknown } | { ok: false; code: number; path: string }) => void,
  ): void {
    const staleView = this.isolated.get(conn.nodeId);
    if (staleView !== undefined && kind === 'write') return;
    const s = this.sessions.get(sessionId);
    let result: { ok: true; value: unknown } | { ok: false; code: number; path: string };
    if (staleView === undefined && (s === undefined || !s.alive)) {
      result = { ok: false, code: ZkCode.SESSION_EXPIRED, path: '' };
    } else {
      if (staleView === undefined) s!.lastHeardMs = this.clock.now();
      try {
        result = { ok: true, value: op(staleView ?? this, sessionId) };
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

  need(path: string): Znode {
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

type Watcher = ZkWatcher;

/** Reconnection pace of the client (node-zookeeper-client's spinDelay). */
const SPIN_DELAY_MS = 100;

export class ZkClientSim implements ZkClient {
  private id = '';
  private timeoutMs: number;
  private conn: Connection | null = null;
  private phase: 'new' | 'connecting' | 'connected' | 'expired' | 'closed' = 'new';
  private dead = false;
  private readonly inflight = new Set<(err: ZkError) => void>();
  private readonly watchers: Record<WatchKind, Map<string, Set<Watcher>>> = { data: new Map(), child: new Map() };
  private stateListener: (state: PortClientState) => void = () => undefined;

  constructor(
    private readonly server: MemoryZooKeeper,
    readonly nodeId: string,
    sessionTimeoutMs: number,
    private readonly clock: Clock,
    /** How long a graceful close may wait for the server. */
    private readonly closeTimeoutMs: number,
  ) {
    this.timeoutMs = sessionTimeoutMs;
  }

  onState(listener: (state: PortClientState) => void): void {
    this.stateListener = listener;
  }

  sessionId(): string {
    return this.id;
  }

  sessionTimeoutMs(): number {
    return this.timeoutMs;
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
    const sessionId = this.id;
    this.server.toServer(conn, () => this.server.handshake(conn, sessionId, this.timeoutMs));
  }

  handshakeDone(conn: Connection, reply: { sessionId: string; timeoutMs: number } | 'expired'): void {
    if (this.dead || conn !== this.conn || this.phase === 'closed') return;
    if (reply === 'expired') {
      this.phase = 'expired';
      this.conn = null;
      this.server.closeConnection(conn);
      this.stateListener('expired');
      return;
    }
    this.id = reply.sessionId;
    this.timeoutMs = reply.timeoutMs;
    this.phase = 'connected';
    this.stateListener('connected');
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
    if (wasConnected) this.stateListener('disconnected');
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
  private call<T>(kind: 'read' | 'write', op: (zk: MemoryZooKeeper, sessionId: string) => T, watch?: { kind: WatchKind; path: string; watcher: Watcher }): Promise<T> {
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
      const sessionId = this.id;
      this.server.toServer(conn, () =>
        this.server.serve(conn, sessionId, kind, op, (result) => {
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

  // The port's operations; data travels as strings inside the simulated server.

  create(path: string, data: Buffer, mode: CreateMode): Promise<string> {
    const text = data.toString('utf8');
    return this.call('write', (z, sid) => z.create(path, text, mode, sid));
  }

  remove(path: string, version: number): Promise<void> {
    return this.call('write', (z) => z.remove(path, version));
  }

  getData(path: string, watcher?: ZkWatcher): Promise<{ data: Buffer; stat: ZnodeStat }> {
    return this.call(
      'read',
      (z, sid) => {
        const { data, stat } = z.getData(path, watcher ? sid : null);
        return { data: Buffer.from(data, 'utf8'), stat };
      },
      watcher ? { kind: 'data', path, watcher } : undefined,
    );
  }

  setData(path: string, data: Buffer, version: number): Promise<ZnodeStat> {
    const text = data.toString('utf8');
    return this.call('write', (z) => z.setData(path, text, version));
  }

  exists(path: string, watcher?: ZkWatcher): Promise<ZnodeStat | null> {
    return this.call('read', (z, sid) => z.exists(path, watcher ? sid : null), watcher ? { kind: 'data', path, watcher } : undefined);
  }

  getChildren(path: string, watcher?: ZkWatcher): Promise<string[]> {
    return this.call('read', (z, sid) => z.getChildren(path, watcher ? sid : null), watcher ? { kind: 'child', path, watcher } : undefined);
  }

  checkAndSet(checkPath: string, version: number, setPath: string, data: Buffer): Promise<void> {
    const text = data.toString('utf8');
    return this.call('write', (z) => z.checkAndSet(checkPath, version, setPath, text));
  }

  quorumCheck(path: string): Promise<void> {
    return this.call('write', (z) => {
      z.need(path);
    });
  }

  /** Graceful close when connected (ephemerals go at once); otherwise just drop the connection. */
  async close(): Promise<void> {
    if (this.dead || this.phase === 'closed') return;
    const timeoutMs = this.closeTimeoutMs;
    const wasConnected = this.connected;
    const conn = this.conn;
    const sessionId = this.id;
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
// The production coordinator on this ZooKeeper.

export interface MemoryCoordinatorOptions {
  zk: MemoryZooKeeper;
  cluster: string;
  nodeId: string;
  /** The node's clock: the client's and the coordinator's timers die with the node. */
  clock: Clock;
  sessionTimeoutMs: number;
  /** Timeout of every operation; default 4000. */
  opTimeoutMs?: number;
  log?: Log;
}

export type MemoryCoordinator = ZkCoordinator;

const silentLog: Log = {
  child: () => silentLog,
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  fatal: () => undefined,
};

export function createMemoryCoordinator(opts: MemoryCoordinatorOptions): MemoryCoordinator {
  let client: ZkClientSim | null = null;
  const coordinator = createCoordinator({
    cluster: opts.cluster,
    nodeId: opts.nodeId,
    sessionTimeoutMs: opts.sessionTimeoutMs,
    opTimeoutMs: opts.opTimeoutMs,
    clock: opts.clock,
    log: opts.log ?? silentLog,
    newClient: () => (client = new ZkClientSim(opts.zk, opts.nodeId, opts.sessionTimeoutMs, opts.clock, opts.opTimeoutMs ?? 4000)),
  });
  return {
    ...coordinator,
    crash(): void {
      coordinator.crash();
      client?.kill();
    },
  };
}
