// The Coordinator port (actors/ports.ts) on a real ZooKeeper, through node-zookeeper-client.
//
// Layout: coordination/paths.ts. Session states: actors/session.machine.ts, driven from the
// client's state events; this file reacts to the machine's `session.changed` facts.
//
// Choices worth knowing (see also the notes next to the code):
// - One client object holds at most one session. When the session expires (the server says so,
//   or we decide so locally after being suspended for the session timeout), the client is closed
//   for good and a new one is built: a new session with a new sessionId.
// - Every new session registers before it is announced: layout, members/<id>, election/n_<seq>,
//   then the watches. Only then does the listener get `coord.session` connected, followed by
//   the current members, epoch and (if it holds) election.
// - Node ids are unique per live process. A member or election znode that carries our id but
//   belongs to another session is a leftover of an earlier process with our id (a restart), or
//   of our own earlier session: it is deleted and replaced. Two live processes with one id would
//   fight over these znodes; that is a configuration error we do not try to survive.
// - node-zookeeper-client has no read timeout (it is commented out in its ConnectionManager), so
//   a link that silently drops packets is never noticed. A watchdog per client destroys a socket
//   that has been silent for 2/3 of the session timeout (the Java client's readTimeout); the
//   library then reports DISCONNECTED and reconnects. Its pings (every 1/3 of the timeout when
//   idle) keep a healthy link from looking silent.
// - `retries: 0`: in this library `retries` only re-runs an *operation* that failed with
//   CONNECTION_LOSS (reconnection itself is unbounded, paced by `spinDelay`). A re-run after we
//   gave up on the operation can land a stale write or a duplicate sequential znode, and against a
//   closed client it retries forever on a timer. So operations fail fast (NotConnectedError) and
//   the caller decides; our own retries are bounded.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { createActor, type Actor } from 'xstate';
import type {
  CoordEvent,
  Coordinator,
  EpochClaim,
  Log,
  MemberInfo,
  MemberState,
  Role,
  SessionState,
} from '../actors/ports.ts';
import { sessionMachine, type SessionMachineState } from '../actors/session.machine.ts';
import {
  CoordinationError,
  CoordinationTimeoutError,
  DeposedError,
  NotConnectedError,
  SessionExpiredError,
} from './errors.ts';
import { clusterPaths, isValidSegment, sortElectionNames } from './paths.ts';

// ---------------------------------------------------------------------------------------------
// The part of node-zookeeper-client we use (it ships no types).

interface ZkException extends Error {
  code: number;
}
interface ZkClientState {
  name: string;
  code: number;
}
interface ZkWatchEvent {
  type: number;
  name: string;
  path: string;
}
type ZkWatcher = (event: ZkWatchEvent) => void;
interface ZkStat {
  version: number;
  /** 8 bytes, big endian; all zero for a persistent znode. */
  ephemeralOwner: Buffer;
}
type ZkCallback<A extends unknown[]> = (error: ZkException | null | undefined, ...results: A) => void;

interface ZkTransaction {
  check(path: string, version: number): ZkTransaction;
  setData(path: string, data: Buffer, version?: number): ZkTransaction;
  commit(callback: ZkCallback<[unknown]>): void;
}

/** Internals of the library's ConnectionManager that the watchdog and close() need. */
interface ZkConnectionManager {
  state: number;
  socket?: Socket;
  connect(): void;
  on(event: 'state', listener: (state: number) => void): void;
  removeListener(event: 'state', listener: (state: number) => void): void;
}

interface ZkClient {
  connect(): void;
  close(): void;
  on(event: 'state', listener: (state: ZkClientState) => void): void;
  getSessionId(): Buffer;
  getSessionTimeout(): number;
  create(path: string, data: Buffer, acls: unknown[], mode: number, callback: ZkCallback<[string]>): void;
  addAuthInfo(scheme: string, auth: Buffer): void;
  remove(path: string, version: number, callback: ZkCallback<[]>): void;
  getData(path: string, watcher: ZkWatcher | undefined, callback: ZkCallback<[Buffer | undefined, ZkStat]>): void;
  setData(path: string, data: Buffer, version: number, callback: ZkCallback<[ZkStat]>): void;
  exists(path: string, watcher: ZkWatcher | undefined, callback: ZkCallback<[ZkStat | null]>): void;
  getChildren(path: string, watcher: ZkWatcher | undefined, callback: ZkCallback<[string[], ZkStat]>): void;
  transaction(): ZkTransaction;
  connectionManager: ZkConnectionManager;
}

interface ZkModule {
  createClient(connectString: string, options: { sessionTimeout: number; spinDelay: number; retries: number }): ZkClient;
  State: Record<'DISCONNECTED' | 'SYNC_CONNECTED' | 'AUTH_FAILED' | 'CONNECTED_READ_ONLY' | 'EXPIRED', ZkClientState>;
  Exception: Record<
    'CONNECTION_LOSS' | 'SESSION_EXPIRED' | 'OPERATION_TIMEOUT' | 'NO_NODE' | 'NODE_EXISTS' | 'BAD_VERSION',
    number
  >;
  CreateMode: Record<'PERSISTENT' | 'EPHEMERAL' | 'EPHEMERAL_SEQUENTIAL', number>;
  ACL: (new (permission: number, id: unknown) => unknown) & { OPEN_ACL_UNSAFE: unknown[] };
  Id: new (scheme: string, id: string) => unknown;
  Permission: Record<'READ' | 'WRITE' | 'CREATE' | 'DELETE' | 'ADMIN' | 'ALL', number>;
}

const zk = createRequire(import.meta.url)('node-zookeeper-client') as ZkModule;
const { Exception, CreateMode, State } = zk;

/** ConnectionManager.STATES in the library. */
const CM_CONNECTED = 2;
const CM_CLOSED = -2;

// ---------------------------------------------------------------------------------------------

export interface ZkCoordinatorOptions {
  /** 'host:port[,host:port...]' of the ensemble. */
  connectString: string;
  cluster: string;
  /** Unique per live process (see the note at the top). */
  nodeId: string;
  /** Requested session timeout; the server may negotiate it within its min/max. */
  sessionTimeoutMs: number;
  /** Timeout of every ZooKeeper operation; default 4000. */
  opTimeoutMs?: number;
  /**
   * Digest credentials. When set, the session authenticates with them and `/zistore/<cluster>`
   * and everything below it get an ACL that grants all rights to these credentials only, so
   * other ZooKeeper users can neither read nor break the group. Every node of a cluster needs
   * the same credentials.
   */
  auth?: { user: string; password: string };
  log: Log;
}

/** The digest ACL id ZooKeeper expects: user:base64(sha1(user:password)). */
export function digestId(user: string, password: string): string {
  return `${user}:${createHash('sha1').update(`${user}:${password}`).digest('base64')}`;
}

const OP_TIMEOUT_MS_DEFAULT = 4000;
const SPIN_DELAY_MS = 100;
/** Background failures (timeouts, bad data) tolerated per session before we give the session up. */
const SESSION_FAILURES_MAX = 10;
const CLAIM_ATTEMPTS_MAX = 20;
const MEMBER_REGISTER_ATTEMPTS_MAX = 5;
/** How long close() may take to reap a client that does not close by itself. */
const CLOSE_REAP_MS_MAX = 2000;
const DEFAULT_MEMBER: { role: Role; state: MemberState } = { role: 'follower', state: 'syncing' };
const ROLES: readonly Role[] = ['leader', 'follower'];
const MEMBER_STATES: readonly MemberState[] = ['syncing', 'serving', 'suspended', 'removed'];

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

/** One client object, hence at most one ZooKeeper session. */
interface Session {
  readonly gen: number;
  readonly client: ZkClient;
  /** Hex session id once connected, '' before. */
  sessionId: string;
  registering: boolean;
  registered: boolean;
  /** `coord.session` connected was emitted for this session; facts flow from then on. */
  announced: boolean;
  retired: boolean;
  closed: Promise<void> | null;
  electionName: string | null;
  elected: boolean;
  /** Our own election znodes left behind by resign(), still to be removed. */
  readonly abandonedElection: Set<string>;
  resigning: Promise<void> | null;
  failures: number;
  watchdog: ReturnType<typeof setInterval> | null;
  watchdogSocket: Socket | null;
  heardAtMs: number;
  /** performance.now() until which the server certainly keeps this session (see probeSession). */
  aliveUntilMs: number;
  probeSentAtMs: number | null;
  readonly timers: Set<ReturnType<typeof setTimeout>>;
  /** Rejecters of operations in flight on this client, so retiring it settles them at once. */
  readonly inflight: Set<(err: Error) => void>;
  /** Latest fact of each kind, and the key of the last one emitted (emit on change only). */
  readonly latest: Map<'members' | 'epoch' | 'elected', CoordEvent>;
  readonly emittedKeys: Map<string, string>;
  readonly members: SerialTask;
  readonly epoch: SerialTask;
  readonly election: SerialTask;
  readonly onMembersWatch: ZkWatcher;
  readonly onEpochWatch: ZkWatcher;
  readonly onPredecessorWatch: ZkWatcher;
}

export function createZkCoordinator(opts: ZkCoordinatorOptions): Coordinator {
  const { connectString, cluster, nodeId, sessionTimeoutMs } = opts;
  const opTimeoutMs = opts.opTimeoutMs ?? OP_TIMEOUT_MS_DEFAULT;
  if (connectString.length === 0) throw new RangeError('connectString is empty');
  if (!isValidSegment(nodeId)) throw new RangeError(`invalid node id: ${JSON.stringify(nodeId)}`);
  if (!Number.isInteger(sessionTimeoutMs) || sessionTimeoutMs <= 0) throw new RangeError('sessionTimeoutMs must be a positive integer');
  if (!Number.isInteger(opTimeoutMs) || opTimeoutMs <= 0) throw new RangeError('opTimeoutMs must be a positive integer');
  const paths = clusterPaths(cluster);
  const memberPath = paths.member(nodeId);

  const base = { node: nodeId, cluster };
  const log = {
    session: opts.log.child({ ...base, actor: 'session' }),
    membership: opts.log.child({ ...base, actor: 'membership' }),
    election: opts.log.child({ ...base, actor: 'election' }),
    epoch: opts.log.child({ ...base, actor: 'epoch' }),
  };
  const watchdogTickMs = Math.min(250, Math.max(20, Math.floor(sessionTimeoutMs / 15)));

  let listener: ((event: CoordEvent) => void) | null = null;
  let actor: Actor<typeof sessionMachine> | null = null;
  let machineState: SessionMachineState = 'connecting';
  let current: Session | null = null;
  let generation = 0;
  let stopping = false;
  let stopped: Promise<void> | null = null;
  let reported: { state: SessionState; sessionId: string } | null = null;
  let memberIdsCache: string[] = [];
  let latestMember: { role: Role; state: MemberState } = DEFAULT_MEMBER;
  /** A publish failed for want of a connection; re-publish when the session comes back. */
  let memberDirty = false;
  const closings = new Set<Promise<void>>();

  // --- output --------------------------------------------------------------------------------

  function emit(event: CoordEvent): void {
    if (stopping || listener === null) return;
    try {
      listener(event);
    } catch (err) {
      log.session.error({ err, event: event.type }, 'listener threw');
    }
  }

  /** Report the session state the host may rely on; emit on change only. */
  function refresh(): void {
    if (stopping) return;
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
    log.session.info({ state: next.state, sessionId: next.sessionId }, 'session changed');
    emit({ type: 'coord.session', state: next.state, sessionId: next.sessionId });
  }

  /** Record a fact of the session; emit it if the session is announced and the fact changed. */
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

  // --- ZooKeeper operations ------------------------------------------------------------------

  function mapZkError(err: unknown, path: string): CoordinationError {
    const code = typeof (err as ZkException | undefined)?.code === 'number' ? (err as ZkException).code : undefined;
    const name = err instanceof Error ? err.name : 'unknown';
    const options = { cause: err, path, code };
    switch (code) {
      case Exception.CONNECTION_LOSS:
        return new NotConnectedError('connection lost', options);
      case Exception.SESSION_EXPIRED:
        return new SessionExpiredError('session expired', options);
      case Exception.OPERATION_TIMEOUT:
        return new CoordinationTimeoutError('zookeeper operation timeout', options);
      default:
        return new CoordinationError(`zookeeper error ${name}`, options);
    }
  }

  function hasCode(err: unknown, code: number): boolean {
    return err instanceof CoordinationError && err.code === code;
  }

  /**
   * Run one operation on session `s`: fails fast unless the session is connected, times out after
   * opTimeoutMs, maps errors. `invoke` gets a `done` to call with the library's (error, result).
   */
  function call<R>(s: Session, path: string, invoke: (done: (err: ZkException | null | undefined, result?: R) => void) => void): Promise<R> {
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
        clearTimeout(timer);
        s.inflight.delete(abort);
        return true;
      };
      const abort = (err: Error): void => {
        if (settle()) reject(err);
      };
      const timer = setTimeout(() => {
        if (settle()) reject(new CoordinationTimeoutError(`no reply within ${opTimeoutMs} ms`, { path, timeoutMs: opTimeoutMs }));
      }, opTimeoutMs);
      s.inflight.add(abort);
      try {
        invoke((err, result) => {
          if (!settle()) return;
          if (err) reject(mapZkError(err, path));
          else resolve(result as R);
        });
      } catch (err) {
        // The library asserts its arguments (path syntax, data size) by throwing.
        if (settle()) reject(new CoordinationError('invalid request', { cause: err, path }));
      }
    });
  }

  const getData = (s: Session, path: string, watcher?: ZkWatcher): Promise<{ data: Buffer; stat: ZkStat }> =>
    call(s, path, (done) =>
      s.client.getData(path, watcher, (err, data, stat) => done(err, { data: data ?? Buffer.alloc(0), stat })),
    );
  const setData = (s: Session, path: string, data: Buffer, version: number): Promise<ZkStat> =>
    call(s, path, (done) => s.client.setData(path, data, version, (err, stat) => done(err, stat)));
  // Our cluster's znodes are ours alone when credentials are set; the shared root stays open.
  const clusterAcl = opts.auth ? [new zk.ACL(zk.Permission.ALL, new zk.Id('digest', digestId(opts.auth.user, opts.auth.password)))] : zk.ACL.OPEN_ACL_UNSAFE;
  const create = (s: Session, path: string, data: Buffer, mode: number): Promise<string> =>
    call(s, path, (done) =>
      s.client.create(path, data, path === paths.root ? zk.ACL.OPEN_ACL_UNSAFE : clusterAcl, mode, (err, created) => done(err, created)),
    );
  const remove = (s: Session, path: string, version: number): Promise<void> =>
    call(s, path, (done) => s.client.remove(path, version, (err) => done(err)));
  const exists = (s: Session, path: string, watcher?: ZkWatcher): Promise<ZkStat | null> =>
    call(s, path, (done) => s.client.exists(path, watcher, (err, stat) => done(err, stat)));
  const getChildren = (s: Session, path: string, watcher?: ZkWatcher): Promise<string[]> =>
    call(s, path, (done) => s.client.getChildren(path, watcher, (err, children) => done(err, children)));

  const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));
  const ownerOf = (stat: ZkStat): string => stat.ephemeralOwner.toString('hex');

  function parseJson(data: Buffer, path: string): unknown {
    try {
      return JSON.parse(data.toString('utf8')) as unknown;
    } catch (err) {
      throw new CoordinationError('unreadable znode data', { cause: err, path });
    }
  }

  function parseEpoch(data: Buffer, path: string): { epoch: number; leader: string | null } {
    const v = parseJson(data, path) as { epoch?: unknown; leader?: unknown } | null;
    if (
      v === null ||
      typeof v !== 'object' ||
      !Number.isSafeInteger(v.epoch) ||
      (v.epoch as number) < 0 ||
      (v.leader !== null && typeof v.leader !== 'string')
    ) {
      throw new CoordinationError('malformed epoch znode', { path });
    }
    return { epoch: v.epoch as number, leader: v.leader as string | null };
  }

  function parseReplicas(data: Buffer, path: string): { ids: string[]; epoch: number } {
    const v = parseJson(data, path) as { ids?: unknown; epoch?: unknown } | null;
    if (
      v === null ||
      typeof v !== 'object' ||
      !Array.isArray(v.ids) ||
      !v.ids.every((id) => typeof id === 'string') ||
      !Number.isSafeInteger(v.epoch) ||
      (v.epoch as number) < 0
    ) {
      throw new CoordinationError('malformed replicas znode', { path });
    }
    return { ids: [...(v.ids as string[])], epoch: v.epoch as number };
  }

  function parseMember(id: string, data: Buffer, path: string): MemberInfo | null {
    let v: { role?: unknown; state?: unknown } | null;
    try {
      v = parseJson(data, path) as { role?: unknown; state?: unknown } | null;
    } catch (err) {
      log.membership.warn({ err, path }, 'member data unreadable');
      return null;
    }
    if (v === null || typeof v !== 'object' || !ROLES.includes(v.role as Role) || !MEMBER_STATES.includes(v.state as MemberState)) {
      log.membership.warn({ path }, 'member data malformed');
      return null;
    }
    return { id, role: v.role as Role, state: v.state as MemberState };
  }

  // --- registration of a new session ---------------------------------------------------------

  async function createIfAbsent(s: Session, path: string, data: Buffer): Promise<void> {
    try {
      await create(s, path, data, CreateMode.PERSISTENT);
    } catch (err) {
      // Nodes starting together race to create the layout; losing the race is fine.
      if (!hasCode(err, Exception.NODE_EXISTS)) throw err;
    }
  }

  async function ensureLayout(s: Session): Promise<void> {
    const empty = Buffer.alloc(0);
    await createIfAbsent(s, paths.root, empty);
    await createIfAbsent(s, paths.cluster, empty);
    await createIfAbsent(s, paths.members, empty);
    await createIfAbsent(s, paths.election, empty);
    await createIfAbsent(s, paths.epoch, json({ epoch: 0, leader: null }));
    await createIfAbsent(s, paths.replicas, json({ ids: [], epoch: 0 }));
  }

  async function ensureMember(s: Session): Promise<void> {
    for (let attempt = 0; attempt < MEMBER_REGISTER_ATTEMPTS_MAX; attempt += 1) {
      const data = json(latestMember);
      try {
        await create(s, memberPath, data, CreateMode.EPHEMERAL);
        return;
      } catch (err) {
        if (!hasCode(err, Exception.NODE_EXISTS)) throw err;
      }
      const stat = await exists(s, memberPath);
      if (stat === null) continue;
      const owner = ownerOf(stat);
      if (owner === s.sessionId) {
        // Created by an earlier, interrupted registration of this very session.
        await setData(s, memberPath, data, -1);
        return;
      }
      log.membership.warn({ path: memberPath, staleOwner: owner, sessionId: s.sessionId }, 'stale member znode replaced');
      try {
        await remove(s, memberPath, stat.version);
      } catch (err) {
        if (!hasCode(err, Exception.NO_NODE) && !hasCode(err, Exception.BAD_VERSION)) throw err;
      }
    }
    throw new CoordinationError('member znode kept reappearing', { path: memberPath });
  }

  async function ensureElectionNode(s: Session): Promise<void> {
    const names = sortElectionNames(await getChildren(s, paths.election));
    const datas = await Promise.all(
      names.map(async (name) => {
        try {
          return { name, ...(await getData(s, paths.electionNode(name))) };
        } catch (err) {
          if (hasCode(err, Exception.NO_NODE)) return null;
          throw err;
        }
      }),
    );
    const ours: string[] = [];
    for (const entry of datas) {
      if (entry === null || entry.data.toString('utf8') !== nodeId) continue;
      const owner = ownerOf(entry.stat);
      if (owner === s.sessionId) {
        ours.push(entry.name);
        continue;
      }
      log.election.warn({ name: entry.name, staleOwner: owner, sessionId: s.sessionId }, 'stale election znode removed');
      await removeIfPresent(s, paths.electionNode(entry.name));
    }
    if (ours.length > 0) {
      // An interrupted registration of this session created it already: keep our place in line.
      s.electionName = ours[0]!;
      for (const extra of ours.slice(1)) await removeIfPresent(s, paths.electionNode(extra));
      return;
    }
    const created = await create(s, paths.electionPrefix, Buffer.from(nodeId, 'utf8'), CreateMode.EPHEMERAL_SEQUENTIAL);
    s.electionName = created.slice(created.lastIndexOf('/') + 1);
  }

  async function removeIfPresent(s: Session, path: string): Promise<void> {
    try {
      await remove(s, path, -1);
    } catch (err) {
      if (!hasCode(err, Exception.NO_NODE)) throw err;
    }
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
      log.session.info({ sessionId: s.sessionId, election: s.electionName }, 'registered');
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
      let value: { data: Buffer; stat: ZkStat };
      try {
        value = await getData(s, paths.epoch, s.onEpochWatch);
      } catch (err) {
        if (!hasCode(err, Exception.NO_NODE)) throw err;
        // Deleted by hand: wait for it to come back (the existence watch fires on creation).
        if ((await exists(s, paths.epoch, s.onEpochWatch)) === null) return;
        continue;
      }
      const { epoch, leader } = parseEpoch(value.data, paths.epoch);
      fact(s, 'epoch', { type: 'coord.epoch', epoch, leader });
      return;
    }
    throw new CoordinationError('epoch znode keeps vanishing', { path: paths.epoch });
  }

  /** Lowest sequence wins; otherwise watch only the predecessor (no herd effect). */
  async function evaluateElection(s: Session): Promise<void> {
    // Each round either finishes or saw the predecessor vanish, so the line only gets shorter.
    for (let round = 0; round < 10_000; round += 1) {
      // Read each round: resign() may have moved us to the back meanwhile (and kicked us again).
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
        // Someone removed our znode while our session lives (a second process with our id?).
        abandon(s, new CoordinationError('own election znode vanished', { path: paths.electionNode(mine) }));
        return;
      }
      if (index === 0) {
        if (s.retired || s !== current) return;
        s.elected = true;
        log.election.info({ sessionId: s.sessionId, name: mine }, 'elected');
        fact(s, 'elected', { type: 'coord.elected', sessionId: s.sessionId });
        return;
      }
      const predecessor = names[index - 1]!;
      const stat = await exists(s, paths.electionNode(predecessor), s.onPredecessorWatch);
      if (stat !== null) {
        log.election.debug({ name: mine, predecessor }, 'watching predecessor');
        return;
      }
    }
    throw new CoordinationError('election did not settle', { path: paths.election });
  }

  /** Re-enter the election at the back: the new znode first, so we never leave the line. */
  async function resignElection(s: Session): Promise<void> {
    const old = s.electionName;
    const created = await create(s, paths.electionPrefix, Buffer.from(nodeId, 'utf8'), CreateMode.EPHEMERAL_SEQUENTIAL);
    if (s.retired || s !== current) return;
    s.electionName = created.slice(created.lastIndexOf('/') + 1);
    s.elected = false;
    s.latest.delete('elected');
    s.emittedKeys.delete('elected');
    log.election.info({ sessionId: s.sessionId, was: old, name: s.electionName }, 'resigned');
    if (old !== null) {
      // Until it is gone the old znode still heads the line; the election retries its removal.
      s.abandonedElection.add(old);
      try {
        await removeIfPresent(s, paths.electionNode(old));
        s.abandonedElection.delete(old);
      } finally {
        kick(s, s.election, 'election');
      }
    } else {
      kick(s, s.election, 'election');
    }
  }

  function kick(s: Session, task: SerialTask, what: string): void {
    task.run().catch((err: unknown) => onFailure(s, err, what, () => kick(s, task, what)));
  }

  // --- failures ------------------------------------------------------------------------------

  /**
   * Background work failed. Lost connection: the next `connected` re-runs everything. Anything
   * else: retry with backoff, and after SESSION_FAILURES_MAX give the session up.
   */
  function onFailure(s: Session, err: unknown, what: string, retry: () => void): void {
    if (s.retired || s !== current || stopping) return;
    if (err instanceof NotConnectedError || err instanceof SessionExpiredError) {
      log.session.debug({ err, what }, 'interrupted, resumes on reconnect');
      return;
    }
    s.failures += 1;
    if (s.failures > SESSION_FAILURES_MAX) {
      abandon(s, err);
      return;
    }
    const delayMs = Math.min(sessionTimeoutMs, 50 * 2 ** s.failures);
    log.session.warn({ err, what, failures: s.failures, delayMs }, 'coordination step failed, retrying');
    const timer = setTimeout(() => {
      s.timers.delete(timer);
      if (s.retired || s !== current || stopping) return;
      if (machineState === 'connected') retry();
    }, delayMs);
    s.timers.add(timer);
  }

  /** Give up a session that does not work: the host sees it expire, and a new one is built. */
  function abandon(s: Session, err: unknown): void {
    if (s.retired || s !== current || stopping) return;
    log.session.error({ err, sessionId: s.sessionId }, 'session abandoned');
    actor?.send({ type: 'zk.expired' });
  }

  // --- clients -------------------------------------------------------------------------------

  function newSession(): Session {
    generation += 1;
    const client = zk.createClient(connectString, {
      sessionTimeout: sessionTimeoutMs,
      spinDelay: SPIN_DELAY_MS,
      retries: 0, // see the note at the top
    });
    if (opts.auth) client.addAuthInfo('digest', Buffer.from(`${opts.auth.user}:${opts.auth.password}`));
    const s: Session = {
      gen: generation,
      client,
      sessionId: '',
      registering: false,
      registered: false,
      announced: false,
      retired: false,
      closed: null,
      electionName: null,
      elected: false,
      abandonedElection: new Set(),
      resigning: null,
      failures: 0,
      watchdog: null,
      watchdogSocket: null,
      heardAtMs: 0,
      aliveUntilMs: 0,
      probeSentAtMs: null,
      timers: new Set(),
      inflight: new Set(),
      latest: new Map(),
      emittedKeys: new Map(),
      members: new SerialTask(() => readMembersWatch(s)),
      epoch: new SerialTask(() => readEpochWatch(s)),
      election: new SerialTask(() => evaluateElection(s)),
      // Also during registration: a change between arming and announcing must not be lost.
      onMembersWatch: () => {
        if (!s.retired) kick(s, s.members, 'members watch');
      },
      // Also during registration: a change between arming and announcing must not be lost.
      onEpochWatch: () => {
        if (!s.retired) kick(s, s.epoch, 'epoch watch');
      },
      // Also during registration: a change between arming and announcing must not be lost.
      onPredecessorWatch: () => {
        if (!s.retired) kick(s, s.election, 'election');
      },
    };
    client.on('state', (state) => {
      // Defer: never re-enter the library from inside its own state change.
      queueMicrotask(() => onClientState(s, state));
    });
    s.watchdog = setInterval(() => watchdogTick(s), watchdogTickMs);
    log.session.debug({ gen: s.gen }, 'client built');
    return s;
  }

  function onClientState(s: Session, state: ZkClientState): void {
    if (s.retired || s !== current || stopping || actor === null) return;
    switch (state.code) {
      case State.SYNC_CONNECTED.code: {
        const id = s.client.getSessionId().toString('hex');
        if (s.sessionId !== '' && s.sessionId !== id) {
          // One client keeps one session; if that ever changes, start the registration over.
          log.session.warn({ was: s.sessionId, now: id }, 'session id changed');
          s.registered = false;
          s.announced = false;
          s.electionName = null;
          s.elected = false;
          s.abandonedElection.clear();
          s.latest.clear();
          s.emittedKeys.clear();
        }
        s.sessionId = id;
        actor.send({ type: 'zk.connected', sessionTimeoutMs: s.client.getSessionTimeout() });
        break;
      }
      case State.DISCONNECTED.code:
        actor.send({ type: 'zk.disconnected' });
        break;
      case State.EXPIRED.code:
        actor.send({ type: 'zk.expired' });
        break;
      default:
        // AUTH_FAILED (we use no auth) and CONNECTED_READ_ONLY (the library does not support it).
        log.session.warn({ state: state.name }, 'unexpected client state');
    }
  }

  /**
   * A reply to a request we sent at time t proves the server heard from us at or after t, so it
   * keeps the session until at least t + the session timeout (less 10% for clock rate drift).
   * The node serves as leader only before that bound: a process paused past its session expiry
   * must not act on a session it cannot yet know is gone.
   */
  function probeSession(s: Session, nowMs: number): void {
    if (s.probeSentAtMs !== null || machineState !== 'connected' || s !== current) return;
    const timeoutMs = s.client.getSessionTimeout();
    if (nowMs - (s.aliveUntilMs - timeoutMs * 0.9) < timeoutMs / 4) return;
    s.probeSentAtMs = nowMs;
    s.client.exists('/', undefined, (err) => {
      const sentAtMs = s.probeSentAtMs ?? nowMs;
      s.probeSentAtMs = null;
      if (!err && !s.retired) s.aliveUntilMs = Math.max(s.aliveUntilMs, sentAtMs + timeoutMs * 0.9);
    });
  }

  /** The library's missing read timeout (see the note at the top). */
  function watchdogTick(s: Session): void {
    if (s.retired) return;
    probeSession(s, performance.now());
    const socket = s.client.connectionManager.socket;
    if (socket === undefined || socket.destroyed) return;
    const nowMs = performance.now();
    if (socket !== s.watchdogSocket) {
      s.watchdogSocket = socket;
      s.heardAtMs = nowMs;
      socket.on('data', () => {
        if (s.watchdogSocket === socket) s.heardAtMs = performance.now();
      });
      return;
    }
    const readTimeoutMs = Math.floor((s.client.getSessionTimeout() * 2) / 3);
    const silentMs = Math.round(nowMs - s.heardAtMs);
    if (silentMs > readTimeoutMs) {
      log.session.warn({ silentMs, readTimeoutMs, sessionId: s.sessionId }, 'zookeeper link silent');
      socket.destroy();
    }
  }

  /**
   * Close a client for good. Graceful when connected (the server drops our ephemerals at once);
   * otherwise, or if that takes longer than opTimeoutMs, its socket is destroyed. The library
   * reconnects on a socket close in any state but CLOSING, and a reconnect timer may be pending,
   * so the client's connect() is disabled first: a retired client must never revive its session.
   * Done when the library reports CLOSED, or when no live socket is left after any pending
   * reconnect timer (at most spinDelay) had its chance to fire.
   */
  function closeClient(s: Session): Promise<void> {
    if (s.closed !== null) return s.closed;
    s.retired = true;
    if (s.watchdog !== null) clearInterval(s.watchdog);
    for (const timer of s.timers) clearTimeout(timer);
    s.timers.clear();
    for (const abort of [...s.inflight]) abort(new NotConnectedError('session closed'));
    const cm = s.client.connectionManager;
    cm.connect = () => {};
    if (cm.state === CM_CLOSED) {
      s.closed = Promise.resolve();
      return s.closed;
    }
    const graceful = cm.state === CM_CONNECTED;
    s.closed = new Promise<void>((resolve) => {
      let done = false;
      let reaper: ReturnType<typeof setInterval> | null = null;
      let grace: ReturnType<typeof setTimeout> | null = null;
      const finish = (outcome: 'closed' | 'gave up'): void => {
        if (done) return;
        done = true;
        cm.removeListener('state', onState);
        if (reaper !== null) clearInterval(reaper);
        if (grace !== null) clearTimeout(grace);
        if (outcome === 'gave up') log.session.warn({ sessionId: s.sessionId }, 'client did not close');
        else log.session.debug({ sessionId: s.sessionId, graceful }, 'client closed');
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
      try {
        s.client.close();
      } catch (err) {
        // The library writes the close request to its socket, and throws if it has none yet
        // (a connect still pending): nothing to close gracefully then, the reaper takes over.
        log.session.debug({ err }, 'close without a socket');
      }
      if (graceful) grace = setTimeout(reap, opTimeoutMs);
      else reap();
    });
    return s.closed;
  }

  function retire(s: Session): void {
    const closing = closeClient(s);
    closings.add(closing);
    void closing.finally(() => closings.delete(closing));
  }

  // --- the session machine's facts -----------------------------------------------------------

  function onMachineChanged(state: SessionMachineState): void {
    machineState = state;
    const s = current;
    if (stopping || s === null) return;
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
          // Same session back: re-read (and re-arm) everything that may have moved meanwhile.
          kick(s, s.members, 'members watch');
          kick(s, s.epoch, 'epoch watch');
          kick(s, s.election, 'election');
          if (memberDirty) void publishLatest(s).catch((err: unknown) => log.membership.warn({ err }, 'republish failed'));
        }
        break;
      case 'expired':
        refresh();
        // The client is dead (or we declared it so): close it and build a new session.
        queueMicrotask(() => {
          if (stopping || current !== s || actor === null) return;
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
    if (stopping) throw new NotConnectedError('coordinator stopped', { path });
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
    log.session.info({ sessionId: s?.sessionId ?? '' }, 'stopped');
  }

  return {
    start(onEvent: (event: CoordEvent) => void): void {
      if (actor !== null || stopped !== null) throw new Error('zk coordinator: start() called twice or after stop()');
      listener = onEvent;
      actor = createActor(sessionMachine, { input: { sessionTimeoutMs } });
      actor.on('session.changed', (e) => onMachineChanged(e.state));
      current = newSession();
      actor.start();
      current.client.connect();
    },

    sessionAliveUntil(): number {
      if (stopping || current === null || machineState !== 'connected') return 0;
      return current.aliveUntilMs;
    },

    sessionState(): SessionState {
      // A stopped coordinator's session is closed: as useless as an expired one.
      if (stopping) return 'expired';
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
          const path = paths.member(id);
          try {
            return parseMember(id, (await getData(s, path)).data, path);
          } catch (err) {
            if (hasCode(err, Exception.NO_NODE)) return null; // left meanwhile
            throw err;
          }
        }),
      );
      return infos.filter((m): m is MemberInfo => m !== null).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    },

    async publishMember(info: { role: Role; state: MemberState }): Promise<void> {
      if (!ROLES.includes(info.role) || !MEMBER_STATES.includes(info.state)) {
        throw new RangeError(`invalid member info: ${JSON.stringify(info)}`);
      }
      // Remembered even if this fails: a new session re-creates the znode with it.
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
          log.epoch.info({ epoch: next, fence: after.version }, 'epoch claimed');
          return { epoch: next, fence: after.version };
        } catch (err) {
          if (!hasCode(err, Exception.BAD_VERSION)) throw err;
          log.epoch.debug({ epoch: next, attempt }, 'epoch claim raced');
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
      // A fence comes from claimEpoch(), so it is >= 1. It must be: the library's check() turns
      // version 0 into -1 ("any version"), which would disable the fence.
      if (!Number.isSafeInteger(claim.fence) || claim.fence < 1) throw new RangeError(`invalid epoch fence: ${claim.fence}`);
      const s = requireConnected(paths.replicas);
      try {
        await call<unknown>(s, paths.replicas, (done) =>
          s.client
            .transaction()
            .check(paths.epoch, claim.fence)
            .setData(paths.replicas, json({ ids, epoch: claim.epoch }), -1)
            .commit((err, results) => done(err, results)),
        );
      } catch (err) {
        if (hasCode(err, Exception.BAD_VERSION)) {
          throw new DeposedError(`epoch moved past ${claim.epoch}`, { cause: err, path: paths.epoch, code: Exception.BAD_VERSION });
        }
        throw err;
      }
      log.epoch.info({ epoch: claim.epoch, ids }, 'replicas written');
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
  };
}
