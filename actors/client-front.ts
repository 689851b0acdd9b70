// Everything a client request goes through on this node: parse it, answer a get from the local
// copy when the node can serve, hand it to this node's leader term when it leads, or forward it
// to the leader (batched; delivery failures become PROTOCOL.md codes), all within the request's
// deadline; and the members view. It reads its node only through FrontView and changes nothing
// of it; the one fact it owns is the wait on the leader it forwards to (abandonLeader).
import { BusClosedError, BusTimeoutError, NoRespondersError } from '../bus/errors.ts';
import { Batcher } from './batcher.ts';
import type { LeaderTerm } from './leader-term.ts';
import { messageKeys } from './message-keys.ts';
import type { NodeConfig, NodeParts } from './node.ts';
import type { MemberInfo, MemberState, Role } from './ports.ts';
import type { ClientReply, ClientRequest, MembersView, PeerMessage, WriteCommand } from './protocol.ts';
import { fail, parseKey, parseWrite } from './request.ts';
import { covers, keysInFlight, parseScan, runScan, type ScanQuery } from './scan.ts';
import { parseTxn } from './txn.ts';
import { WatchServer } from './watch.ts';
import { Cancellation, DeadlineError } from './time.ts';

/** What the client front reads of its node (ZiNode); it writes none of it. */
export interface FrontView {
  /** The node is stopping: requests are refused, nothing more goes to the leader. */
  readonly stopping: boolean;
  /** The node's ZooKeeper session is connected (canServe asks more: one proven alive now). */
  readonly connected: boolean;
  /** The one serving decision (ZiNode.canServe): may a read be answered from the local copy now? */
  canServe(): boolean;
  /** This node's term while it leads, else null: then requests go to it, not to a leader elsewhere. */
  readonly term: LeaderTerm | null;
  /** The leader to forward to (ZooKeeper's for `epoch`; this node's id when it leads), null before any. */
  readonly leader: string | null;
  /** The highest epoch this node knows of: forwarded requests carry it. */
  readonly epoch: number;
  /** This node's role and state now, for its own entry in the members view. */
  describe(): { role: Role; state: MemberState };
  /** Why this node's data dir failed (it then acks no write), null while it works. */
  readonly dataDirProblem: string | null;
}

/** How many times a follower waits for writes in flight on a scan's range before asking the leader. */
const SCAN_LOCAL_ATTEMPTS = 3;

type FrontConfig = Pick<NodeConfig, 'nodeId' | 'cluster' | 'opTimeoutMs' | 'validateWaitMs'>;

class LeaderGoneError extends Error {
  constructor(why: string) {
    super(`leader gone: ${why}`);
    this.name = 'LeaderGoneError';
  }
}

const encoder = new TextEncoder();

export class ClientFront {
  /** Rejected when the leader we forward to is gone (member znode deleted, or a newer epoch). */
  private readonly leaderLost = new Cancellation();
  /** Watch requests, answered from this node's change log; they wait longer than the operation timeout allows. */
  readonly watches: WatchServer;

  constructor(
    private readonly config: FrontConfig,
    private readonly parts: NodeParts,
    private readonly node: FrontView,
  ) {
    this.watches = new WatchServer(parts.store.changes, parts.clock, () => node.canServe());
  }

  /** Requests waiting on a leader that is gone cannot be answered by it: stop waiting. */
  abandonLeader(why: string): void {
    this.leaderLost.cancel(new LeaderGoneError(why));
  }

  /**
   * A get this node can answer from its own copy right now is answered synchronously: no
   * deadline timer and no promise chain on the path that most requests take.
   */
  serveClient(request: ClientRequest): ClientReply | Promise<ClientReply> {
    if (request.op !== 'get') return this.handleClient(request);
    const { observer, clock } = this.parts;
    const started = observer?.request ? clock.now() : 0;
    const reply = this.readNow(request);
    if (reply === null) return this.handleClient(request);
    observer?.request?.(request.op, reply.ok ? 200 : reply.code, clock.now() - started);
    return reply;
  }

  /** The answer to a get when it needs no waiting (the slow path re-checks everything), else null. */
  private readNow(request: ClientRequest): ClientReply | null {
    if (this.node.stopping || !this.node.connected) return null;
    const key = parseKey(request);
    if (typeof key !== 'string') return key;
    const { store } = this.parts;
    if (store.isInvalid(key) || store.expiredHere(key)) return null;
    return this.node.canServe() ? this.localValue(key) : null;
  }

  async handleClient(request: ClientRequest): Promise<ClientReply> {
    const { observer, clock } = this.parts;
    if (!observer?.request) return this.answerClient(request);
    const started = clock.now();
    const reply = await this.answerClient(request);
    observer.request(request.op, reply.ok ? 200 : reply.code, clock.now() - started);
    return reply;
  }

  private async answerClient(request: ClientRequest): Promise<ClientReply> {
    try {
      if (request.op === 'members') return await this.members();
      if (this.node.stopping) return fail(503, 'node is shutting down');
      if (!this.node.connected) return fail(503, 'no live ZooKeeper session');
      if (request.op === 'watch') return await this.watches.serve(request);
      const work = request.op === 'get' ? this.read(request) : request.op === 'scan' ? this.scan(request) : request.op === 'txn' ? this.txn(request) : this.write(request);
      return await this.parts.deadlines.run(this.config.opTimeoutMs, request.op, work);
    } catch (err) {
      if (err instanceof DeadlineError) return fail(504, 'could not finish in time; the outcome is unknown');
      this.parts.log.error({ err, op: request.op }, 'request failed');
      return fail(500, 'internal error');
    }
  }

  private async read(request: ClientRequest): Promise<ClientReply> {
    const key = parseKey(request);
    if (typeof key !== 'string') return key;
    if (this.node.term !== null) return this.leaderRead(key);
    if (this.node.canServe()) {
      const { store, deadlines } = this.parts;
      const settled = store.settled(key);
      if (settled) await deadlines.settledWithin(this.config.validateWaitMs, settled);
      // A value that may have expired: only the leader can tell.
      if (this.node.canServe() && !store.isInvalid(key) && !store.expiredHere(key)) return this.localValue(key);
    }
    return this.leaderReads.submit(key);
  }

  /** A read at the leader (its own client's, or one a follower forwarded). */
  async leaderRead(key: string): Promise<ClientReply> {
    const term = this.node.term;
    if (term === null || !term.isServing) return fail(503, term?.notServingReason() ?? 'leader is not serving yet');
    // A write in flight on this key is undecided, and a value past its deadline is expired first:
    // no read returns until neither holds (checked again after each wait: time goes on).
    for (;;) {
      const expired = await term.expireNow(key);
      if (expired !== null) return expired;
      const settled = this.parts.store.settled(key);
      if (settled === null && !term.isDue(key)) break;
      if (settled) await settled;
    }
    if (!this.node.canServe()) return fail(503, 'leader has no live ZooKeeper session');
    return this.localValue(key);
  }

  /**
   * A follower answers a scan from its copy at an instant when no key of the range has a write in
   * flight (one may be acknowledged and not yet validated here). It waits for such writes a few
   * times; a range that is never quiet goes to the leader.
   */
  private async scan(request: ClientRequest): Promise<ClientReply> {
    const query = parseScan(request);
    if ('ok' in query) return query;
    if (this.node.term !== null) return this.leaderScan(query);
    const { store, deadlines } = this.parts;
    // A key of the range that may have expired: only the leader can tell.
    let expired = false;
    for (const key of store.keysWithTtl()) {
      if (!covers(query, key) || !store.expiredHere(key)) continue;
      expired = true;
      break;
    }
    for (let attempt = 0; attempt < SCAN_LOCAL_ATTEMPTS && !expired && this.node.canServe(); attempt++) {
      const busy = this.unsettled(query);
      if (busy.length === 0) return runScan(store, query);
      await deadlines.settledWithin(this.config.validateWaitMs, Promise.all(busy));
    }
    const [reply] = await this.askLeader((epoch) => ({ type: 'scan', from: this.config.nodeId, epoch, query }), false, 1);
    return reply!;
  }

  /**
   * A scan at the leader (its own client's, or one a follower forwarded). Here a write in flight
   * is not acknowledged yet, so the committed values are current, except for the writes of the
   * previous term being re-committed (it may have acknowledged them): the scan waits for those.
   */
  async leaderScan(query: ScanQuery): Promise<ClientReply> {
    const term = this.node.term;
    if (term === null || !term.isServing) return fail(503, term?.notServingReason() ?? 'leader is not serving yet');
    // As for a read: no key past its deadline, checked again after each wait.
    for (;;) {
      while (term.recommitsPending) {
        const busy = this.unsettled(query);
        if (busy.length === 0) break;
        await Promise.all(busy);
      }
      const due = term.dueKeys().filter((key) => covers(query, key));
      if (due.length === 0) break;
      for (const key of due) {
        const failed = await term.expireNow(key);
        if (failed !== null) return failed;
      }
    }
    if (!this.node.canServe()) return fail(503, 'leader has no live ZooKeeper session');
    return runScan(this.parts.store, query);
  }

  /** Waits for each key of the scan's range that has a write in flight here. */
  private unsettled(query: ScanQuery): Promise<void>[] {
    const { store } = this.parts;
    return keysInFlight(store, query).map((key) => store.settled(key)!);
  }

  private localValue(key: string): ClientReply {
    const entry = this.parts.store.get(key);
    if (entry === undefined || entry.value === null) return fail(404, 'no such key');
    return { ok: true, revision: entry.rev, data: entry.value };
  }

  private async write(request: ClientRequest): Promise<ClientReply> {
    const command = parseWrite(request);
    if ('ok' in command) return command;
    const term = this.node.term;
    if (term !== null) return term.write(command);
    return this.forwards.submit(command);
  }

  /** A transaction runs at the leader: this node's term, or the leader it forwards to. */
  private async txn(request: ClientRequest): Promise<ClientReply> {
    const txn = parseTxn(request);
    if ('ok' in txn) return txn;
    const term = this.node.term;
    if (term !== null) return term.transaction(txn);
    const [reply] = await this.askLeader((epoch) => ({ type: 'txn', from: this.config.nodeId, epoch, txn }), true, 1);
    return reply!;
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
    const leader = this.node.leader;
    if (leader === null || leader === this.config.nodeId) return all(fail(503, 'no leader yet'));
    // Stopping closes the bus: what has not been sent yet is refused here, before it can begin.
    if (this.node.stopping) return all(fail(503, 'node is shutting down'));
    try {
      const request = message(this.node.epoch);
      this.parts.observer?.message?.('out', request.type, leader, messageKeys(request));
      const reply = await this.leaderLost.race(this.parts.bus.request(leader, request, this.config.opTimeoutMs));
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
    const { coordinator, deadlines, log } = this.parts;
    const term = this.node.term;
    let members: MemberInfo[] = [];
    let replicas: string[] = term?.replicaIds() ?? [];
    if (this.node.connected) {
      try {
        members = await deadlines.run(this.config.opTimeoutMs / 2, 'members', coordinator.readMembers());
        if (this.node.term === null) replicas = (await deadlines.run(this.config.opTimeoutMs / 2, 'replicas', coordinator.readReplicas())).ids;
      } catch (err) {
        log.warn({ err }, 'members read failed');
      }
    }
    // Our own entry is what we know now, not what we last published, and how many keys we hold.
    const problem = this.node.dataDirProblem;
    const self = { id: this.config.nodeId, ...this.node.describe(), keys: this.parts.store.size, ...(problem !== null ? { dataDirError: problem } : {}) };
    members = [...members.filter((m) => m.id !== self.id), self].sort((a, b) => a.id.localeCompare(b.id));
    const view: MembersView = {
      cluster: this.config.cluster,
      node: this.config.nodeId,
      epoch: this.node.epoch,
      leader: this.node.term !== null ? this.config.nodeId : this.node.leader,
      members,
      replicas,
    };
    return { ok: true, data: encoder.encode(JSON.stringify(view)) };
  }
}
