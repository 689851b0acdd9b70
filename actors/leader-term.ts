// What a leader does during one epoch: run writes (invalidate every replica, wait for every
// ack, apply, reply, validate), admit joining nodes by state transfer, grant leases, and
// remove replicas that stop answering once their lease has certainly run out.
// All I/O goes through the ports; time through the Clock.
// The error classes the Bus and Coordinator ports promise (plain classes, no I/O).
import { BusClosedError, BusTimeoutError, NoRespondersError } from '../bus/errors.ts';
import { DeposedError } from '../coordination/errors.ts';
import { assert } from './assert.ts';
import { EXPIRY } from './cache-entry.machine.ts';
import { Expiries } from './expiries.ts';
import { KeyTurns } from './key-turns.ts';
import { checkChanges, checkKeyRevisions } from './peer-check.ts';
import { newerReplicaSet, type Bus, type Clock, type Coordinator, type EpochClaim, type Log, type NodeObserver } from './ports.ts';
import { NO_TTL_DESCRIPTION, type ChangeTransfer, type ClientReply, type PeerMessage, type PeerReply, type PendingEntry, type SnapshotEntry, type WriteCommand } from './protocol.ts';
import { ReplicaLink } from './replica-link.ts';
import type { ReplicaStore } from './replica-store.ts';
import { fail } from './request.ts';
import { failedCompare, txnReply, type Txn } from './txn.ts';
import { leaseCertainlyOverMs, sleep, type Deadlines } from './time.ts';

/** How soon a late member that could not take our sync yet is asked again. */
const LATE_MEMBER_RETRY_MS = 100;

export interface TermConfig {
  nodeId: string;
  leaseMs: number;
  /** Per-attempt wait for a peer's reply before the leader suspects it. */
  ackTimeoutMs: number;
  opTimeoutMs: number;
  /** A write is acknowledged only once this many nodes (the leader included) hold it; removal never shrinks the replica set below it. */
  minReplicas: number;
  snapshotChunkEntries: number;
  snapshotChunkBytes: number;
}

export interface TermPorts {
  bus: Bus;
  coordinator: Coordinator;
  clock: Clock;
  log: Log;
  store: ReplicaStore;
  /** The node's bounded waits. */
  deadlines: Deadlines;
  observer?: NodeObserver;
}

/** The term ended under a write: its outcome is unknown (a later leader may still commit it). */
export class TermEndedError extends Error {
  constructor(reason: string) {
    super(`leadership ended: ${reason}`);
    this.name = 'TermEndedError';
  }
}

/** Thrown by recover() when this node holds no complete copy but a replica that may is alive. */
export class ResignError extends Error {
  constructor() {
    super('a complete replica may be alive; stepping aside for it');
    this.name = 'ResignError';
  }
}

/** Connected, and the ZooKeeper quorum certainly keeps our session until after `now`. */
export function sessionProven(coordinator: Coordinator, now: number): boolean {
  return coordinator.sessionState() === 'connected' && (coordinator.sessionAliveUntil?.() ?? Infinity) > now;
}

const isUnreachable = (err: unknown) => err instanceof BusTimeoutError || err instanceof NoRespondersError || err instanceof BusClosedError;

interface Joiner {
  session: string;
  attempt: number;
  /** Each admission has its own token: a duplicate join request starts a new transfer and the older one stops. */
  token: number;
}

/** At most this much of keys and values of its change log goes to a joiner (in the last snapshot chunk, within max_payload). */
const CHANGES_TRANSFER_BYTES = 512 * 1024;
/** After an expiry could not be committed (writes refused, no quorum of copies), how long until the next try, ms. */
const EXPIRY_RETRY_MS = 100;

export class LeaderTerm {
  readonly epoch: number;
  readonly claim: EpochClaim;
  private readonly turns = new KeyTurns();
  /** Complete replicas (ids, self included) as persisted in ZooKeeper. */
  readonly replicas = new Set<string>();
  /** Nodes that must ack every write: replicas and joiners, without self. */
  readonly targets = new Set<string>();
  private readonly joining = new Map<string, Joiner>();
  /** The reply to each node's last join request, so that a duplicate of it (even late) starts nothing. */
  private readonly admissions = new Map<string, { session: string; attempt: number; reply: Promise<PeerReply> }>();
  private readonly replicaSession = new Map<string, string>();
  private readonly lastGrant = new Map<string, number>();
  /** When each member last reached us over the bus (any message, or an ack). */
  private readonly lastHeard = new Map<string, number>();
  /** When each member outside the write targets was last told who leads (syncLateMember). */
  private readonly lastSynced = new Map<string, number>();
  /** The replica set as last written to ZooKeeper: what a next leader would trust. */
  private persistedIds = new Set<string>();
  /** Members admitted (joined or caught up) in this term (allAdmitted). */
  private readonly admitted = new Set<string>();
  /** How many times ZooKeeper's replica set record was rebuilt from the nodes' (KnownReplicaSet). */
  private era = 0;
  /** Replica sets written in this term, for their order (KnownReplicaSet.seq). */
  private replicaSetsWritten = 0;
  /** Nodes being removed, each with the token of its removal. */
  private readonly removing = new Map<string, number>();
  /** Replicas that stopped answering but are kept: removing them would leave fewer than minReplicas copies. */
  private readonly unreachable = new Set<string>();
  private removalSeq = 0;
  private admissionSeq = 0;
  private readonly inflight = new Set<Promise<unknown>>();
  /** Revisions of the writes in flight: a lease tells a replica it holds every write below the lowest. */
  private readonly inflightRevs = new Set<number>();
  private readonly links = new Map<string, ReplicaLink>();
  private liveIds = new Set<string>();
  private nextRev = 1;
  private serving = false;
  /** Writes of the previous term still to be re-committed (recover), by revision (a transaction's share one). */
  private readonly recommits = new Map<number, PendingEntry[]>();

  /** Writes of the previous term are still being re-committed: that term may have acknowledged them. */
  get recommitsPending(): boolean {
    return this.recommits.size > 0;
  }
  /** Whether our copy holds every acknowledged write: we came in with one and did not step aside, or recovered. */
  private copyComplete = false;
  /** Recovery waits for one of these (the last replica set) to come back with its copy. */
  waitingFor: readonly string[] = [];
  private stopping = false;
  private ended: string | null = null;
  private persistChain: Promise<void> = Promise.resolve();
  private watchTimer: unknown = null;
  /** When each key with a time to live expires (restarted in full when a term begins: never early). */
  private readonly expiries = new Expiries();
  /** When this term began to serve (its clock): every time to live runs from then at the latest. */
  private takeoverAt = 0;
  private expiryTimer: unknown = null;
  /** Keys whose expiry the timer has started and not yet finished. */
  private readonly expiring = new Set<string>();
  /** Why the last expiry could not be committed (null: it could), and when to try again. */
  private expiryStall: string | null = null;
  private expiryRetryAt = 0;
  private readonly log: Log;

  constructor(
    private readonly config: TermConfig,
    private readonly ports: TermPorts,
    claim: EpochClaim,
    private readonly onDeposed: (reason: string) => void,
  ) {
    this.claim = claim;
    this.epoch = claim.epoch;
    this.log = ports.log.child({ actor: 'leader', epoch: claim.epoch });
    this.liveIds = new Set(ports.coordinator.memberIds());
  }

  get holdsFullCopy(): boolean {
    return this.copyComplete;
  }

  get isServing(): boolean {
    return this.serving && !this.stopping && this.ended === null;
  }

  /** Why a request cannot be served yet (503). */
  notServingReason(): string {
    if (this.waitingFor.length > 0 && !this.serving) return `waiting for a complete replica: ${this.waitingFor.join(', ')}`;
    return 'this node is not serving as leader';
  }

  get writesInFlight(): number {
    return this.inflight.size;
  }

  replicaIds(): string[] {
    return [...this.replicas].sort();
  }

  // ---- recovery -------------------------------------------------------------------------

  /**
   * Synchronise with every live member before serving: collect writes in flight and the highest
   * revision, keep the complete replicas that answered, re-commit the pending writes.
   */
  async recover(selfComplete: boolean): Promise<void> {
    this.copyComplete = selfComplete;
    try {
      await this.recoverWith(selfComplete);
    } catch (err) {
      if (err instanceof ResignError) this.copyComplete = false;
      throw err;
    }
    this.copyComplete = true;
    this.ports.store.intact = true;
  }

  /**
   * ZooKeeper records no replica set: a new cluster, or a ZooKeeper that lost its data under nodes
   * that kept theirs. The newest set any node remembers then stands in for the record, once every
   * node that any answering node has seen in the cluster (its roster, kept on disk) has answered:
   * the members of the last set are among them, and each remembers that set. Waiting for the
   * members of the newest set heard of is not enough: they may all have been left out of a later
   * set whose members have not answered yet (sim seed 2545). With none remembered, the cluster is
   * new and every node counts as complete.
   */
  private async rememberedReplicaSet(
    synced: ReadonlyMap<string, Extract<PeerReply, { type: 'synced' }>>,
    syncRound: (ids: string[]) => Promise<void>,
  ): Promise<{ ids: string[]; epoch: number; era: number }> {
    const { coordinator, clock, store } = this.ports;
    const self = this.config.nodeId;
    for (let round = 1; ; round++) {
      let newest = store.knownReplicaSet;
      for (const r of synced.values()) newest = newerReplicaSet(newest, r.replicaSet);
      // The newest set heard of may not be the last one: its members, or a node none of the nodes
      // that answered knows, may have moved on. Every node any of them has seen in the cluster
      // answers first (the last set's members are among them), or the operator accepts the loss.
      const everyone = new Set([...store.roster, ...(newest?.ids ?? [])]);
      for (const r of synced.values()) for (const id of r.roster ?? []) everyone.add(id);
      const unheard = [...everyone].filter((id) => id !== self && !synced.has(id)).sort();
      if (unheard.length === 0) {
        this.waitingFor = [];
        if (newest === null) return { ids: [], epoch: 0, era: 0 };
        this.log.warn({ remembered: newest }, 'ZooKeeper records no replica set: rebuilt from the one the nodes remember');
        return { ids: newest.ids, epoch: newest.epoch, era: newest.era + 1 };
      }
      this.waitingFor = unheard;
      if (round === 1) this.log.warn({ remembered: newest, waitingFor: unheard }, 'ZooKeeper records no replica set: waiting for every node the nodes have seen in the cluster');
      const grant = await coordinator.readUncleanGrant().catch(() => null);
      if (grant !== null && grant.epoch === this.epoch) {
        // As in recoverWith: a new history from this node's copy, which the others copy in full.
        this.log.error({ grant, waitingFor: unheard }, 'operator accepted data loss: serving what this node holds; writes only the silent members had are lost');
        this.waitingFor = [];
        store.history = this.epoch;
        return { ids: [self], epoch: newest?.epoch ?? 0, era: (newest?.era ?? 0) + 1 };
      }
      await sleep(clock, Math.min(1000, this.config.ackTimeoutMs * round));
      if (this.ended !== null) throw new TermEndedError(this.ended);
      await syncRound(unheard.filter((id) => coordinator.memberIds().includes(id)));
    }
  }

  private async recoverWith(selfComplete: boolean): Promise<void> {
    const { coordinator, store, bus, clock } = this.ports;
    const self = this.config.nodeId;
    let previous = await coordinator.readReplicas();
    const sync = this.syncMessage();
    const history = store.history;
    const synced = new Map<string, Extract<PeerReply, { type: 'synced' }>>();
    const wasReplica = (id: string) => previous.ids.length === 0 || previous.ids.includes(id);
    const completePeers = () => [...synced].filter(([id, r]) => r.serving && wasReplica(id)).map(([id]) => id);
    const liveReplicas = () => previous.ids.filter((id) => id !== self && coordinator.memberIds().includes(id));
    /** An incomplete leader needs no more answers once a complete replica answered: it steps aside for it. */
    const enough = () => previous.ids.length > 0 && !(selfComplete && wasReplica(self)) && completePeers().length > 0;
    /** Ask `ids` to synchronise; done when all answered or gave up, or, for an incomplete leader, once a complete replica answered. */
    const syncRound = (ids: string[]) =>
      new Promise<void>((resolve, reject) => {
        let left = ids.length;
        let staleEpoch = 0;
        const settled = () => {
          if (staleEpoch > this.epoch) reject(new TermEndedError(`a member is at epoch ${staleEpoch}`));
          else if (--left === 0 || enough()) resolve();
        };
        if (left === 0) resolve();
        for (const id of ids) {
          this.ports.observer?.message?.('out', 'sync', id, []);
          bus.request(id, sync, this.config.ackTimeoutMs * 2).then(
            (reply) => {
              if (reply.ok && reply.type === 'synced') synced.set(id, reply);
              else if (!reply.ok && reply.code === 'STALE_EPOCH') staleEpoch = Math.max(staleEpoch, reply.epoch);
              settled();
            },
            (err: unknown) => {
              this.log.warn({ err, peer: id }, 'no sync reply');
              settled();
            },
          );
        }
      });
    await syncRound(coordinator.memberIds().filter((id) => id !== self));
    if (previous.ids.length === 0) previous = await this.rememberedReplicaSet(synced, syncRound);
    this.era = previous.era;
    this.persistedIds = new Set(previous.ids);
    const incomplete = previous.ids.length > 0 && !(selfComplete && wasReplica(self));

    if (incomplete) {
      // We hold no complete copy: only a member of the last replica set that kept its copy has
      // every acknowledged write. One that answers complete leads instead of us; one alive in
      // ZooKeeper but silent may lead too (it may reach the others), so we step aside for it
      // after a few rounds. With none of them alive we wait, however long: serving what we hold
      // would lose what only they had.
      this.waitingFor = previous.ids.filter((id) => id !== self);
      this.log.warn({ replicas: this.waitingFor }, 'waiting for a complete replica');
      // Live members that have not answered yet (one that answered incomplete stays so).
      const silentLive = () => liveReplicas().filter((id) => !synced.has(id));
      for (let round = 1; completePeers().length === 0; round++) {
        if (silentLive().length > 0 && round > 3) throw new ResignError();
        const grant = await coordinator.readUncleanGrant().catch(() => null);
        if (grant !== null && grant.epoch === this.epoch) {
          this.log.error({ grant, replicas: this.waitingFor }, 'operator accepted data loss: serving what this node holds; writes acknowledged only by the last replica set are lost');
          break;
        }
        await sleep(clock, Math.min(1000, this.config.ackTimeoutMs * round));
        if (this.ended !== null) throw new TermEndedError(this.ended);
        await syncRound(silentLive());
      }
      if (completePeers().length > 0) throw new ResignError();
      this.waitingFor = [];
      // By the operator's order: the replica set starts again from this node's copy, a new
      // history that no copy of the old one may catch up with (they take a full snapshot).
      this.persistedIds = new Set();
      store.history = this.epoch;
    }

    // We lead with our copy: a state transfer still open here will get no leader's changes, so
    // the change log's floor rises over what it brought. Not before: a leader that steps aside
    // (incomplete) joins again, and that join's changes cover the open transfer too.
    store.changes.endTransfer(null, store.maxRev);
    // Not when the operator's order started a new history: the others' changes are of the old one.
    if (store.history === history) this.takeBackHistory([...synced]);

    // Highest revision per key over every write still in flight at a complete replica.
    const winners = new Map<string, PendingEntry>();
    const consider = (p: PendingEntry) => {
      const best = winners.get(p.key);
      if (!best || p.rev > best.rev) winners.set(p.key, p);
    };
    for (const p of store.pending()) consider(p);
    let maxRev = store.maxRev;
    for (const id of completePeers()) {
      const r = synced.get(id)!;
      for (const p of r.pending) consider(p);
      maxRev = Math.max(maxRev, r.maxRev);
    }
    for (const [, r] of synced) maxRev = Math.max(maxRev, r.maxRev);
    this.nextRev = maxRev + 1;

    // Replicas alive in ZooKeeper that did not answer may still hold a lease from the old
    // leader: wait until it has certainly run out before writing without them.
    const silent = previous.ids.filter((id) => id !== self && !synced.has(id) && this.liveIds.has(id));
    if (silent.length > 0) {
      this.log.warn({ silent }, 'waiting out leases of silent replicas');
      await sleep(clock, this.leaseWaitMs());
    }

    this.replicas.add(self);
    for (const id of completePeers()) {
      this.replicas.add(id);
      this.targets.add(id);
    }
    await this.persistReplicas();
    this.log.info({ replicas: this.replicaIds(), nextRev: this.nextRev, recommit: winners.size }, 'recovered');

    // Every complete replica now settles each in-flight key on the highest version seen, once a
    // write may be acknowledged (writeRefusal). Each key's turn is taken now, so client writes
    // queue behind it, and the key stays undecided here (reads of it wait) until then. The
    // leader serves meanwhile: reads of other keys, and joiners (who may lift the floor).
    // Until they are done no lease is granted: a copy still holds the old committed value of
    // those keys (a joiner's snapshot carries the leader's), so it must not answer reads alone.
    // The writes of one transaction share a revision: they are re-committed together, so that a
    // replica takes all of them or none.
    // A recommitted put's time to live runs from the takeover, as every other key's does.
    this.takeoverAt = clock.now();
    // A write a replica still holds in flight may be committed beneath the newer one to re-commit
    // (its validate was lost): it is validated first, here and at the replicas (each link sends
    // the validate ahead of the re-commit), so that no copy replaces it undecided: its change
    // would be unknown there, and that watch history's floor would rise over it.
    for (const [key, rev] of this.committedBeneath(winners, completePeers().map((id) => synced.get(id)!))) {
      store.apply(key, { type: 'validate', rev });
      for (const id of this.targets) this.link(id).validate(key, rev);
    }
    const groups = new Map<number, PendingEntry[]>();
    for (const w of winners.values()) {
      store.apply(w.key, { type: 'invalidate', rev: w.rev, value: w.value, ttl: w.ttl ?? 0 });
      const entry: PendingEntry = w.value !== null && (w.ttl ?? 0) > 0 ? { ...w, recommit: true } : w;
      groups.set(w.rev, [...(groups.get(w.rev) ?? []), entry]);
    }
    for (const [rev, group] of groups) this.recommits.set(rev, group);
    const recommits = Promise.all(
      [...groups].map(([rev, group]) =>
        this.turns.runAll(group.map((w) => w.key).sort(), async () => {
          try {
            await this.untilWritable();
            await this.replicate(group);
          } finally {
            this.recommits.delete(rev);
          }
        }),
      ),
    );
    // Serving does not wait for them: a recommit may wait for a replica that died after it
    // answered our sync, and only a join (which needs a serving leader) brings one back.
    void recommits.catch((err: unknown) => this.log.warn({ err }, 'recommit abandoned'));
    this.serving = true;
    this.startLeaseWatch();
    // The previous leader's deadlines (and its keep-alives) died with it: every key gets its
    // whole time to live again from now, so none expires before its time.
    for (const key of store.keysWithTtl()) this.expiries.set(key, this.takeoverAt + store.get(key)!.ttl);
    this.armExpiryTimer();
  }

  /** For each key to re-commit, the newest committed state beneath its write that this node or a complete replica knows of. */
  private committedBeneath(winners: ReadonlyMap<string, PendingEntry>, replies: Extract<PeerReply, { type: 'synced' }>[]): Map<string, number> {
    const beneath = new Map<string, number>();
    const note = (key: string, rev: number) => {
      const write = winners.get(key);
      if (write !== undefined && rev < write.rev && rev > (beneath.get(key) ?? 0)) beneath.set(key, rev);
    };
    for (const key of winners.keys()) note(key, this.ports.store.committedStateRev(key));
    for (const reply of replies) {
      const { committedBeneath } = reply;
      if (committedBeneath === undefined || !this.wellFormed(() => checkKeyRevisions(committedBeneath, 'committedBeneath'), 'committedBeneath')) continue;
      for (const v of committedBeneath) note(v.key, v.rev);
    }
    return beneath;
  }

  // ---- writes -----------------------------------------------------------------------------

  /** Run one client write. Resolves with the client reply; never rejects. */
  async write(command: WriteCommand): Promise<ClientReply> {
    if (!this.isServing) return fail(503, this.notServingReason());
    const refusal = this.writeRefusal();
    if (refusal !== null) return fail(503, refusal);
    return this.turns.run(command.key, async () => {
      const refused = this.turnRefusal();
      if (refused !== null) return refused;
      // Most keys have no deadline: no await (and no promise) for them.
      const expired = this.isDue(command.key) ? await this.expireIfDue(command.key) : null;
      if (expired !== null) return expired;
      if (command.keepAlive) return this.keepAlive(command.key);
      const { store } = this.ports;
      assert(!store.isInvalid(command.key), 'no write in flight on a key whose turn we hold');
      const current = store.committedRevision(command.key);
      if (command.value === null && current === null) return fail(404, 'no such key');
      if (command.ifRevision !== undefined) {
        const matches = command.ifRevision === 0 ? current === null : current === command.ifRevision;
        if (!matches) return fail(409, `revision mismatch: key is at ${current ?? 'absent'}`);
      }
      const ttl = command.value !== null && command.ttl !== undefined ? { ttl: command.ttl } : {};
      return this.commit([{ key: command.key, rev: this.nextRev++, value: command.value, ...ttl }]);
    });
  }

  // ---- expiring keys (PROTOCOL.md "Expiring keys") -----------------------------------------------

  /** Restart the time to live of `key`'s value; the caller holds the key's turn. */
  private keepAlive(key: string): ClientReply {
    const entry = this.ports.store.get(key);
    if (entry === undefined || entry.value === null) return fail(404, 'no such key');
    if (entry.ttl <= 0) return fail(400, NO_TTL_DESCRIPTION);
    this.expiries.set(key, this.ports.clock.now() + entry.ttl);
    this.armExpiryTimer();
    return { ok: true, revision: entry.rev };
  }

  /** Whether `key`'s value is past its deadline (reads of it must wait for its expiry). */
  isDue(key: string): boolean {
    const at = this.expiries.deadline(key);
    return at !== undefined && at <= this.ports.clock.now();
  }

  /** Keys past their deadline now. */
  dueKeys(): string[] {
    return this.expiries.due(this.ports.clock.now());
  }

  /** Expire `key` now if it is due (null once it is not, or when done), else the reply that says why not. */
  async expireNow(key: string): Promise<ClientReply | null> {
    if (!this.isDue(key)) return null;
    if (!this.isServing) return fail(503, this.notServingReason());
    const refusal = this.writeRefusal();
    if (refusal !== null) return fail(503, `${refusal} (a key past its time to live cannot be expired)`);
    return this.turns.run(key, async () => this.turnRefusal() ?? this.expireIfDue(key));
  }

  /** Thesis 3.3 case 3: a write checks the session when its key's turn comes, not only when it queued. */
  private turnRefusal(): ClientReply | null {
    return this.isServing && this.sessionLive() ? null : fail(503, 'leader has no live ZooKeeper session');
  }

  /**
   * The caller holds `key`'s turn: if its value is past its deadline, commit its expiry (a delete
   * that watchers see as `expire`) before anything else reads or writes it. Null when the key may
   * go on, else the failed expiry's reply.
   */
  private async expireIfDue(key: string): Promise<ClientReply | null> {
    if (!this.isDue(key)) return null;
    if (this.ports.store.committedRevision(key) === null) {
      this.expiries.delete(key);
      return null;
    }
    const reply = await this.commit([{ key, rev: this.nextRev++, value: null, ttl: EXPIRY }]);
    return reply.ok ? null : reply;
  }

  /** Keep a written key's deadline: set for a put with a time to live, gone otherwise. Most writes touch none: no timer work then. */
  private expiryChanged(entries: readonly PendingEntry[]): void {
    let changed = false;
    for (const e of entries) {
      if (e.value !== null && (e.ttl ?? 0) > 0) this.expiries.set(e.key, (e.recommit ? this.takeoverAt : this.ports.clock.now()) + e.ttl!);
      else if (this.expiries.deadline(e.key) !== undefined) this.expiries.delete(e.key);
      else continue;
      changed = true;
    }
    if (changed) this.armExpiryTimer();
  }

  /** One timer, for the earliest deadline (not before a retry is due); while expiries run, it looks again at most every 50 ms. */
  private armExpiryTimer(): void {
    const { clock } = this.ports;
    if (this.expiryTimer !== null) clock.clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
    const next = this.expiries.next();
    if (next === undefined || this.ended !== null) return;
    const waitMs = Math.min(Math.max(Math.max(next, this.expiryRetryAt) - clock.now(), this.expiring.size > 0 ? 50 : 0), 2 ** 31 - 1);
    this.expiryTimer = clock.setTimeout(() => {
      this.expiryTimer = null;
      this.expireDue();
    }, waitMs);
  }

  private expireDue(): void {
    if (!this.isServing) {
      this.expiryStalled(this.notServingReason());
      return this.armExpiryTimer();
    }
    for (const key of this.dueKeys()) {
      if (this.expiring.has(key)) continue;
      this.expiring.add(key);
      void this.expireNow(key).then(
        (reply) => {
          this.expiring.delete(key);
          if (reply === null) this.expiryStall = null;
          else this.expiryStalled(reply.ok ? 'unexpected reply' : reply.description, key);
          this.armExpiryTimer();
        },
        (err: unknown) => {
          this.expiring.delete(key);
          this.log.error({ err, key }, 'expiry failed');
          this.expiryStalled(err instanceof Error ? err.message : String(err), key);
          this.armExpiryTimer();
        },
      );
    }
    this.armExpiryTimer();
  }

  /** Expiries cannot be committed now (`why`): they are tried again in EXPIRY_RETRY_MS, and each new cause is logged once. */
  private expiryStalled(why: string, key?: string): void {
    this.expiryRetryAt = this.ports.clock.now() + EXPIRY_RETRY_MS;
    if (why !== this.expiryStall) this.log.warn({ why, ...(key !== undefined ? { key } : {}), retryMs: EXPIRY_RETRY_MS }, 'could not expire keys past their time to live yet; trying again');
    this.expiryStall = why;
  }

  /**
   * Run one transaction (PROTOCOL.md "Transactions"). Holding the turn of every key it names, it
   * checks the compares against the committed values (current here: no write of those keys is
   * in flight), then commits every write at one revision. A key it only compares is held shared:
   * transactions guarded by one key (a lock, a version) run together, and its value cannot change
   * before they commit. Resolves with the client reply; never rejects.
   */
  async transaction(txn: Txn): Promise<ClientReply> {
    if (!this.isServing) return fail(503, this.notServingReason());
    const refusal = this.writeRefusal();
    if (refusal !== null) return fail(503, refusal);
    const written = new Set(txn.ops.map((o) => o.key));
    const comparedOnly = new Set(txn.compare.map((c) => c.key).filter((key) => !written.has(key)));
    const keys = [...written, ...comparedOnly].sort();
    return this.turns.runAll(keys, async () => {
      const refused = this.turnRefusal();
      if (refused !== null) return refused;
      for (const key of keys) {
        const expired = await this.expireIfDue(key);
        if (expired !== null) return expired;
      }
      const { store } = this.ports;
      const failed = failedCompare(store, txn.compare);
      if (failed !== null) return failed;
      // A delete of a key that does not exist writes nothing (as a delete outside a transaction would not).
      const writes = txn.ops.filter((o) => o.op === 'put' || store.committedRevision(o.key) !== null);
      if (writes.length === 0) return txnReply(store.committedMaxRev, 0);
      const rev = this.nextRev++;
      const reply = await this.commit(writes.map((o) => (o.op === 'put' ? { key: o.key, rev, value: o.value, ...(o.ttl !== undefined ? { ttl: o.ttl } : {}) } : { key: o.key, rev, value: null })));
      return reply.ok ? txnReply(rev, writes.length) : reply;
    }, comparedOnly);
  }

  /** Replicate writes whose keys' turns the caller holds (one revision for all); the client reply. */
  private async commit(entries: PendingEntry[]): Promise<ClientReply> {
    const rev = entries[0]!.rev;
    try {
      await this.replicate(entries);
      return { ok: true, revision: rev };
    } catch (err) {
      if (err instanceof TermEndedError) return fail(504, 'leadership ended during the write; outcome unknown');
      // Anything else (a reply we cannot read, a message the bus refuses): the keys must not
      // stay undecided here for ever. They are valid again at their committed values; replicas that
      // took the invalidate keep them pending until the next write of the key or the next leader.
      this.log.error({ err, keys: entries.map((e) => e.key), rev }, 'write failed; keys released');
      for (const e of entries) this.ports.store.apply(e.key, { type: 'abort', rev });
      return fail(504, `the write failed (${err instanceof Error ? err.message : String(err)}); outcome unknown`);
    }
  }

  /**
   * Invalidate at every target and store here, wait for every ack and for the disk, apply, then
   * validate. The entries (one write, or one transaction's: one revision) travel together.
   */
  private async replicate(entries: PendingEntry[]): Promise<void> {
    const { store } = this.ports;
    const rev = entries[0]!.rev;
    // A turn queued before the term ended must not start a write after it: the write would
    // replace one in flight here whose outcome only the next leader knows.
    if (this.ended !== null) throw new TermEndedError(this.ended);
    this.inflightRevs.add(rev);
    const work = (async () => {
      for (const e of entries) store.apply(e.key, { type: 'invalidate', rev: e.rev, value: e.value, ttl: e.ttl ?? 0 });
      const targets = [...this.targets];
      // The invalidates go out first: with `--fsync interval` storing here is a commit on this thread.
      await Promise.all([...targets.map((id) => this.ackFrom(id, entries)), this.stored()]);
      if (this.ended !== null) throw new TermEndedError(this.ended);
      for (const e of entries) store.apply(e.key, { type: 'validate', rev: e.rev });
      this.expiryChanged(entries);
      for (const id of targets) if (this.targets.has(id)) for (const e of entries) this.link(id).validate(e.key, e.rev);
    })();
    this.inflight.add(work);
    try {
      await work;
    } finally {
      this.inflight.delete(work);
      this.inflightRevs.delete(rev);
      // Our own changes become watchable once nothing below them is in flight.
      this.ports.store.changes.held(this.heldThrough());
    }
  }

  /**
   * A sync of this term. Our change log may have lost its oldest changes (a state transfer that
   * never got its leader's): a member of our history that kept them sends them back in its reply.
   */
  private syncMessage(): Extract<PeerMessage, { type: 'sync' }> {
    const { changes, history } = this.ports.store;
    return { type: 'sync', from: this.config.nodeId, epoch: this.epoch, history, ...(changes.floor > 0 ? { changesThrough: changes.floor } : {}) };
  }

  /**
   * The oldest changes our change log lost, from the member (same history as ours) that sent
   * back the most of them: joiners then get them from us, rather than our floor.
   */
  private takeBackHistory(replies: [string, Extract<PeerReply, { type: 'synced' }>][]): void {
    const { changes } = this.ports.store;
    let best: { peer: string; older: ChangeTransfer } | null = null;
    for (const [peer, reply] of replies) {
      const older = reply.changes;
      if (older === undefined || !this.wellFormed(() => checkChanges(older), 'changes', peer)) continue;
      if (best === null || older.after < best.older.after) best = { peer, older };
    }
    if (best === null) return;
    const was = changes.floor;
    if (changes.backfill(best.older)) this.log.info({ peer: best.peer, floor: changes.floor, was }, 'took back the oldest changes of the watch history from a replica');
  }

  /** Does an optional part of a sync reply pass its check? A malformed one is left out, with a warning. */
  private wellFormed(check: () => void, part: string, peer?: string): boolean {
    try {
      check();
      return true;
    } catch (err) {
      this.log.warn({ err, peer }, `a sync reply with malformed ${part}`);
      return false;
    }
  }

  /** Our own copy holds the write as the disk's policy promises. A leader that cannot store steps down: it cannot acknowledge anything. */
  private async stored(): Promise<void> {
    try {
      await this.ports.store.durable();
    } catch (err) {
      this.log.error({ err }, 'the data dir failed; stepping down');
      this.end(`data dir failed: ${err instanceof Error ? err.message : String(err)}`);
      throw new TermEndedError(this.ended!);
    }
  }

  private link(id: string): ReplicaLink {
    let link = this.links.get(id);
    if (link === undefined) {
      link = new ReplicaLink(
        {
          from: this.config.nodeId,
          to: id,
          epoch: this.epoch,
          ackTimeoutMs: this.config.ackTimeoutMs,
          maxBatchEntries: 512,
          maxBatchBytes: 2 * 1024 * 1024,
          wanted: () => this.targets.has(id),
        },
        this.ports.bus,
        this.ports.clock,
        this.ports.observer,
      );
      this.links.set(id, link);
    }
    return link;
  }

  /** Resolves when `id` acked, or was dropped from the targets; rejects when the term ends. */
  private async ackFrom(id: string, entries: PendingEntry[]): Promise<void> {
    let refusedSince: number | null = null;
    let misses = 0;
    for (;;) {
      if (this.ended !== null) throw new TermEndedError(this.ended);
      if (!this.targets.has(id)) return;
      try {
        // The term's end aborts every link, so this wait ends with it.
        const reply = await this.link(id).invalidateTogether(entries);
        if (reply.ok) {
          this.unreachable.delete(id);
          this.heard(id);
          return;
        }
        if (reply.code === 'STALE_EPOCH' && reply.epoch > this.epoch) {
          this.end(`member ${id} is at epoch ${reply.epoch}`);
          throw new TermEndedError(this.ended!);
        }
        assert(reply.code !== 'BAD_MESSAGE', `peer ${id} could not read our message: ${reply.reason}`);
        // NOT_READY: the peer has not yet taken in our epoch (a joiner racing its join reply).
        // One that keeps refusing (it moved on: a new session, another join) is removed like a
        // silent one, or the write would wait on it for ever.
        refusedSince ??= this.ports.clock.now();
        if (this.ports.clock.now() - refusedSince > this.config.ackTimeoutMs) this.suspect(id, 'keeps refusing');
        await sleep(this.ports.clock, 5);
      } catch (err) {
        if (!isUnreachable(err)) throw err;
        // One slow round trip is not a failure: suspect only after a second miss in a row.
        misses += 1;
        if (misses >= 2) this.suspect(id, 'no ack');
        await sleep(this.ports.clock, Math.min(50, this.config.ackTimeoutMs));
      }
    }
  }

  // ---- membership, leases, removal -------------------------------------------------------

  /**
   * ZooKeeper's member list changed: a member whose znode is gone is skipped (thesis 3.3 case 4).
   * Its session expired, so it has been silent to ZooKeeper for a whole session timeout and its
   * lease (shorter) has run out; the removal still waits out the last lease granted, in case an
   * expiry ever comes early (an operator deleting the znode, a server clock jump).
   */
  membersChanged(ids: string[]): void {
    const appeared = ids.filter((id) => !this.liveIds.has(id));
    this.liveIds = new Set(ids);
    for (const id of [...this.targets]) if (!this.liveIds.has(id)) this.remove(id, 'member gone');
    // A node that registers after our recovery would wait (syncWaitMs) for a recovering leader's
    // sync before it joins: sync it at once, so that it asks for a lease, or joins, now.
    if (this.isServing) for (const id of appeared) if (this.isLateMember(id)) this.syncLateMember(id);
  }

  /** A live member that is neither a write target nor joining: it may be waiting to hear who leads. */
  private isLateMember(id: string): boolean {
    return id !== this.config.nodeId && this.liveIds.has(id) && !this.targets.has(id) && !this.joining.has(id);
  }

  private syncLateMember(id: string): void {
    this.log.debug({ peer: id }, 'syncing a late member');
    this.lastSynced.set(id, this.ports.clock.now());
    this.ports.observer?.message?.('out', 'sync', id, []);
    this.ports.bus.request(id, this.syncMessage(), this.config.ackTimeoutMs * 2).then(
      (reply) => {
        this.log.debug({ peer: id, ok: reply.ok, ...(reply.ok ? {} : { code: reply.code, reason: reply.reason }) }, 'late member answered');
        if (reply.ok && reply.type === 'synced' && this.ended === null) this.takeBackHistory([[id, reply]]);
        if (!reply.ok && reply.code === 'STALE_EPOCH' && reply.epoch > this.epoch) this.end(`member ${id} is at epoch ${reply.epoch}`);
        // A restarted node is listed (its old session's znode) before its new session is up, and
        // cannot confirm our epoch until it is: ask again soon rather than at the next lease tick.
        if (!reply.ok && reply.code === 'NOT_READY') {
          this.ports.clock.setTimeout(() => {
            if (this.isServing && this.ended === null && this.isLateMember(id)) this.syncLateMember(id);
          }, LATE_MEMBER_RETRY_MS);
        }
      },
      (err: unknown) => this.log.debug({ err, peer: id }, 'no reply to the sync of a late member'),
    );
  }

  /** Connected, and ZooKeeper certainly still keeps our session (a paused process may not know it lost it). */
  sessionLive(): boolean {
    return sessionProven(this.ports.coordinator, this.ports.clock.now());
  }

  /** Resolves once a write may be acknowledged; rejects when the term ends first. */
  private async untilWritable(): Promise<void> {
    while (this.writeRefusal() !== null) {
      if (this.ended !== null) throw new TermEndedError(this.ended);
      await sleep(this.ports.clock, 50);
    }
  }

  /**
   * Why a write must not start now (503: it has no effect), or null. Every node listed in
   * ZooKeeper's replica set must be sent the write (a next leader trusts their copies), and at
   * least minReplicas nodes that answer must hold it.
   */
  private writeRefusal(): string | null {
    const self = this.config.nodeId;
    for (const id of this.persistedIds) {
      if (id !== self && !this.targets.has(id)) return `the replica set is being rewritten without ${id}; nothing was written`;
    }
    let reachable = 0;
    for (const id of this.replicas) if (!this.unreachable.has(id) && !this.removing.has(id)) reachable++;
    if (reachable < this.config.minReplicas) {
      return `only ${reachable} of the ${this.config.minReplicas} copies a write needs are reachable; nothing was written`;
    }
    return null;
  }

  /** A follower asks for its read lease. Granted only to complete replicas not being removed. */
  /** A live member of the cluster (its ZooKeeper member znode), as this term last heard. */
  isLiveMember(id: string): boolean {
    return this.liveIds.has(id);
  }

  grantLease(from: string, session: string): PeerReply {
    if (!this.isServing || !this.sessionLive()) return { ok: false, code: 'NOT_READY', epoch: this.epoch, reason: 'leader not serving' };
    if (this.joining.has(from)) return { ok: false, code: 'NOT_READY', epoch: this.epoch, reason: 'still joining' };
    const known = this.replicaSession.get(from);
    if (!this.replicas.has(from) || this.removing.has(from) || (known !== undefined && known !== session)) {
      return { ok: false, code: 'NOT_REPLICA', epoch: this.epoch, reason: 'not in the replica set' };
    }
    if (this.recommitsPending) return { ok: false, code: 'NOT_READY', epoch: this.epoch, reason: 'writes of the previous term still to be re-committed' };
    this.replicaSession.set(from, session);
    this.lastGrant.set(from, this.ports.clock.now());
    this.unreachable.delete(from);
    const through = this.heldThrough();
    // Our own copy holds as much: kept with it, so that if we restart as a follower we catch up from there.
    if (through > this.ports.store.heldThrough) this.ports.store.heldThrough = through;
    this.ports.store.changes.held(through);
    return { ok: true, type: 'leased', heldThrough: through, replicaSet: this.ports.store.knownReplicaSet };
  }

  /**
   * The revision up to which a replica holds every committed write: it has acked every write
   * since it joined, so all but those in flight. Never above the highest committed revision: a
   * revision above it may have been given to a write that failed, and a next leader (which knows
   * every committed write, not every failed one) may give it again.
   */
  private heldThrough(): number {
    let through = this.ports.store.committedMaxRev;
    for (const rev of this.inflightRevs) if (rev <= through) through = rev - 1;
    return through;
  }

  /** Time after which any lease granted now has certainly expired (10% for clock rate drift). */
  private leaseWaitMs(): number {
    return leaseCertainlyOverMs(this.config.leaseMs);
  }

  /** A replica stopped answering while ZooKeeper still lists it. */
  private suspect(id: string, why: string): void {
    this.remove(id, why);
  }

  /**
   * Take a node out of the group: stop renewing its lease, wait until the last lease granted has
   * certainly run out, persist the smaller replica set, and only then stop sending it writes.
   * Each removal holds a token; re-admitting the node (admit) cancels it, so a late timer or
   * persist never removes a node that has joined again meanwhile.
   */
  private remove(id: string, why: string): void {
    if (this.removing.has(id) || !this.targets.has(id) || this.ended !== null) return;
    const remaining = [...this.replicas].filter((x) => x !== id && !this.removing.has(x)).length;
    if (this.replicas.has(id) && remaining < this.config.minReplicas) {
      // The floor on copies: it stays a replica and a target. Writes in flight wait for it; new
      // writes are refused (503) until it answers again or another node has joined.
      if (!this.unreachable.has(id)) this.log.warn({ peer: id, why, minReplicas: this.config.minReplicas }, 'replica unreachable; kept, as removing it would leave too few copies');
      this.unreachable.add(id);
      return;
    }
    const token = ++this.removalSeq;
    this.removing.set(id, token);
    const current = () => this.removing.get(id) === token && this.ended === null;
    const granted = this.lastGrant.get(id) ?? 0;
    const waitMs = Math.max(0, granted + this.leaseWaitMs() - this.ports.clock.now());
    this.log.warn({ peer: id, why, waitMs }, 'removing replica after its lease');
    // Writes stop waiting for the node only once ZooKeeper no longer lists it as a replica;
    // a persist that fails (ZooKeeper unreachable) is tried again while the removal stands.
    const retry = () => this.ports.clock.setTimeout(() => void finish(), this.config.ackTimeoutMs);
    const finish = async () => {
      if (!current()) return;
      this.joining.delete(id);
      this.replicas.delete(id);
      // Below the floor on copies (another replica left meanwhile) a set without it is not written
      // (persistReplicas): while the record lists it, a next leader may trust its copy. So it
      // stays a target, and writes in flight wait for it, until a set without it is written (sim
      // seed 151458: a write acknowledged without it was lost when it led).
      const listed = () => this.persistedIds.has(id);
      try {
        if (listed() && this.replicas.size >= this.config.minReplicas) await this.persistReplicas();
      } catch (err) {
        this.log.warn({ err, peer: id }, 'could not persist replica removal; retrying');
        retry();
        return;
      }
      if (!current()) return;
      if (listed()) {
        retry();
        return;
      }
      this.targets.delete(id);
      this.removing.delete(id);
      this.log.info({ peer: id, replicas: this.replicaIds() }, 'replica removed');
    };
    this.ports.clock.setTimeout(() => void finish(), waitMs);
  }

  /** A peer message from `id` arrived: it can reach us. */
  heard(id: string): void {
    this.lastHeard.set(id, this.ports.clock.now());
  }

  /**
   * Followers renew every leaseMs/4; one that has not for a whole lease is suspected. A leader
   * that has heard from none of at least two live members (ZooKeeper lists them) for as long is
   * most likely the one cut off the bus: it steps down, so that one of them can lead, rather than
   * hold the group without writes until its link comes back. With one other member alive, who
   * is cut off is a coin toss, and the leader stays.
   */
  private startLeaseWatch(): void {
    const startedAt = this.ports.clock.now();
    const tick = () => {
      if (this.ended !== null) return;
      const now = this.ports.clock.now();
      const silenceMs = this.config.leaseMs * 1.5;
      for (const id of this.replicas) {
        if (id === this.config.nodeId || this.removing.has(id)) continue;
        const last = this.lastGrant.get(id);
        if (last === undefined) this.lastGrant.set(id, now);
        else if (now - last > silenceMs) this.suspect(id, 'lease not renewed');
      }
      const others = [...this.liveIds].filter((id) => id !== this.config.nodeId);
      const silent = (id: string) => now - Math.max(startedAt, this.lastHeard.get(id) ?? 0) > silenceMs;
      if (others.length >= 2 && others.every(silent)) {
        this.log.warn({ members: others }, 'no member heard over the bus while ZooKeeper lists them alive; stepping down');
        this.end('cut off from every member');
        return;
      }
      // A member outside the write targets missed our sync (lost, refused because its new
      // session was not up yet, or sent before its follower was): tell it again who leads, so it
      // asks to join. Not "when it is silent": a waiting member still forwards its clients' requests.
      if (this.isServing) {
        for (const id of others) {
          if (this.isLateMember(id) && now - (this.lastSynced.get(id) ?? 0) > this.config.leaseMs / 2) this.syncLateMember(id);
        }
      }
      this.watchTimer = this.ports.clock.setTimeout(tick, this.config.leaseMs / 2);
    };
    tick();
  }

  /** Persist the replica set, one update at a time, fenced by our epoch claim. */
  private persistReplicas(): Promise<void> {
    const next = this.persistChain.then(async () => {
      if (this.ended !== null) throw new TermEndedError(this.ended);
      // Below the floor no write is acknowledged, so every node already listed still holds every
      // acknowledged write: keep listing them, or a next leader could find no complete copy.
      const ids = this.replicas.size >= this.config.minReplicas ? this.replicaIds() : [...new Set([...this.replicas, ...this.persistedIds])].sort();
      try {
        // On our disk first: if ZooKeeper's record is ever lost, the nodes rebuild it from the sets
        // they kept (rememberedReplicaSet), and the newest must be known to the node that wrote it.
        this.ports.store.learnReplicaSet({ ids, era: this.era, epoch: this.epoch, seq: ++this.replicaSetsWritten });
        await this.ports.store.durable();
        await this.ports.coordinator.writeReplicas(ids, this.claim, this.era);
        this.persistedIds = new Set(ids);
      } catch (err) {
        if (err instanceof DeposedError) this.end('epoch fenced off in ZooKeeper');
        // The write may have happened (connection lost, timeout): ZooKeeper may list either set,
        // so every node of both must be sent every write until a write of the set succeeds.
        else this.persistedIds = new Set([...this.persistedIds, ...ids]);
        throw err;
      }
    });
    this.persistChain = next.catch(() => undefined);
    return next;
  }

  // ---- joining ------------------------------------------------------------------------------

  /**
   * A node asks to join: from now on it acks every write; the committed data streams to it in
   * chunks; when the stream is through it enters the persisted replica set.
   */
  async admit(request: Extract<PeerMessage, { type: 'join' }>): Promise<PeerReply> {
    const { from, session, attempt } = request;
    if (!this.isServing) return { ok: false, code: 'NOT_READY', epoch: this.epoch, reason: 'leader not serving' };
    if (from === this.config.nodeId || !this.liveIds.has(from)) {
      return { ok: false, code: 'NOT_READY', epoch: this.epoch, reason: 'not a live member' };
    }
    // A duplicate of a request being served or already served (NATS may deliver a message twice,
    // late): the same reply, no second admission.
    const earlier = this.admissions.get(from);
    if (earlier !== undefined && earlier.session === session && earlier.attempt === attempt) return earlier.reply;
    const since = this.catchUpFrom(request);
    // Changes of another history would not go on from the joiner's log. A joiner whose log
    // starts above ours gets all we have (the newest that fit), its older changes back too.
    const { history, changes } = this.ports.store;
    const olderWanted = request.changesFloor !== undefined && request.changesFloor > changes.floor && request.changesAfter !== undefined;
    const changesAfter = request.history !== history ? undefined : olderWanted ? changes.floor : request.changesAfter;
    const reply = this.startAdmission(from, session, attempt, since, since > 0 ? request.pending : [], changesAfter);
    this.admissions.set(from, { session, attempt, reply });
    return reply;
  }

  /**
   * Where a joiner's transfer starts: above the revision its copy holds every committed write of
   * (it sends only what changed since), when that copy is of this history and every delete since
   * is still recorded here; else 0, a full snapshot into a flushed copy. Our writes in flight count
   * as held: after a crash of every node, the first leader holds the last writes in flight until a
   * second copy is back to re-commit them (the floor on copies), and the joiner may hold them
   * committed. It does no harm: the joiner keeps them, or the re-commit replaces them.
   */
  private catchUpFrom(request: Extract<PeerMessage, { type: 'join' }>): number {
    const { store } = this.ports;
    const since = request.since;
    const why =
      since === 0 ? 'its copy holds no complete state (empty, or a full transfer did not finish)'
      : request.history !== store.history ? `its copy is of history ${request.history}, ours is ${store.history}`
      : since < store.deletesKnownAbove ? `only deletes above ${store.deletesKnownAbove} are recorded here, its copy holds through ${since}`
      : since > store.heldMaxRev ? `its copy holds through ${since}, beyond anything we hold (${store.heldMaxRev})`
      : null;
    if (why === null) return since;
    this.log.info({ peer: request.from, since }, `full snapshot: ${why}`);
    return 0;
  }

  private async startAdmission(from: string, session: string, attempt: number, since: number, pending: string[], changesAfter: number | undefined): Promise<PeerReply> {
    // It will flush its copy or roll it back: it must no longer count as complete anywhere, before it acks anything.
    this.removing.delete(from);
    this.replicas.delete(from);
    if (this.persistedIds.has(from)) await this.persistReplicas();
    const token = ++this.admissionSeq;
    this.joining.set(from, { session, attempt, token });
    this.replicaSession.set(from, session);
    this.targets.add(from);
    // Writes from now on reach the joiner as invalidations; every earlier revision is below this.
    const lastRevBefore = this.nextRev - 1;
    void this.transfer(from, token, { since, pending, lastRevBefore, changesAfter }, [...this.inflight]);
    return { ok: true, type: 'admitted', admission: token, since, history: this.ports.store.history };
  }

  /**
   * `since` above 0: a catch-up (what changed since, and the `pending` keys the joiner rolls back,
   * as they stand); `lastRevBefore`: the last revision given before the admission.
   */
  private async transfer(id: string, token: number, what: { since: number; pending: string[]; lastRevBefore: number; changesAfter: number | undefined }, earlier: Promise<unknown>[]): Promise<void> {
    const { since, pending } = what;
    const { store } = this.ports;
    const started = this.ports.clock.now();
    const stillJoining = () => this.joining.get(id)?.token === token && this.ended === null;
    try {
      // Writes that began before the joiner was a target did not invalidate it: let them finish
      // so the snapshot carries their values.
      await Promise.allSettled(earlier);
      let seq = 0;
      let entries = 0;
      // Keys' and values' bytes sent: what a catch-up saves against a full copy (the log says).
      let bytes = 0;
      const count = (sent: SnapshotEntry[]) => {
        entries += sent.length;
        for (const e of sent) bytes += Buffer.byteLength(e.key) + (e.value?.byteLength ?? 0);
      };
      // A value written after the admission reaches the joiner as a write (it is a target): not
      // here too, where it could arrive first and hide that write from the joiner's change log.
      const beforeAdmission = (e: SnapshotEntry) => e.rev <= what.lastRevBefore;
      for (const all of store.chunks(this.config.snapshotChunkEntries, this.config.snapshotChunkBytes, since, what.lastRevBefore)) {
        if (!stillJoining()) return;
        const chunk = all.filter(beforeAdmission);
        await this.sendChunk(id, { type: 'snapshot', from: this.config.nodeId, epoch: this.epoch, admission: token, seq: seq++, entries: chunk, done: false, maxRev: 0 });
        count(chunk);
        this.ports.observer?.resync?.(id, entries, false);
      }
      if (!stillJoining()) return;
      if (pending.length > 0) {
        const rolledBack = pending.map((key) => store.stateOf(key, what.lastRevBefore)).filter(beforeAdmission);
        await this.sendChunk(id, { type: 'snapshot', from: this.config.nodeId, epoch: this.epoch, admission: token, seq: seq++, entries: rolledBack, done: false, maxRev: 0 });
        count(rolledBack);
      }
      // Deletes forgotten meanwhile (a bounded record, a flood of deletes) may be missing from the
      // changes sent: the joiner must not take them as complete. It tries again, for a full copy.
      if (since > 0 && store.deletesKnownAbove > since) throw new Error(`deletes above ${since} forgotten during the catch-up`);
      // Our committed changes up to the admission: the joiner's change log goes on from them.
      // While writes of the previous term wait to be re-committed (they wait for a second copy:
      // maybe this joiner), they come later, in a 'history' message (sendHistoryLater).
      const changes = what.changesAfter === undefined ? null : this.changesUpTo(what.changesAfter, what.lastRevBefore, id);
      const historyFollows = what.changesAfter !== undefined && changes === null && !this.vouchesUpTo(what.lastRevBefore, id);
      // Writes of the previous term not re-committed yet are in flight here, and that term may
      // have acknowledged them: the joiner takes them in flight too, as every replica holds them,
      // so that it re-commits them if it leads next (one whose re-commit started before the
      // admission was awaited above; one that starts later reaches it as a write as well).
      const inFlight = [...this.recommits.values()].flat();
      const done: PeerMessage = { type: 'snapshot', from: this.config.nodeId, epoch: this.epoch, admission: token, seq, entries: [], done: true, maxRev: Math.max(store.maxRev, this.nextRev - 1), lastRevBefore: what.lastRevBefore, ...(inFlight.length > 0 ? { inFlight } : {}) };
      await this.sendChunk(id, changes !== null ? { ...done, changes } : historyFollows ? { ...done, historyFollows } : done);
      // Dropped while the last chunk was in flight (suspected, or gone from ZooKeeper): not a
      // replica. Forget the admission too, or its lease requests would hear "still joining" for
      // ever; now they hear NOT_REPLICA, which sends it to join again.
      if (!stillJoining() || !this.targets.has(id) || this.removing.has(id)) {
        if (stillJoining()) this.joining.delete(id);
        return;
      }
      this.replicas.add(id);
      this.admitted.add(id);
      try {
        await this.persistReplicas();
      } catch (err) {
        // Not recorded as a replica: it must not hold leases; write the set without it again.
        this.replicas.delete(id);
        void this.persistReplicas().catch(() => undefined);
        throw err;
      }
      if (!stillJoining()) return;
      this.joining.delete(id);
      this.lastGrant.set(id, this.ports.clock.now());
      this.ports.observer?.resync?.(id, entries, true);
      this.log.info({ peer: id, entries, bytes, since, ms: Math.round(this.ports.clock.now() - started) }, since > 0 ? 'caught up' : 'joined');
      if (historyFollows) void this.sendHistoryLater(id, token, what.changesAfter!, what.lastRevBefore);
    } catch (err) {
      this.ports.observer?.resync?.(id, 0, false, true);
      this.log.warn({ err, peer: id }, 'state transfer failed');
      if (this.joining.get(id)?.token === token) {
        this.joining.delete(id);
        // It leaves the targets as any node does (remove): once a lease it may hold from before
        // its join has run out (sim seed 163283: a join delivered late to a serving replica), and
        // the record no longer lists it (the set below the floor on copies, or its write failed).
        this.remove(id, 'state transfer failed');
      }
    }
  }

  /**
   * Is every revision up to `rev` that this term gave decided here? Nothing at or below it is in
   * flight any more (new writes are above it, earlier ones have finished, recommits too): a
   * revision up to it that our copy never saw committed was given to a write that failed, or
   * skipped by our recovery (see vouchesUpTo).
   */
  private decidedUpTo(rev: number): boolean {
    return !this.recommitsPending && ![...this.inflightRevs].some((r) => r <= rev);
  }

  /**
   * May a history (ours, a joiner's) vouch for every revision up to `rev`? Each is decided here,
   * and a write at or above it is committed (F16): a revision our recovery skipped, because a
   * replica that answered held a write at it, may still be in flight at a replica that has not
   * answered yet, and a later leader may commit it. Once we have committed a write above it, every
   * replica has joined us (which rolled that write back) or left the set.
   */
  private vouchesUpTo(rev: number, joiner?: string): boolean {
    return this.decidedUpTo(rev) && (this.ports.store.committedMaxRev >= rev || this.allAdmitted(joiner));
  }

  /**
   * Was every member of the replica set but us (as we hold it, and as ZooKeeper records it)
   * admitted in this term, `joiner` too? Each admission rolled back the member's writes of earlier
   * terms, so no copy but ours holds one that our recovery skipped: those revisions are dead
   * before we commit anything (a leader that admitted every member and then stopped would
   * otherwise leave their histories to follow, for ever).
   */
  private allAdmitted(joiner?: string): boolean {
    for (const id of new Set([...this.replicas, ...this.persistedIds])) if (id !== this.config.nodeId && id !== joiner && !this.admitted.has(id)) return false;
    return true;
  }

  /** Our committed changes in (after, through] for a joiner's change log, null when we cannot vouch for them (yet). */
  private changesUpTo(after: number, through: number, joiner?: string): ChangeTransfer | null {
    const { changes } = this.ports.store;
    if (this.vouchesUpTo(through, joiner)) changes.held(through);
    return changes.transferable(after, through, CHANGES_TRANSFER_BYTES);
  }

  /**
   * The changes a joiner's transfer ended without (`historyFollows`): sent once every revision up
   * to the admission is decided here, while it is still our replica from that admission.
   */
  private async sendHistoryLater(id: string, admission: number, after: number, through: number): Promise<void> {
    const stillOurs = () => this.ended === null && this.replicas.has(id) && !this.joining.has(id) && !this.removing.has(id);
    while (!this.vouchesUpTo(through)) {
      if (!stillOurs()) return;
      await sleep(this.ports.clock, this.config.leaseMs / 8);
    }
    if (!stillOurs()) return;
    const changes = this.changesUpTo(after, through);
    if (changes === null) this.log.warn({ peer: id, after, through }, 'no changes to send the joiner after all: its watch history starts later');
    try {
      await this.sendChunk(id, { type: 'history', from: this.config.nodeId, epoch: this.epoch, admission, ...(changes === null ? {} : { changes }) });
    } catch (err) {
      this.log.warn({ err, peer: id }, 'the changes promised to a joiner were not delivered: its watch history starts later');
    }
  }

  /** NOT_READY: the joiner has not yet handled our admission reply; try again shortly. */
  private async sendChunk(id: string, message: PeerMessage): Promise<void> {
    this.ports.observer?.message?.('out', message.type, id, []);
    for (let attempt = 0; ; attempt++) {
      const reply = await this.ports.bus.request(id, message, this.config.opTimeoutMs);
      if (reply.ok) return;
      if (reply.code !== 'NOT_READY' || attempt >= 50) throw new Error(`joiner refused chunk: ${reply.reason}`);
      await sleep(this.ports.clock, 10);
    }
  }

  // ---- end of term ------------------------------------------------------------------------

  /** Stop starting writes and wait (bounded) for those in flight: graceful handover. */
  async drain(maxMs: number): Promise<void> {
    this.stopping = true;
    await this.ports.deadlines.settledWithin(maxMs, Promise.allSettled([...this.inflight]));
  }

  end(reason: string): void {
    if (this.ended !== null) return;
    this.ended = reason;
    this.serving = false;
    if (this.watchTimer !== null) this.ports.clock.clearTimeout(this.watchTimer);
    if (this.expiryTimer !== null) this.ports.clock.clearTimeout(this.expiryTimer);
    for (const link of this.links.values()) link.abort(new TermEndedError(reason));
    this.log.info({ reason }, 'term ended');
    this.onDeposed(reason);
  }
}
