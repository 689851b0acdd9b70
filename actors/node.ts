// One ZiStore node: composes the session (via the Coordinator), the leader and follower
// machines and the replica store, and answers clients and peers. Every effect goes through
// the ports, so the same node runs on NATS + ZooKeeper and in the deterministic simulation.
import { BusClosedError, BusTimeoutError, NoRespondersError } from '../bus/errors.ts';
import { createActor, fromCallback, fromPromise, type Actor } from 'xstate';
import { followerMachine, type FollowerEvent } from './follower.machine.ts';
import { LeaderTerm, sessionProven } from './leader-term.ts';
import { leaderMachine } from './leader.machine.ts';
import type { Bus, Clock, CoordEvent, Coordinator, Log, MemberInfo, MemberState, NodeObserver, Role, SessionState } from './ports.ts';
import { Batcher } from './batcher.ts';
import type { ClientReply, ClientRequest, MembersView, PeerMessage, PeerReply, WriteCommand } from './protocol.ts';
import { ReplicaStore } from './replica-store.ts';
import { fail, parseKey, parseWrite } from './request.ts';
import { Cancellation, deferred, DeadlineError, Deadlines, leaseCertainlyOverMs, type Deferred } from './time.ts';

export interface NodeConfig {
  nodeId: string;
  cluster: string;
  /** Every client request is answered within this time (PROTOCOL.md: default 4 s). */
  opTimeoutMs: number;
  /** Read lease of a follower; must stay below the ZooKeeper session timeout (docs/safety.md). */
  leaseMs: number;
  ackTimeoutMs: number;
  /** A write is acknowledged only once this many nodes hold it (docs/safety.md); 1 for a single node. */
  minReplicas: number;
  /** How long a follower read waits for a write in flight before asking the leader. */
  validateWaitMs: number;
  joinRetryMs: number;
  syncWaitMs: number;
  /** A joiner gives up (and retries) when no snapshot chunk arrived for this long. */
  joinTimeoutMs: number;
  snapshotChunkEntries: number;
  snapshotChunkBytes: number;
}

export const defaultNodeConfig = {
  opTimeoutMs: 4000,
  leaseMs: 1000,
  ackTimeoutMs: 300,
  minReplicas: 2,
  validateWaitMs: 500,
  joinRetryMs: 100,
  syncWaitMs: 3000,
  joinTimeoutMs: 10_000,
  snapshotChunkEntries: 8192,
  snapshotChunkBytes: 1024 * 1024,
} satisfies Partial<NodeConfig>;

export interface NodePorts {
  bus: Bus;
  coordinator: Coordinator;
  clock: Clock;
  log: Log;
  observer?: NodeObserver;
}

/** The keys a peer message is about, for the observer's message flow. */
function messageKeys(message: PeerMessage): string[] {
  switch (message.type) {
    case 'invalidate':
      return message.entries.map((e) => e.key);
    case 'validate':
      return message.validated.map((v) => v.key);
    case 'forward':
      return message.commands.map((c) => c.key);
    case 'read':
      return message.keys;
    default:
      return [];
  }
}

class LeaderGoneError extends Error {
  constructor(why: string) {
    super(`leader gone: ${why}`);
    this.name = 'LeaderGoneError';
  }
}

const encoder = new TextEncoder();

export class ZiNode {
  readonly store = new ReplicaStore();
  private readonly log: Log;
  private sessionState: SessionState = 'connecting';
  private sessionId: string | null = null;
  /** Highest epoch heard of (ZooKeeper or a sync): older messages are refused. */
  private promisedEpoch = 0;
  /** The epoch (and its leader) whose leader synchronised or admitted us: we take its writes. */
  private syncedEpoch = 0;
  private syncedLeader: string | null = null;
  /** The leader named in ZooKeeper for promisedEpoch: where writes are forwarded. */
  private latestLeader: string | null = null;
  /** Rejected when the leader we forward to is gone (member znode deleted, or a newer epoch). */
  private readonly leaderLost = new Cancellation();
  /** A join finished (the whole state streamed, every write since taken) and nothing flushed the copy since. */
  private joinedIntact = false;
  /** The leader refused our lease: we are out of the replica set until we have joined again. */
  private removed = false;
  private joinDone: Deferred<void> | null = null;
  private lastChunkAt = 0;
  private joinAttempts = 0;
  /** The admission our current join was given (snapshot chunks of any other are refused) and where its transfer starts (0: a full snapshot). */
  private admission: { token: number; since: number } | null = null;
  /** Our term ended while ZooKeeper was unreachable: leave the election queue's head when it is back. */
  private resignOnReconnect = false;
  /** Set while a graceful stop waits for the leader's term to end. */
  private handover: Deferred<void> | null = null;
  private term: LeaderTerm | null = null;
  private leaderActor: Actor<typeof leaderMachine> | null = null;
  private followerActor: Actor<typeof followerMachine> | null = null;
  private stopping = false;
  private published = '';
  private standingTimer: unknown = null;
  /** Every bounded wait of this node (client operations get opTimeoutMs each, through one timer). */
  private readonly deadlines: Deadlines;

  constructor(
    readonly config: NodeConfig,
    private readonly ports: NodePorts,
  ) {
    this.log = ports.log.child({ node: config.nodeId });
    this.deadlines = new Deadlines(ports.clock);
    const observer = ports.observer;
    if (observer?.entry) this.store.onEntry = (key, entry) => observer.entry!(key, entry.state, entry.state === 'invalid' ? entry.pendingRev : entry.rev);
  }

  /** Requests waiting on a leader that is gone cannot be answered by it: stop waiting. */
  private abandonLeader(why: string): void {
    this.leaderLost.cancel(new LeaderGoneError(why));
  }

  static async start(config: NodeConfig, ports: NodePorts): Promise<ZiNode> {
    const node = new ZiNode(config, ports);
    await ports.bus.servePeers((m) => node.handlePeer(m));
    await ports.bus.serveClients((r) => node.serveClient(r));
    node.startFollower(false);
    ports.coordinator.start((e) => node.handleCoord(e));
    node.watchStanding();
    return node;
  }

  /**
   * Whether this node serves depends on time too (its lease, its session bound), not only on
   * events: re-publish whenever what it would publish changed.
   */
  private watchStanding(): void {
    const tick = () => {
      if (this.stopping) return;
      this.publish();
      this.standingTimer = this.ports.clock.setTimeout(tick, this.config.leaseMs / 2);
    };
    this.standingTimer = this.ports.clock.setTimeout(tick, this.config.leaseMs / 2);
  }

  // ---- coordination events ----------------------------------------------------------------

  private handleCoord(event: CoordEvent): void {
    if (this.stopping) return;
    switch (event.type) {
      case 'coord.session': {
        const previous = this.sessionId;
        this.sessionState = event.state;
        if (event.state === 'connected') {
          this.sessionId = event.sessionId;
          this.checkGrantedTimeout();
          if (previous !== null && previous !== event.sessionId) {
            // The old session expired: ZooKeeper let the group move on without us.
            this.log.warn({ session: event.sessionId }, 'new session; resynchronising');
            this.endTerm('session expired');
            this.followerActor?.send({ type: 'session.new' });
          } else {
            this.leaderActor?.send({ type: 'session.restored' });
            if (this.resignOnReconnect) this.resign();
          }
          this.resignOnReconnect = false;
        } else if (event.state === 'suspended') {
          this.leaderActor?.send({ type: 'session.suspended' });
        } else if (event.state === 'expired') {
          this.endTerm('session expired');
        }
        this.publish();
        return;
      }
      case 'coord.members':
        this.term?.membersChanged(event.ids);
        if (this.latestLeader !== null && !event.ids.includes(this.latestLeader)) this.abandonLeader(`leader ${this.latestLeader} left`);
        return;
      case 'coord.elected':
        if (event.sessionId === this.sessionId && this.leaderActor === null) this.becomeLeader();
        return;
      case 'coord.epoch':
        if (event.epoch <= this.promisedEpoch) return;
        this.promisedEpoch = event.epoch;
        if (event.leader !== this.latestLeader) this.abandonLeader(`epoch ${event.epoch} has leader ${event.leader}`);
        this.latestLeader = event.leader;
        if (this.term !== null && this.term.epoch < event.epoch) this.endTerm(`epoch ${event.epoch} claimed by ${event.leader}`);
        if (event.leader !== this.config.nodeId) this.followerActor?.send({ type: 'leader.changed', epoch: event.epoch, leader: event.leader });
        return;
    }
  }

  /** ZooKeeper may grant a shorter session than asked for: the lease must still end before it can expire. */
  private checkGrantedTimeout(): void {
    const granted = this.ports.coordinator.grantedSessionTimeoutMs?.() ?? 0;
    if (granted > 0 && leaseCertainlyOverMs(this.config.leaseMs) >= granted) {
      this.log.error(
        { grantedSessionTimeoutMs: granted, leaseMs: this.config.leaseMs },
        'ZooKeeper granted a session timeout too short for the lease (lease × 1.1 + 20 ms must be below it): raise the server\'s minSessionTimeout or lower --lease; see docs/safety.md',
      );
    }
  }

  // ---- roles ----------------------------------------------------------------------------------

  private startFollower(complete: boolean): void {
    const { clock, bus } = this.ports;
    const machine = followerMachine.provide({
      actors: {
        join: fromPromise(({ input, signal }) => this.join(input.epoch, input.leader, signal)),
        renewLease: fromCallback<FollowerEvent, { epoch: number; leader: string }>(({ sendBack, input }) => {
          let stopped = false;
          let timer: unknown = null;
          const renew = async () => {
            const sentAt = clock.now();
            try {
              const reply = await bus.request(
                input.leader,
                { type: 'lease', from: this.config.nodeId, epoch: input.epoch, session: this.sessionId ?? '' },
                this.config.leaseMs / 2,
              );
              if (stopped) return;
              if (reply.ok) {
                // The lease runs from when we asked, so a slow reply only shortens it.
                const until = sentAt + this.config.leaseMs;
                if (reply.type === 'leased') this.store.heldThrough = Math.max(this.store.heldThrough, reply.heldThrough);
                sendBack({ type: 'lease.granted', until, leftMs: Math.max(0, until - clock.now()) });
              } else if (reply.code === 'NOT_REPLICA') {
                this.removed = true;
                sendBack({ type: 'lease.refused' });
              }
            } catch (err) {
              this.log.debug({ err }, 'lease renewal failed');
            }
            if (!stopped) timer = clock.setTimeout(renew, this.config.leaseMs / 4);
          };
          void renew();
          return () => {
            stopped = true;
            if (timer !== null) clock.clearTimeout(timer);
          };
        }),
      },
    });
    const actor = createActor(machine, {
      inspect: this.ports.observer?.inspect,
      input: { joinRetryMs: this.config.joinRetryMs, syncWaitMs: this.config.syncWaitMs, complete },
      clock,
    });
    actor.on('follower.state', () => this.publish());
    actor.subscribe({ error: (err) => this.log.fatal({ err }, 'follower actor crashed') });
    this.followerActor = actor;
    actor.start();
    if (this.latestLeader !== null && this.latestLeader !== this.config.nodeId) {
      actor.send({ type: 'leader.changed', epoch: this.promisedEpoch, leader: this.latestLeader });
    }
  }

  private becomeLeader(): void {
    const wasComplete = this.hasFullCopy();
    this.followerActor?.stop();
    this.followerActor = null;
    const { coordinator, clock } = this.ports;
    const machine = leaderMachine.provide({
      actors: {
        claimEpoch: fromPromise(async () => {
          const claim = await coordinator.claimEpoch();
          this.term = new LeaderTerm(
            {
              nodeId: this.config.nodeId,
              leaseMs: this.config.leaseMs,
              ackTimeoutMs: this.config.ackTimeoutMs,
              minReplicas: this.config.minReplicas,
              opTimeoutMs: this.config.opTimeoutMs,
              snapshotChunkEntries: this.config.snapshotChunkEntries,
              snapshotChunkBytes: this.config.snapshotChunkBytes,
            },
            { ...this.ports, log: this.log, store: this.store, deadlines: this.deadlines },
            claim,
            (reason) => this.leaderActor?.send({ type: 'deposed', reason }),
          );
          this.promisedEpoch = Math.max(this.promisedEpoch, claim.epoch);
          this.syncedEpoch = claim.epoch;
          this.syncedLeader = this.latestLeader = this.config.nodeId;
          this.log.info({ epoch: claim.epoch }, 'became leader');
          return claim.epoch;
        }),
        recover: fromPromise(async () => {
          try {
            await this.term!.recover(wasComplete);
          } catch (err) {
            this.log.warn({ err }, 'recovery failed');
            throw err;
          }
        }),
        drain: fromPromise(() => this.term?.drain(this.config.opTimeoutMs) ?? Promise.resolve()),
      },
    });
    const actor = createActor(machine, { input: { nodeId: this.config.nodeId }, clock, inspect: this.ports.observer?.inspect });
    actor.on('leader.serving', (e) => {
      this.log.info({ epoch: e.epoch }, 'leader serving');
      this.publish();
    });
    actor.on('leader.ended', (e) => this.leaderEnded(e.reason, wasComplete));
    actor.subscribe({ error: (err) => this.log.fatal({ err }, 'leader actor crashed') });
    this.leaderActor = actor;
    actor.start();
    this.publish();
  }

  private endTerm(reason: string): void {
    this.term?.end(reason);
    this.leaderActor?.send({ type: 'deposed', reason });
  }

  /** `wasComplete`: whether our copy was complete when the term began (it may have ended before its LeaderTerm existed). */
  private leaderEnded(reason: string, wasComplete: boolean): void {
    const term = this.term;
    const complete = term?.holdsFullCopy ?? wasComplete;
    term?.end(reason);
    this.term = null;
    const actor = this.leaderActor;
    this.leaderActor = null;
    queueMicrotask(() => actor?.stop());
    if (this.handover !== null) {
      this.handover.resolve();
      return;
    }
    if (this.stopping) return;
    this.log.info({ reason }, 'no longer leader');
    // Still first in the election queue but not leading would stall the group: re-enter at the back.
    if (this.sessionState === 'connected') this.resign();
    else this.resignOnReconnect = true;
    this.startFollower(complete);
    this.publish();
  }

  /** Re-enter the election at the back; if ZooKeeper cannot be reached now, do it when it can. */
  private resign(): void {
    this.ports.coordinator.resign().catch((err) => {
      this.log.warn({ err }, 'resign failed; retrying when the session is back');
      this.resignOnReconnect = true;
      if (this.sessionState === 'connected') this.ports.clock.setTimeout(() => this.retryResign(), this.config.joinRetryMs);
    });
  }

  private retryResign(): void {
    if (!this.resignOnReconnect || this.stopping || this.sessionState !== 'connected') return;
    this.resignOnReconnect = false;
    this.resign();
  }

  // ---- follower side ------------------------------------------------------------------------

  /**
   * Ask the leader to admit us; once it has, flush our copy and take in the streamed snapshot, or,
   * when the leader can tell what changed since the revision our copy holds every write of (a
   * lost session, a removal), roll back our writes in flight and take in only the changes.
   * Until the admission reply is handled, the leader's messages get NOT_READY and are retried,
   * so nothing lands in the copy before the flush; a refused join keeps the old copy.
   */
  private async join(epoch: number, leader: string, signal: AbortSignal): Promise<void> {
    // The machine may leave `joining` (a newer leader) while we wait: a late reply must not act.
    const abandoned = () => signal.aborted || this.joinDone !== done;
    const done = deferred<void>();
    this.joinDone = done;
    // Refuse the leader's messages until the admission is handled (even if we were synced to it).
    this.syncedLeader = null;
    this.admission = null;
    this.ports.observer?.message?.('out', 'join', leader, []);
    const reply = await this.ports.bus.request(
      leader,
      {
        type: 'join',
        from: this.config.nodeId,
        epoch,
        session: this.sessionId ?? '',
        attempt: ++this.joinAttempts,
        since: this.store.catchUpBase(),
        history: this.store.history,
      },
      this.config.opTimeoutMs,
    );
    if (!reply.ok) throw new Error(`join refused: ${reply.reason}`);
    if (reply.type !== 'admitted') throw new Error(`unexpected join reply ${reply.type}`);
    if (abandoned()) throw new Error('join abandoned');
    this.admission = { token: reply.admission, since: reply.since };
    if (reply.since > 0) this.store.rollBackTo(reply.since);
    else this.store.clear();
    this.store.history = reply.history;
    this.joinedIntact = false;
    this.followerActor?.send({ type: 'store.flushed' });
    this.store.keepTombstones = true;
    this.syncedEpoch = epoch;
    this.syncedLeader = leader;
    this.promisedEpoch = Math.max(this.promisedEpoch, epoch);
    this.lastChunkAt = this.ports.clock.now();
    // The transfer may take long for big data sets; give up only when chunks stop coming.
    let finished = false;
    void done.promise.then(() => (finished = true), () => undefined);
    while (!finished) {
      await this.deadlines.settledWithin(this.config.joinTimeoutMs / 4, done.promise);
      if (abandoned()) throw new Error('join abandoned');
      if (!finished && this.ports.clock.now() - this.lastChunkAt > this.config.joinTimeoutMs) {
        throw new Error(`state transfer stalled: no chunk for ${this.config.joinTimeoutMs} ms`);
      }
    }
    if (abandoned()) throw new Error('join abandoned');
    this.removed = false;
    this.joinedIntact = true;
    this.log.info({ epoch, leader, keys: this.store.size, since: reply.since }, reply.since > 0 ? 'caught up' : 'joined');
  }

  /**
   * The one serving decision: may this node answer a read from its own copy now? Reads, the
   * members view, metrics and the inspector all go by it. Everyone needs a session the ZooKeeper
   * quorum has proven alive until now (a node whose server lost its quorum may still look
   * connected); a leader needs its term serving; a follower a lease from the leader it is
   * synchronised with, as a replica.
   */
  canServe(now = this.ports.clock.now()): boolean {
    if (this.stopping || !sessionProven(this.ports.coordinator, now)) return false;
    const term = this.term;
    if (term !== null) return term.isServing;
    const follower = this.followerActor?.getSnapshot();
    return this.syncedEpoch === this.promisedEpoch && follower?.matches({ replica: 'serving' }) === true && now < follower.context.leaseUntil;
  }

  /**
   * Whether this node's copy holds every write acknowledged while it was in the replica set: it
   * is complete (a lease was granted after it joined), or it finished a join and has not flushed
   * since (the leader recorded it in the replica set before its first lease, and may have died
   * meanwhile). A new leader trusts this only for a member of the recorded replica set.
   */
  private hasFullCopy(): boolean {
    if (this.term !== null) return this.term.holdsFullCopy;
    return this.joinedIntact || this.followerActor?.getSnapshot().context.complete === true;
  }

  /** A peer message must come from the leader of the epoch we are synced to. */
  private refuseUnlessFromLeader(message: { epoch: number; from: string }): PeerReply | null {
    if (message.epoch < this.promisedEpoch) return { ok: false, code: 'STALE_EPOCH', epoch: this.promisedEpoch, reason: 'older epoch' };
    if (message.epoch !== this.syncedEpoch || message.from !== this.syncedLeader) {
      return { ok: false, code: 'NOT_READY', epoch: this.promisedEpoch, reason: 'not synchronised with this leader' };
    }
    return null;
  }

  // ---- peers ------------------------------------------------------------------------------------

  async handlePeer(message: PeerMessage): Promise<PeerReply> {
    this.ports.observer?.message?.('in', message.type, message.from, messageKeys(message));
    this.term?.heard(message.from);
    const ack: PeerReply = { ok: true, type: 'ack' };
    if (this.stopping) return { ok: false, code: 'NOT_READY', epoch: this.promisedEpoch, reason: 'stopping' };
    const refused = this.checkEpoch(message);
    if (refused !== null) return refused;
    switch (message.type) {
      case 'invalidate': {
        for (const v of message.validated) this.store.apply(v.key, { type: 'validate', rev: v.rev });
        for (const e of message.entries) this.store.apply(e.key, { type: 'invalidate', rev: e.rev, value: e.value });
        return ack;
      }
      case 'validate': {
        for (const v of message.validated) this.store.apply(v.key, { type: 'validate', rev: v.rev });
        return ack;
      }
      case 'snapshot': {
        // Chunks of an earlier admission would mix two snapshots in one flushed copy.
        if (message.admission !== this.admission?.token) return { ok: false, code: 'NOT_READY', epoch: this.promisedEpoch, reason: 'not our admission' };
        for (const e of message.entries) this.store.apply(e.key, { type: 'fill', rev: e.rev, value: e.value });
        this.lastChunkAt = this.ports.clock.now();
        if (message.done) {
          this.store.maxRev = Math.max(this.store.maxRev, message.maxRev);
          if (this.admission.since > 0) this.store.purgeTombstones();
          else this.store.snapshotComplete(message.maxRev);
          this.joinDone?.resolve();
        }
        return ack;
      }
      case 'sync':
        return this.acceptSync(message);
      case 'forward': {
        const term = this.term!;
        return { ok: true, type: 'replies', replies: await Promise.all(message.commands.map((c) => term.write(c))) };
      }
      case 'read':
        return { ok: true, type: 'replies', replies: await Promise.all(message.keys.map((k) => this.leaderRead(k))) };
      case 'join':
        return this.term!.admit(message);
      case 'lease':
        return this.term!.grantLease(message.from, message.session);
    }
  }

  /**
   * Every peer message's epoch, checked in one place. A leader's messages (invalidate, validate,
   * snapshot) must come from the leader of the epoch we are synchronised with; a sync brings a
   * newer epoch (acceptSync checks it); requests to the leader (forward, read, join, lease) need
   * a term here, and one from a node that knows a newer epoch than ours means ours is over.
   */
  private checkEpoch(message: PeerMessage): PeerReply | null {
    switch (message.type) {
      case 'invalidate':
      case 'validate':
      case 'snapshot':
        return this.refuseUnlessFromLeader(message);
      case 'sync':
        return null;
      case 'forward':
      case 'read':
      case 'join':
      case 'lease': {
        const term = this.term;
        if (term === null) return { ok: false, code: 'NOT_LEADER', epoch: this.promisedEpoch, reason: 'not the leader' };
        if (message.epoch > term.epoch) return { ok: false, code: 'NOT_LEADER', epoch: term.epoch, reason: `epoch ${message.epoch} is newer than this leader's` };
        if ((message.type === 'join' || message.type === 'lease') && message.epoch !== term.epoch) {
          return { ok: false, code: 'STALE_EPOCH', epoch: term.epoch, reason: `${message.type} for another epoch` };
        }
        return null;
      }
    }
  }

  private acceptSync(message: Extract<PeerMessage, { type: 'sync' }>): PeerReply {
    if (message.epoch < this.promisedEpoch || (this.term !== null && this.term.epoch >= message.epoch)) {
      return { ok: false, code: 'STALE_EPOCH', epoch: Math.max(this.promisedEpoch, this.term?.epoch ?? 0), reason: 'older epoch' };
    }
    const fullCopy = this.hasFullCopy();
    if (this.term !== null) this.endTerm(`synchronised by ${message.from} at epoch ${message.epoch}`);
    this.promisedEpoch = this.syncedEpoch = message.epoch;
    if (this.latestLeader !== message.from) this.abandonLeader(`synchronised by ${message.from}`);
    this.syncedLeader = this.latestLeader = message.from;
    this.followerActor?.send({ type: 'leader.synced', epoch: message.epoch, leader: message.from, replica: fullCopy });
    return { ok: true, type: 'synced', maxRev: this.store.maxRev, pending: this.store.pending(), serving: fullCopy };
  }

  // ---- clients ------------------------------------------------------------------------------------

  /**
   * A get this node can answer from its own copy right now is answered synchronously: no
   * deadline timer and no promise chain on the path that most requests take.
   */
  serveClient(request: ClientRequest): ClientReply | Promise<ClientReply> {
    if (request.op !== 'get') return this.handleClient(request);
    const observer = this.ports.observer;
    const started = observer?.request ? this.ports.clock.now() : 0;
    const reply = this.readNow(request);
    if (reply === null) return this.handleClient(request);
    observer?.request?.(request.op, reply.ok ? 200 : reply.code, this.ports.clock.now() - started);
    return reply;
  }

  /** The answer to a get when it needs no waiting (the slow path re-checks everything), else null. */
  private readNow(request: ClientRequest): ClientReply | null {
    if (this.stopping || this.sessionState !== 'connected') return null;
    const key = parseKey(request);
    if (typeof key !== 'string') return key;
    if (this.store.isInvalid(key)) return null;
    return this.canServe() ? this.localValue(key) : null;
  }

  async handleClient(request: ClientRequest): Promise<ClientReply> {
    const observer = this.ports.observer;
    if (!observer?.request) return this.answerClient(request);
    const started = this.ports.clock.now();
    const reply = await this.answerClient(request);
    observer.request(request.op, reply.ok ? 200 : reply.code, this.ports.clock.now() - started);
    return reply;
  }

  private async answerClient(request: ClientRequest): Promise<ClientReply> {
    try {
      if (request.op === 'members') return await this.members();
      if (this.stopping) return fail(503, 'node is shutting down');
      if (this.sessionState !== 'connected') return fail(503, 'no live ZooKeeper session');
      const work = request.op === 'get' ? this.read(request) : this.write(request);
      return await this.deadlines.run(this.config.opTimeoutMs, request.op, work);
    } catch (err) {
      if (err instanceof DeadlineError) return fail(504, 'could not finish in time; the outcome is unknown');
      this.log.error({ err, op: request.op }, 'request failed');
      return fail(500, 'internal error');
    }
  }

  private async read(request: ClientRequest): Promise<ClientReply> {
    const key = parseKey(request);
    if (typeof key !== 'string') return key;
    if (this.term !== null) return this.leaderRead(key);
    if (this.canServe()) {
      const settled = this.store.settled(key);
      if (settled) await this.deadlines.settledWithin(this.config.validateWaitMs, settled);
      if (this.canServe() && !this.store.isInvalid(key)) return this.localValue(key);
    }
    return this.leaderReads.submit(key);
  }

  private async leaderRead(key: string): Promise<ClientReply> {
    const term = this.term;
    if (term === null || !term.isServing) return fail(503, term?.notServingReason() ?? 'leader is not serving yet');
    // A write in flight on this key is undecided: no read of it returns until it is.
    const settled = this.store.settled(key);
    if (settled) await settled;
    if (!this.canServe()) return fail(503, 'leader has no live ZooKeeper session');
    return this.localValue(key);
  }

  private localValue(key: string): ClientReply {
    const entry = this.store.get(key);
    if (entry === undefined || entry.value === null) return fail(404, 'no such key');
    return { ok: true, revision: entry.rev, data: entry.value };
  }

  private async write(request: ClientRequest): Promise<ClientReply> {
    const command = parseWrite(request);
    if ('ok' in command) return command;
    if (this.term !== null) return this.term.write(command);
    return this.forwards.submit(command);
  }

  /** Writes and reads forwarded to the leader, batched per turn of the event loop. */
  private readonly forwards = new Batcher<WriteCommand, ClientReply>(
    (commands) => this.askLeader((epoch) => ({ type: 'forward', from: this.config.nodeId, epoch, commands }), true, commands.length),
    256,
  );
  private readonly leaderReads = new Batcher<string, ClientReply>(
    (keys) => this.askLeader((epoch) => ({ type: 'read', from: this.config.nodeId, epoch, keys }), false, keys.length),
    512,
  );

  /** One request to the leader; delivery failures become PROTOCOL.md codes for every item. */
  private async askLeader(message: (epoch: number) => PeerMessage, mayHaveEffect: boolean, count: number): Promise<ClientReply[]> {
    const all = (reply: ClientReply) => Array.from({ length: count }, () => reply);
    const leader = this.latestLeader;
    if (leader === null || leader === this.config.nodeId) return all(fail(503, 'no leader yet'));
    // Stopping closes the bus: what has not been sent yet is refused here, before it can begin.
    if (this.stopping) return all(fail(503, 'node is shutting down'));
    try {
      const request = message(this.promisedEpoch);
      this.ports.observer?.message?.('out', request.type, leader, messageKeys(request));
      const reply = await this.leaderLost.race(this.ports.bus.request(leader, request, this.config.opTimeoutMs));
      if (reply.ok && reply.type === 'replies' && reply.replies.length === count) return reply.replies;
      return all(fail(503, reply.ok ? 'unexpected reply from leader' : `leader cannot serve: ${reply.reason}`));
    } catch (err) {
      // A read has no effect, so it can say 503; a forwarded write may have happened.
      const unknown = (why: string) => (mayHaveEffect ? fail(504, `${why}; the outcome is unknown`) : fail(503, why));
      if (err instanceof LeaderGoneError) return all(unknown(err.message));
      if (err instanceof NoRespondersError) return all(fail(503, 'leader unreachable'));
      if (err instanceof BusTimeoutError) return all(unknown('leader did not answer in time'));
      // Sent, then our connection closed (the node is stopping) before the leader's reply came.
      if (err instanceof BusClosedError) return all(unknown('connection closed before the leader answered'));
      throw err;
    }
  }

  private async members(): Promise<ClientReply> {
    const { coordinator } = this.ports;
    let members: MemberInfo[] = [];
    let replicas: string[] = this.term?.replicaIds() ?? [];
    if (this.sessionState === 'connected') {
      try {
        members = await this.deadlines.run(this.config.opTimeoutMs / 2, 'members', coordinator.readMembers());
        if (this.term === null) replicas = (await this.deadlines.run(this.config.opTimeoutMs / 2, 'replicas', coordinator.readReplicas())).ids;
      } catch (err) {
        this.log.warn({ err }, 'members read failed');
      }
    }
    // Our own entry is what we know now, not what we last published.
    const self = { id: this.config.nodeId, ...this.describe() };
    members = [...members.filter((m) => m.id !== self.id), self].sort((a, b) => a.id.localeCompare(b.id));
    const view: MembersView = {
      cluster: this.config.cluster,
      node: this.config.nodeId,
      epoch: this.promisedEpoch,
      leader: this.term !== null ? this.config.nodeId : this.latestLeader,
      members,
      replicas,
    };
    return { ok: true, data: encoder.encode(JSON.stringify(view)) };
  }

  // ---- state for members, metrics and the shell ------------------------------------------

  describe(): { role: Role; state: MemberState } {
    const role: Role = this.leaderActor !== null ? 'leader' : 'follower';
    if (this.sessionState !== 'connected') return { role, state: 'suspended' };
    if (this.canServe()) return { role, state: 'serving' };
    return { role, state: this.removed && role === 'follower' ? 'removed' : 'syncing' };
  }

  status() {
    return {
      node: this.config.nodeId,
      session: this.sessionState,
      epoch: this.promisedEpoch,
      leader: this.term !== null ? this.config.nodeId : this.latestLeader,
      ...this.describe(),
      keys: this.store.size,
      bytes: this.store.valueBytes,
      writesInFlight: this.term?.writesInFlight ?? 0,
      replicas: this.term?.replicaIds() ?? null,
    };
  }

  private publish(): void {
    if (this.sessionState !== 'connected' || this.stopping) return;
    const info = this.describe();
    const text = `${info.role}/${info.state}`;
    if (text === this.published) return;
    this.published = text;
    this.log.info(info, 'state');
    this.ports.coordinator.publishMember(info).catch((err) => {
      this.published = '';
      this.log.debug({ err }, 'publish failed');
    });
  }

  /** Graceful stop: a leader finishes or fails its writes, then closing the session starts the next election at once. */
  async stop(): Promise<void> {
    if (this.stopping || this.handover !== null) return;
    const leader = this.leaderActor;
    if (leader !== null) {
      // The drain is bounded by the operation timeout; the margin covers the steps around it.
      this.handover = deferred<void>();
      leader.send({ type: 'handover' });
      await this.deadlines.settledWithin(this.config.opTimeoutMs + 500, this.handover.promise);
    }
    this.stopping = true;
    if (this.standingTimer !== null) this.ports.clock.clearTimeout(this.standingTimer);
    this.deadlines.stop();
    this.followerActor?.stop();
    this.term?.end('stopped');
    await this.ports.coordinator.stop().catch((err) => this.log.warn({ err }, 'coordinator stop failed'));
    await this.ports.bus.close().catch((err) => this.log.warn({ err }, 'bus close failed'));
  }
}
