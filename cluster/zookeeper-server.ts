import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { findExecutable, retryOnPortClash, SETUP_HINT, spawnManaged, waitReady, type ManagedProcess } from './child-process.ts';
import type { ClusterLogger } from './logger.ts';
import { freePort } from './ports.ts';
import { zkFourLetterWord } from './tcp-probe.ts';
import { makeTempDir, removeTempDir, removeTempDirSync } from './temp-dir.ts';

export const ZOOKEEPER_JAR = '/usr/share/java/zookeeper.jar';
const SLF4J_SIMPLE_JAR = '/usr/share/java/slf4j-simple.jar';
const SLF4J_NOP_JAR = '/usr/share/java/slf4j-nop.jar';

export interface ZooKeeperOptions {
  /** Client port; a free one when omitted. */
  port?: number;
  /** Data dir (zoo.cfg, zookeeper.log and the snapshots go here). A temp dir, removed on stop(), when omitted. */
  dataDir?: string;
  /** Default 200 ms. Session timeouts must lie within [minSessionTimeoutMs, maxSessionTimeoutMs]. */
  tickTimeMs?: number;
  /** Default 2 ticks (ZooKeeper's own default). */
  minSessionTimeoutMs?: number;
  /** Default 60000. */
  maxSessionTimeoutMs?: number;
  /** ZooKeeper's forceSync (fsync of the transaction log). Default true. */
  forceSync?: boolean;
  /** Extra zoo.cfg lines, key → value. */
  extraConfig?: Record<string, string | number | boolean>;
  /** Server log level (slf4j-simple): default 'info'. */
  serverLogLevel?: 'error' | 'warn' | 'info' | 'debug';
  /** Start-up timeout; default 30000 ms. */
  startTimeoutMs?: number;
  /** Grace period between SIGTERM and SIGKILL on stop(); default 5000 ms. */
  stopGraceMs?: number;
  /** Path of `java`; default from PATH. */
  javaPath?: string;
  /** Extra JVM flags appended after the defaults. */
  jvmArgs?: string[];
  log?: ClusterLogger;
}

export interface ZooKeeperHandle {
  readonly pid: number;
  readonly port: number;
  /** '127.0.0.1:PORT' */
  readonly connectString: string;
  readonly dataDir: string;
  readonly logFile: string;
  /** True when dataDir is a temp dir created by startZooKeeper (removed on stop()). */
  readonly ownsDataDir: boolean;
  /** Resolves when the JVM has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  isRunning(): boolean;
  /** SIGTERM, SIGKILL after the grace period, await exit; then remove the data dir if we created it. */
  stop(): Promise<void>;
  /** SIGKILL now, resolves on exit. Keeps the data dir (restart on it, or call stop() to clean up). */
  kill(): Promise<void>;
  /** SIGSTOP / SIGCONT (e.g. to simulate a long GC pause). */
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** Send a four-letter-word command (ruok, stat, mntr, ...) and return the reply. */
  fourLetterWord(command: string): Promise<string>;
  /**
   * Stop this server (SIGKILL like a crash by default, SIGTERM with `graceful`) and start a new one on the
   * same port and data dir. The new handle takes over the data dir's ownership; this handle is spent.
   */
  restart(opts?: { graceful?: boolean }): Promise<ZooKeeperHandle>;
}

const DEFAULT_JVM_ARGS = ['-Xmx256m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-Xshare:auto'];

/** Start a standalone ZooKeeper on 127.0.0.1 and wait until it answers `ruok` with `imok`. */
export async function startZooKeeper(opts: ZooKeeperOptions = {}): Promise<ZooKeeperHandle> {
  return retryOnPortClash(opts.port !== undefined, () => launchZooKeeper(opts, opts.dataDir === undefined));
}

async function launchZooKeeper(opts: ZooKeeperOptions, ownsDataDir: boolean): Promise<ZooKeeperHandle> {
  const java = findExecutable(opts.javaPath ?? 'java');
  if (!java) throw new Error(`Java runtime not found (java is not on PATH): ${SETUP_HINT}`);
  if (!existsSync(ZOOKEEPER_JAR)) throw new Error(`ZooKeeper not installed (${ZOOKEEPER_JAR} is missing): ${SETUP_HINT}`);
  const binding = existsSync(SLF4J_SIMPLE_JAR) ? SLF4J_SIMPLE_JAR : SLF4J_NOP_JAR;

  const tickTimeMs = opts.tickTimeMs ?? 200;
  const minSession = opts.minSessionTimeoutMs ?? tickTimeMs * 2;
  const maxSession = opts.maxSessionTimeoutMs ?? 60_000;
  if (minSession < tickTimeMs * 2) throw new Error(`minSessionTimeoutMs (${minSession}) must be >= 2 * tickTimeMs (${tickTimeMs})`);
  if (maxSession < minSession) throw new Error(`maxSessionTimeoutMs (${maxSession}) < minSessionTimeoutMs (${minSession})`);

  const dataDir = opts.dataDir !== undefined ? resolve(opts.dataDir) : await makeTempDir('zk');
  let owned = ownsDataDir;
  try {
    await mkdir(dataDir, { recursive: true });
    const port = opts.port ?? (await freePort());
    const cfg: Record<string, string | number | boolean> = {
      tickTime: tickTimeMs,
      dataDir,
      clientPort: port,
      clientPortAddress: '127.0.0.1',
      minSessionTimeout: minSession,
      maxSessionTimeout: maxSession,
      maxClientCnxns: 0,
      'admin.enableServer': false,
      '4lw.commands.whitelist': '*',
      forceSync: opts.forceSync === false ? 'no' : 'yes',
      ...opts.extraConfig,
    };
    const cfgFile = join(dataDir, 'zoo.cfg');
    await writeFile(cfgFile, Object.entries(cfg).map(([k, v]) => `${k}=${String(v)}`).join('\n') + '\n');
    const logFile = join(dataDir, 'zookeeper.log');

    const args = [
      ...DEFAULT_JVM_ARGS,
      ...(opts.jvmArgs ?? []),
      `-Dorg.slf4j.simpleLogger.defaultLogLevel=${opts.serverLogLevel ?? 'info'}`,
      '-Dorg.slf4j.simpleLogger.showDateTime=true',
      '-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS',
      '-Dzookeeper.admin.enableServer=false',
      '-cp',
      `${ZOOKEEPER_JAR}:${binding}`,
      'org.apache.zookeeper.server.quorum.QuorumPeerMain',
      cfgFile,
    ];
    const proc: ManagedProcess = await spawnManaged({
      name: `zookeeper:${port}`,
      command: java,
      args,
      cwd: dataDir,
      logFile,
      log: opts.log,
      stopGraceMs: opts.stopGraceMs ?? 5000,
      cleanup: async () => {
        if (owned) await removeTempDir(dataDir);
      },
      cleanupSync: () => {
        if (owned) removeTempDirSync(dataDir);
      },
    });
    await waitReady({
      proc,
      what: `ZooKeeper on 127.0.0.1:${port}`,
      timeoutMs: opts.startTimeoutMs ?? 30_000,
      intervalMs: 100,
      probe: async () => {
        if (!(await zkFourLetterWord(port, 'ruok', '127.0.0.1', 1000)).startsWith('imok')) return false;
        // Make sure it is *our* server answering (another one may hold the port): its conf names our dataDir.
        const conf = await zkFourLetterWord(port, 'conf', '127.0.0.1', 1000);
        return conf.includes(`dataDir=${dataDir}`) && proc.isRunning();
      },
    });
    opts.log?.info({ pid: proc.pid, port, dataDir }, 'zookeeper started');
    return {
      pid: proc.pid,
      port,
      connectString: `127.0.0.1:${port}`,
      dataDir,
      logFile,
      get ownsDataDir() {
        return owned;
      },
      exited: proc.exited,
      isRunning: () => proc.isRunning(),
      stop: () => proc.stop(),
      kill: () => proc.kill(),
      pause: () => proc.pause(),
      resume: () => proc.resume(),
      fourLetterWord: (command) => zkFourLetterWord(port, command),
      async restart(r = {}) {
        const transfer = owned;
        owned = false;
        if (!r.graceful) await proc.kill();
        await proc.stop();
        return launchZooKeeper({ ...opts, port, dataDir }, transfer);
      },
    };
  } catch (err) {
    if (owned) await removeTempDir(dataDir).catch(() => {});
    throw err;
  }
}
