// One write per key at a time; writes to different keys run concurrently.
export class KeyTurns {
  private readonly tails = new Map<string, Promise<void>>();

  /** Runs `work` after every earlier turn on `key` has finished. */
  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key);
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous ? previous.then(() => mine) : mine;
    this.tails.set(key, tail);
    try {
      if (previous) await previous;
      return await work();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }

  /** Keys with a write running or queued. */
  get busy(): number {
    return this.tails.size;
  }
}
