// The follower's end of replication: what this node does with its leader's messages
// (invalidate, validate, snapshot chunks, sync), how it joins a leader (admission, then the state
// transfer) and how it renews its read lease. It owns the replica-side facts: the epoch promised,
// the epoch and leader whose writes it takes, the leader to forward to, its current admission.
// Nothing else writes them; ZiNode reads them, and checks every peer message's epoch against
// them in its one place (ZiNode.checkEpoch, through refuseUnlessFromLeader) before it hands a
// leader's message here.
import type { EntryEvent } from './cache-entry.machine.ts';
import type { FollowerEvent } from './follower.machine.ts';
import type { NodeConfig, NodeParts } from './node.ts';
import type { Log } from './ports.ts';
import type { ChangeTransfer, PendingEntry, PeerMessage, PeerReply } from './protocol.ts';
import { deferred, type Deferred } from './time.ts';

/** What the endpoint reads of its node, and the two things it tells it. */
export interface ReplicaHost {
  /** Our ZooKeeper session id ('' before the first): the leader checks joins and leases against it. */
  readonly sessionId: string;
  /** An event for the follower machine (the copy was flushed; a new leader synchronised us). */
  toFollower(event: FollowerEvent): void;
  /** The leader we forward to changed: requests waiting on the old one stop waiting (ClientFront.abandonLeader). */
  leaderGone(why: string): void;
}

/** Older changes a sync's reply carries at most, in bytes of keys and values (the newest that fit). */
const OLDER_CHANGES_BYTES = 256 * 1024;

type EndpointConfig = Pick<NodeConfig, 'nodeId' | 'opTimeoutMs' | 'leaseMs' | 'joinTimeoutMs'>;
type LeaderMessage = Extract<PeerMessage, { type: 'invalidate' | 'validate' | 'snapshot' | 'history' }>;

export class ReplicaEndpoint {
  /** Highest epoch heard of (ZooKeeper, a sync, our own claim): older messages are refused. */
  private promised = 0;
  /** The epoch (and its leader) whose leader synchronised or admitted us: we take its writes. */
  private syncedEpoch = 0;
  private syncedLeader: string | null = null;
  /** The leader named for `promised`: where writes are forwarded. */
  private leader: string | null = null;
  /** The leader refused our lease: we are out of the replica set until we have joined again. */
  private refused = false;
  private joinDone: Deferred<void> | null = null;
  /** A join under way, to the leader of this epoch: a sync of it that comes meanwhile is late (sync). */
  private joining: { epoch: number } | null = null;
  private lastChunkAt = 0;
  private joinAttempts = 0;
  /** The admission our current join was given (snapshot chunks of any other are refused) and where its transfer starts (0: a full snapshot). */
  private admission: { token: number; since: number } | null = null;
  /**
   * The admission whose leader promised its changes for later (`historyFollows`): the change log
   * stays in its transfer until they come. A transfer that did not end (this, or a join that
   * failed) stays open for the next join, whose changes cover it too; a sync that takes our copy
   * as it is, or our recovery as leader, ends it with the floor raised (endOpenTransfer).
   */
  private awaitingHistory: number | null = null;
  /** Why the data dir failed (this node then acks no write), null while it works. */
  dataDirProblem: string | null = null;
  private readonly log: Log;

  constructor(
    private readonly config: EndpointConfig,
    private readonly parts: NodeParts,
    private readonly host: ReplicaHost,
  ) {
    this.log = parts.log;
  }

  get promisedEpoch(): number {
    return this.promised;
  }

  /** The leader named for the promised epoch (this node's id when it leads), null before any. */
  get latestLeader(): string | null {
    return this.leader;
  }

  /** We take the writes of the newest epoch we know of (a follower serves only then). */
  get syncedToLatest(): boolean {
    return this.syncedEpoch === this.promised;
  }

  /** The leader refused our lease and we have not joined again since. */
  get removed(): boolean {
    return this.refused;
  }

  // ---- transitions of the epoch facts ----------------------------------------------------------

  /** ZooKeeper named `leader` for `epoch`. False when it is not newer than what we promised (nothing changed). */
  epochAnnounced(epoch: number, leader: string | null): boolean {
    if (epoch <= this.promised) return false;
    this.promised = epoch;
    this.forwardTo(leader, `epoch ${epoch} has leader ${leader}`);
    return true;
  }

  /**
   * We claimed `epoch` and lead it: we take our own writes, and wait for no leader's changes (our
   * recovery ends an open transfer once it leads with our copy: LeaderTerm.recoverWith).
   */
  claimed(epoch: number): void {
    this.awaitingHistory = null;
    this.promised = Math.max(this.promised, epoch);
    this.syncedEpoch = epoch;
    this.syncedLeader = this.leader = this.config.nodeId;
  }

  /** The leader of the epoch we are synchronised with, and nobody else, may change our copy. */
  refuseUnlessFromLeader(message: { epoch: number; from: string }): PeerReply | null {
    if (message.epoch < this.promised) return { ok: false, code: 'STALE_EPOCH', epoch: this.promised, reason: 'older epoch' };
    if (message.epoch !== this.syncedEpoch || message.from !== this.syncedLeader) {
      return { ok: false, code: 'NOT_READY', epoch: this.promised, reason: 'not synchronised with this leader' };
    }
    return null;
  }

  private forwardTo(leader: string | null, why: string): void {
    if (this.leader !== leader) this.host.leaderGone(why);
    this.leader = leader;
  }

  // ---- the leader's messages (their epoch already checked) ---------------------------------------

  /** A sync of a newer epoch (checked): we take that leader's writes; `fullCopy` says whether our copy holds every acknowledged write. */
  sync(message: Extract<PeerMessage, { type: 'sync' }>, fullCopy: boolean): PeerReply {
    // Sent before we asked that leader to admit us, it arrives (its epoch confirmed with ZooKeeper)
    // after: taken now, it would let the leader's writes in before the admission's flush.
    if (this.joining?.epoch === message.epoch) return { ok: false, code: 'NOT_READY', epoch: this.promised, reason: 'joining this leader' };
    // A full copy serves that leader without a join; any other must join it first.
    if (fullCopy) this.endOpenTransfer();
    else this.awaitingHistory = null;
    this.promised = this.syncedEpoch = message.epoch;
    this.forwardTo(message.from, `synchronised by ${message.from}`);
    this.syncedLeader = message.from;
    this.host.toFollower({ type: 'leader.synced', epoch: message.epoch, leader: message.from, replica: fullCopy });
    const { store } = this.parts;
    // A copy of the leader's history (complete or not) vouches for the changes it holds decided;
    // one of an older history (before an operator accepted data loss) may hold others.
    const older = message.history === store.history ? this.olderChanges(message.changesThrough ?? 0) : null;
    const beneath = store.committedBeneathPending();
    return { ok: true, type: 'synced', maxRev: store.maxRev, pending: store.pending(), ...(beneath.length > 0 ? { committedBeneath: beneath } : {}), serving: fullCopy, replicaSet: store.knownReplicaSet, roster: [...store.roster], ...(older !== null ? { changes: older } : {}) };
  }

  /** Our changes up to `through` when we hold some the new leader lost (its change log starts above ours), else null. */
  private olderChanges(through: number): ChangeTransfer | null {
    const { changes } = this.parts.store;
    if (through === 0 || changes.floor >= through) return null;
    return changes.transferable(changes.floor, through, OLDER_CHANGES_BYTES);
  }

  receive(message: LeaderMessage): PeerReply | Promise<PeerReply> {
    const { store } = this.parts;
    switch (message.type) {
      case 'invalidate':
        for (const v of message.validated) store.apply(v.key, { type: 'validate', rev: v.rev });
        for (const e of message.entries) store.apply(e.key, invalidation(e));
        // Acked only once stored as the disk's policy promises (at once without a disk).
        return store.onDisk ? this.stored() : ACK;
      case 'validate':
        for (const v of message.validated) store.apply(v.key, { type: 'validate', rev: v.rev });
        return ACK;
      case 'snapshot': {
        // Chunks of an earlier admission would mix two snapshots in one flushed copy.
        if (message.admission !== this.admission?.token) return { ok: false, code: 'NOT_READY', epoch: this.promised, reason: 'not our admission' };
        for (const e of message.entries) store.apply(e.key, { type: 'fill', rev: e.rev, value: e.value, ttl: e.ttl ?? 0 });
        this.lastChunkAt = this.parts.clock.now();
        if (message.done) {
          // The leader's writes still to be re-committed: held in flight here too (protocol.ts).
          const inFlight = message.inFlight ?? [];
          for (const e of inFlight) store.apply(e.key, invalidation(e));
          store.maxRev = Math.max(store.maxRev, message.maxRev);
          if (message.lastRevBefore !== undefined) store.changes.transferCovers(message.lastRevBefore, inFlight.map((e) => e.rev));
          if (this.admission.since > 0) store.caughtUp();
          else store.snapshotComplete(message.maxRev);
          if (message.historyFollows === true) this.awaitingHistory = message.admission;
          else store.changes.endTransfer(message.changes ?? null, store.maxRev);
          this.joinDone?.resolve();
          // The leader records us as a replica on this ack: the copy must be stored by then.
          if (store.onDisk) return this.stored();
        }
        return ACK;
      }
      case 'history':
        // Of an admission we no longer wait for: nothing to do.
        if (message.admission !== this.awaitingHistory) return ACK;
        this.awaitingHistory = null;
        store.changes.endTransfer(message.changes ?? null, store.maxRev);
        return ACK;
    }
  }

  /** No join will end the change log's open transfer: its floor rises over what the transfer brought. */
  private endOpenTransfer(): void {
    this.awaitingHistory = null;
    this.parts.store.changes.endTransfer(null, this.parts.store.maxRev);
  }

  /**
   * ACK once every change so far is stored. A disk that failed acks nothing any more: the leader
   * goes on without this node (it keeps refusing, so it is removed), which says why in its log.
   */
  private async stored(): Promise<PeerReply> {
    try {
      await this.parts.store.durable();
      return ACK;
    } catch (err) {
      if (this.dataDirProblem === null) this.log.error({ err }, 'the data dir failed: this node acknowledges no write any more (restart it on a working data dir, or with --reset-data)');
      this.dataDirProblem = err instanceof Error ? err.message : String(err);
      return { ok: false, code: 'NOT_READY', epoch: this.promised, reason: `data dir failed: ${this.dataDirProblem}` };
    }
  }

  // ---- joining and the lease (the follower machine's actors) -----------------------------------

  /**
   * Ask the leader to admit us; once it has, flush our copy and take in the streamed snapshot, or,
   * when the leader can tell what changed since the revision our copy holds every write of (a
   * lost session, a removal), roll back our writes in flight and take in only the changes.
   * Until the admission reply is handled, the leader's messages get NOT_READY and are retried,
   * so nothing lands in the copy before the flush; a refused join keeps the old copy.
   */
  async join(epoch: number, leader: string, signal: AbortSignal): Promise<void> {
    const marker = { epoch };
    this.joining = marker;
    try {
      await this.admitAndTransfer(epoch, leader, signal);
    } finally {
      if (this.joining === marker) this.joining = null;
    }
  }

  private async admitAndTransfer(epoch: number, leader: string, signal: AbortSignal): Promise<void> {
    const { bus, clock, store, deadlines, observer } = this.parts;
    // A leader may sync us between our registration and our session's connected event: the
    // leader keys admissions and leases by session, so wait for ours (the machine retries).
    if (this.host.sessionId === '') throw new Error('no session yet');
    // The machine may leave `joining` (a newer leader) while we wait: a late reply must not act.
    const abandoned = () => signal.aborted || this.joinDone !== done;
    const done = deferred<void>();
    this.joinDone = done;
    // Refuse the leader's messages until the admission is handled (even if we were synced to it).
    this.syncedLeader = null;
    this.admission = null;
    // The changes an earlier admission promised are no use now: this join's cover them too.
    this.awaitingHistory = null;
    observer?.message?.('out', 'join', leader, []);
    const reply = await bus.request(
      leader,
      {
        type: 'join',
        from: this.config.nodeId,
        epoch,
        session: this.host.sessionId,
        attempt: ++this.joinAttempts,
        since: store.heldThrough,
        history: store.history,
        pending: store.pendingKeys(),
        changesAfter: store.changes.stable,
        ...(store.changes.floor > 0 ? { changesFloor: store.changes.floor } : {}),
      },
      this.config.opTimeoutMs,
    );
    if (!reply.ok) throw new Error(`join refused: ${reply.reason}`);
    if (reply.type !== 'admitted') throw new Error(`unexpected join reply ${reply.type}`);
    if (abandoned()) throw new Error('join abandoned');
    this.admission = { token: reply.admission, since: reply.since };
    // What the transfer brings goes into the change log only with the leader's changes at its end
    // (the last chunk, or a 'history' message); a transfer that does not get there stays open
    // for the next join (awaitingHistory).
    store.changes.beginTransfer();
    if (reply.since > 0) store.rollBackTo(reply.since);
    else store.clear(reply.history);
    store.history = reply.history;
    this.host.toFollower({ type: 'store.flushed' });
    store.keepTombstones = true;
    this.syncedEpoch = epoch;
    this.syncedLeader = leader;
    this.promised = Math.max(this.promised, epoch);
    this.lastChunkAt = clock.now();
    // The transfer may take long for big data sets; give up only when chunks stop coming.
    let finished = false;
    void done.promise.then(() => (finished = true), () => undefined);
    while (!finished) {
      await deadlines.settledWithin(this.config.joinTimeoutMs / 4, done.promise);
      if (abandoned()) throw new Error('join abandoned');
      if (!finished && clock.now() - this.lastChunkAt > this.config.joinTimeoutMs) {
        throw new Error(`state transfer stalled: no chunk for ${this.config.joinTimeoutMs} ms`);
      }
    }
    if (abandoned()) throw new Error('join abandoned');
    this.refused = false;
    store.intact = true;
    this.log.info({ epoch, leader, keys: store.size, since: reply.since }, reply.since > 0 ? 'caught up' : 'joined');
  }

  /** Ask `leader` for a lease every quarter lease and report each grant or refusal; returns the stop. */
  renewLease(input: { epoch: number; leader: string }, sendBack: (event: FollowerEvent) => void): () => void {
    const { bus, clock, store } = this.parts;
    const { leaseMs } = this.config;
    let stopped = false;
    let timer: unknown = null;
    const renew = async () => {
      const sentAt = clock.now();
      // Not granted yet for a passing reason (no session yet, the leader still finishing our
      // join): ask again soon rather than a quarter lease later.
      let soon = true;
      try {
        if (this.host.sessionId === '') throw new Error('no session yet');
        const reply = await bus.request(input.leader, { type: 'lease', from: this.config.nodeId, epoch: input.epoch, session: this.host.sessionId }, leaseMs / 2);
        if (stopped) return;
        if (reply.ok) {
          // The lease runs from when we asked, so a slow reply only shortens it.
          const until = sentAt + leaseMs;
          if (reply.type === 'leased') {
            store.heldThrough = Math.max(store.heldThrough, reply.heldThrough);
            store.changes.held(reply.heldThrough);
            if (reply.replicaSet) store.learnReplicaSet(reply.replicaSet);
          }
          sendBack({ type: 'lease.granted', until, leftMs: Math.max(0, until - clock.now()) });
          soon = false;
        } else if (reply.code === 'NOT_REPLICA') {
          this.refused = true;
          sendBack({ type: 'lease.refused' });
        } else soon = reply.code === 'NOT_READY';
      } catch (err) {
        soon = this.host.sessionId === '';
        this.log.debug({ err }, 'lease renewal failed');
      }
      if (!stopped) timer = clock.setTimeout(renew, soon ? leaseMs / 20 : leaseMs / 4);
    };
    void renew();
    return () => {
      stopped = true;
      if (timer !== null) clock.clearTimeout(timer);
    };
  }
}

const ACK: PeerReply = { ok: true, type: 'ack' };

/** A leader's write in flight, as this copy takes it. */
const invalidation = (e: PendingEntry): EntryEvent => ({ type: 'invalidate', rev: e.rev, value: e.value, ttl: e.ttl ?? 0, ...(e.recommit ? { recommit: true as const } : {}) });
