// One write per key at a time; writes to different keys run concurrently.
export class KeyTurns {
  /** Keys whose turn is taken, with the writers waiting for it in order. */
  private readonly queues = new Map<string, (() => void)[]>();

  /** Runs `work` after every earlier turn on `key` has finished. */
  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const queue = this.queues.get(key);
    // A free key (the usual case) costs no promise of its own.
    if (queue === undefined) this.queues.set(key, []);
    else await new Promise<void>((resolve) => queue.push(resolve));
    try {
      return await work();
    } finally {
      const waiting = this.queues.get(key)!;
      const next = waiting.shift();
      if (next === undefined) this.queues.delete(key);
      else next();
    }
  }

  /**
   * Runs `work` holding the turn of every key in `keys`, taken one after the other in the order
   * given. Every caller gives them sorted, so two of them never wait for each other's keys.
   */
  async runAll<T>(keys: readonly string[], work: () => Promise<T>): Promise<T> {
    if (keys.length === 0) return work();
    return this.run(keys[0]!, () => this.runAll(keys.slice(1), work));
  }

  /** Keys with a write running or queued. */
  get busy(): number {
    return this.queues.size;
  }
}
