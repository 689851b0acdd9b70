// Timing helpers over the Clock port, so the same code runs on real and virtual time.
import type { Clock } from './ports.ts';

/** The process's own clock, for production. */
export const processClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/**
 * When a lease granted now has certainly run out on every clock: clocks may run up to 10% apart
 * (docs/safety.md), plus 20 ms. What the leader waits before going on without a member, and what
 * the session timeout must exceed (cli/timings.ts).
 */
export const leaseCertainlyOverMs = (leaseMs: number): number => Math.ceil((leaseMs * 11) / 10) + 20;

export const sleep = (clock: Clock, ms: number): Promise<void> =>
  new Promise((resolve) => clock.setTimeout(() => resolve(), Math.max(0, ms)));

export class DeadlineError extends Error {
  constructor(what: string) {
    super(`${what}: deadline passed`);
    this.name = 'DeadlineError';
  }
}

interface Deadline {
  at: number;
  what: string;
  /** Null once the work settled (or the deadline fired). */
  reject: ((err: unknown) => void) | null;
}

/**
 * Works that all get the same span: arrival order is then deadline order, so one timer walks a
 * queue instead of every work arming and clearing its own.
 */
class SpanQueue {
  private queue: Deadline[] = [];
  private head = 0;
  private timer: unknown = null;

  constructor(
    private readonly clock: Clock,
    private readonly spanMs: number,
    /** Called when the queue has nothing left to time (its owner may drop it). */
    private readonly onIdle: () => void,
  ) {}

  run<T>(what: string, work: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const deadline: Deadline = { at: this.clock.now() + this.spanMs, what, reject };
      this.queue.push(deadline);
      if (this.timer === null) this.arm();
      work.then(
        (value) => {
          deadline.reject = null;
          resolve(value);
        },
        (err: unknown) => {
          deadline.reject = null;
          reject(err);
        },
      );
    });
  }

  stop(): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    this.queue = [];
    this.head = 0;
  }

  /** Fire at the first deadline still pending; settled ones are skipped. */
  private arm(): void {
    while (this.head < this.queue.length && this.queue[this.head]!.reject === null) this.head++;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
      this.timer = null;
      this.onIdle();
      return;
    }
    this.timer = this.clock.setTimeout(() => this.expire(), Math.max(0, this.queue[this.head]!.at - this.clock.now()));
  }

  private expire(): void {
    const now = this.clock.now();
    for (; this.head < this.queue.length; this.head++) {
      const deadline = this.queue[this.head]!;
      if (deadline.reject === null) continue;
      if (deadline.at > now) break;
      const reject = deadline.reject;
      deadline.reject = null;
      reject(new DeadlineError(deadline.what));
    }
    this.arm();
  }
}

/**
 * The one deadline mechanism: every bounded wait of a node or a bus connection goes through its
 * Deadlines. Works of the same span share one queue and one timer (client operations, peer
 * requests: thousands a second, a handful of spans), so a work costs no timer of its own.
 */
export class Deadlines {
  private readonly spans = new Map<number, SpanQueue>();

  constructor(private readonly clock: Clock) {}

  /** Settles like `work`, or rejects with DeadlineError once `ms` have passed; `work` itself goes on. */
  run<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
    const span = Math.max(0, Math.round(ms));
    let queue = this.spans.get(span);
    if (queue === undefined) {
      queue = new SpanQueue(this.clock, span, () => this.spans.delete(span));
      this.spans.set(span, queue);
    }
    return queue.run(what, work);
  }

  /** Waits for `work` to settle (either way), at most `ms`: true if it did. */
  settledWithin(ms: number, work: Promise<unknown>): Promise<boolean> {
    return this.run(ms, 'wait', work).then(
      () => true,
      (err: unknown) => !(err instanceof DeadlineError),
    );
  }

  /** Drop every timer (the owner is going away; works still running get no deadline). */
  stop(): void {
    for (const queue of this.spans.values()) queue.stop();
    this.spans.clear();
  }
}

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(err: unknown): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Cancels many waits at once. Unlike racing each wait against one long-lived promise (whose
 * reactions pile up until it settles, a leak per call), each wait here unregisters itself.
 */
export class Cancellation {
  private readonly waiters = new Set<(err: unknown) => void>();

  /** Settles like `work`, or rejects with the error of the next cancel(). */
  race<T>(work: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.waiters.add(reject);
      work.then(
        (value) => {
          this.waiters.delete(reject);
          resolve(value);
        },
        (err: unknown) => {
          this.waiters.delete(reject);
          reject(err);
        },
      );
    });
  }

  cancel(err: unknown): void {
    const waiting = [...this.waiters];
    this.waiters.clear();
    for (const reject of waiting) reject(err);
  }
}
