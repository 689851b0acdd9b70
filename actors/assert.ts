// Invariants: a broken one is a bug, so crash loudly (never catch AssertionError).
export class AssertionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AssertionError';
  }
}

export function assert(condition: unknown, why: string): asserts condition {
  if (!condition) throw new AssertionError(`invariant broken: ${why}`);
}
