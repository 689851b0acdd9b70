// A replica's copy on disk, in LMDB (the `lmdb` package: a memory-mapped B+tree with
// transactions). Writes commit together when the first ack waits for them: with `always` in the
// engine's own thread, fsync included, with `interval` on this one; writes nobody waits for (a
// validate) ride along with the next such commit. One environment per data dir: the entries in
// the database `entries`, the copy's meta and the dir's owner in `meta`, the watch history's
// records in `changes`.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { open, type Database, type RootDatabase } from 'lmdb';
import type { CopyMeta, ReplicaDisk, SettledSummary, StoredChange, StoredEntry } from '../actors/ports.ts';
import { slabCopy } from '../actors/value-slab.ts';
import { overlaid, takePage, type RecordPeek } from './disk-view.ts';
import { HAS_PENDING_VALUE, HAS_TTL, HAS_VALUE, HEADER_BYTES, TTL_BYTES, copyOut, entryCrc, entryDamage } from './entry-layout.mjs';
import { DEFAULT_SYNC_INTERVAL_MS, type FsyncPolicy } from './fsync-policy.ts';

export type { FsyncPolicy } from './fsync-policy.ts';

export interface LmdbDiskOptions {
  dir: string;
  cluster: string;
  nodeId: string;
  fsync: FsyncPolicy;
  /** `interval` only: how often the data dir is synced to disk, ms (default DEFAULT_SYNC_INTERVAL_MS). */
  syncIntervalMs?: number;
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
  /** 2: entries carry a CRC. */
  format: 2;
  cluster: string;
  nodeId: string;
}

const OWNER_KEY = 'owner';
const META_KEY = 'copy';

// An entry on disk: see entry-layout.mjs.

export function encodeEntry(key: string, e: StoredEntry): Buffer {
  const valueBytes = e.value?.byteLength ?? 0;
  const ttl = (e.ttl ?? 0) !== 0 || (e.pendingTtl ?? 0) !== 0;
  const out = Buffer.allocUnsafe(HEADER_BYTES + valueBytes + (e.pendingValue?.byteLength ?? 0) + (ttl ? TTL_BYTES : 0));
  out.writeUInt8((e.value !== null ? HAS_VALUE : 0) | (e.pendingValue !== null ? HAS_PENDING_VALUE : 0) | (ttl ? HAS_TTL : 0), 4);
  out.writeDoubleBE(e.rev, 5);
  out.writeDoubleBE(e.pendingRev, 13);
  out.writeUInt32BE(valueBytes, 21);
  if (e.value !== null) out.set(e.value, HEADER_BYTES);
  if (e.pendingValue !== null) out.set(e.pendingValue, HEADER_BYTES + valueBytes);
  if (ttl) {
    out.writeDoubleBE(e.ttl ?? 0, out.byteLength - TTL_BYTES);
    out.writeDoubleBE(e.pendingTtl ?? 0, out.byteLength - 8);
  }
  out.writeUInt32BE(entryCrc(key, out.subarray(4)), 0);
  return out;
}

/** The entry stored under `key`; its values are views on a buffer that the next call overwrites (copyOut). */
export function decodeEntry(key: string, stored: Uint8Array): StoredEntry {
  const buf = copyOut(stored);
  const length = buf.byteLength;
  const damage = entryDamage(key, buf);
  if (damage !== null) throw new Error(damage);
  const flags = buf.readUInt8(4);
  const valueBytes = buf.readUInt32BE(21);
  const end = length - (flags & HAS_TTL ? TTL_BYTES : 0);
  const value = flags & HAS_VALUE ? buf.subarray(HEADER_BYTES, HEADER_BYTES + valueBytes) : null;
  const pendingValue = flags & HAS_PENDING_VALUE ? buf.subarray(HEADER_BYTES + valueBytes, end) : null;
  const entry: StoredEntry = { rev: buf.readDoubleBE(5), value, pendingRev: buf.readDoubleBE(13), pendingValue };
  if (flags & HAS_TTL) {
    entry.ttl = buf.readDoubleBE(end);
    entry.pendingTtl = buf.readDoubleBE(end + 8);
  }
  return entry;
}

/** A stored entry's own copy (decodeEntry's values are views on a buffer it reuses). */
const ownCopy = (e: StoredEntry): StoredEntry => ({ ...e, value: e.value === null ? null : new Uint8Array(e.value), pendingValue: e.pendingValue === null ? null : new Uint8Array(e.pendingValue) });

const damaged = (dir: string, what: string, err: unknown) =>
  new DataDirError(`the data dir ${dir} (file ${dir}/data.mdb) is damaged: ${what}: ${(err as Error).message}; start with --reset-data to drop the copy and resynchronise from the cluster`);

/** decodeEntry, with a damaged entry named as the data dir's damage. */
function decodeStored(dir: string, key: string, stored: Uint8Array): StoredEntry {
  try {
    return decodeEntry(key, stored);
  } catch (err) {
    throw damaged(dir, `key ${JSON.stringify(key)}`, err);
  }
}

/** A page's look at an entry as stored: its committed revision and whether it has a value, without decoding it. */
const storedPeek = (dir: string): RecordPeek<Buffer> => ({
  rev: (r) => r.readDoubleBE(5),
  hasValue: (r) => (r[4]! & HAS_VALUE) !== 0,
  bytes: (r) => r.byteLength,
  decode: (key, r) => ownCopy(decodeStored(dir, key, r)),
});

// The watch history's changes at one revision, under that revision in the database `changes`:
// [crc32 u32][count u32], then for each change [kind u8][key length u32][key][value length i32,
// -1 for none][value]. The CRC (over the revision, then the rest) finds a damaged record.
const CHANGE_KINDS = ['put', 'delete', 'expire'] as const;
const recordCrc = (rev: number, body: Uint8Array): number => crc32(body, crc32(String(rev)));

export function encodeChanges(rev: number, changes: readonly StoredChange[]): Buffer {
  const keys = changes.map((c) => Buffer.from(c.key, 'utf8'));
  const size = 8 + changes.reduce((n, c, i) => n + 9 + keys[i]!.byteLength + (c.value?.byteLength ?? 0), 0);
  const out = Buffer.allocUnsafe(size);
  out.writeUInt32BE(changes.length, 4);
  let at = 8;
  changes.forEach((c, i) => {
    at = out.writeUInt8(CHANGE_KINDS.indexOf(c.kind), at);
    at = out.writeUInt32BE(keys[i]!.byteLength, at);
    at += keys[i]!.copy(out, at);
    at = out.writeInt32BE(c.value === null ? -1 : c.value.byteLength, at);
    if (c.value !== null) {
      out.set(c.value, at);
      at += c.value.byteLength;
    }
  });
  out.writeUInt32BE(recordCrc(rev, out.subarray(4)), 0);
  return out;
}

/** The changes recorded at `rev`; their values are copies (not views on `stored`). */
export function decodeChanges(rev: number, stored: Uint8Array): StoredChange[] {
  const length = stored.byteLength;
  if (length < 8) throw new Error(`record of ${length} bytes is shorter than its header`);
  const buf = copyOut(stored);
  if (buf.readUInt32BE(0) !== recordCrc(rev, buf.subarray(4))) throw new Error('checksum mismatch');
  const changes: StoredChange[] = [];
  let at = 8;
  for (let n = buf.readUInt32BE(4); n > 0; n--) {
    const kind = CHANGE_KINDS[buf.readUInt8(at)];
    const keyBytes = buf.readUInt32BE(at + 1);
    const key = buf.toString('utf8', at + 5, at + 5 + keyBytes);
    at += 5 + keyBytes;
    const valueBytes = buf.readInt32BE(at);
    at += 4;
    if (kind === undefined || at + Math.max(valueBytes, 0) > buf.byteLength) throw new Error('record runs past its end');
    changes.push({ key, kind, value: valueBytes < 0 ? null : slabCopy(buf.subarray(at, at + valueBytes)) });
    at += Math.max(valueBytes, 0);
  }
  return changes;
}

/** Remove the engine's files from a data dir, whatever state they are in. */
export function removeCopy(dir: string): void {
  for (const name of ['data.mdb', 'lock.mdb']) rmSync(join(dir, name), { force: true });
}

const VERIFY_SCRIPT = join(import.meta.dirname, 'verify-data-dir.mjs');

/** What the check of a data dir (verify-data-dir.mjs) reports: the settled values, and the keys of every other entry. */
type CheckedCopy = SettledSummary & { others: string[] };

const EMPTY_COPY: CheckedCopy = { count: 0, valueBytes: 0, maxRev: 0, aboveStable: [], others: [] };

/**
 * Walks the whole environment in a child process (verify-data-dir.mjs): a damaged file crashes
 * that, not us. It checks every entry and sums up the settled values on its way.
 */
function checkDataDir(dir: string): CheckedCopy {
  const run = spawnSync(process.execPath, [VERIFY_SCRIPT, dir], { encoding: 'utf8', timeout: 300_000, maxBuffer: 1 << 30 });
  if (run.status === 0) return JSON.parse(run.stdout) as CheckedCopy;
  const said = (run.stderr || run.error?.message || '').trim().split('\n').at(-1);
  const how = run.signal !== null ? `the storage engine crashed reading it (${run.signal})` : run.status === 2 ? said : `it cannot be read: ${said}`;
  throw new DataDirError(`the data dir ${dir} (file ${join(dir, 'data.mdb')}) is damaged: ${how}; start with --reset-data to drop the copy and resynchronise from the cluster`);
}

/** A change held until the next commit. */
type QueuedWrite = { key: string; entry: Buffer | null } | { rev: number; record: Buffer } | 'clear';

/**
 * How long a change nobody waits for (a validate, a meta update) may wait for a commit that someone
 * does wait for, ms. A commit costs a few hundred µs with `always` (an fsync), tens with `interval`
 * (page writes): one per acknowledged write, not one more for each validate. A crash before it
 * loses nothing acknowledged: the copy then holds the write as in flight, which the protocol
 * settles as after any crash.
 */
export const LAZY_COMMIT_MS = 5;

/**
 * Free space a commit leaves on the data dir's file system, at least: this share of the file
 * system (at most RESERVE_MAX_BYTES), plus twice what the commit writes. The engine must never meet
 * a full disk: lmdb 3.5's native error path for a failed page write overruns a heap buffer, and the
 * process then dies (seen: "Write error: No space left on device … corrupted size vs. prev_size").
 * So a commit that would leave less fails here first, as a write failure (the node stops acking).
 */
export const RESERVE_SHARE = 0.05;
export const RESERVE_MAX_BYTES = 64 * 1024 * 1024;

/** Why a commit of `bytes` is refused, or null: the free space it would leave is below the reserve. */
export function reserveShortfall(fs: { bavail: number; blocks: number; bsize: number }, bytes: number): string | null {
  const free = fs.bavail * fs.bsize;
  const reserve = Math.min(RESERVE_MAX_BYTES, Math.floor(fs.blocks * fs.bsize * RESERVE_SHARE)) + 2 * bytes;
  if (free >= reserve) return null;
  return `ENOSPC: ${free} bytes free on its file system, a commit of ${bytes} bytes needs ${reserve} (the reserve kept so that the engine never meets a full disk)`;
}

/** At most this many entries, and this many bytes of keys and values, stay decoded after a read (LmdbDisk.recentReads). */
export const READ_CACHE_ENTRIES = 4096;
export const READ_CACHE_BYTES = 4 * 1024 * 1024;
const entryBytes = (key: string, e: StoredEntry): number => 64 + key.length + (e.value?.byteLength ?? 0) + (e.pendingValue?.byteLength ?? 0);

const META_BYTES = 512;
const queuedBytes = (w: QueuedWrite): number => (w === 'clear' ? 512 : 'record' in w ? w.record.byteLength + 64 : (w.entry?.byteLength ?? 0) + w.key.length + 64);

export class LmdbDisk implements ReplicaDisk {
  /**
   * Changes not yet handed to the engine. They go together once a flush is asked for (an ack waits
   * for it), or else after LAZY_COMMIT_MS.
   * `interval` commits them on this thread in one synchronous transaction: without an fsync that is
   * a few writes to the page cache, far quicker than the engine's asynchronous commit, whose reply
   * crosses threads. `always` hands them to the engine's asynchronous commit, whose fsync runs off
   * this thread (a synchronous one measured no quicker, and would stall the node on a slow disk).
   */
  private queued: QueuedWrite[] = [];
  /**
   * The newest meta not yet handed to the engine. It describes the copy after every queued write,
   * so it goes last in the commit, and one written later replaces it: a leader asks for one with
   * every write it stores, and a commit of 64 writes need not encode and store 64 metas.
   */
  private queuedMeta: CopyMeta | null = null;
  private commitTimer: NodeJS.Timeout | null = null;
  /** The commit a flush asked for, due once this turn of the event loop is done (setImmediate); later flushes until then share it. */
  private commitAsked: Promise<void> | null = null;
  /** `interval` only: the periodic sync. */
  private syncTimer: NodeJS.Timeout | undefined;
  /** The first write error: from then on nothing counts as stored (the node stops acking). */
  private failure: Error | null = null;
  /** The watch history's records at or below this are to be removed with the next commit. */
  private forgetThrough = 0;
  /** Records at or below this are removed already: a commit looks for more only when the floor moved. */
  private removedThrough = 0;
  /** `always`: the last asynchronous write handed to the engine (they commit in order). */
  private lastWrite: Promise<unknown> = Promise.resolve();
  /**
   * `always`: when the commit of that write is on disk (the engine's `separateFlushed`). Not the
   * engine's `flushed`, which waits for its latest commit: under load a commit begun after ours.
   */
  private lastFlush: PromiseLike<unknown> = Promise.resolve();
  /**
   * `always`: waits for the engine's flush, each ended by the first write error too (after a failed
   * commit the engine's flush promise never settles). A set rather than a race against a long-lived
   * promise: each race would stay attached to it, a leak of one reaction per write.
   */
  private readonly flushWaits = new Set<(err: Error) => void>();
  /**
   * Entries written and not yet committed to the engine, encoded (null: removed): reads see them
   * over the engine's, until the commit that holds them is done (the node serves from here).
   */
  private readonly unsettled = new Map<string, Buffer | null>();
  /** Clears not yet committed: until then the engine's entries are gone for reads. */
  private clearsUnsettled = 0;
  /**
   * Entries lately read from the engine, checked and decoded, oldest first (a hit moves to the
   * end). A read from the engine costs ~10 µs once the event loop has slept (the read transaction
   * is renewed, the map's pages are cold), plus the checksum and the decode: as much as the rest
   * of a get. Bounded (READ_CACHE_ENTRIES, READ_CACHE_BYTES), so most of a large copy stays on the disk only.
   */
  private readonly recentReads = new Map<string, StoredEntry>();
  private recentReadBytes = 0;
  private readonly peek: RecordPeek<Buffer>;
  /** The copy as the check at open found it (load hands it out). */
  private checked: CheckedCopy = EMPTY_COPY;

  private constructor(
    private readonly root: RootDatabase,
    private readonly entries: Database<Buffer, string>,
    private readonly meta: Database<unknown, string>,
    private readonly changeRecords: Database<Buffer, number>,
    private readonly options: LmdbDiskOptions,
  ) {
    this.peek = storedPeek(options.dir);
    if (options.fsync === 'interval') {
      this.syncTimer = setInterval(() => this.sync(), options.syncIntervalMs ?? DEFAULT_SYNC_INTERVAL_MS);
      this.syncTimer.unref();
    }
  }

  /** Opens (or creates) the data dir; refuses one that is damaged or belongs to another node or cluster. */
  static open(options: LmdbDiskOptions): LmdbDisk {
    const { dir, cluster, nodeId } = options;
    const file = join(dir, 'data.mdb');
    if (options.reset === true) removeCopy(dir);
    const checked = existsSync(file) ? checkDataDir(dir) : EMPTY_COPY;
    let root: RootDatabase;
    try {
      mkdirSync(dir, { recursive: true });
      // noSubdir: a dir whose name has a dot would otherwise be taken for a file name. With
      // `interval` a commit does not wait for the disk (noSync); the timer syncs (LmdbDisk.sync).
      // `always`: each write tells when its own commit is on disk (separateFlushed).
      root = open({ path: dir, maxDbs: 4, noSubdir: false, ...(options.fsync === 'interval' ? { noSync: true } : { separateFlushed: true }) });
    } catch (err) {
      throw new DataDirError(`cannot open the data dir ${dir}: ${(err as Error).message} (is it writable by this user?)`);
    }
    const entries = root.openDB<Buffer, string>('entries', { encoding: 'binary' });
    const meta = root.openDB<unknown, string>('meta', { encoding: 'json' });
    const changeRecords = root.openDB<Buffer, number>('changes', { encoding: 'binary' });
    const disk = new LmdbDisk(root, entries, meta, changeRecords, options);
    disk.checked = checked;
    const owner = meta.get(OWNER_KEY) as Owner | undefined;
    if (owner !== undefined && (owner.cluster !== cluster || owner.nodeId !== nodeId)) {
      void root.close();
      throw new DataDirError(
        `the data dir ${dir} (file ${dir}/data.mdb) holds node ${owner.nodeId} of cluster ${owner.cluster}, not node ${nodeId} of cluster ${cluster}: ` +
          'give this node its own --data-dir, or start it with --reset-data to drop that copy and resynchronise from the cluster',
      );
    }
    if (owner !== undefined && owner.format !== 2) {
      void root.close();
      throw new DataDirError(`the data dir ${dir} (file ${dir}/data.mdb) was written in format ${String(owner.format)}, which this version does not read: start with --reset-data to drop the copy and resynchronise from the cluster`);
    }
    const refused = disk.spaceRefusal(0);
    if (refused !== null) {
      void root.close();
      throw new DataDirError(`the data dir ${dir} cannot take writes: ${refused.message}; free some space, or give the node a --data-dir on another disk`);
    }
    if (owner === undefined) meta.putSync(OWNER_KEY, { format: 2, cluster, nodeId } satisfies Owner);
    return disk;
  }

  load(): { meta: CopyMeta | null; settled: SettledSummary; others: Iterable<[string, StoredEntry]>; changes: Iterable<[number, StoredChange[]]> } {
    const { entries, changeRecords } = this;
    const dir = this.options.dir;
    const { others, ...settled } = this.checked;
    this.checked = EMPTY_COPY;
    return {
      meta: (this.meta.get(META_KEY) as CopyMeta | undefined) ?? null,
      settled,
      others: (function* () {
        for (const key of others) {
          const value = entries.get(key);
          if (value !== undefined) yield [key, decodeStored(dir, key, value)] as [string, StoredEntry];
        }
      })(),
      changes: (function* () {
        for (const { key, value } of changeRecords.getRange()) {
          try {
            yield [key, decodeChanges(key, value)] as [number, StoredChange[]];
          } catch (err) {
            throw damaged(dir, `the watch history's record of revision ${key}`, err);
          }
        }
      })(),
    };
  }

  writeChanges(rev: number, changes: readonly StoredChange[]): void {
    this.enqueue({ rev, record: encodeChanges(rev, changes) });
  }

  forgetChanges(rev: number): void {
    if (rev <= this.forgetThrough || this.failure !== null) return;
    this.forgetThrough = rev;
    this.enqueue(null);
  }

  // After a failure nothing more is written (enqueue): nothing would count as stored, and the
  // engine's promises for writes after a failed commit reject where nobody can handle them.
  write(key: string, entry: StoredEntry | null): void {
    const encoded = entry === null ? null : encodeEntry(key, entry);
    this.forgetRead(key);
    this.unsettled.set(key, encoded);
    this.enqueue({ key, entry: encoded });
  }

  read(key: string): StoredEntry | undefined {
    if (this.unsettled.has(key)) {
      const stored = this.unsettled.get(key)!;
      return stored === null ? undefined : ownCopy(decodeStored(this.options.dir, key, stored));
    }
    if (this.clearsUnsettled > 0) return undefined;
    let entry = this.recentReads.get(key);
    if (entry !== undefined) {
      this.recentReads.delete(key);
      this.recentReads.set(key, entry);
      return ownCopy(entry);
    }
    const stored = this.entries.get(key);
    if (stored === undefined) return undefined;
    entry = ownCopy(decodeStored(this.options.dir, key, stored));
    // What is kept must not be the caller's: it gets a copy of its own.
    return this.rememberRead(key, entry) ? ownCopy(entry) : entry;
  }

  /** Keep `entry` decoded, unless it is too large to; whether it was kept. */
  private rememberRead(key: string, entry: StoredEntry): boolean {
    const bytes = entryBytes(key, entry);
    if (bytes > READ_CACHE_BYTES / 16) return false;
    this.recentReads.set(key, entry);
    this.recentReadBytes += bytes;
    for (const [oldest] of this.recentReads) {
      if (this.recentReads.size <= READ_CACHE_ENTRIES && this.recentReadBytes <= READ_CACHE_BYTES) break;
      this.forgetRead(oldest);
    }
    return true;
  }

  private forgetRead(key: string): void {
    const entry = this.recentReads.get(key);
    if (entry === undefined) return;
    this.recentReads.delete(key);
    this.recentReadBytes -= entryBytes(key, entry);
  }

  *keysFrom(first: string | undefined): Generator<string> {
    for (const [key, stored] of this.current(first, false)) if ((stored[4]! & HAS_VALUE) !== 0) yield key;
  }

  page(after: string | undefined, since: number, limit: number, maxBytes: number): { entries: [string, StoredEntry][]; next: string | null } {
    return takePage(this.current(after, true), this.peek, since, limit, maxBytes);
  }

  /**
   * Entries as last written, in key order, from `from` (after it when `exclusive`). With nothing
   * laid over the engine (the common case) its entries as they come: a count of a large range
   * walks no more layers than it must.
   */
  private current(from: string | undefined, exclusive: boolean): Iterable<[string, Buffer]> {
    const stored = this.clearsUnsettled > 0 ? [] : this.stored(from, exclusive);
    return this.unsettled.size === 0 ? stored : overlaid(stored, this.unsettled, from, exclusive);
  }

  private *stored(from: string | undefined, exclusive: boolean): Generator<[string, Buffer]> {
    for (const { key, value } of this.entries.getRange(from === undefined ? {} : { start: from })) if (!exclusive || key !== from) yield [key, value];
  }

  /** A committed write: reads find it in the engine now, unless the key was written again since. */
  private settled(w: QueuedWrite): void {
    if (w === 'clear') this.clearsUnsettled--;
    else if ('key' in w && this.unsettled.get(w.key) === w.entry) this.unsettled.delete(w.key);
  }

  writeMeta(meta: CopyMeta): void {
    this.queuedMeta = meta;
    this.enqueue(null);
  }

  clear(): void {
    this.unsettled.clear();
    this.recentReads.clear();
    this.recentReadBytes = 0;
    this.clearsUnsettled++;
    this.enqueue('clear');
  }

  async flushed(): Promise<void> {
    // Not at once: the writes of this turn of the event loop and of the messages read with it (a
    // batch of puts, several invalidate messages) go into the same commit, and a leader's
    // invalidates reach the socket before its own commit holds this thread up.
    if (this.queued.length > 0 || this.queuedMeta !== null) {
      this.commitAsked ??= new Promise<void>((resolve) =>
        setImmediate(() => {
          this.commitAsked = null;
          this.commitQueued();
          resolve();
        }),
      );
      await this.commitAsked;
    }
    if (this.failure !== null) throw this.failure;
    if (this.options.fsync === 'interval') return;
    await this.lastWrite;
    if (this.failure !== null) throw this.failure;
    await new Promise<void>((resolve, reject) => {
      this.flushWaits.add(reject);
      this.lastFlush.then(
        () => {
          this.flushWaits.delete(reject);
          resolve();
        },
        (err: unknown) => {
          this.flushWaits.delete(reject);
          reject(err);
        },
      );
    });
  }

  async close(): Promise<void> {
    clearInterval(this.syncTimer);
    this.commitQueued();
    await this.lastWrite.catch(() => undefined);
    // A clean stop leaves everything on disk, whatever the policy.
    if (this.options.fsync === 'interval' && this.failure === null) await new Promise<void>((resolve) => this.sync(resolve));
    await this.root.close();
  }

  /** `interval`: the environment's data to disk; a failure is a write failure (the node stops acking). */
  private sync(done: () => void = () => undefined): void {
    // Not in the engine's type declarations: mdb_env_sync, run off the main thread.
    (this.root as unknown as { sync(callback: (err?: Error) => void): void }).sync((err) => {
      if (err) this.failWith('sync of', err);
      done();
    });
  }

  private failWith(what: 'write to' | 'sync of', cause: unknown): void {
    if (this.failure !== null) return;
    this.failure = new Error(`${what} the data dir ${this.options.dir} failed: ${(cause as Error).message} (is the disk full or failing?)`, { cause });
    for (const reject of this.flushWaits) reject(this.failure);
    this.flushWaits.clear();
  }

  /** `write` null: nothing to add, but a commit is due (records to forget). */
  private enqueue(write: QueuedWrite | null): void {
    if (this.failure !== null) return;
    if (write !== null) this.queued.push(write);
    if (this.commitTimer !== null) return;
    this.commitTimer = setTimeout(() => this.commitQueued(), LAZY_COMMIT_MS);
  }

  /** Every queued change to the engine, in the order they were made, then the newest meta (`interval`: in one synchronous transaction). */
  private commitQueued(): void {
    if (this.commitTimer !== null) {
      clearTimeout(this.commitTimer);
      this.commitTimer = null;
    }
    const forget = this.forgetThrough > this.removedThrough ? [...this.changeRecords.getKeys({ end: this.forgetThrough + 1 })] : [];
    this.removedThrough = this.forgetThrough;
    if ((this.queued.length === 0 && this.queuedMeta === null && forget.length === 0) || this.failure !== null) return;
    const writes = this.queued;
    const meta = this.queuedMeta;
    this.queued = [];
    this.queuedMeta = null;
    const refused = this.spaceRefusal(writes.reduce((sum, w) => sum + queuedBytes(w), meta === null ? 0 : META_BYTES));
    if (refused !== null) return this.failWith('write to', refused);
    // Records are forgotten after the writes: the meta with the floor that drops them goes first.
    if (this.options.fsync === 'always') {
      for (const w of writes) {
        if (w === 'clear') this.track(this.entries.clearAsync(), w);
        else if ('record' in w) this.track(this.changeRecords.put(w.rev, w.record));
        else this.track(w.entry === null ? this.entries.remove(w.key) : this.entries.put(w.key, w.entry), w);
      }
      if (meta !== null) this.track(this.meta.put(META_KEY, meta));
      for (const rev of forget) this.track(this.changeRecords.remove(rev));
      return;
    }
    try {
      this.root.transactionSync(() => {
        for (const w of writes) {
          if (w === 'clear') this.entries.clearSync();
          else if ('record' in w) this.changeRecords.putSync(w.rev, w.record);
          else if (w.entry === null) this.entries.removeSync(w.key);
          else this.entries.putSync(w.key, w.entry);
        }
        if (meta !== null) this.meta.putSync(META_KEY, meta);
        for (const rev of forget) this.changeRecords.removeSync(rev);
      });
    } catch (err) {
      return this.failWith('write to', err);
    }
    for (const w of writes) this.settled(w);
  }

  /** Why a commit of `bytes` must not reach the engine (see RESERVE_SHARE), or null. */
  private spaceRefusal(bytes: number): Error | null {
    try {
      const shortfall = reserveShortfall(statfsSync(this.options.dir), bytes);
      return shortfall === null ? null : new Error(shortfall);
    } catch (err) {
      return err as Error;
    }
  }

  /** Writes commit in the order they were made: the last one settles after every earlier one. */
  private track(write: Promise<unknown>, entryWrite?: QueuedWrite): void {
    if (entryWrite !== undefined) write.then(() => this.settled(entryWrite), () => undefined);
    this.lastFlush = (write as Promise<unknown> & { flushed?: Promise<unknown> }).flushed ?? this.root.flushed;
    this.lastWrite = write.catch(async (err: unknown) => {
      // The engine's own error (EIO on a full disk, say) rides on a promise of its own: take it,
      // for the message and because unhandled it would end the process.
      const detail = (err as { commitError?: Promise<unknown> }).commitError;
      this.failWith('write to', detail === undefined ? err : await detail.then(() => err, (e: unknown) => e));
    });
  }
}


/**
 * A rejection the engine raises for a write that was in the same failed commit, on a promise of
 * its own that nobody holds (lmdb 3.x). The failure is already reported through flushed().
 */
export function isUnheldCommitFailure(reason: unknown): boolean {
  return reason instanceof Error && reason.message.startsWith('Commit failed (see commitError') && 'commitError' in reason;
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
 * replica set of itself alone, in a newer era than any it knew (returned: ZooKeeper's record of
 * the restored cluster names it too), so it leads with the backup's data and the other nodes
 * (empty data dirs) copy it.
 */
export async function restoreDataDir(backup: string, dataDir: string, owner: { cluster: string; nodeId: string }): Promise<BackupSummary & { era: number }> {
  if (existsSync(join(dataDir, 'data.mdb'))) throw new DataDirError(`${join(dataDir, 'data.mdb')} exists: restore into a new or empty dir`);
  await openExisting(backup, true).close();
  mkdirSync(dataDir, { recursive: true });
  copyFileSync(join(backup, 'data.mdb'), join(dataDir, 'data.mdb'));
  const root = open({ path: dataDir, maxDbs: 4, noSubdir: false });
  let restored: (BackupSummary & { era: number }) | null = null;
  try {
    const meta = root.openDB<unknown, string>('meta', { encoding: 'json' });
    const copy = meta.get(META_KEY) as CopyMeta | undefined;
    // backupDataDir checked this before copying, but the node may have lost it in between.
    if (copy !== undefined && copy.intact) {
      const era = (copy.replicaSet?.era ?? 0) + 1;
      await meta.put(OWNER_KEY, { format: 2, ...owner } satisfies Owner);
      await meta.put(META_KEY, { ...copy, replicaSet: { ids: [owner.nodeId], era, epoch: 0, seq: 0 } } satisfies CopyMeta);
      const keys = root.openDB<Buffer, string>('entries', { encoding: 'binary' }).getKeysCount();
      restored = { ...owner, keys, maxRev: copy.maxRev, era };
    }
  } finally {
    await root.close();
  }
  if (restored === null) {
    removeCopy(dataDir);
    throw new DataDirError(`the backup in ${backup} holds a copy that was not complete when it was taken: take another backup`);
  }
  return restored;
}
