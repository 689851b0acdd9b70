// LevelDB peer: classic-level embedded in the bench process (no network, no replication): the
// cost of a plain local write or read, the floor that thesis 5.2 measures distribution against.
// Writes use LevelDB's default sync:false: appended to its log with write(2), no fsync.
import { ClassicLevel } from 'classic-level';
import { makeTempDir, removeTempDir } from '../../cluster/temp-dir.ts';
import type { WatchedProcess } from '../cpu.ts';
import { packageVersion } from '../environment.ts';
import type { KvPeer, KvSession } from './types.ts';

export async function startLevelDb(): Promise<KvPeer> {
  const dir = await makeTempDir('leveldb');
  const db = new ClassicLevel<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
  try {
    await db.open();
  } catch (err) {
    await removeTempDir(dir).catch(() => undefined);
    throw err;
  }
  const session: KvSession = {
    async put(key, value) {
      await db.put(key, value, { sync: false });
    },
    async get(key) {
      const v = await db.get(key);
      return v ?? null;
    },
    async delete(key) {
      await db.del(key);
    },
    async scan(startKey, count) {
      return (await db.iterator({ gte: startKey, limit: count }).all()).length;
    },
  };
  const version = packageVersion('classic-level');
  return {
    id: 'leveldb',
    name: 'LevelDB',
    description: `classic-level ${version} (LevelDB), embedded in the bench process, one database`,
    durability:
      'sync:false (its default): a write is in LevelDB\'s log in the OS page cache when acknowledged, no fsync; ' +
      'survives a crash of the process, not of the machine; one copy',
    routing: 'in-process calls (every writer shares the one database handle)',
    session: async () => session,
    watched: (): WatchedProcess[] => [],
    async stop() {
      await db.close().catch(() => undefined);
      await removeTempDir(dir).catch(() => undefined);
    },
  };
}
