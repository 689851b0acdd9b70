// Virtual time for the whole-cluster simulation.
//
// One Scheduler holds every timer of the simulated world in a heap ordered by (virtual time,
// insertion sequence). The run loop fires timers one at a time; before it advances virtual time
// to a later instant it lets the JavaScript microtask queue drain completely (promise
// continuations of the node code must run "at" the instant that triggered them). The drain is
// one `setImmediate`: Node empties the nextTick and microtask queues before it runs any macrotask,
// so when the immediate fires every continuation chained from the last event has run. Nothing in
// the simulation touches real I/O or real timers, so the only thing that can run during that
// drain is simulation code, and the order of simulated events depends only on the seed.
//
// Each node incarnation gets its own `NodeClock` (an owner): crashing the node kills the owner,
// and its timers silently never fire again — a killed process runs no more code.
import type { Clock } from '../../actors/ports.ts';

export interface TimerOwner {
  readonly name: string;
  alive: boolean;
  /** A paused owner's due timers wait in `deferred` until it resumes (a stopped process). */
  paused: boolean;
  readonly deferred: Timer[];
}

export interface Timer {
  time: number;
  seq: number;
  readonly fn: () => void;
  readonly owner: TimerOwner | null;
  cancelled: boolean;
}

/** Thrown from the run loop when simulated code threw out of a timer callback. */
export class SimulationError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SimulationError';
  }
}

/** A binary min-heap of timers ordered by (time, seq). */
class TimerHeap {
  private readonly items: Timer[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): Timer | undefined {
    return this.items[0];
  }

  private static less(a: Timer, b: Timer): boolean {
    return a.time < b.time || (a.time === b.time && a.seq < b.seq);
  }

  push(t: Timer): void {
    const items = this.items;
    items.push(t);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!TimerHeap.less(items[i]!, items[parent]!)) break;
      [items[i], items[parent]] = [items[parent]!, items[i]!];
      i = parent;
    }
  }

  pop(): Timer | undefined {
    const items = this.items;
    if (items.length === 0) return undefined;
    const top = items[0]!;
    const last = items.pop()!;
    if (items.length > 0) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < items.length && TimerHeap.less(items[l]!, items[m]!)) m = l;
        if (r < items.length && TimerHeap.less(items[r]!, items[m]!)) m = r;
        if (m === i) break;
        [items[i], items[m]] = [items[m]!, items[i]!];
        i = m;
      }
    }
    return top;
  }
}

const drainMicrotasks = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Events fired at one virtual instant before we call it a livelock. */
const EVENTS_PER_INSTANT_MAX = 200_000;

export class Scheduler {
  private virtualNow = 0;
  private seq = 0;
  private readonly heap = new TimerHeap();
  /** Timer callbacks fired so far. */
  events = 0;
  /** Errors thrown out of timer callbacks (simulated code should never throw into the loop). */
  readonly errors: unknown[] = [];
  /** Called after each drain, before time advances: the place for invariant checks. */
  onQuiescent: (() => void) | null = null;
  /** The world's own clock (network, ZooKeeper server, clients): never dies. */
  readonly clock: Clock;

  constructor() {
    this.clock = this.clockFor(null);
  }

  now(): number {
    return this.virtualNow;
  }

  schedule(delayMs: number, fn: () => void, owner: TimerOwner | null = null): Timer {
    const ms = Number.isFinite(delayMs) && delayMs > 0 ? delayMs : 0;
    const timer: Timer = { time: this.virtualNow + ms, seq: this.seq++, fn, owner, cancelled: false };
    if (owner === null || owner.alive) this.heap.push(timer);
    else timer.cancelled = true;
    return timer;
  }

  cancel(timer: unknown): void {
    if (timer !== null && typeof timer === 'object' && 'cancelled' in timer) (timer as Timer).cancelled = true;
  }

  /** A Clock whose timers belong to `owner` (null: the world). Shape matches XState's clock. */
  clockFor(owner: TimerOwner | null): Clock {
    return {
      now: () => this.virtualNow,
      setTimeout: (fn: (...args: unknown[]) => void, ms: number) => this.schedule(ms, () => fn(), owner),
      clearTimeout: (handle: unknown) => this.cancel(handle),
    };
  }

  /**
   * Runs every event up to and including virtual time `until`, then sets the clock to `until`.
   * With `stop`, returns true as soon as it holds at a quiescent point (the clock stays there).
   */
  async runUntil(until: number, stop?: () => boolean): Promise<boolean> {
    let firedAtInstant = 0;
    for (;;) {
      const next = this.heap.peek();
      if (next !== undefined && next.time <= this.virtualNow) {
        this.heap.pop();
        if (next.cancelled || (next.owner !== null && !next.owner.alive)) continue;
        if (next.owner !== null && next.owner.paused) {
          next.owner.deferred.push(next);
          continue;
        }
        this.events++;
        if (++firedAtInstant > EVENTS_PER_INSTANT_MAX) {
          throw new SimulationError(`livelock: more than ${EVENTS_PER_INSTANT_MAX} events at t=${this.virtualNow}`);
        }
        try {
          next.fn();
        } catch (err) {
          this.errors.push(err);
        }
        continue;
      }
      await drainMicrotasks();
      this.onQuiescent?.();
      if (stop?.()) return true;
      const after = this.heap.peek();
      if (after !== undefined && after.time <= this.virtualNow) continue;
      if (after === undefined || after.time > until) break;
      this.virtualNow = after.time;
      firedAtInstant = 0;
    }
    if (until > this.virtualNow) this.virtualNow = until;
    return stop?.() ?? false;
  }

  /** Fire a resumed owner's overdue timers now, in their original order. */
  resume(owner: TimerOwner): void {
    owner.paused = false;
    const due = owner.deferred.splice(0);
    for (const t of due) {
      if (t.cancelled) continue;
      t.time = this.virtualNow;
      t.seq = this.seq++;
      this.heap.push(t);
    }
  }

  async runFor(ms: number): Promise<void> {
    await this.runUntil(this.virtualNow + ms);
  }

  /** Runs until `done()` holds (checked at every quiescent point) or `maxMs` pass; returns whether it held. */
  async runUntilTrue(done: () => boolean, maxMs: number): Promise<boolean> {
    if (done()) return true;
    return this.runUntil(this.virtualNow + maxMs, done);
  }

  /** Lets pending continuations run without advancing time. */
  async settle(): Promise<void> {
    await this.runUntil(this.virtualNow);
  }
}

/** A node incarnation's timers: kill() stops them all, as a killed process runs nothing more. */
export class NodeClock implements TimerOwner {
  alive = true;
  paused = false;
  readonly deferred: Timer[] = [];
  readonly clock: Clock;
  constructor(
    readonly name: string,
    private readonly scheduler: Scheduler,
  ) {
    this.clock = scheduler.clockFor(this);
  }
  kill(): void {
    this.alive = false;
  }
  /** The process stops running (SIGSTOP, a long GC pause): its timers wait. */
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    if (this.paused) this.scheduler.resume(this);
  }
}
