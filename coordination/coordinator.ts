// The Coordinator port (actors/ports.ts), written once against the small ZooKeeper client of
// zk-client.ts. Production gives it node-zookeeper-client (node-zk-client.ts, through
// zk-coordinator.ts); the simulation gives it clients of its in-memory ZooKeeper
// (memory-zookeeper.ts) and virtual time. Layout: paths.ts. Session states:
// actors/session.machine.ts, driven from the client's state events; this file reacts to the
// machine's `session.changed` facts.
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
// - Operations fail fast (NotConnectedError) unless the session is connected, and time out after
//   opTimeoutMs; the caller decides what to retry, and our own retries are bounded.
import { createActor, type Actor } from 'xstate';
import { childLog, type Clock, type CoordEvent, type Coordinator, type EpochClaim, type Log, type MemberInfo, type MemberState, type Role, type SessionState, type UncleanGrant } from '../actors/ports.ts';
import { sessionMachine, type SessionMachineState } from '../actors/session.machine.ts';
import { CoordinationError, CoordinationTimeoutError, DeposedError, NotConnectedError, SessionExpiredError } from './errors.ts';
import { clusterPaths, isValidSegment, sortElectionNames } from './paths.ts';
import { parseUncleanGrants } from './unclean.ts';
import { ZkCode, ZkError, type ZkClient, type ZkClientState, type ZkWatcher, type ZnodeStat } from './zk-client.ts';

export interface CoordinatorOptions {
  cluster: string;
  /** Unique per live process (see the note at the top). */
  nodeId: string;
  /** Requested session timeout; the server may negotiate it within its min/max. */
  sessionTimeoutMs: number;
  /** Timeout of every ZooKeeper operation; default 4000. */
  opTimeoutMs?: number;
  /** Builds a new client (a new session). */
  newClient: () => ZkClient;
  /** The node's clock: operation timeouts, retries and the session probe run on it. */
  clock: Clock;
  log: Log;
}

/** The port, plus what a host that owns the process may need. */
export interface ZkCoordinator extends Coordinator {
  readonly nodeId: string;
  /** The process died (simulation): no more events or operations; the session lingers on the server until it expires. */
  crash(): void;
  /** Id of the current session ('' before one is established). */
  currentSessionId(): string;
  /** The timeout the server granted the current session (0 before one is established). */
  grantedSessionTimeoutMs(): number;
}

const OP_TIMEOUT_MS_DEFAULT = 4000;
/** Background failures (timeouts, bad data) tolerated per session before we give the session up. */
const SESSION_FAILURES_MAX = 10;
const CLAIM_ATTEMPTS_MAX = 20;
const MEMBER_REGISTER_ATTEMPTS_MAX = 5;
/** Share of the session timeout a bound may be trusted for: the rest covers clock rate drift (docs/safety.md). */
const SESSION_BOUND_SHARE = 0.9;
const DEFAULT_MEMBER: { role: Role; state: MemberState } = { role: 'follower', state: 'syncing' };
const ROLES: readonly Role[] = ['leader', 'follower'];
const MEMBER_STATES: readonly MemberState[] = ['syncing', 'serving', 'suspended', 'removed'];

/**
 * A serial task: a trigger while it runs makes it run once more after, even when this run fails
 * (the trigger may be the reconnection that the failure would otherwise wait for); callers await
 * the outcome.
 */
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
          try {
            await this.task();
          } catch (err) {
            if (!this.again) throw err;
          }
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
  /** register() was called again while it ran. */
  registerAgain: boolean;
  registered: boolean;
  /** `coord.session` connected was emitted for this session; facts flow from then on. */
  announced: boolean;
  retired: boolean;
  electionName: string | null;
  elected: boolean;
  /** Our own election znodes left behind by resign(), still to be removed. */
  readonly abandonedElection: Set<string>;
  resigning: Promise<void> | null;
  failures: number;
  probeTimer: unknown;
  /** Clock time until which the ensemble certainly keeps this session (see probeSession). */
  aliveUntilMs: number;
  probeSentAtMs: number | null;
  readonly timers: Set<unknown>;
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

export function createCoordinator(opts: CoordinatorOptions): ZkCoordinator {
  const { cluster, nodeId, sessionTimeoutMs, clock } = opts;
  const opTimeoutMs = opts.opTimeoutMs ?? OP_TIMEOUT_MS_DEFAULT;
  if (!isValidSegment(nodeId)) throw new RangeError(`invalid node id: ${JSON.stringify(nodeId)}`);
  if (!Number.isInteger(sessionTimeoutMs) || sessionTimeoutMs <= 0) throw new RangeError('sessionTimeoutMs must be a positive integer');
  if (!Number.isInteger(opTimeoutMs) || opTimeoutMs <= 0) throw new RangeError('opTimeoutMs must be a positive integer');
  const paths = clusterPaths(cluster);
  const memberPath = paths.member(nodeId);

  const base = { node: nodeId, cluster };
  const log = {
    session: childLog(opts.log, { ...base, actor: 'session' }),
    membership: childLog(opts.log, { ...base, actor: 'membership' }),
    election: childLog(opts.log, { ...base, actor: 'election' }),
    epoch: childLog(opts.log, { ...base, actor: 'epoch' }),
  };
  const probeTickMs = Math.min(250, Math.max(20, Math.floor(sessionTimeoutMs / 15)));

  let listener: ((event: CoordEvent) => void) | null = null;
  let actor: Actor<typeof sessionMachine> | null = null;
  let machineState: SessionMachineState = 'connecting';
  let current: Session | null = null;
  let generation = 0;
  let stopping = false;
  let crashed = false;
  let stopped: Promise<void> | null = null;
  let reported: { state: SessionState; sessionId: string } | null = null;
  let memberIdsCache: string[] = [];
  let latestMember: { role: Role; state: MemberState } = DEFAULT_MEMBER;
  /** A publish failed for want of a connection; re-publish when the session comes back. */
  let memberDirty = false;
  const closings = new Set<Promise<void>>();
  const gone = (): boolean => stopping || crashed;

  // --- output --------------------------------------------------------------------------------

  function emit(event: CoordEvent): void {
    if (gone() || listener === null) return;
    try {
      listener(event);
    } catch (err) {
      log.session.error({ err, event: event.type }, 'listener threw');
    }
  }

  /** Report the session state the host may rely on; emit on change only. */
  function refresh(): void {
    if (gone()) return;
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
    if (!(err instanceof ZkError)) return new CoordinationError('invalid request', { cause: err, path });
    const options = { cause: err, path: err.path || path, code: err.code };
    switch (err.code) {
      case ZkCode.CONNECTION_LOSS:
        return new NotConnectedError('connection lost', options);
      case ZkCode.SESSION_EXPIRED:
        return new SessionExpiredError('session expired', options);
      case ZkCode.OPERATION_TIMEOUT:
        return new CoordinationTimeoutError('zookeeper operation timeout', options);
      default:
        return new CoordinationError(`zookeeper error ${err.code}`, options);
    }
  }

  function hasCode(err: unknown, code: number): boolean {
    return err instanceof CoordinationError && err.code === code;
  }

  /** Run one operation on session `s`: fails fast unless the session is connected, times out after opTimeoutMs, maps errors. */
  function call<R>(s: Session, path: string, invoke: (client: ZkClient) => Promise<R>): Promise<R> {
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
      let work: Promise<R>;
      try {
        work = invoke(s.client);
      } catch (err) {
        // A client may assert its arguments (path syntax, data size) by throwing.
        work = Promise.reject(err);
      }
      work.then(
        (value) => {
          if (settle()) resolve(value);
        },
        (err: unknown) => {
          if (settle()) reject(mapZkError(err, path));
        },
      );
    });
  }

  const getData = (s: Session, path: string, watcher?: ZkWatcher) => call(s, path, (c) => c.getData(path, watcher));
  const setData = (s: Session, path: string, data: Buffer, version: number) => call(s, path, (c) => c.setData(path, data, version));
  const create = (s: Session, path: string, data: Buffer, mode: 'persistent' | 'ephemeral' | 'ephemeral-sequential') =>
    call(s, path, (c) => c.create(path, data, mode));
  const remove = (s: Session, path: string, version: number) => call(s, path, (c) => c.remove(path, version));
  const exists = (s: Session, path: string, watcher?: ZkWatcher) => call(s, path, (c) => c.exists(path, watcher));
  const getChildren = (s: Session, path: string, watcher?: ZkWatcher) => call(s, path, (c) => c.getChildren(path, watcher));

  const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

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

  function parseReplicas(data: Buffer, path: string): { ids: string[]; epoch: number; era: number } {
    const v = parseJson(data, path) as { ids?: unknown; epoch?: unknown; era?: unknown } | null;
    if (
      v === null ||
      typeof v !== 'object' ||
      !Array.isArray(v.ids) ||
      !v.ids.every((id) => typeof id === 'string') ||
      !Number.isSafeInteger(v.epoch) ||
      (v.epoch as number) < 0 ||
      // Absent in records written before eras existed: era 0.
      (v.era !== undefined && !(Number.isSafeInteger(v.era) && (v.era as number) >= 0))
    ) {
      throw new CoordinationError('malformed replicas znode', { path });
    }
    return { ids: [...(v.ids as string[])], epoch: v.epoch as number, era: (v.era as number | undefined) ?? 0 };
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
      await create(s, path, data, 'persistent');
    } catch (err) {
      // Nodes starting together race to create the layout; losing the race is fine.
      if (!hasCode(err, ZkCode.NODE_EXISTS)) throw err;
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
        await create(s, memberPath, data, 'ephemeral');
        return;
      } catch (err) {
        if (!hasCode(err, ZkCode.NODE_EXISTS)) throw err;
      }
      const stat = await exists(s, memberPath);
      if (stat === null) continue;
      const owner = stat.ephemeralOwner;
      if (owner === s.sessionId) {
        // Created by an earlier, interrupted registration of this very session.
        await setData(s, memberPath, data, -1);
        return;
      }
      log.membership.warn({ path: memberPath, staleOwner: owner, sessionId: s.sessionId }, 'stale member znode replaced');
      try {
        await remove(s, memberPath, stat.version);
      } catch (err) {
        if (!hasCode(err, ZkCode.NO_NODE) && !hasCode(err, ZkCode.BAD_VERSION)) throw err;
      }
    }
    throw new CoordinationError('member znode kept reappearing', { path: memberPath });
  }

  /**
   * This session's election znodes, oldest first (more than one when a create whose reply was
   * lost went through); those of our id left by an older session are removed on the way.
   */
  async function ownElectionNodes(s: Session): Promise<string[]> {
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
      if (entry === null || entry.data.toString('utf8') !== nodeId) continue;
      const owner = entry.stat.ephemeralOwner;
      if (owner === s.sessionId) {
        ours.push(entry.name);
        continue;
      }
      log.election.warn({ name: entry.name, staleOwner: owner, sessionId: s.sessionId }, 'stale election znode removed');
      await removeIfPresent(s, paths.electionNode(entry.name));
    }
    return ours;
  }

  async function ensureElectionNode(s: Session): Promise<void> {
    const ours = await ownElectionNodes(s);
    if (ours.length > 0) {
      // An interrupted registration of this session created it already: keep our place in line.
      s.electionName = ours[0]!;
      for (const extra of ours.slice(1)) await removeIfPresent(s, paths.electionNode(extra));
      return;
    }
    const created = await create(s, paths.electionPrefix, Buffer.from(nodeId, 'utf8'), 'ephemeral-sequential');
    s.electionName = created.slice(created.lastIndexOf('/') + 1);
  }

  async function removeIfPresent(s: Session, path: string): Promise<void> {
    try {
      await remove(s, path, -1);
    } catch (err) {
      if (!hasCode(err, ZkCode.NO_NODE)) throw err;
    }
  }

  async function register(s: Session): Promise<void> {
    if (s.registering) {
      // Asked again while a registration runs (a reconnection while it fails): run once more after.
      s.registerAgain = true;
      return;
    }
    if (s.registered || s.retired) return;
    s.registering = true;
    s.registerAgain = false;
    const startedAtMs = clock.now();
    try {
      await ensureLayout(s);
      await ensureMember(s);
      await ensureElectionNode(s);
      await Promise.all([s.members.run(), s.epoch.run(), s.election.run()]);
      if (s.retired || s !== current) return;
      s.registered = true;
      s.failures = 0;
      // Registration wrote through the quorum (the ephemeral znodes): it proves the session as a probe would.
      s.aliveUntilMs = Math.max(s.aliveUntilMs, startedAtMs + s.client.sessionTimeoutMs() * SESSION_BOUND_SHARE);
      memberDirty = false;
      log.session.info({ sessionId: s.sessionId, election: s.electionName }, 'registered');
      s.announced = true;
      refresh();
      flushFacts(s);
    } catch (err) {
      if (!s.registerAgain) onFailure(s, err, 'registration', () => void register(s));
    } finally {
      s.registering = false;
    }
    if (s.registerAgain && !s.registered && !s.retired && machineState === 'connected') void register(s);
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
      let value: { data: Buffer; stat: ZnodeStat };
      try {
        value = await getData(s, paths.epoch, s.onEpochWatch);
      } catch (err) {
        if (!hasCode(err, ZkCode.NO_NODE)) throw err;
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
    const created = await create(s, paths.electionPrefix, Buffer.from(nodeId, 'utf8'), 'ephemeral-sequential');
    if (s.retired || s !== current) return;
    s.electionName = created.slice(created.lastIndexOf('/') + 1);
    s.elected = false;
    s.latest.delete('elected');
    s.emittedKeys.delete('elected');
    log.election.info({ sessionId: s.sessionId, was: old, name: s.electionName }, 'resigned');
    // Until they are gone our older znodes still stand ahead in the line (the old one, and any
    // an earlier resign created though its reply was lost): the election retries their removal.
    if (old !== null) s.abandonedElection.add(old);
    try {
      for (const name of await ownElectionNodes(s)) if (name !== s.electionName) s.abandonedElection.add(name);
    } finally {
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
    if (s.retired || s !== current || gone()) return;
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
    const timer = clock.setTimeout(() => {
      s.timers.delete(timer);
      if (s.retired || s !== current || gone()) return;
      if (machineState === 'connected') retry();
    }, delayMs);
    s.timers.add(timer);
  }

  /** Give up a session that does not work: the host sees it expire, and a new one is built. */
  function abandon(s: Session, err: unknown): void {
    if (s.retired || s !== current || gone()) return;
    log.session.error({ err, sessionId: s.sessionId }, 'session abandoned');
    actor?.send({ type: 'zk.expired' });
  }

  // --- clients -------------------------------------------------------------------------------

  function newSession(): Session {
    generation += 1;
    const client = opts.newClient();
    const s: Session = {
      gen: generation,
      client,
      sessionId: '',
      registering: false,
      registerAgain: false,
      registered: false,
      announced: false,
      retired: false,
      electionName: null,
      elected: false,
      abandonedElection: new Set(),
      resigning: null,
      failures: 0,
      probeTimer: null,
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
      onEpochWatch: () => {
        if (!s.retired) kick(s, s.epoch, 'epoch watch');
      },
      onPredecessorWatch: () => {
        if (!s.retired) kick(s, s.election, 'election');
      },
    };
    // Defer: never re-enter a client from inside its own state change.
    client.onState((state) => queueMicrotask(() => onClientState(s, state)));
    const tick = (): void => {
      if (s.retired) return;
      probeSession(s, clock.now());
      s.probeTimer = clock.setTimeout(tick, probeTickMs);
    };
    s.probeTimer = clock.setTimeout(tick, probeTickMs);
    log.session.debug({ gen: s.gen }, 'client built');
    return s;
  }

  function onClientState(s: Session, state: ZkClientState): void {
    if (s.retired || s !== current || gone() || actor === null) return;
    switch (state) {
      case 'connected': {
        const id = s.client.sessionId();
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
        actor.send({ type: 'zk.connected', sessionTimeoutMs: s.client.sessionTimeoutMs() });
        break;
      }
      case 'disconnected':
        actor.send({ type: 'zk.disconnected' });
        break;
      case 'expired':
        actor.send({ type: 'zk.expired' });
        break;
    }
  }

  /**
   * A reply to a request we sent at time t proves the ensemble heard from us at or after t, so it
   * keeps the session until at least t + the session timeout (less a share for clock rate
   * drift). The node serves (as leader, or granting leases) only before that bound: a process
   * paused past its session expiry must not act on a session it cannot yet know is gone. The
   * probe is a request the quorum orders: a read would be answered by the one server we talk to,
   * which, cut off from its quorum, keeps answering after the quorum expired us. Probed every
   * tick once the bound is a quarter timeout old.
   */
  function probeSession(s: Session, nowMs: number): void {
    if (s.probeSentAtMs !== null || machineState !== 'connected' || s !== current) return;
    const timeoutMs = s.client.sessionTimeoutMs();
    if (nowMs - (s.aliveUntilMs - timeoutMs * SESSION_BOUND_SHARE) < timeoutMs / 4) return;
    s.probeSentAtMs = nowMs;
    s.client.quorumCheck('/').then(
      () => {
        const sentAtMs = s.probeSentAtMs ?? nowMs;
        s.probeSentAtMs = null;
        if (!s.retired) s.aliveUntilMs = Math.max(s.aliveUntilMs, sentAtMs + timeoutMs * SESSION_BOUND_SHARE);
      },
      () => {
        s.probeSentAtMs = null;
      },
    );
  }

  /** Close a client for good; operations in flight on it fail at once. */
  function retire(s: Session): void {
    if (s.retired) return;
    s.retired = true;
    if (s.probeTimer !== null) clock.clearTimeout(s.probeTimer);
    for (const timer of s.timers) clock.clearTimeout(timer);
    s.timers.clear();
    for (const abort of [...s.inflight]) abort(new NotConnectedError('session closed'));
    const closing = s.client.close();
    closings.add(closing);
    void closing.finally(() => closings.delete(closing));
  }

  // --- the session machine's facts -----------------------------------------------------------

  function onMachineChanged(state: SessionMachineState): void {
    machineState = state;
    const s = current;
    if (gone() || s === null) return;
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
          if (gone() || current !== s || actor === null) return;
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
    if (gone()) throw new NotConnectedError('coordinator stopped', { path });
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
    nodeId,

    start(onEvent: (event: CoordEvent) => void): void {
      if (actor !== null || stopped !== null) throw new Error('coordinator: start() called twice or after stop()');
      listener = onEvent;
      actor = createActor(sessionMachine, { input: { sessionTimeoutMs }, clock });
      actor.on('session.changed', (e) => onMachineChanged(e.state));
      current = newSession();
      actor.start();
      current.client.connect();
    },

    sessionAliveUntil(): number {
      if (gone() || current === null || machineState !== 'connected') return 0;
      return current.aliveUntilMs;
    },

    sessionState(): SessionState {
      // A stopped coordinator's session is closed: as useless as an expired one.
      if (gone()) return 'expired';
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
            if (hasCode(err, ZkCode.NO_NODE)) return null; // left meanwhile
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

    async claimEpoch(above = 0): Promise<EpochClaim> {
      for (let attempt = 0; attempt < CLAIM_ATTEMPTS_MAX; attempt += 1) {
        const s = requireConnected(paths.epoch);
        const { data, stat } = await getData(s, paths.epoch);
        const { epoch } = parseEpoch(data, paths.epoch);
        const next = Math.max(epoch, above) + 1;
        try {
          const after = await setData(s, paths.epoch, json({ epoch: next, leader: nodeId }), stat.version);
          log.epoch.info({ epoch: next, fence: after.version }, 'epoch claimed');
          return { epoch: next, fence: after.version };
        } catch (err) {
          if (!hasCode(err, ZkCode.BAD_VERSION)) throw err;
          log.epoch.debug({ epoch: next, attempt }, 'epoch claim raced');
        }
      }
      throw new CoordinationError(`epoch claim lost ${CLAIM_ATTEMPTS_MAX} races`, { path: paths.epoch });
    },

    async readEpoch(): Promise<{ epoch: number; leader: string | null }> {
      const s = requireConnected(paths.epoch);
      // A server may lag its quorum: a request the quorum orders first makes this read at least
      // as new as any claim made before it (a session's requests are answered in order).
      await call(s, paths.epoch, (c) => c.quorumCheck(paths.epoch));
      return parseEpoch((await getData(s, paths.epoch)).data, paths.epoch);
    },

    async readUncleanGrant(): Promise<UncleanGrant | null> {
      const s = requireConnected(paths.unclean);
      try {
        return parseUncleanGrants((await getData(s, paths.unclean)).data, paths.unclean).at(-1) ?? null;
      } catch (err) {
        if (hasCode(err, ZkCode.NO_NODE)) return null;
        throw err;
      }
    },

    async readReplicas(): Promise<{ ids: string[]; epoch: number; era: number }> {
      const s = requireConnected(paths.replicas);
      return parseReplicas((await getData(s, paths.replicas)).data, paths.replicas);
    },

    async writeReplicas(ids: string[], claim: EpochClaim, era = 0): Promise<void> {
      if (!Array.isArray(ids) || !ids.every((id) => typeof id === 'string')) throw new RangeError('replica ids must be strings');
      // A fence comes from claimEpoch(), so it is >= 1. It must be: node-zookeeper-client's
      // check() turns version 0 into -1 ("any version"), which would disable the fence.
      if (!Number.isSafeInteger(claim.fence) || claim.fence < 1) throw new RangeError(`invalid epoch fence: ${claim.fence}`);
      const s = requireConnected(paths.replicas);
      try {
        await call(s, paths.replicas, (c) => c.checkAndSet(paths.epoch, claim.fence, paths.replicas, json({ ids, epoch: claim.epoch, era })));
      } catch (err) {
        if (hasCode(err, ZkCode.BAD_VERSION)) {
          throw new DeposedError(`epoch moved past ${claim.epoch}`, { cause: err, path: paths.epoch, code: ZkCode.BAD_VERSION });
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

    crash(): void {
      if (crashed) return;
      crashed = true;
      actor?.stop();
      if (current !== null) {
        current.retired = true;
        if (current.probeTimer !== null) clock.clearTimeout(current.probeTimer);
        for (const timer of current.timers) clock.clearTimeout(timer);
      }
    },

    currentSessionId(): string {
      return current?.sessionId ?? '';
    },

    grantedSessionTimeoutMs(): number {
      return current !== null && current.sessionId !== '' ? current.client.sessionTimeoutMs() : 0;
    },
  };
}
