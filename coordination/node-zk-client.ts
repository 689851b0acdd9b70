// The ZkClient port (zk-client.ts) on node-zookeeper-client, a real ZooKeeper connection.
//
// - node-zookeeper-client has no read timeout (it is commented out in its ConnectionManager), so
//   a link that silently drops packets is never noticed. A watchdog destroys a socket that has
//   been silent for 2/3 of the session timeout (the Java client's readTimeout); the library then
//   reports DISCONNECTED and reconnects. Its pings (every 1/3 of the timeout when idle) keep a
//   healthy link from looking silent.
// - `retries: 0`: in this library `retries` only re-runs an *operation* that failed with
//   CONNECTION_LOSS (reconnection itself is unbounded, paced by `spinDelay`). A re-run after the
//   coordinator gave up on the operation can land a stale write or a duplicate sequential znode,
//   and against a closed client it retries forever on a timer. So operations fail fast.
// - Closed while its connect is pending, the library reads the server's connect response as a
//   reply and throws from its socket handler (an uncaught exception). close() is graceful only
//   once connected; before, the socket is destroyed.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type { Log } from '../actors/ports.ts';
import { ZkError, type CreateMode, type ZkClient, type ZkClientState, type ZkWatcher, type ZnodeStat } from './zk-client.ts';

// ---------------------------------------------------------------------------------------------
// The part of node-zookeeper-client we use (it ships no types).

interface LibException extends Error {
  code: number;
}
interface LibClientState {
  name: string;
  code: number;
}
interface LibStat {
  version: number;
  /** 8 bytes, big endian; all zero for a persistent znode. */
  ephemeralOwner: Buffer;
}
type LibCallback<A extends unknown[]> = (error: LibException | null | undefined, ...results: A) => void;
type LibWatcher = (event: { type: number; name: string; path: string }) => void;

interface LibTransaction {
  check(path: string, version: number): LibTransaction;
  setData(path: string, data: Buffer, version?: number): LibTransaction;
  commit(callback: LibCallback<[unknown]>): void;
}

/** Internals of the library's ConnectionManager that the watchdog and close() need. */
interface LibConnectionManager {
  state: number;
  socket?: Socket;
  connect(): void;
  on(event: 'state', listener: (state: number) => void): void;
  removeListener(event: 'state', listener: (state: number) => void): void;
}

interface LibClient {
  connect(): void;
  close(): void;
  on(event: 'state', listener: (state: LibClientState) => void): void;
  getSessionId(): Buffer;
  getSessionTimeout(): number;
  create(path: string, data: Buffer, acls: unknown[], mode: number, callback: LibCallback<[string]>): void;
  addAuthInfo(scheme: string, auth: Buffer): void;
  remove(path: string, version: number, callback: LibCallback<[]>): void;
  getData(path: string, watcher: LibWatcher | undefined, callback: LibCallback<[Buffer | undefined, LibStat]>): void;
  setData(path: string, data: Buffer, version: number, callback: LibCallback<[LibStat]>): void;
  exists(path: string, watcher: LibWatcher | undefined, callback: LibCallback<[LibStat | null]>): void;
  getChildren(path: string, watcher: LibWatcher | undefined, callback: LibCallback<[string[], LibStat]>): void;
  transaction(): LibTransaction;
  connectionManager: LibConnectionManager;
}

interface LibModule {
  createClient(connectString: string, options: { sessionTimeout: number; spinDelay: number; retries: number }): LibClient;
  State: Record<'DISCONNECTED' | 'SYNC_CONNECTED' | 'AUTH_FAILED' | 'CONNECTED_READ_ONLY' | 'EXPIRED', LibClientState>;
  CreateMode: Record<'PERSISTENT' | 'EPHEMERAL' | 'EPHEMERAL_SEQUENTIAL', number>;
  ACL: (new (permission: number, id: unknown) => unknown) & { OPEN_ACL_UNSAFE: unknown[] };
  Id: new (scheme: string, id: string) => unknown;
  Permission: Record<'READ' | 'WRITE' | 'CREATE' | 'DELETE' | 'ADMIN' | 'ALL', number>;
}

const lib = createRequire(import.meta.url)('node-zookeeper-client') as LibModule;

/** ConnectionManager.STATES in the library. */
const CM_CONNECTED = 2;
const CM_CLOSED = -2;
const SPIN_DELAY_MS = 100;
/** How long close() may take to reap a client that does not close by itself. */
const CLOSE_REAP_MS_MAX = 2000;

const MODES: Record<CreateMode, number> = {
  persistent: lib.CreateMode.PERSISTENT,
  ephemeral: lib.CreateMode.EPHEMERAL,
  'ephemeral-sequential': lib.CreateMode.EPHEMERAL_SEQUENTIAL,
};

/** The digest ACL id ZooKeeper expects: user:base64(sha1(user:password)). */
export function digestId(user: string, password: string): string {
  return `${user}:${createHash('sha1').update(`${user}:${password}`).digest('base64')}`;
}

export interface NodeZkClientOptions {
  /** 'host:port[,host:port...]' of the ensemble. */
  connectString: string;
  sessionTimeoutMs: number;
  /** How long a graceful close may wait for the server. */
  closeTimeoutMs: number;
  /**
   * Digest credentials: the session authenticates with them, and every znode it creates (but
   * those in `openPaths`) gets an ACL that grants all rights to these credentials alone.
   */
  auth?: { user: string; password: string };
  /** Paths created world-open even with `auth` (a root shared with other clusters). */
  openPaths?: readonly string[];
  log: Log;
}

const toStat = (stat: LibStat): ZnodeStat => ({ version: stat.version, ephemeralOwner: stat.ephemeralOwner.toString('hex') });

export function createNodeZkClient(opts: NodeZkClientOptions): ZkClient {
  const { log, sessionTimeoutMs } = opts;
  const client = lib.createClient(opts.connectString, { sessionTimeout: sessionTimeoutMs, spinDelay: SPIN_DELAY_MS, retries: 0 });
  if (opts.auth) client.addAuthInfo('digest', Buffer.from(`${opts.auth.user}:${opts.auth.password}`));
  const openAcl = lib.ACL.OPEN_ACL_UNSAFE;
  const ownAcl = opts.auth ? [new lib.ACL(lib.Permission.ALL, new lib.Id('digest', digestId(opts.auth.user, opts.auth.password)))] : openAcl;
  const openPaths = new Set(opts.openPaths ?? []);
  const watchdogTickMs = Math.min(250, Math.max(20, Math.floor(sessionTimeoutMs / 15)));
  let watchdog: ReturnType<typeof setInterval> | null = null;
  let watchdogSocket: Socket | null = null;
  let heardAtMs = 0;
  let closed: Promise<void> | null = null;

  /** Settle a promise from the library's (error, result) callback; its argument assertions throw. */
  function run<R>(path: string, invoke: (done: (err: LibException | null | undefined, result?: R) => void) => void): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      invoke((err, result) => {
        if (err) reject(new ZkError(typeof err.code === 'number' ? err.code : 0, path, { cause: err }));
        else resolve(result as R);
      });
    });
  }

  const libWatcher = (watcher: ZkWatcher | undefined): LibWatcher | undefined => (watcher === undefined ? undefined : () => watcher());

  /** The library's missing read timeout (see the note at the top). */
  function watchdogTick(): void {
    const socket = client.connectionManager.socket;
    if (socket === undefined || socket.destroyed) return;
    const nowMs = performance.now();
    if (socket !== watchdogSocket) {
      watchdogSocket = socket;
      heardAtMs = nowMs;
      socket.on('data', () => {
        if (watchdogSocket === socket) heardAtMs = performance.now();
      });
      return;
    }
    const readTimeoutMs = Math.floor((client.getSessionTimeout() * 2) / 3);
    const silentMs = Math.round(nowMs - heardAtMs);
    if (silentMs > readTimeoutMs) {
      log.warn({ silentMs, readTimeoutMs, sessionId: client.getSessionId().toString('hex') }, 'zookeeper link silent');
      socket.destroy();
    }
  }

  /**
   * Graceful when connected (the server drops our ephemerals at once); otherwise, or if that
   * takes longer than closeTimeoutMs, the socket is destroyed (a session still being connected
   * then expires on the server). The library reconnects on a socket
   * close in any state but CLOSING, and a reconnect timer may be pending, so the client's
   * connect() is disabled first: a closed client must never revive its session. Done when the
   * library reports CLOSED, or when no live socket is left after any pending reconnect timer (at
   * most spinDelay) had its chance to fire.
   */
  function closeClient(): Promise<void> {
    if (watchdog !== null) clearInterval(watchdog);
    const cm = client.connectionManager;
    cm.connect = () => {};
    if (cm.state === CM_CLOSED) return Promise.resolve();
    const graceful = cm.state === CM_CONNECTED;
    return new Promise<void>((resolve) => {
      let done = false;
      let reaper: ReturnType<typeof setInterval> | null = null;
      let grace: ReturnType<typeof setTimeout> | null = null;
      const finish = (outcome: 'closed' | 'gave up'): void => {
        if (done) return;
        done = true;
        cm.removeListener('state', onState);
        if (reaper !== null) clearInterval(reaper);
        if (grace !== null) clearTimeout(grace);
        if (outcome === 'gave up') log.warn({}, 'client did not close');
        else log.debug({ graceful }, 'client closed');
        resolve();
      };
      const onState = (state: number): void => {
        if (state === CM_CLOSED) finish('closed');
      };
      cm.on('state', onState);
      const reap = (): void => {
        const startedMs = performance.now();
        reaper = setInterval(() => {
          if (cm.state === CM_CLOSED) return finish('closed');
          const elapsedMs = performance.now() - startedMs;
          const socket = cm.socket;
          const live = socket !== undefined && !socket.destroyed;
          if (!live && elapsedMs > SPIN_DELAY_MS * 2) return finish('closed');
          if (elapsedMs > CLOSE_REAP_MS_MAX) return finish('gave up');
          // While CLOSING, a socket close ends in CLOSED; with connect() disabled it ends anyway.
          if (live) socket.destroy();
        }, 20);
      };
      if (!graceful) return reap();
      // Only once connected: while a connect is pending, the library (CLOSING) would read the
      // server's connect response as a reply and throw from its socket handler, ending the process.
      try {
        client.close();
      } catch (err) {
        log.debug({ err }, 'close without a socket');
      }
      grace = setTimeout(reap, opts.closeTimeoutMs);
    });
  }

  return {
    connect(): void {
      watchdog = setInterval(watchdogTick, watchdogTickMs);
      client.connect();
    },

    onState(listener: (state: ZkClientState) => void): void {
      client.on('state', (state) => {
        if (state.code === lib.State.SYNC_CONNECTED.code) listener('connected');
        else if (state.code === lib.State.DISCONNECTED.code) listener('disconnected');
        else if (state.code === lib.State.EXPIRED.code) listener('expired');
        // AUTH_FAILED (a digest is not an auth failure) and CONNECTED_READ_ONLY (unsupported).
        else log.warn({ state: state.name }, 'unexpected client state');
      });
    },

    sessionId: () => client.getSessionId().toString('hex'),
    sessionTimeoutMs: () => client.getSessionTimeout(),

    create: (path, data, mode) =>
      run(path, (done) => client.create(path, data, openPaths.has(path) ? openAcl : ownAcl, MODES[mode], (err, created) => done(err, created))),
    remove: (path, version) => run(path, (done) => client.remove(path, version, (err) => done(err))),
    getData: (path, watcher) =>
      run(path, (done) => client.getData(path, libWatcher(watcher), (err, data, stat) => done(err, err ? undefined : { data: data ?? Buffer.alloc(0), stat: toStat(stat) }))),
    setData: (path, data, version) => run(path, (done) => client.setData(path, data, version, (err, stat) => done(err, err ? undefined : toStat(stat)))),
    exists: (path, watcher) => run(path, (done) => client.exists(path, libWatcher(watcher), (err, stat) => done(err, stat ? toStat(stat) : null))),
    getChildren: (path, watcher) => run(path, (done) => client.getChildren(path, libWatcher(watcher), (err, children) => done(err, children))),
    checkAndSet: (checkPath, version, setPath, data) =>
      run(setPath, (done) =>
        client
          .transaction()
          .check(checkPath, version)
          .setData(setPath, data, -1)
          .commit((err) => done(err)),
      ),
    quorumCheck: (path) =>
      run(path, (done) =>
        client
          .transaction()
          .check(path, -1)
          .commit((err) => done(err)),
      ),

    close(): Promise<void> {
      if (closed === null) closed = closeClient();
      return closed;
    },
  };
}
