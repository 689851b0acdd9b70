// What every key-value system in a comparison looks like to the load: sessions (one per
// "writer", each with its own connection) that put and get one key, and the processes whose CPU
// is accounted. ZiStore (kv-systems.ts) and the peers (etcd, ZooKeeper, JetStream KV, LevelDB)
// all fit it.
import type { WatchedProcess } from '../cpu.ts';

export type PeerId = 'etcd' | 'zookeeper' | 'jetstream' | 'leveldb';
export type SystemId = 'zistore' | 'nats-echo' | PeerId;

/** What a transaction's guard key holds (loaded once, never changed): KvSession.txn. */
export const GUARD_VALUE = new TextEncoder().encode('guard');

export interface KvSession {
  put(key: string, value: Uint8Array): Promise<void>;
  /** The value, or null when the key does not exist. */
  get(key: string): Promise<Uint8Array | null>;
  /** Remove a key (clean-up between runs); absent keys are fine. */
  delete(key: string): Promise<void>;
  /**
   * Up to `count` records (key and value) from `startKey` on, in key order (YCSB's scan); resolves
   * with how many it read. Each system does it the way its API allows (the routing notes say how).
   */
  scan(startKey: string, count: number): Promise<number>;
  /**
   * If `guard` holds its value (never changed after the load: bench/scenarios/txn.ts), put
   * `value` to every key of `keys`, atomically; rejects when the guard did not hold. Only systems
   * with multi-key transactions have it.
   */
  txn?(guard: string, keys: string[], value: Uint8Array): Promise<void>;
  /**
   * Watch every key starting with `prefix` (ending in '.': JetStream KV watches a subject
   * wildcard) from now on: `onChange` gets each put's key. Resolves once the watch is in place,
   * with its stop. Only systems that can watch have it.
   */
  watch?(prefix: string, onChange: (key: string) => void): Promise<() => Promise<void>>;
}

export interface KvPeer {
  readonly id: PeerId;
  /** Short name for tables: 'etcd', 'ZooKeeper', 'JetStream KV', 'LevelDB'. */
  readonly name: string;
  /** Version and topology, e.g. 'etcd 3.4.23, 3 members'. */
  readonly description: string;
  /** What an acknowledged write survives, and what is fsynced. */
  readonly durability: string;
  /** Where the bench sends requests (which member), for the report. */
  readonly routing: string;
  /** Session `writer` (0, 1, …), created on first use with its own connection. */
  session(writer: number): Promise<KvSession>;
  /** Server processes of this peer (none for an embedded store). */
  watched(): WatchedProcess[];
  stop(): Promise<void>;
}

/** Short names of every system, for table headers. */
export const SYSTEM_NAMES: Record<SystemId, string> = {
  zistore: 'ZiStore',
  'nats-echo': 'NATS echo',
  etcd: 'etcd',
  zookeeper: 'ZooKeeper',
  jetstream: 'JetStream KV',
  leveldb: 'LevelDB',
};

export const PEER_IDS: readonly PeerId[] = ['etcd', 'zookeeper', 'jetstream', 'leveldb'];

/** One line per system for the notes under every comparison table: what an acknowledged write survives. */
export const SHORT_DURABILITY: Record<SystemId, string> = {
  zistore: 'memory only: every live replica (3 nodes) holds the write in memory before the ack; no disk',
  'nats-echo': 'keeps no state',
  etcd: '3 members; WAL fdatasync on a majority before the ack',
  zookeeper: 'standalone; transaction log fsync before the ack (forceSync=yes)',
  jetstream: 'file storage R3; appended on a majority before the ack, no fsync per write (synced every 2 min)',
  leveldb: 'embedded, one copy; sync:false (written to the OS page cache, no fsync)',
};
