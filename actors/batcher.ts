// Requests queued in the same turn of the event loop go out as one message; each caller gets
// its own part of the reply. Used for writes and reads a follower forwards to the leader.
interface Waiting<I, R> {
  item: I;
  resolve(result: R): void;
  reject(err: unknown): void;
}

export class Batcher<I, R> {
  private queue: Waiting<I, R>[] = [];
  private scheduled = false;

  /** `send` carries a batch and returns one result per item, in order. */
  constructor(
    private readonly send: (items: I[]) => Promise<R[]>,
    private readonly maxItems: number,
  ) {}

  submit(item: I): Promise<R> {
    return new Promise((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      // Two microtask hops: requests that arrived in the same turn join the batch.
      queueMicrotask(() => queueMicrotask(() => this.flush()));
    });
  }

  private flush(): void {
    this.scheduled = false;
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxItems);
      this.send(batch.map((w) => w.item)).then(
        (results) => batch.forEach((w, i) => w.resolve(results[i]!)),
        (err: unknown) => batch.forEach((w) => w.reject(err)),
      );
    }
  }
}
