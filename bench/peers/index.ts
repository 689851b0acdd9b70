// The peers of one bench run: etcd (3 members), ZooKeeper as a KV store, JetStream KV R3 and
// LevelDB, started once, shared by every scenario that compares against them, stopped at the
// end. `sh bench/setup-peers.sh` runs first (installs etcd when missing); a peer that cannot be
// installed or started is skipped, and the reason goes into the report.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { WatchedProcess } from '../cpu.ts';
import { startEtcd } from './etcd.ts';
import { startJetStreamKv } from './jetstream.ts';
import { startLevelDb } from './leveldb.ts';
import { PEER_IDS, SYSTEM_NAMES, type KvPeer, type PeerId } from './types.ts';
import { startZooKeeperKv } from './zookeeper-kv.ts';

const SETUP = fileURLToPath(new URL('../setup-peers.sh', import.meta.url));

export interface Peers {
  /** Started peers, in PEER_IDS order. */
  readonly list: readonly KvPeer[];
  readonly skipped: readonly { id: PeerId; reason: string }[];
  get(id: PeerId): KvPeer | undefined;
  watched(): WatchedProcess[];
  stop(): Promise<void>;
}

const STARTERS: Record<PeerId, () => Promise<KvPeer>> = {
  etcd: startEtcd,
  zookeeper: startZooKeeperKv,
  jetstream: startJetStreamKv,
  leveldb: startLevelDb,
};

/** Run bench/setup-peers.sh; null when it succeeded, else why not (its last lines). */
export function runPeerSetup(): string | null {
  const r = spawnSync('sh', [SETUP], { encoding: 'utf8', timeout: 300_000 });
  if (r.status === 0) return null;
  const why = `${r.stderr ?? ''}${r.stdout ?? ''}`.trim().split('\n').slice(-3).join(' ');
  return why || `setup-peers.sh exited with ${r.status ?? r.signal}`;
}

export async function startPeers(log: (line: string) => void, only: readonly PeerId[] = PEER_IDS): Promise<Peers> {
  const list: KvPeer[] = [];
  const skipped: { id: PeerId; reason: string }[] = [];
  const setupError = only.includes('etcd') ? runPeerSetup() : null;
  for (const id of only) {
    if (id === 'etcd' && setupError !== null) {
      skipped.push({ id, reason: `not installed: ${setupError}` });
      log(`  peer ${SYSTEM_NAMES[id]} skipped: ${setupError}`);
      continue;
    }
    try {
      list.push(await STARTERS[id]());
    } catch (err) {
      const reason = err instanceof Error ? err.message.split('\n')[0]! : String(err);
      skipped.push({ id, reason: `could not start: ${reason}` });
      log(`  peer ${SYSTEM_NAMES[id]} skipped: ${reason}`);
    }
  }
  let stopped: Promise<void> | null = null;
  return {
    list,
    skipped,
    get: (id) => list.find((p) => p.id === id),
    watched: () => list.flatMap((p) => p.watched()),
    stop() {
      stopped ??= Promise.allSettled(list.map((p) => p.stop())).then(() => undefined);
      return stopped;
    },
  };
}
