// The Bus port in memory, for the deterministic simulation (raft's in-memory `network`,
// TigerBeetle's packet simulator, FoundationDB's swizzle-clogging).
//
// A MemoryNetwork stands for the NATS server plus every link to it. Each node incarnation attaches
// one MemoryBus. Every message goes through `route`: a cut or isolated link drops it, a seeded
// coin drops or duplicates it, a seeded delay (per-link FIFO unless reordering is on) decides when
// it arrives, and a clogged link holds it until the clog lifts. Timers run on the injected Clock
// (virtual time in the simulation); randomness comes from the injected `random` (a seeded PRNG).
//
// Faithful to nats-bus.ts where the core can tell the difference:
// - Peer messages travel encoded with bus/codec.ts and are checked with checkPeerMessage and
//   checkSender on arrival, exactly as on NATS (where permissions tie the subject's sender to the
//   identity that sent it; here the sending bus is the sender); each delivery decodes its own
//   copy, so nodes never share buffers.
// - request() rejects with BusTimeoutError when no reply arrives in time (a lost request or
//   reply, a cut link), NoRespondersError when the destination has no live peer subscription
//   (crashed, closed, never served), BusClosedError when this bus is closed. send() is fire and
//   forget. A handler that rejects sends no reply (the requester times out).
// - Client requests are injected by the harness with clientRequest(); a client handler that
//   rejects is answered with 500, as NatsBus does.
//
// Beyond NATS (deliberately harsher): reordering between any two messages (NATS keeps per-link
// order), and duplication. Core NATS is at-most-once and never duplicates; a duplicate `forward`
// or `txn` would be a client write executed twice (a client retry, which the contract leaves to
// the client), so those two are never duplicated. Every other message type is.
import { checkPeerMessage, checkSender } from '../actors/peer-check.ts';
import type { Bus, ClientHandler, Clock, PeerHandler } from '../actors/ports.ts';
import type { ClientReply, ClientRequest, PeerMessage, PeerReply } from '../actors/protocol.ts';
import { decode, encode } from './codec.ts';
import { BusClosedError, BusTimeoutError, NoRespondersError } from './errors.ts';
import { subjects } from './subjects.ts';

/** The pseudo-node clients send from. */
export const CLIENTS = '@clients';

export interface LinkProfile {
  delayMsMin: number;
  delayMsMax: number;
  /** Chance that a message (request, reply or send) is lost. */
  dropRate: number;
  /** Chance that a message is delivered twice (never a `forward` or `txn`, never a client request). */
  duplicateRate: number;
  /** Each message gets its own delay, so any two may swap; otherwise each directed link is FIFO. */
  reorder: boolean;
  /** Chance of a long tail delay on top, up to slowDelayMsMax. */
  slowRate: number;
  slowDelayMsMax: number;
}

export const calmProfile: LinkProfile = {
  delayMsMin: 0.2,
  delayMsMax: 2,
  dropRate: 0,
  duplicateRate: 0,
  reorder: false,
  slowRate: 0,
  slowDelayMsMax: 0,
};

export type ClientOutcome =
  | { kind: 'reply'; reply: ClientReply }
  /** No node served that subject: the request was not delivered (no effect). */
  | { kind: 'no-responders' }
  /** No reply in time: unknown outcome. */
  | { kind: 'timeout' };

/** Optional taps for the harness: invariants and traces. Called synchronously, must not throw. */
export interface NetworkObserver {
  /** A peer message arrived at `to` and is handed to its handler. */
  peerDelivered?(from: string, to: string, message: PeerMessage): void;
  /** A node's client handler settled with `reply` (before the reply travels back). */
  clientAnswered?(node: string, request: ClientRequest, reply: ClientReply): void;
  /** A message was dropped (cut, isolated, or by chance). */
  dropped?(from: string, to: string, what: string): void;
}

export interface NetworkStats {
  sent: number;
  delivered: number;
  dropped: number;
  duplicated: number;
  held: number;
  noResponders: number;
}

export interface MemoryNetworkOptions {
  clock: Clock;
  /** Seeded uniform [0, 1); the simulation never uses Math.random. */
  random: () => number;
  profile?: Partial<LinkProfile>;
  observer?: NetworkObserver;
}

interface Held {
  from: string;
  to: string;
  deliver: () => void;
}

interface Pending {
  resolve(reply: PeerReply): void;
  reject(err: Error): void;
  timer: unknown;
  subject: string;
}

const link = (from: string, to: string) => `${from}>${to}`;
const copyBytes = (b: Uint8Array): Uint8Array => b.slice();
const copyRequest = (r: ClientRequest): ClientRequest => ({
  op: r.op,
  headers: new Map([...r.headers].map(([k, v]) => [k, [...v]] as [string, string[]])),
  data: copyBytes(r.data),
});
const copyReply = (r: ClientReply): ClientReply =>
  r.ok ? { ok: true, ...(r.revision !== undefined ? { revision: r.revision } : {}), ...(r.data !== undefined ? { data: copyBytes(r.data) } : {}) } : { ...r };


/** Observers are taps: one that throws must not change what the network does. */
function tap(fn: () => void): void {
  try {
    fn();
  } catch {
    // Deliberately ignored: see above.
  }
}

export class MemoryNetwork {
  profile: LinkProfile;
  readonly stats: NetworkStats = { sent: 0, delivered: 0, dropped: 0, duplicated: 0, held: 0, noResponders: 0 };
  observer: NetworkObserver;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly endpoints = new Map<string, MemoryBus>();
  private readonly incarnations = new Map<string, number>();
  /** Directed links that drop everything. */
  private readonly cuts = new Set<string>();
  /** Nodes cut from the NATS server altogether (peers and clients). */
  private readonly isolated = new Set<string>();
  private readonly cloggedNodes = new Set<string>();
  private readonly cloggedLinks = new Set<string>();
  private held: Held[] = [];
  /** Per directed link, the arrival time of the last message: FIFO unless reordering. */
  private readonly lastArrival = new Map<string, number>();

  constructor(options: MemoryNetworkOptions) {
    this.clock = options.clock;
    this.random = options.random;
    this.profile = { ...calmProfile, ...options.profile };
    this.observer = options.observer ?? {};
  }

  /** A new incarnation of `nodeId` joins the network (a start or restart); an older one is gone. */
  attach(nodeId: string, clock: Clock = this.clock): MemoryBus {
    const old = this.endpoints.get(nodeId);
    if (old !== undefined) old.kill();
    const incarnation = (this.incarnations.get(nodeId) ?? 0) + 1;
    this.incarnations.set(nodeId, incarnation);
    const bus = new MemoryBus(this, nodeId, incarnation, clock);
    this.endpoints.set(nodeId, bus);
    return bus;
  }

  /** The process died: its subscriptions vanish (NoResponders from now on), it sends nothing more. */
  crash(nodeId: string): void {
    const bus = this.endpoints.get(nodeId);
    if (bus === undefined) return;
    bus.kill();
    this.endpoints.delete(nodeId);
  }

  endpoint(nodeId: string): MemoryBus | undefined {
    return this.endpoints.get(nodeId);
  }

  // ---- faults ---------------------------------------------------------------------------

  /** Drop everything between a and b (both ways, or only a → b). Clients count as node CLIENTS. */
  cut(a: string, b: string, options: { oneWay?: boolean } = {}): void {
    this.cuts.add(link(a, b));
    if (!options.oneWay) this.cuts.add(link(b, a));
  }

  uncut(a: string, b: string): void {
    this.cuts.delete(link(a, b));
    this.cuts.delete(link(b, a));
  }

  /** Cut a node from the NATS server: nothing reaches it, from peers or clients, and it reaches nobody. */
  isolate(nodeId: string): void {
    this.isolated.add(nodeId);
  }

  rejoin(nodeId: string): void {
    this.isolated.delete(nodeId);
  }

  /** Hold every message to or from a node until unclogged (FDB swizzle-clogging). */
  clogNode(nodeId: string): void {
    this.cloggedNodes.add(nodeId);
  }

  unclogNode(nodeId: string): void {
    this.cloggedNodes.delete(nodeId);
    this.releaseHeld();
  }

  /** Hold messages on one directed link until unclogged. */
  clog(from: string, to: string): void {
    this.cloggedLinks.add(link(from, to));
  }

  unclog(from: string, to: string): void {
    this.cloggedLinks.delete(link(from, to));
    this.releaseHeld();
  }

  /** Remove every cut, isolation and clog (held messages are released). The profile stays. */
  heal(): void {
    this.cuts.clear();
    this.isolated.clear();
    this.cloggedNodes.clear();
    this.cloggedLinks.clear();
    this.releaseHeld();
  }

  describeFaults(): string {
    const parts: string[] = [];
    if (this.isolated.size > 0) parts.push(`isolated ${[...this.isolated].sort().join(',')}`);
    if (this.cuts.size > 0) parts.push(`cut ${[...this.cuts].sort().join(',')}`);
    if (this.cloggedNodes.size > 0) parts.push(`clogged ${[...this.cloggedNodes].sort().join(',')}`);
    if (this.cloggedLinks.size > 0) parts.push(`clogged links ${[...this.cloggedLinks].sort().join(',')}`);
    return parts.join('; ') || 'none';
  }

  private blocked(from: string, to: string): boolean {
    return this.isolated.has(from) || this.isolated.has(to) || this.cuts.has(link(from, to));
  }

  private clogged(from: string, to: string): boolean {
    return this.cloggedNodes.has(from) || this.cloggedNodes.has(to) || this.cloggedLinks.has(link(from, to));
  }

  private releaseHeld(): void {
    const still: Held[] = [];
    for (const h of this.held) {
      if (this.clogged(h.from, h.to)) still.push(h);
      else this.scheduleArrival(h.from, h.to, h.deliver);
    }
    this.held = still;
  }

  // ---- transport --------------------------------------------------------------------------

  /** Send one message from `from` to `to`: drop, duplicate, delay, hold — then `deliver` on arrival. */
  private route(from: string, to: string, what: string, deliver: () => void, duplicable: boolean): void {
    this.stats.sent++;
    if (this.blocked(from, to)) {
      this.drop(from, to, what);
      return;
    }
    if (this.profile.dropRate > 0 && this.random() < this.profile.dropRate) {
      this.drop(from, to, what);
      return;
    }
    this.scheduleArrival(from, to, deliver);
    if (duplicable && this.profile.duplicateRate > 0 && this.random() < this.profile.duplicateRate) {
      this.stats.duplicated++;
      this.scheduleArrival(from, to, deliver);
    }
  }

  private drop(from: string, to: string, what: string): void {
    this.stats.dropped++;
    tap(() => this.observer.dropped?.(from, to, what));
  }

  private scheduleArrival(from: string, to: string, deliver: () => void): void {
    const p = this.profile;
    let delay = p.delayMsMin + this.random() * Math.max(0, p.delayMsMax - p.delayMsMin);
    if (p.slowRate > 0 && this.random() < p.slowRate) delay += this.random() * p.slowDelayMsMax;
    let at = this.clock.now() + delay;
    if (!p.reorder) {
      const key = link(from, to);
      at = Math.max(at, this.lastArrival.get(key) ?? 0);
      this.lastArrival.set(key, at);
    }
    this.clock.setTimeout(() => this.arrive(from, to, deliver), at - this.clock.now());
  }

  private arrive(from: string, to: string, deliver: () => void): void {
    // A link cut while the message was in flight loses it (a reset connection loses its buffers).
    if (this.blocked(from, to)) {
      this.drop(from, to, 'in flight');
      return;
    }
    if (this.clogged(from, to)) {
      this.stats.held++;
      this.held.push({ from, to, deliver });
      return;
    }
    this.stats.delivered++;
    deliver();
  }

  /**
   * The next `count` peer messages for which `reply` returns a reply are answered with it instead
   * of reaching their node (a peer that cannot read a message, a reply the sender cannot use).
   */
  tamper(reply: (from: string, to: string, message: PeerMessage) => PeerReply | undefined, count: number): void {
    this.tampering = { reply, left: count };
  }

  private tampering: { reply: (from: string, to: string, message: PeerMessage) => PeerReply | undefined; left: number } | null = null;

  /** Peer request-reply and send. `requestId` 0 = send (no reply wanted). */
  transmitPeer(sender: MemoryBus, to: string, bytes: Uint8Array, type: PeerMessage['type'], requestId: number): void {
    const from = sender.nodeId;
    this.route(
      from,
      to,
      type,
      () => {
        const dest = this.endpoints.get(to);
        if (dest === undefined || !dest.servesPeers()) {
          this.stats.noResponders++;
          if (requestId !== 0) this.route(to, from, 'no responders', () => sender.noResponders(requestId), false);
          return;
        }
        let message: PeerMessage;
        try {
          message = checkSender(checkPeerMessage(decode<unknown>(copyBytes(bytes))), from);
        } catch (err) {
          const reply: PeerReply = { ok: false, code: 'BAD_MESSAGE', epoch: 0, reason: err instanceof Error ? err.message : 'malformed' };
          if (requestId !== 0) this.route(to, from, 'reply', () => sender.replied(requestId, encode(reply)), false);
          return;
        }
        tap(() => this.observer.peerDelivered?.(from, to, message));
        const tampered = this.tampering !== null && this.tampering.left > 0 ? this.tampering.reply(from, to, message) : undefined;
        if (tampered !== undefined) {
          this.tampering!.left--;
          if (requestId !== 0) this.route(to, from, 'reply', () => sender.replied(requestId, encode(tampered)), false);
          return;
        }
        dest.handlePeer(message).then(
          (reply) => {
            if (requestId === 0 || !dest.isLive()) return;
            const replyBytes = encode(reply);
            this.route(to, from, 'reply', () => sender.replied(requestId, replyBytes), true);
          },
          () => undefined, // NatsBus logs it and sends no reply: the requester times out.
        );
      },
      type !== 'forward' && type !== 'txn',
    );
  }

  /** A client request to one node, as a NATS client would send it to `zistore.<c>.node.<id>.<op>`. */
  clientRequest(nodeId: string, request: ClientRequest, timeoutMs: number): Promise<ClientOutcome> {
    const req = copyRequest(request);
    return new Promise<ClientOutcome>((resolve) => {
      let done = false;
      const finish = (outcome: ClientOutcome) => {
        if (done) return;
        done = true;
        this.clock.clearTimeout(timer);
        resolve(outcome);
      };
      const timer = this.clock.setTimeout(() => finish({ kind: 'timeout' }), timeoutMs);
      this.route(
        CLIENTS,
        nodeId,
        `client ${req.op}`,
        () => {
          const dest = this.endpoints.get(nodeId);
          if (dest === undefined || !dest.servesClients()) {
            this.stats.noResponders++;
            this.route(nodeId, CLIENTS, 'no responders', () => finish({ kind: 'no-responders' }), false);
            return;
          }
          dest
            .handleClient(copyRequest(req))
            .then(
              (reply) => reply,
              (): ClientReply => ({ ok: false, code: 500, description: 'internal error' }),
            )
            .then((reply) => {
              if (!dest.isLive()) return;
              tap(() => this.observer.clientAnswered?.(nodeId, req, reply));
              const copy = copyReply(reply);
              this.route(nodeId, CLIENTS, 'client reply', () => finish({ kind: 'reply', reply: copyReply(copy) }), false);
            });
        },
        false,
      );
    });
  }

  /** Called by a bus that closed or died. */
  detach(bus: MemoryBus): void {
    if (this.endpoints.get(bus.nodeId) === bus) this.endpoints.delete(bus.nodeId);
  }
}

export class MemoryBus implements Bus {
  private clientHandler: ClientHandler | null = null;
  private peerHandler: PeerHandler | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextRequestId = 1;
  private closed = false;
  /** The process crashed: nothing in or out, promises never settle (a dead process awaits nothing). */
  private dead = false;

  constructor(
    private readonly network: MemoryNetwork,
    readonly nodeId: string,
    readonly incarnation: number,
    private readonly clock: Clock,
  ) {}

  isLive(): boolean {
    return !this.closed && !this.dead;
  }

  servesPeers(): boolean {
    return this.isLive() && this.peerHandler !== null;
  }

  servesClients(): boolean {
    return this.isLive() && this.clientHandler !== null;
  }

  handlePeer(message: PeerMessage): Promise<PeerReply> {
    return this.peerHandler!(message);
  }

  handleClient(request: ClientRequest): Promise<ClientReply> {
    return Promise.resolve(this.clientHandler!(request));
  }

  async serveClients(handler: ClientHandler): Promise<void> {
    if (!this.isLive()) throw new BusClosedError();
    this.clientHandler = handler;
  }

  async servePeers(handler: PeerHandler): Promise<void> {
    if (!this.isLive()) throw new BusClosedError();
    this.peerHandler = handler;
  }

  request(to: string, message: PeerMessage, timeoutMs: number): Promise<PeerReply> {
    if (this.dead) return new Promise<PeerReply>(() => undefined);
    if (this.closed) return Promise.reject(new BusClosedError());
    const subject = subjects.peer('sim', to, this.nodeId, message.type);
    let bytes: Uint8Array;
    try {
      bytes = encode(message);
    } catch (err) {
      return Promise.reject(err);
    }
    const id = this.nextRequestId++;
    return new Promise<PeerReply>((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        if (this.pending.delete(id)) reject(new BusTimeoutError(subject));
      }, Math.max(1, Math.round(timeoutMs)));
      this.pending.set(id, { resolve, reject, timer, subject });
      this.network.transmitPeer(this, to, bytes, message.type, id);
    });
  }

  send(to: string, message: PeerMessage): void {
    if (!this.isLive()) return;
    this.network.transmitPeer(this, to, encode(message), message.type, 0);
  }

  /** A reply arrived for request `id` (late and duplicate replies find nothing pending). */
  replied(id: number, bytes: Uint8Array): void {
    if (this.dead) return;
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    this.clock.clearTimeout(p.timer);
    try {
      p.resolve(decode<PeerReply>(copyBytes(bytes)));
    } catch (err) {
      p.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  noResponders(id: number): void {
    if (this.dead) return;
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    this.clock.clearTimeout(p.timer);
    p.reject(new NoRespondersError(p.subject));
  }

  async close(): Promise<void> {
    if (this.closed || this.dead) return;
    this.closed = true;
    this.network.detach(this);
    for (const [id, p] of [...this.pending]) {
      this.pending.delete(id);
      this.clock.clearTimeout(p.timer);
      p.reject(new BusClosedError());
    }
  }

  /** The process is gone (crash): see `dead`. */
  kill(): void {
    this.dead = true;
    this.network.detach(this);
    this.pending.clear();
  }
}
