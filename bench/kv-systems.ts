// ZiStore and the peers behind one interface (peers/types.ts KvSession), plus the keys every
// system is loaded with: 16-byte keys, the same for every system, so no system pays for longer
// keys than another.
import { ZiStoreError, type ZiClient } from '../client/index.ts';
import type { BenchCluster } from './bench-cluster.ts';
import { GUARD_VALUE, type KvSession } from './peers/types.ts';

/**
 * Where ZiStore requests go: one node through its node subject (`leader`, `follower`), the
 * cluster queue group with no routing by the client (`any`: a follower forwards a put to the
 * leader), or the typed client's default (`client`: puts to the leader it knows, gets to the
 * queue group).
 */
export type ZiTarget = 'leader' | 'follower' | 'any' | 'client';

/** A ZiStore session: the typed client, optionally pinned to one node. */
export function zistoreSession(client: ZiClient, node: string | undefined): KvSession {
  const opts = node ? { node } : {};
  return {
    async put(key, value) {
      await client.put(key, value, opts);
    },
    async get(key) {
      const got = await client.get(key, opts);
      return got ? got.value : null;
    },
    async delete(key) {
      try {
        await client.delete(key, opts);
      } catch (err) {
        if (!(err instanceof ZiStoreError && err.code === 404)) throw err;
      }
    },
    async scan(startKey, count) {
      return (await client.scan({ ...opts, from: startKey, limit: count, values: true })).entries.length;
    },
    async txn(guard, keys, value) {
      await client.txn(keys.map((key) => ({ op: 'put', key, value })), [{ key: guard, value: GUARD_VALUE }], opts);
    },
    async watch(prefix, onChange) {
      const abort = new AbortController();
      let started: () => void = () => undefined;
      const placed = new Promise<void>((resolve) => (started = resolve));
      // The first reply (from now: no change yet) places the watch; the node's change feed then pushes.
      const running = (async () => {
        for await (const e of client.watch({ ...opts, prefix, push: true, signal: abort.signal, onProgress: () => started() })) onChange(e.key);
      })();
      await placed;
      return async () => {
        abort.abort();
        await running;
      };
    },
  };
}

/** The node a ZiStore target pins requests to (null: no pinning). */
export async function resolveZiNode(cluster: BenchCluster, target: ZiTarget): Promise<string | null> {
  if (target === 'leader') return cluster.leader();
  if (target === 'follower') {
    const followers = await cluster.followers();
    if (followers.length === 0) throw new Error('no follower to measure at (1-node cluster?)');
    return followers[0]!;
  }
  return null;
}

/** Session of `writer` for a ZiStore target (see ZiTarget). */
export async function zistoreWriterSession(cluster: BenchCluster, writer: number, target: ZiTarget, node: string | null): Promise<KvSession> {
  const client = await cluster.writerClient(writer, target !== 'any');
  return zistoreSession(client, node ?? undefined);
}

/** `prefix` followed by `n` in base 36, zero-padded to exactly 16 characters. */
export function key16(prefix: string, n: number): string {
  const digits = n.toString(36);
  if (prefix.length + digits.length > 16) throw new Error(`key16: '${prefix}' + ${n} does not fit 16 characters`);
  return prefix + digits.padStart(16 - prefix.length, '0');
}

/** Base-36 short form of a value size for key prefixes (16384 → 'cmo'). */
export const size36 = (bytes: number) => bytes.toString(36);

/** Run `work(i)` for i in [0, count) with `inflight` at a time; returns the wall time in ms. */
export async function inParallel(count: number, inflight: number, work: (i: number) => Promise<void>): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  let failure: unknown = null;
  await Promise.all(
    Array.from({ length: Math.min(inflight, count) }, async () => {
      while (next < count && failure === null) {
        const i = next++;
        try {
          await work(i);
        } catch (err) {
          failure = err;
        }
      }
    }),
  );
  if (failure !== null) throw failure;
  return performance.now() - t0;
}

/**
 * Bulk load through the public path: `count` puts of `value` to keys `prefix` + 0, 1, … (16
 * characters), `inflight` at a time spread over `writers` typed clients with their own
 * connections, each writing to the leader. Returns the wall time in ms.
 */
export async function loadKeys(cluster: BenchCluster, count: number, value: Uint8Array, writers: number, inflight: number, prefix = 'k.'): Promise<number> {
  const clients = await Promise.all(Array.from({ length: writers }, (_, i) => cluster.writerClient(i)));
  return inParallel(count, inflight, (i) => clients[i % writers]!.put(key16(prefix, i), value).then(() => undefined));
}

const preloaded = new WeakMap<object, Map<number, string[]>>();

/**
 * `count` keys holding `valueBytes`-byte values, written once per system (`owner`: the cluster
 * or the peer) and size; for gets.
 */
export async function preloadGetKeys(owner: object, session: KvSession, valueBytes: number, value: Uint8Array, count = 1000): Promise<string[]> {
  let bySize = preloaded.get(owner);
  if (!bySize) preloaded.set(owner, (bySize = new Map()));
  const have = bySize.get(valueBytes);
  if (have) return have;
  const keys = Array.from({ length: count }, (_, i) => key16(`g${size36(valueBytes)}.`, i));
  await inParallel(keys.length, 32, (i) => session.put(keys[i]!, value));
  bySize.set(valueBytes, keys);
  return keys;
}
