// The leader's pipe to one replica. Invalidations queued in the same turn of the event loop
// travel as one request, and validations ride along with the next request (or go alone when
// none follows), so under load the message count per write falls well below three. Validations
// are reliable: until a reply to a request that carried them arrives, they are sent again (a
// lost one would leave the key undecided at the replica until its next write).
import type { Bus, Clock, NodeObserver } from './ports.ts';
import { deferred, type Deferred } from './time.ts';
import type { KeyRevision, PeerMessage, PeerReply, PendingEntry } from './protocol.ts';

/** Writes that travel in one request; every one of them gets the replica's one reply. */
interface Batch {
  entries: PendingEntry[];
  bytes: number;
  reply: Deferred<PeerReply>;
}

export interface LinkConfig {
  from: string;
  to: string;
  epoch: number;
  ackTimeoutMs: number;
  maxBatchEntries: number;
  maxBatchBytes: number;
  /** Whether the replica still takes our writes; validations to one that left are dropped. */
  wanted: () => boolean;
}

export class ReplicaLink {
  /** Batches not sent yet; only the last one takes more writes. */
  private queue: Batch[] = [];
  private readonly unanswered = new Set<Batch>();
  private validations: KeyRevision[] = [];
  /**
   * Validations sent in a request with no reply yet, by key. A write of the same key carries its
   * validation again: the replica must never take the newer write before the older one's
   * validate, or it cannot tell whether the older one was committed (a lost or late message).
   */
  private readonly unconfirmed = new Map<string, number>();
  private flushScheduled = false;
  private retryTimer: unknown = null;
  private aborted: unknown = null;

  constructor(
    private readonly config: LinkConfig,
    private readonly bus: Bus,
    private readonly clock: Clock,
    private readonly observer?: NodeObserver,
  ) {}

  /**
   * Resolves with the replica's reply to the batch that carries `entry`; rejects if it is
   * unreachable or the link is aborted. Writes of one batch share one promise.
   */
  invalidate(entry: PendingEntry): Promise<PeerReply> {
    return this.invalidateTogether([entry]);
  }

  /**
   * The writes of one transaction: they travel in one request, so the replica takes all of them
   * or none (a group larger than the batch limits gets a batch of its own).
   */
  invalidateTogether(entries: readonly PendingEntry[]): Promise<PeerReply> {
    if (this.aborted !== null) return Promise.reject(this.aborted);
    let size = 0;
    for (const e of entries) size += (e.value?.byteLength ?? 0) + e.key.length + 32;
    let batch = this.queue[this.queue.length - 1];
    if (batch === undefined || batch.entries.length + entries.length > this.config.maxBatchEntries || batch.bytes + size > this.config.maxBatchBytes) {
      batch = { entries: [], bytes: 0, reply: deferred<PeerReply>() };
      // Every write awaits it; this only keeps a rejection nobody waits for any more quiet.
      batch.reply.promise.catch(() => undefined);
      this.queue.push(batch);
    }
    batch.entries.push(...entries);
    batch.bytes += size;
    this.scheduleFlush();
    return batch.reply.promise;
  }

  validate(key: string, rev: number): void {
    this.validations.push({ key, rev });
    this.scheduleFlush();
  }

  /** Fail every write waiting on this link (the term ended): nobody waits for a timeout. */
  abort(err: unknown): void {
    this.aborted = err;
    if (this.retryTimer !== null) this.clock.clearTimeout(this.retryTimer);
    for (const batch of [...this.queue, ...this.unanswered]) batch.reply.reject(err);
    this.queue = [];
    this.unanswered.clear();
    this.validations = [];
    this.unconfirmed.clear();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // Two microtask hops: writes started in the same turn reach the queue before it is sent.
    queueMicrotask(() => queueMicrotask(() => this.flush()));
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.aborted !== null) return;
    for (const batch of this.queue) this.sendBatch(batch);
    this.queue = [];
    if (this.validations.length > 0) {
      const validated = this.validations;
      const message: PeerMessage = { type: 'validate', from: this.config.from, epoch: this.config.epoch, validated };
      this.observer?.message?.('out', 'validate', this.config.to, validated.map((v) => v.key));
      this.validations = [];
      this.sent(validated);
      this.bus.request(this.config.to, message, this.config.ackTimeoutMs).then(
        (reply) => this.answered(validated, reply),
        () => this.resend(validated),
      );
    }
  }

  /** Validations whose request got no reply go again, after a pause, while the replica is wanted. */
  private resend(validated: KeyRevision[]): void {
    if (this.aborted !== null || validated.length === 0) return;
    if (!this.config.wanted()) {
      this.unconfirmed.clear();
      return;
    }
    this.validations = validated.concat(this.validations);
    if (this.retryTimer !== null) return;
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = null;
      if (this.aborted !== null) return;
      if (this.config.wanted()) this.scheduleFlush();
      else this.validations = [];
    }, this.config.ackTimeoutMs);
  }

  private sent(validated: readonly KeyRevision[]): void {
    for (const v of validated) this.unconfirmed.set(v.key, v.rev);
  }

  /** A reply that is not ok applied nothing: those validations stay unconfirmed. */
  private answered(validated: readonly KeyRevision[], reply: PeerReply): void {
    if (!reply.ok) return;
    for (const v of validated) if (this.unconfirmed.get(v.key) === v.rev) this.unconfirmed.delete(v.key);
  }

  /** The validations a batch carries: those due, and those still unconfirmed of its keys. */
  private validationsFor(entries: readonly PendingEntry[]): KeyRevision[] {
    const due = this.validations;
    if (this.unconfirmed.size === 0) return due;
    let again: KeyRevision[] | null = null;
    for (const e of entries) {
      const rev = this.unconfirmed.get(e.key);
      if (rev !== undefined && rev < e.rev) (again ??= []).push({ key: e.key, rev });
    }
    return again === null ? due : again.concat(due);
  }

  private sendBatch(batch: Batch): void {
    const validated = this.validationsFor(batch.entries);
    const message: PeerMessage = {
      type: 'invalidate',
      from: this.config.from,
      epoch: this.config.epoch,
      entries: batch.entries,
      validated,
    };
    this.validations = [];
    this.sent(validated);
    const observer = this.observer;
    const sentAt = this.clock.now();
    observer?.message?.('out', 'invalidate', this.config.to, batch.entries.map((e) => e.key));
    this.unanswered.add(batch);
    this.bus.request(this.config.to, message, this.config.ackTimeoutMs).then(
      (reply) => {
        this.unanswered.delete(batch);
        this.answered(validated, reply);
        observer?.replication?.(this.config.to, batch.entries.length, this.clock.now() - sentAt, reply.ok);
        batch.reply.resolve(reply);
      },
      (err: unknown) => {
        this.unanswered.delete(batch);
        observer?.replication?.(this.config.to, batch.entries.length, this.clock.now() - sentAt, false);
        this.resend(validated);
        batch.reply.reject(err);
      },
    );
  }
}
