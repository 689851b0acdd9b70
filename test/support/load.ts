// Background writers for fault tests: each writes fresh keys in a closed loop and remembers
// what was acknowledged, so a test can check afterwards that no acknowledged write was lost.
import type { kv } from './raw-client.ts';

type Store = ReturnType<typeof kv>;

export interface Writers {
  /** key → value of every acknowledged write. */
  readonly acked: Map<string, string>;
  /** Outcome counts by code (0 = client timeout). */
  readonly codes: Map<number, number>;
  /** performance.now() of every acknowledged write, in order. */
  readonly ackTimes: number[];
  stop(): Promise<void>;
}

export function startWriters(store: Store, options: { writers: number; nodes: () => (string | undefined)[]; prefix: string }): Writers {
  const acked = new Map<string, string>();
  const codes = new Map<number, number>();
  const ackTimes: number[] = [];
  let stopped = false;
  const loops = Array.from({ length: options.writers }, async (_, w) => {
    for (let i = 0; !stopped; i++) {
      const targets = options.nodes();
      const node = targets[i % targets.length];
      const key = `${options.prefix}-${w}-${i}`;
      const value = `${w}:${i}`;
      const reply = await store.put(key, value, node);
      codes.set(reply.code, (codes.get(reply.code) ?? 0) + 1);
      if (reply.code === 200) {
        acked.set(key, value);
        ackTimes.push(performance.now());
      } else {
        await new Promise((r) => setTimeout(r, 25));
      }
    }
  });
  return {
    acked,
    codes,
    ackTimes,
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

/** Keys among `acked` whose value at `node` differs (lost or stale), at most `limit` of them. */
export async function missingAt(store: Store, node: string, acked: Map<string, string>, limit = 10): Promise<string[]> {
  const missing: string[] = [];
  const entries = [...acked];
  for (let i = 0; i < entries.length && missing.length < limit; i += 64) {
    const batch = entries.slice(i, i + 64);
    const replies = await Promise.all(batch.map(([k]) => store.get(k, node)));
    replies.forEach((r, j) => {
      const [k, v] = batch[j]!;
      if (r.code !== 200 || r.text !== v) missing.push(`${k}: want ${v}, got ${r.code} ${r.text}`);
    });
  }
  return missing;
}

/** Longest gap between consecutive acknowledged writes after `from` (ms). */
export function longestStallMs(ackTimes: number[], from: number): number {
  let worst = 0;
  let previous = from;
  for (const t of ackTimes) {
    if (t < from) continue;
    worst = Math.max(worst, t - previous);
    previous = t;
  }
  return worst;
}
