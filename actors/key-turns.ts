// One write per key at a time; writes to different keys run concurrently. A transaction that
// only compares a key takes a shared turn: any number of those run together, and a write of the
// key waits for them (and they for it), in arrival order.

interface Turn {
  /** Holders now: shared turns, or one exclusive one. */
  holders: number;
  exclusive: boolean;
  /** Waiting, in arrival order. */
  waiting: { shared: boolean; start: () => void }[];
}

export class KeyTurns {
  /** Keys whose turn is taken, with who waits for it. */
  private readonly turns = new Map<string, Turn>();

  /** Runs `work` after every earlier turn on `key` that conflicts with it has finished. */
  async run<T>(key: string, work: () => Promise<T>, shared = false): Promise<T> {
    const turn = this.turns.get(key);
    if (turn === undefined) {
      // A free key (the usual case) costs no promise of its own.
      this.turns.set(key, { holders: 1, exclusive: !shared, waiting: [] });
    } else if (shared && !turn.exclusive && turn.waiting.length === 0) {
      turn.holders++;
    } else {
      await new Promise<void>((start) => turn.waiting.push({ shared, start }));
    }
    try {
      return await work();
    } finally {
      this.release(key);
    }
  }

  /**
   * Runs `work` holding the turn of every key in `keys` (shared for those in `shared`), taken one
   * after the other in the order given. Every caller gives them sorted, so two of them never wait
   * for each other's keys.
   */
  async runAll<T>(keys: readonly string[], work: () => Promise<T>, shared: ReadonlySet<string> = new Set()): Promise<T> {
    if (keys.length === 0) return work();
    return this.run(keys[0]!, () => this.runAll(keys.slice(1), work, shared), shared.has(keys[0]!));
  }

  /** Keys with a write running or queued. */
  get busy(): number {
    return this.turns.size;
  }

  private release(key: string): void {
    const turn = this.turns.get(key)!;
    turn.holders--;
    if (turn.holders > 0) return;
    const next = turn.waiting.shift();
    if (next === undefined) {
      this.turns.delete(key);
      return;
    }
    turn.holders = 1;
    turn.exclusive = !next.shared;
    next.start();
    // Shared turns waiting right behind a shared one start with it.
    while (next.shared && turn.waiting[0]?.shared) {
      turn.holders++;
      turn.waiting.shift()!.start();
    }
  }
}
