// One ZiStore node: the composition root. It starts the ports, owns the session and the roles
// (coordination events, the follower and leader machines, the leader's term from start to end,
// stop), and dispatches: client requests to its ClientFront, peer messages (after the one epoch
// check) to its LeaderTerm when they are for the leader, to its ReplicaEndpoint when they come
// from the leader. Every effect goes through the ports, so the same node runs on NATS +
// ZooKeeper and in the deterministic simulation.
//
// The walk of a put:
//   bus (serveClients) → client-front.ts ClientFront.serveClient → handleClient → answerClient
//   (deadline) → write: parseWrite, then this node's LeaderTerm.write, or forwards (Batcher) →
//   askLeader → bus → at the leader: node.ts ZiNode.handlePeer → checkEpoch → 'forward' →
//   leader-term.ts LeaderTerm.write → replicate → replica-link.ts ReplicaLink.invalidate (then
//   .validate) → bus → at each replica: node.ts ZiNode.handlePeer → checkEpoch →
//   replica-endpoint.ts ReplicaEndpoint.receive → replica-store.ts ReplicaStore.apply.
import { createActor, fromCallback, fromPromise, type Actor } from 'xstate';
import { ClientFront } from './client-front.ts';
import { followerMachine, type FollowerEvent } from './follower.machine.ts';
import { LeaderTerm, sessionProven } from './leader-term.ts';
import { leaderMachine } from './leader.machine.ts';
import { messageKeys } from './message-keys.ts';
import { childLog, type Bus, type Clock, type CoordEvent, type Coordinator, type Log, type MemberState, type NodeObserver, type ReplicaDisk, type Role, type SessionState } from './ports.ts';
import type { ClientReply, ClientRequest, PeerMessage, PeerReply } from './protocol.ts';
import { ReplicaEndpoint } from './replica-endpoint.ts';
import { ReplicaStore } from './replica-store.ts';
import { defaultChangeRetention, type ChangeRetention } from './change-log.ts';
import { deferred, Deadlines, leaseCertainlyOverMs, type Deferred } from './time.ts';
import { ChangeFeed } from './watch.ts';

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
  /** How much history of changes each node keeps for watches (change-log.ts defaults for what is not given). */
  watchHistory?: Partial<ChangeRetention>;
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
  /** Where the copy is kept between runs (storage/lmdb-disk.ts); memory only without. The node closes it when it stops. */
  disk?: ReplicaDisk;
}

/** The ports and the parts every piece of a node shares: its store and its deadlines. */
export type NodeParts = NodePorts & { log: Log; store: ReplicaStore; deadlines: Deadlines };

export class ZiNode {
  readonly store = new ReplicaStore();
  private readonly log: Log;
  private sessionState: SessionState = 'connecting';
  private sessionId: string | null = null;
  /** The newest epoch and its leader that ZooKeeper told us of (its watch, or readEpoch). */
  private recordedEpoch: { epoch: number; leader: string | null } = { epoch: 0, leader: null };
  /** Our term ended while ZooKeeper was unreachable: leave the election queue's head when it is back. */
  private resignOnReconnect = false;
  /** Set while a graceful stop waits for the leader's term to end. */
  private handover: Deferred<void> | null = null;
  private term: LeaderTerm | null = null;
  /** The change feed watchers may subscribe to (a bus that can publish one). */
  private feed: ChangeFeed | null = null;
  private leaderActor: Actor<typeof leaderMachine> | null = null;
  private followerActor: Actor<typeof followerMachine> | null = null;
  private stopping = false;
  private published = '';
  private standingTimer: unknown = null;
  /** Every bounded wait of this node (client operations get opTimeoutMs each, through one timer). */
  private readonly deadlines: Deadlines;
  /** The ports with the log, store and deadlines: what the front, the endpoint and a term share. */
  private readonly parts: NodeParts;
  /** Where client requests go (parse, answer, route, forward). */
  private readonly front: ClientFront;
  /** Where the leader's messages go; it owns the epoch facts and the join. */
  private readonly replica: ReplicaEndpoint;

  constructor(
    readonly config: NodeConfig,
    private readonly ports: NodePorts,
  ) {
    this.log = childLog(ports.log, { node: config.nodeId });
    this.deadlines = new Deadlines(ports.clock);
    this.store.now = () => ports.clock.now();
    this.store.changes.retention = { ...defaultChangeRetention, ...config.watchHistory };
    this.store.changes.onFloorRaised = (floor, why) => this.log.info({ floor, why }, 'watch history now starts above this revision');
    if (ports.disk !== undefined) {
      const loadStarted = ports.clock.now();
      this.store.attachDisk(ports.disk);
      const loadMs = Math.round(ports.clock.now() - loadStarted);
      this.log.info({ keys: this.store.size, maxRev: this.store.maxRev, intact: this.store.intact, watchHistory: { floor: this.store.changes.floor, stable: this.store.changes.stable }, loadMs }, 'copy restored from the data dir');
    }
    const observer = ports.observer;
    if (observer?.entry) this.store.onEntry = (key, entry) => observer.entry!(key, entry.state, entry.state === 'invalid' ? entry.pendingRev : entry.rev);
    this.parts = { ...ports, log: this.log, store: this.store, deadlines: this.deadlines };
    const node = this;
    this.front = new ClientFront(config, this.parts, {
      get stopping() {
        return node.stopping;
      },
      get connected() {
        return node.sessionState === 'connected';
      },
      canServe: () => node.canServe(),
      get term() {
        return node.term;
      },
      get leader() {
        return node.replica.latestLeader;
      },
      get epoch() {
        return node.replica.promisedEpoch;
      },
      get dataDirProblem() {
        return node.replica.dataDirProblem;
      },
      describe: () => node.describe(),
    });
    this.replica = new ReplicaEndpoint(config, this.parts, {
      get sessionId() {
        return node.sessionId ?? '';
      },
      toFollower: (event) => node.followerActor?.send(event),
      leaderGone: (why) => node.front.abandonLeader(why),
    });
  }

  static async start(config: NodeConfig, ports: NodePorts): Promise<ZiNode> {
    const node = new ZiNode(config, ports);
    await ports.bus.servePeers((m) => node.handlePeer(m));
    await ports.bus.serveClients((r) => node.front.serveClient(r));
    const publish = ports.bus.publishChanges?.bind(ports.bus);
    if (publish !== undefined) node.feed = new ChangeFeed(node.store.changes, ports.clock, () => node.canServe(), publish);
    // A copy kept on disk that was complete when the node stopped still is (docs/safety.md).
    node.startFollower(node.store.intact);
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
      case 'coord.members': {
        this.store.learnMembers(event.ids);
        this.term?.membersChanged(event.ids);
        const leader = this.replica.latestLeader;
        if (leader !== null && !event.ids.includes(leader)) this.front.abandonLeader(`leader ${leader} left`);
        return;
      }
      case 'coord.elected':
        if (event.sessionId === this.sessionId && this.leaderActor === null) this.becomeLeader();
        return;
      case 'coord.epoch':
        this.noteRecordedEpoch(event);
        if (!this.replica.epochAnnounced(event.epoch, event.leader)) return;
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
    const { clock } = this.ports;
    const machine = followerMachine.provide({
      actors: {
        join: fromPromise(({ input, signal }) => this.replica.join(input.epoch, input.leader, signal)),
        renewLease: fromCallback<FollowerEvent, { epoch: number; leader: string }>(({ sendBack, input }) => this.replica.renewLease(input, sendBack)),
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
    const leader = this.replica.latestLeader;
    if (leader !== null && leader !== this.config.nodeId) {
      actor.send({ type: 'leader.changed', epoch: this.replica.promisedEpoch, leader });
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
          const claim = await coordinator.claimEpoch(Math.max(this.replica.promisedEpoch, this.parts.store.knownReplicaSet?.epoch ?? 0));
          // The role may have ended while the claim was in flight (leaderEnded ran): a term made
          // now would outlive it and make this follower look like a leader for ever.
          if (this.leaderActor !== actor) throw new Error(`leadership ended while epoch ${claim.epoch} was claimed`);
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
            this.parts,
            claim,
            (reason) => this.leaderActor?.send({ type: 'deposed', reason }),
          );
          this.replica.claimed(claim.epoch);
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
    actor.on('leader.ended', (e) => {
      // Only the current role's end counts (a stopped actor may still settle a promise).
      if (this.leaderActor === actor) this.leaderEnded(e.reason, wasComplete);
    });
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

  // ---- the serving decision ----------------------------------------------------------------------

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
    return this.replica.syncedToLatest && follower?.matches({ replica: 'serving' }) === true && now < follower.context.leaseUntil;
  }

  /**
   * Whether this node's copy holds every write acknowledged while it was in the replica set: it
   * is complete (a lease was granted after it joined), or it finished a join and has not flushed
   * since (the leader recorded it in the replica set before its first lease, and may have died
   * meanwhile). A new leader trusts this only for a member of the recorded replica set.
   */
  private hasFullCopy(): boolean {
    if (this.term !== null) return this.term.holdsFullCopy;
    return this.store.intact || this.followerActor?.getSnapshot().context.complete === true;
  }

  // ---- peers ------------------------------------------------------------------------------------

  /** Every peer message: its epoch checked once here, then to the replica endpoint (from the leader) or to the term (for the leader). */
  async handlePeer(message: PeerMessage): Promise<PeerReply> {
    this.ports.observer?.message?.('in', message.type, message.from, messageKeys(message));
    this.term?.heard(message.from);
    // A sync makes us refuse every older leader: its epoch must be ZooKeeper's, not a field. The
    // check may wait for ZooKeeper, so it comes first and the checks below see the state after it.
    if (message.type === 'sync') {
      const unconfirmed = await this.confirmEpoch(message);
      if (unconfirmed !== null) return unconfirmed;
    }
    if (this.stopping) return { ok: false, code: 'NOT_READY', epoch: this.replica.promisedEpoch, reason: 'stopping' };
    const refused = this.checkEpoch(message);
    if (refused !== null) return refused;
    switch (message.type) {
      case 'invalidate':
      case 'validate':
      case 'snapshot':
      case 'history':
        return this.replica.receive(message);
      case 'sync': {
        const fullCopy = this.hasFullCopy();
        if (this.term !== null) this.endTerm(`synchronised by ${message.from} at epoch ${message.epoch}`);
        return this.replica.sync(message, fullCopy);
      }
      case 'forward': {
        const term = this.term!;
        return { ok: true, type: 'replies', replies: await Promise.all(message.commands.map((c) => term.write(c))) };
      }
      case 'read':
        return { ok: true, type: 'replies', replies: await Promise.all(message.keys.map((k) => this.front.leaderRead(k))) };
      case 'scan':
        return { ok: true, type: 'replies', replies: [await this.front.leaderScan(message.query)] };
      case 'txn':
        return { ok: true, type: 'replies', replies: [await this.term!.transaction(message.txn)] };
      case 'join':
        return this.term!.admit(message);
      case 'lease':
        return this.term!.grantLease(message.from, message.session);
    }
  }

  private noteRecordedEpoch(recorded: { epoch: number; leader: string | null }): void {
    if (recorded.epoch >= this.recordedEpoch.epoch) this.recordedEpoch = { epoch: recorded.epoch, leader: recorded.leader };
  }

  /**
   * Null when ZooKeeper records the sync's epoch with its sender as the leader: at once when its
   * watch told us so, else after a read through the quorum (a new leader's sync may come before
   * the watch). Otherwise the refusal: a stale epoch, or one nobody claimed (a forged message).
   */
  private async confirmEpoch(message: Extract<PeerMessage, { type: 'sync' }>): Promise<PeerReply | null> {
    const matches = () => this.recordedEpoch.epoch === message.epoch && this.recordedEpoch.leader === message.from;
    if (matches()) return null;
    // ZooKeeper already told us of a newer epoch: no need to ask it again.
    if (message.epoch < this.recordedEpoch.epoch) return { ok: false, code: 'STALE_EPOCH', epoch: this.recordedEpoch.epoch, reason: 'older epoch' };
    try {
      this.noteRecordedEpoch(await this.ports.coordinator.readEpoch());
    } catch (err) {
      return { ok: false, code: 'NOT_READY', epoch: this.replica.promisedEpoch, reason: `cannot confirm epoch ${message.epoch} with ZooKeeper: ${(err as Error).message}` };
    }
    if (matches()) return null;
    const { epoch, leader } = this.recordedEpoch;
    if (epoch > message.epoch) return { ok: false, code: 'STALE_EPOCH', epoch, reason: 'older epoch' };
    this.log.warn({ from: message.from, epoch: message.epoch, recorded: { epoch, leader } }, 'refused a sync that ZooKeeper does not record');
    return { ok: false, code: 'BAD_MESSAGE', epoch: this.replica.promisedEpoch, reason: `ZooKeeper records epoch ${epoch} led by ${leader}, not epoch ${message.epoch} led by ${message.from}` };
  }

  /**
   * Every peer message's epoch, checked in one place. A leader's messages (invalidate, validate,
   * snapshot) must come from the leader of the epoch we are synchronised with; a sync must bring
   * an epoch newer than any we promised or lead; requests to the leader (forward, read, join,
   * lease) need a term here, and one from a node that knows a newer epoch than ours means ours
   * is over.
   */
  private checkEpoch(message: PeerMessage): PeerReply | null {
    const promised = this.replica.promisedEpoch;
    const term = this.term;
    switch (message.type) {
      case 'invalidate':
      case 'validate':
      case 'snapshot':
      case 'history':
        return this.replica.refuseUnlessFromLeader(message);
      case 'sync':
        if (message.epoch < promised || (term !== null && term.epoch >= message.epoch)) {
          return { ok: false, code: 'STALE_EPOCH', epoch: Math.max(promised, term?.epoch ?? 0), reason: 'older epoch' };
        }
        return null;
      case 'forward':
      case 'read':
      case 'scan':
      case 'txn':
      case 'join':
      case 'lease': {
        if (term === null) return { ok: false, code: 'NOT_LEADER', epoch: promised, reason: 'not the leader' };
        if (message.epoch > term.epoch) return { ok: false, code: 'NOT_LEADER', epoch: term.epoch, reason: `epoch ${message.epoch} is newer than this leader's` };
        if (message.type === 'join' || message.type === 'lease') {
          if (message.epoch === term.epoch) return null;
          return { ok: false, code: 'STALE_EPOCH', epoch: term.epoch, reason: `${message.type} for another epoch` };
        }
        // The rest carry a client's request: only a node of the cluster forwards those (an identity of its own is not enough).
        if (!term.isLiveMember(message.from)) {
          return { ok: false, code: 'NOT_READY', epoch: term.epoch, reason: `${message.from} is not a live member` };
        }
        return null;
      }
    }
  }

  // ---- clients (ClientFront does the work) ------------------------------------------------------

  /** A client request; a get the local copy can answer is answered synchronously (ClientFront.serveClient). */
  serveClient(request: ClientRequest): ClientReply | Promise<ClientReply> {
    return this.front.serveClient(request);
  }

  handleClient(request: ClientRequest): Promise<ClientReply> {
    return this.front.handleClient(request);
  }

  // ---- state for members, metrics and the shell ------------------------------------------

  describe(): { role: Role; state: MemberState } {
    const role: Role = this.leaderActor !== null ? 'leader' : 'follower';
    if (this.sessionState !== 'connected') return { role, state: 'suspended' };
    if (this.canServe()) return { role, state: 'serving' };
    return { role, state: this.replica.removed && role === 'follower' ? 'removed' : 'syncing' };
  }

  status() {
    return {
      node: this.config.nodeId,
      session: this.sessionState,
      epoch: this.replica.promisedEpoch,
      leader: this.term !== null ? this.config.nodeId : this.replica.latestLeader,
      ...this.describe(),
      keys: this.store.size,
      bytes: this.store.valueBytes,
      writesInFlight: this.term?.writesInFlight ?? 0,
      replicas: this.term?.replicaIds() ?? null,
      watch: {
        changes: this.store.changes.size,
        floor: this.store.changes.floor,
        stable: this.store.changes.stable,
        waiting: this.front.watches.waitingCount,
      },
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
    this.front.watches.close();
    this.feed?.close();
    if (this.standingTimer !== null) this.ports.clock.clearTimeout(this.standingTimer);
    this.deadlines.stop();
    this.followerActor?.stop();
    this.term?.end('stopped');
    await this.ports.coordinator.stop().catch((err) => this.log.warn({ err }, 'coordinator stop failed'));
    await this.ports.bus.close().catch((err) => this.log.warn({ err }, 'bus close failed'));
    await this.ports.disk?.close().catch((err: unknown) => this.log.error({ err }, 'closing the data dir failed'));
  }
}
