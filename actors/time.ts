// Timing helpers over the Clock port, so the same code runs on real and virtual time.
import type { Clock } from './ports.ts';

export const sleep = (clock: Clock, ms: number): Promise<void> =>
  new Promise((resolve) => clock.setTimeout(() => resolve(), Math.max(0, ms)));

export class DeadlineError extends Error {
  constructor(what: string) {
    super(`${what}: deadline passed`);
    this.name = 'DeadlineError';
  }
}

/** Settles like `work`, or rejects with DeadlineError after `ms`. `work` itself goes on. */
export function withDeadline<T>(clock: Clock, ms: number, what: string, work: Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = clock.setTimeout(() => reject(new DeadlineError(what)), Math.max(0, ms));
    work.then(
      (value) => {
        clock.clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clock.clearTimeout(timer);
        reject(err);
      },
    );
  });
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
