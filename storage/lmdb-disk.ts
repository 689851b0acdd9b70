// A replica's copy on disk, in LMDB (the `lmdb` package: a memory-mapped B+tree with
// transactions; writes made in the same turn of the event loop commit together). One environment
// per data dir: the entries in the database `entries`, the copy's meta and the dir's owner in `meta`.
import { copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import type { CopyMeta, ReplicaDisk, StoredEntry } from '../actors/ports.ts';

/**
 * When a write counts as stored. `always`: on disk (fsync'ed) on this node before it acks, commits
 * grouped as they come; survives a power loss. `interval`: in the OS page cache before it acks
 * (LMDB flushes it to disk right behind, without holding the ack); survives a crash of the
 * process, not of the machine.
 */
export type FsyncPolicy = 'always' | 'interval';

export interface LmdbDiskOptions {
  dir: string;
  cluster: string;
  nodeId: string;
  fsync: FsyncPolicy;
  /** Start empty: drop whatever the dir holds (the node then resynchronises from the cluster). */
  reset?: boolean;
}

/** The data dir cannot be used as it is; the message names the file and the way out. */
export class DataDirError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataDirError';
  }
}

interface Owner {
  format: 1;
  cluster: string;
  nodeId: string;
}

const OWNER_KEY = 'owner';
const META_KEY = 'copy';

// An entry on disk: [flags u8][rev f64][pendingRev f64][value length u32][value][pending value].
const HAS_VALUE = 1;
const HAS_PENDING_VALUE = 2;
const HEADER_BYTES = 1 + 8 + 8 + 4;

export function encodeEntry(e: StoredEntry): Buffer {
  const valueBytes = e.value?.byteLength ?? 0;
  const out = Buffer.allocUnsafe(HEADER_BYTES + valueBytes + (e.pendingValue?.byteLength ?? 0));
  out.writeUInt8((e.value !== null ? HAS_VALUE : 0) | (e.pendingValue !== null ? HAS_PENDING_VALUE : 0), 0);
  out.writeDoubleBE(e.rev, 1);
  out.writeDoubleBE(e.pendingRev, 9);
  out.writeUInt32BE(valueBytes, 17);
  if (e.value !== null) out.set(e.value, HEADER_BYTES);
  if (e.pendingValue !== null) out.set(e.pendingValue, HEADER_BYTES + valueBytes);
  return out;
}

export function decodeEntry(b: Uint8Array): StoredEntry {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (buf.byteLength < HEADER_BYTES) throw new Error(`entry of ${buf.byteLength} bytes is shorter than its header`);
  const flags = buf.readUInt8(0);
  const valueBytes = buf.readUInt32BE(17);
  if (HEADER_BYTES + valueBytes > buf.byteLength) throw new Error('entry value runs past its end');
  // Copies: the engine's buffers are reused by its next read.
  const value = flags & HAS_VALUE ? Uint8Array.prototype.slice.call(buf, HEADER_BYTES, HEADER_BYTES + valueBytes) : null;
  const pendingValue = flags & HAS_PENDING_VALUE ? Uint8Array.prototype.slice.call(buf, HEADER_BYTES + valueBytes) : null;
  return { rev: buf.readDoubleBE(1), value, pendingRev: buf.readDoubleBE(9), pendingValue };
}

export class LmdbDisk implements ReplicaDisk {
  private lastWrite: Promise<unknown> = Promise.resolve();
  /** The first write error: from then on nothing counts as stored (the node stops acking). */
  private failure: Error | null = null;

  private constructor(
    private readonly root: RootDatabase,
    private readonly entries: Database<Buffer, string>,
    private readonly meta: Database<unknown, string>,
    private readonly options: LmdbDiskOptions,
  ) {}

  /** Opens (or creates) the data dir; refuses one that belongs to another node or cluster. */
  static open(options: LmdbDiskOptions): LmdbDisk {
    const { dir, cluster, nodeId } = options;
    let root: RootDatabase;
    try {
      mkdirSync(dir, { recursive: true });
      // noSubdir: a dir whose name has a dot would otherwise be taken for a file name.
      root = open({ path: dir, maxDbs: 4, noSubdir: false });
    } catch (err) {
      throw new DataDirError(`cannot open the data dir ${dir}: ${(err as Error).message} (is it writable by this user?)`);
    }
    const entries = root.openDB<Buffer, string>('entries', { encoding: 'binary' });
    const meta = root.openDB<unknown, string>('meta', { encoding: 'json' });
    const disk = new LmdbDisk(root, entries, meta, options);
    const owner = meta.get(OWNER_KEY) as Owner | undefined;
    if (options.reset === true) {
      entries.clearSync();
      meta.clearSync();
    } else if (owner !== undefined && (owner.cluster !== cluster || owner.nodeId !== nodeId)) {
      void root.close();
      throw new DataDirError(
        `the data dir ${dir} (file ${dir}/data.mdb) holds node ${owner.nodeId} of cluster ${owner.cluster}, not node ${nodeId} of cluster ${cluster}: ` +
          'give this node its own --data-dir, or start it with --reset-data to drop that copy and resynchronise from the cluster',
      );
    }
    if (owner === undefined || options.reset === true) meta.putSync(OWNER_KEY, { format: 1, cluster, nodeId } satisfies Owner);
    return disk;
  }

  load(): { meta: CopyMeta | null; entries: Iterable<[string, StoredEntry]> } {
    const entries = this.entries;
    const dir = this.options.dir;
    return {
      meta: (this.meta.get(META_KEY) as CopyMeta | undefined) ?? null,
      entries: (function* () {
        for (const { key, value } of entries.getRange()) {
          try {
            yield [key, decodeEntry(value)] as [string, StoredEntry];
          } catch (err) {
            throw new DataDirError(`the data dir ${dir} (file ${dir}/data.mdb) is damaged: key ${JSON.stringify(key)}: ${(err as Error).message}; start with --reset-data to drop the copy and resynchronise from the cluster`);
          }
        }
      })(),
    };
  }

  write(key: string, entry: StoredEntry | null): void {
    this.track(entry === null ? this.entries.remove(key) : this.entries.put(key, encodeEntry(entry)));
  }

  writeMeta(meta: CopyMeta): void {
    this.track(this.meta.put(META_KEY, meta));
  }

  clear(): void {
    this.track(this.entries.clearAsync());
  }

  async flushed(): Promise<void> {
    if (this.failure !== null) throw this.failure;
    await this.lastWrite;
    if (this.options.fsync === 'always') await this.root.flushed;
    if (this.failure !== null) throw this.failure;
  }

  async close(): Promise<void> {
    await this.lastWrite.catch(() => undefined);
    await this.root.close();
  }

  /** Writes commit in the order they were made: the last one settles after every earlier one. */
  private track(write: Promise<unknown>): void {
    this.lastWrite = write.catch((err: unknown) => {
      this.failure ??= new Error(`write to the data dir ${this.options.dir} failed: ${(err as Error).message}`);
    });
  }
}

/** What a backup holds. */
export interface BackupSummary {
  cluster: string;
  nodeId: string;
  keys: number;
  maxRev: number;
}

function openExisting(dir: string, readOnly: boolean): RootDatabase {
  if (!existsSync(join(dir, 'data.mdb'))) throw new DataDirError(`no copy at ${dir}: ${join(dir, 'data.mdb')} does not exist`);
  try {
    return open({ path: dir, maxDbs: 4, noSubdir: false, readOnly });
  } catch (err) {
    throw new DataDirError(`cannot open ${join(dir, 'data.mdb')}: ${(err as Error).message}`);
  }
}

/**
 * Copy a node's data dir into `out` (new or empty) while the node runs or not: one LMDB read
 * transaction, so a consistent point of the copy. Refuses a copy that is not complete (its node
 * was joining, or rolled back for a catch-up): back up another member of the replica set.
 */
export async function backupDataDir(dataDir: string, out: string): Promise<BackupSummary> {
  if (existsSync(out) && readdirSync(out).length > 0) throw new DataDirError(`the backup dir ${out} is not empty`);
  const root = openExisting(dataDir, true);
  try {
    const meta = root.openDB<unknown, string>('meta', { encoding: 'json' });
    const owner = meta.get(OWNER_KEY) as Owner | undefined;
    const copy = meta.get(META_KEY) as CopyMeta | undefined;
    if (owner === undefined || copy === undefined || !copy.intact) {
      throw new DataDirError(`the copy in ${dataDir} is not complete (its node is joining or catching up): back up another node of the replica set`);
    }
    mkdirSync(out, { recursive: true });
    await root.backup(out, true);
    const keys = root.openDB<Buffer, string>('entries', { encoding: 'binary' }).getKeysCount();
    return { cluster: owner.cluster, nodeId: owner.nodeId, keys, maxRev: copy.maxRev };
  } finally {
    await root.close();
  }
}

/**
 * Make a new data dir for node `nodeId` of `cluster` from a backup. The copy then remembers a
 * replica set of itself alone, in a newer era than any it knew: started against a ZooKeeper that
 * holds no record of the cluster, it leads with the backup's data and the other nodes (empty
 * data dirs) copy it.
 */
export async function restoreDataDir(backup: string, dataDir: string, owner: { cluster: string; nodeId: string }): Promise<BackupSummary> {
  if (existsSync(join(dataDir, 'data.mdb'))) throw new DataDirError(`${join(dataDir, 'data.mdb')} exists: restore into a new or empty dir`);
  await openExisting(backup, true).close();
  mkdirSync(dataDir, { recursive: true });
  copyFileSync(join(backup, 'data.mdb'), join(dataDir, 'data.mdb'));
  const root = open({ path: dataDir, maxDbs: 4, noSubdir: false });
  try {
    const meta = root.openDB<unknown, string>('meta', { encoding: 'json' });
    const copy = meta.get(META_KEY) as CopyMeta;
    const era = (copy.replicaSet?.era ?? 0) + 1;
    await meta.put(OWNER_KEY, { format: 1, ...owner } satisfies Owner);
    await meta.put(META_KEY, { ...copy, intact: true, replicaSet: { ids: [owner.nodeId], era, epoch: 0, seq: 0 } } satisfies CopyMeta);
    const keys = root.openDB<Buffer, string>('entries', { encoding: 'binary' }).getKeysCount();
    return { ...owner, keys, maxRev: copy.maxRev };
  } finally {
    await root.close();
  }
}
