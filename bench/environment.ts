// What every report states about where and how it was measured: the machine, the date, the
// versions of node, nats-server and ZooKeeper, and each system's durability setting.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { cpus, loadavg, release, totalmem, type as osType } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NatsConnection } from 'nats';
import type { ZooKeeperHandle } from '../cluster/zookeeper-server.ts';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));

export interface Machine {
  cores: number;
  cpuModel: string;
  memoryBytes: number;
  os: string;
  loadAvg1m: number;
  /** Machine-wide CPU use (all cores) in the second before the run started. */
  busyPctAtStart?: number;
  note: string;
}

export interface Versions {
  node: string;
  natsServer: string;
  zookeeper: string;
  java: string;
  natsJs: string;
  zistore: string;
  /**
   * sha256 (first 12 hex digits) over the store's source (actors/, bus/, coordination/, cli/,
   * client/): tells runs of different code apart without git.
   */
  zistoreSource: string;
}

export interface SystemUnderTest {
  name: string;
  role: string;
  durability: string;
}

export interface Environment {
  date: string;
  machine: Machine;
  versions: Versions;
  systems: SystemUnderTest[];
}

export function describeMachine(): Machine {
  const list = cpus();
  return {
    cores: list.length,
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    memoryBytes: totalmem(),
    os: `${osType()} ${release()}`,
    loadAvg1m: loadavg()[0] ?? 0,
    note:
      `client (the bench), nats-server, ZooKeeper and every ZiStore node run on this one ${list.length}-core host, ` +
      'so they compete for the same cores: absolute figures are pessimistic and throughput is bounded by the host CPU, ' +
      'not by the network',
  };
}

export function packageVersion(name: string): string {
  try {
    const file = name === '.' ? join(ROOT, 'package.json') : join(ROOT, 'node_modules', name, 'package.json');
    return (JSON.parse(readFileSync(file, 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

const SOURCE_DIRS = ['actors', 'bus', 'coordination', 'cli', 'client'];

export function sourceFingerprint(): string {
  const hash = createHash('sha256');
  const walk = (dir: string): void => {
    let names: string[];
    try {
      names = readdirSync(join(ROOT, dir)).sort();
    } catch {
      return;
    }
    for (const name of names) {
      const rel = join(dir, name);
      if (statSync(join(ROOT, rel)).isDirectory()) walk(rel);
      else if (/\.(ts|js|mjs)$/.test(name)) hash.update(rel).update('\0').update(readFileSync(join(ROOT, rel))).update('\0');
    }
  };
  for (const dir of SOURCE_DIRS) walk(dir);
  return hash.digest('hex').slice(0, 12);
}

function javaVersion(): string {
  // `java -version` writes to stderr.
  const r = spawnSync('java', ['-version'], { encoding: 'utf8' });
  return `${r.stderr ?? ''}${r.stdout ?? ''}`.split('\n')[0]?.trim() || 'unknown';
}

export async function describeVersions(nc: NatsConnection, zookeeper: ZooKeeperHandle): Promise<Versions> {
  let zk = 'unknown';
  try {
    const srvr = await zookeeper.fourLetterWord('srvr');
    // Debian's build leaves a '-${mvngit.commit.id}' placeholder in the version string.
    zk = /Zookeeper version:\s*([^,\n]+)/i.exec(srvr)?.[1]?.replace(/-\$\{[^}]*\}/, '').trim() ?? 'unknown';
  } catch {
    /* stays unknown */
  }
  return {
    node: process.version,
    natsServer: nc.info?.version ?? 'unknown',
    zookeeper: zk,
    java: javaVersion(),
    natsJs: packageVersion('nats'),
    zistore: packageVersion('.'),
    zistoreSource: sourceFingerprint(),
  };
}

export function describeSystems(): SystemUnderTest[] {
  return [
    {
      name: 'ZiStore',
      role: 'system under test (3 nodes unless stated)',
      durability:
        'memory only: no disk writes; a put is acknowledged once every live replica holds it in memory, ' +
        'so it survives while one replica survives, and is lost if every node stops (the durable section also runs ' +
        'nodes with --data-dir: --fsync always / interval, as its tables say)',
    },
    {
      name: 'ZooKeeper',
      role: 'ZiStore coordination only (sessions, election, epoch, replica set); not on the read/write path',
      durability: 'standalone server, forceSync=yes (fsync of its transaction log), data in a temp dir',
    },
    {
      name: 'NATS echo / relay',
      role:
        'baseline peers: bare request-reply (through bus/request-mux.ts, as ZiStore\'s client sends) to a responder process on the same nats-server (echo), and the same ' +
        'with the responder first sending the value on to N other responder processes (relay: a put\'s message pattern)',
      durability: 'none (keeps no state)',
    },
  ];
}
