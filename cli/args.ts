// Command-line argument helpers shared by the zistore subcommands.
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** An integer flag within [min, max], or a UsageError naming the flag. */
export function intFlag(values: Record<string, unknown>, name: string, min = 1, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const text = values[name];
  if (text === undefined) return undefined;
  const n = Number(text);
  if (typeof text !== 'string' || !/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got '${String(text)}'`);
  }
  return n;
}
