// The `--fsync` policies, apart from the engine so the CLI's option checks load no native code.

/**
 * When a write counts as stored. `always`: on disk (fsync'ed) on this node before it acks, commits
 * grouped as they come; survives a power loss. `interval`: committed to the OS page cache before
 * it acks, the environment synced to disk every `syncIntervalMs`; survives a crash of the process,
 * not a power loss (which may lose that machine's last interval, or leave its file damaged: the
 * node then refuses to start and names `--reset-data`).
 */
export type FsyncPolicy = 'always' | 'interval';

/** How often `--fsync interval` syncs the data dir when no interval is given, ms. */
export const DEFAULT_SYNC_INTERVAL_MS = 1000;

/** `always`, `interval` or `interval=MS` (the CLI's `--fsync`); a string says what is wrong. */
export function parseFsync(text: string): { fsync: FsyncPolicy; syncIntervalMs?: number } | string {
  if (text === 'always' || text === 'interval') return { fsync: text };
  const ms = /^interval=(\d+)$/.exec(text)?.[1];
  if (ms === undefined) return 'must be always, interval or interval=MS';
  const n = Number(ms);
  return n >= 1 && n <= 60_000 ? { fsync: 'interval', syncIntervalMs: n } : 'interval=MS takes 1 to 60000 ms';
}
