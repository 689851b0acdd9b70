// The leader's pipe to one replica. Invalidations queued in the same turn of the event loop
// travel as one request, and validations ride along with the next request (or go alone when
// none follows), so under load the message count per write falls well below three.
import type { Bus, Clock, NodeObserver } from './ports.ts';
import type { KeyRevision, PeerMessage, PeerReply, PendingEntry } from './protocol.ts';

interface Waiting {
  entry: PendingEntry;
  resolve(reply: PeerReply): void;
  reject(err: unknown): void;
}

export interface LinkConfig {
  from: string;
  to: string;
  epoch: number;
  ackTimeoutMs: number;
  maxBatchEntries: number;
  maxBatchBytes: number;
}

export class ReplicaLink {
  private queue: Waiting[] = [];
  private validations: KeyRevision[] = [];
  private flushScheduled = false;

  constructor(
    private readonly config: LinkConfig,
    private readonly bus: Bus,
    private readonly clock: Clock,
    private readonly observer?: NodeObserver,
  ) {}

  /** Resolves with the replica's reply to the batch that carried `entry`; rejects if unreachable. */
  invalidate(entry: PendingEntry): Promise<PeerReply> {
    return new Promise((resolve, reject) => {
      this.queue.push({ entry, resolve, reject });
      this.scheduleFlush();
    });
  }

  validate(key: string, rev: number): void {
    this.validations.push({ key, rev });
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // Two microtask hops: writes started in the same turn reach the queue before it is sent.
    queueMicrotask(() => queueMicrotask(() => this.flush()));
  }

  private flush(): void {
    this.flushScheduled = false;
    while (this.queue.length > 0) this.sendBatch(this.takeBatch());
    if (this.validations.length > 0) {
      const message: PeerMessage = { type: 'validate', from: this.config.from, epoch: this.config.epoch, validated: this.validations };
      this.observer?.message?.('out', 'validate', this.config.to, this.validations.map((v) => v.key));
      this.validations = [];
      this.bus.send(this.config.to, message);
    }
  }

  private takeBatch(): Waiting[] {
    let bytes = 0;
    let count = 0;
    for (const w of this.queue) {
      const size = (w.entry.value?.byteLength ?? 0) + w.entry.key.length + 32;
      if (count > 0 && (count >= this.config.maxBatchEntries || bytes + size > this.config.maxBatchBytes)) break;
      bytes += size;
      count++;
    }
    return this.queue.splice(0, count);
  }

  private sendBatch(batch: Waiting[]): void {
    const message: PeerMessage = {
      type: 'invalidate',
      from: this.config.from,
      epoch: this.config.epoch,
      entries: batch.map((w) => w.entry),
      validated: this.validations,
    };
    this.validations = [];
    const observer = this.observer;
    const sentAt = this.clock.now();
    observer?.message?.('out', 'invalidate', this.config.to, batch.map((w) => w.entry.key));
    this.bus.request(this.config.to, message, this.config.ackTimeoutMs).then(
      (reply) => {
        observer?.replication?.(this.config.to, batch.length, this.clock.now() - sentAt, reply.ok);
        for (const w of batch) w.resolve(reply);
      },
      (err: unknown) => {
        observer?.replication?.(this.config.to, batch.length, this.clock.now() - sentAt, false);
        for (const w of batch) w.reject(err);
      },
    );
  }
}
